"""Region captions (transformers): Florence-2 ``<REGION_TO_DESCRIPTION>`` names each detected box with a short
object-centric phrase ("red mug with a handle") instead of the detector's class word."""

from __future__ import annotations

import re

import numpy as np

from .loading import TorchBackend, check_images, chunks, load_pretrained, quiet_transformers
from .protocols import Box

TASK = "<REGION_TO_DESCRIPTION>"
LOC_BINS = 1000


def quantize_box(box: Box, width: int, height: int, bins: int = LOC_BINS) -> tuple[int, int, int, int]:
    """Florence-2 location tokens: each coordinate floored into one of ``bins`` equal bins over the image."""
    x0, y0, x1, y1 = box
    qx = lambda x: int(min(bins - 1, max(0, np.floor(x / (width / bins)))))
    qy = lambda y: int(min(bins - 1, max(0, np.floor(y / (height / bins)))))
    return qx(x0), qy(y0), qx(x1), qy(y1)


def region_prompt(box: Box, width: int, height: int) -> str:
    a, b, c, d = quantize_box(box, width, height)
    return f"{TASK}<loc_{a}><loc_{b}><loc_{c}><loc_{d}>"


_TAG = re.compile(r"<[^<>]*>")


def clean_caption(text: str, max_words: int = 6) -> str:
    """Drop special / location tokens and punctuation, lower-case, keep at most ``max_words`` words."""
    text = _TAG.sub(" ", text or "")
    text = re.sub(r"[^\w\s'-]", " ", text.lower())
    words = text.split()
    return " ".join(words[:max_words])


class Florence2Backend(TorchBackend):
    """Florence-2 through transformers' native implementation: use the converted checkpoints
    ``florence-community/Florence-2-base`` / ``-large`` (the original ``microsoft/Florence-2-*`` repos hold
    remote code for ``trust_remote_code``, which this backend does not run). Returns "" where the model says
    nothing usable, so the caller keeps the class name."""

    kind = "captioner"

    def __init__(self, spec: str, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 16,
                 max_new_tokens: int = 20, num_beams: int = 1, max_words: int = 6):
        from transformers import AutoProcessor, Florence2ForConditionalGeneration

        super().__init__(spec, model, device, dtype, batch_size)
        quiet_transformers()
        self.max_new_tokens, self.num_beams, self.max_words = int(max_new_tokens), int(num_beams), int(max_words)
        self.processor = load_pretrained(AutoProcessor, model, "Florence-2 captioner (processor)")
        self.model = load_pretrained(Florence2ForConditionalGeneration, model, "Florence-2 captioner",
                                     dtype=self.dtype).to(self.device).eval()

    def caption(self, images: list[np.ndarray], boxes: list[list[Box]]) -> list[list[str]]:
        import torch

        check_images(images)
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} box lists")
        out: list[list[str]] = []
        for im, bxs in zip(images, boxes):
            h, w = im.shape[:2]
            caps: list[str] = []
            for chunk in chunks(list(bxs), self.batch_size):
                prompts = [region_prompt(b, w, h) for b in chunk]
                inputs = self.processor(text=prompts, images=[im] * len(chunk), return_tensors="pt")
                inputs = self._to_device(dict(inputs))
                with torch.inference_mode():
                    ids = self.model.generate(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"],
                                              attention_mask=inputs.get("attention_mask"),
                                              max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                              do_sample=False)
                texts = self.processor.batch_decode(ids, skip_special_tokens=True)
                caps.extend(clean_caption(t, self.max_words) for t in texts)
            out.append(caps)
        return out
