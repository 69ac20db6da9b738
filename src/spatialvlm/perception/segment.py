"""Box-prompted segmentation backends (transformers): SAM and SAM2.

``segment(images, boxes)`` returns one :class:`MaskPrediction` per box, a bool mask at the original resolution.
The image encoder (the expensive part) runs once per batch of images; each image's boxes are then decoded in
chunks of ``max_boxes`` prompts."""

from __future__ import annotations

import numpy as np

from .loading import TorchBackend, check_images, chunks, load_pretrained, quiet_transformers
from .protocols import Box, MaskPrediction


class _SamBase(TorchBackend):
    kind = "segmenter"
    what = "SAM segmenter"
    model_cls = "SamModel"

    def __init__(self, spec: str, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 4,
                 max_boxes: int = 64):
        import transformers
        from transformers import AutoProcessor

        super().__init__(spec, model, device, dtype, batch_size)
        quiet_transformers()
        self.max_boxes = max(1, int(max_boxes))
        self.processor = load_pretrained(AutoProcessor, model, f"{self.what} (processor)")
        cls = getattr(transformers, self.model_cls)
        self.model = load_pretrained(cls, model, self.what, dtype=self.dtype).to(self.device).eval()

    def segment(self, images: list[np.ndarray], boxes: list[list[Box]]) -> list[list[MaskPrediction]]:
        import torch

        check_images(images)
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} box lists")
        out: list[list[MaskPrediction]] = [[] for _ in images]
        todo = [i for i, b in enumerate(boxes) if len(b)]
        for idx in chunks(todo, self.batch_size):
            pixel = self.processor(images=[images[i] for i in idx], return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                emb = self.model.get_image_embeddings(pixel.to(self.device, self.dtype))
            for j, i in enumerate(idx):
                img_emb = [e[j:j + 1] for e in emb] if isinstance(emb, (list, tuple)) else emb[j:j + 1]
                for box_chunk in chunks([list(map(float, b)) for b in boxes[i]], self.max_boxes):
                    out[i].extend(self._decode(images[i], img_emb, box_chunk))
        return out

    def _decode(self, image: np.ndarray, img_emb, box_chunk: list[list[float]]) -> list[MaskPrediction]:
        import torch

        inputs = self.processor(images=[image], input_boxes=[box_chunk], return_tensors="pt")
        with torch.inference_mode():
            res = self.model(image_embeddings=img_emb, input_boxes=inputs["input_boxes"].to(self.device, self.dtype),
                             multimask_output=False)
        masks = self._postprocess(res.pred_masks.float().cpu(), inputs)[0]  # (n, 1, H, W) bool
        masks = np.asarray(masks[:, 0].numpy(), dtype=bool)
        scores = res.iou_scores.float().cpu().numpy().reshape(len(box_chunk), -1)[:, 0]
        h, w = image.shape[:2]
        if masks.shape[1:] != (h, w):
            raise RuntimeError(f"segmenter returned masks of shape {masks.shape[1:]} for a {h}x{w} image")
        return [MaskPrediction(m, float(np.clip(s, 0.0, 1.0))) for m, s in zip(masks, scores)]

    def _postprocess(self, pred_masks, inputs):  # pragma: no cover - abstract
        raise NotImplementedError


class SamBackend(_SamBase):
    """Segment Anything (``facebook/sam-vit-base`` / ``-large`` / ``-huge``)."""

    what = "SAM segmenter"
    model_cls = "SamModel"

    def _postprocess(self, pred_masks, inputs):
        return self.processor.image_processor.post_process_masks(pred_masks, inputs["original_sizes"],
                                                                 inputs["reshaped_input_sizes"])


class Sam2Backend(_SamBase):
    """SAM 2 / 2.1 (``facebook/sam2.1-hiera-tiny`` / ``-small`` / ``-base-plus`` / ``-large``)."""

    what = "SAM2 segmenter"
    model_cls = "Sam2Model"

    def _postprocess(self, pred_masks, inputs):
        return self.processor.post_process_masks(pred_masks, inputs["original_sizes"])
