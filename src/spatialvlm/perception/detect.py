"""Open-vocabulary detection backends (transformers): OWLv2 and Grounding DINO.

``detect(images, vocabulary, threshold)`` returns, per image, every box scoring above ``threshold`` with the
vocabulary entry it matched, in original-image pixels (x0, y0, x1, y1). NMS is applied by the stage."""

from __future__ import annotations

import numpy as np

from .adapters import clip_boxes, cxcywh_to_xyxy
from .loading import TorchBackend, check_images, chunks, groups_by_size, load_pretrained, quiet_transformers
from .protocols import Detection


def _check_vocab(vocabulary: list[str]) -> list[str]:
    vocab = [str(v).strip() for v in vocabulary if str(v).strip()]
    if not vocab:
        raise ValueError("the detection vocabulary is empty")
    return vocab


class Owlv2Backend(TorchBackend):
    """OWLv2 (``google/owlv2-base-patch16-ensemble``, ``google/owlv2-large-patch14-ensemble``).

    Each vocabulary entry is a text query (through ``prompt_template``, default ``"a photo of a {}"``). The
    processor pads every image to a square at the bottom/right, so predicted boxes are relative to the padded
    square: pixels = relative x max(H, W), then clipped to the image."""

    kind = "detector"

    def __init__(self, spec: str, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 4,
                 prompt_template: str = "a photo of a {}"):
        from transformers import AutoProcessor, Owlv2ForObjectDetection

        super().__init__(spec, model, device, dtype, batch_size)
        quiet_transformers()
        self.prompt_template = prompt_template
        self.processor = load_pretrained(AutoProcessor, model, "OWLv2 detector (processor)")
        self.model = load_pretrained(Owlv2ForObjectDetection, model, "OWLv2 detector",
                                     dtype=self.dtype).to(self.device).eval()
        self.max_text_len = int(self.model.config.text_config.max_position_embeddings)
        size = getattr(self.processor.image_processor, "size", None) or {}
        self.input_size = int(size.get("height") or self.model.config.vision_config.image_size)

    def _square(self, image: np.ndarray) -> np.ndarray:
        """Pad to a square at the bottom/right with OWLv2's grey (0.5) and resize to the model's input size.
        The processor would do the same, but its anti-aliasing blur on a large photo costs seconds per image."""
        from PIL import Image

        h, w = image.shape[:2]
        s = max(h, w)
        sq = np.full((s, s, 3), 128, dtype=np.uint8)
        sq[:h, :w] = image
        if s == self.input_size:
            return sq
        return np.array(Image.fromarray(sq).resize((self.input_size, self.input_size), Image.Resampling.BILINEAR))

    def detect(self, images: list[np.ndarray], vocabulary: list[str], threshold: float = 0.1) -> list[list[Detection]]:
        import torch

        check_images(images)
        vocab = _check_vocab(vocabulary)
        queries = [self.prompt_template.format(v) for v in vocab]
        out: list[list[Detection]] = []
        for batch in chunks(list(images), self.batch_size):
            inputs = self.processor(text=[queries] * len(batch), images=[self._square(im) for im in batch],
                                    return_tensors="pt", truncation=True,
                                    padding="max_length", max_length=self.max_text_len)
            with torch.inference_mode():
                res = self.model(**self._to_device(dict(inputs)))
            best = res.logits.float().max(dim=-1)  # (B, patches): the best query per predicted box
            all_scores = torch.sigmoid(best.values).cpu().numpy()
            all_labels = best.indices.cpu().numpy()
            boxes = res.pred_boxes.float().cpu().numpy()  # (B, patches, 4) cxcywh relative to the padded square
            for im, scores, labels, bx in zip(batch, all_scores, all_labels, boxes):
                h, w = im.shape[:2]
                xyxy = clip_boxes(cxcywh_to_xyxy(bx) * max(h, w), w, h)
                keep = np.nonzero(scores > threshold)[0]
                dets = [Detection(vocab[int(labels[k])], tuple(float(v) for v in xyxy[k]), float(scores[k]))
                        for k in keep if xyxy[k, 2] > xyxy[k, 0] and xyxy[k, 3] > xyxy[k, 1]]
                out.append(sorted(dets, key=lambda d: -d.score))
        return out


class GroundingDinoBackend(TorchBackend):
    """Grounding DINO (``IDEA-Research/grounding-dino-tiny`` / ``-base``).

    The vocabulary is written as one prompt ``"chair. table. cup."`` (split in several prompts when it exceeds
    the text encoder's token limit). A box's score for a vocabulary entry is the highest token probability among
    that entry's tokens; the box takes the best entry. Boxes are relative to the (unpadded) image."""

    kind = "detector"

    def __init__(self, spec: str, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 4,
                 max_prompt_tokens: int | None = None):
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        super().__init__(spec, model, device, dtype, batch_size)
        quiet_transformers()
        self.processor = load_pretrained(AutoProcessor, model, "Grounding DINO detector (processor)")
        self.model = load_pretrained(AutoModelForZeroShotObjectDetection, model, "Grounding DINO detector",
                                     dtype=self.dtype).to(self.device).eval()
        limit = int(getattr(self.model.config, "max_text_len", 256))
        self.max_prompt_tokens = min(limit, max_prompt_tokens or limit) - 2  # [CLS] and [SEP]

    def prompts(self, vocabulary: list[str]) -> list[tuple[str, list[tuple[str, int, int]]]]:
        """Split the vocabulary into prompts under the token limit: [(prompt, [(entry, char_start, char_end)])]."""
        tok = self.processor.tokenizer
        out: list[tuple[str, list[tuple[str, int, int]]]] = []
        text, spans, used = "", [], 0
        for v in vocabulary:
            phrase = v.lower().strip().rstrip(".")
            n = len(tok(phrase + ".", add_special_tokens=False)["input_ids"])
            if n > self.max_prompt_tokens:
                raise ValueError(f"vocabulary entry {v!r} alone exceeds the detector's text limit")
            if used + n > self.max_prompt_tokens and spans:
                out.append((text.strip(), spans))
                text, spans, used = "", [], 0
            start = len(text)
            text += phrase + ". "
            spans.append((v, start, start + len(phrase)))
            used += n
        if spans:
            out.append((text.strip(), spans))
        return out

    def detect(self, images: list[np.ndarray], vocabulary: list[str], threshold: float = 0.3) -> list[list[Detection]]:
        import torch

        check_images(images)
        vocab = _check_vocab(vocabulary)
        results: list[list[Detection]] = [[] for _ in images]
        for prompt, spans in self.prompts(vocab):
            enc = self.processor.tokenizer(prompt, return_offsets_mapping=True)
            offsets = enc["offset_mapping"]
            token_sets = []
            for _, s, e in spans:
                toks = [t for t, (a, b) in enumerate(offsets) if b > a and a < e and b > s]
                token_sets.append(toks)
            for group in groups_by_size(images):
                for idx in chunks(group, self.batch_size):
                    batch = [images[i] for i in idx]
                    inputs = self.processor(images=batch, text=[prompt] * len(batch), return_tensors="pt")
                    with torch.inference_mode():
                        res = self.model(**self._to_device(dict(inputs)))
                    probs = torch.sigmoid(res.logits.float()).cpu().numpy()  # (B, Q, text_len)
                    boxes = res.pred_boxes.float().cpu().numpy()
                    for i, pr, bx in zip(idx, probs, boxes):
                        h, w = images[i].shape[:2]
                        per_label = np.stack([pr[:, t].max(axis=1) if t else np.zeros(len(pr))
                                              for t in token_sets], axis=1)  # (Q, L)
                        best = per_label.argmax(axis=1)
                        score = per_label[np.arange(len(pr)), best]
                        xyxy = clip_boxes(cxcywh_to_xyxy(bx) * np.array([w, h, w, h]), w, h)
                        for q in np.nonzero(score > threshold)[0]:
                            if xyxy[q, 2] > xyxy[q, 0] and xyxy[q, 3] > xyxy[q, 1]:
                                results[i].append(Detection(spans[int(best[q])][0],
                                                            tuple(float(v) for v in xyxy[q]), float(score[q])))
        return [sorted(r, key=lambda d: -d.score) for r in results]
