"""CLIP scene filter: keep photos that look like a phone photo of an indoor / outdoor scene (SpatialVLM's
filtering step), reject close-ups of single objects, product shots, artwork, screenshots, text and sketches."""

from __future__ import annotations

import numpy as np

from .loading import TorchBackend, check_images, chunks, load_pretrained, quiet_transformers
from .protocols import FilterDecision

POSITIVE_PROMPTS = [
    "a phone photo of an indoor scene",
    "a phone photo of an outdoor scene",
]
NEGATIVE_PROMPTS = [
    "a close-up photo of one single object",
    "a product photo on a plain white background",
    "a painting",
    "a piece of digital artwork",
    "a screenshot of a computer or phone interface",
    "a scanned page of printed text",
    "a pencil sketch or line drawing",
]


class ClipSceneFilter(TorchBackend):
    """Zero-shot classification over positive + negative prompts (softmax of CLIP's scaled cosine logits).
    ``score`` = probability mass on the positive prompts; keep when ``score >= threshold``."""

    kind = "filter"

    def __init__(self, spec: str, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 16,
                 threshold: float = 0.5, positive: list[str] | None = None, negative: list[str] | None = None):
        from transformers import AutoProcessor, CLIPModel

        super().__init__(spec, model, device, dtype, batch_size)
        quiet_transformers()
        self.threshold = float(threshold)
        self.positive = list(positive or POSITIVE_PROMPTS)
        self.negative = list(negative or NEGATIVE_PROMPTS)
        if not self.positive or not self.negative:
            raise ValueError("the scene filter needs at least one positive and one negative prompt")
        self.processor = load_pretrained(AutoProcessor, model, "CLIP scene filter (processor)")
        self.model = load_pretrained(CLIPModel, model, "CLIP scene filter", dtype=self.dtype).to(self.device).eval()
        self._text = None

    def _text_embeddings(self):
        import torch

        if self._text is None:
            prompts = self.positive + self.negative
            tok = self.processor.tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                t = self.model.get_text_features(**{k: v.to(self.device) for k, v in tok.items()})
            t = getattr(t, "pooler_output", t)
            self._text = torch.nn.functional.normalize(t.float(), dim=-1)
        return self._text

    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        """(n_images, n_prompts) softmax probabilities, positive prompts first."""
        import torch

        check_images(images)
        text = self._text_embeddings()
        scale = float(self.model.logit_scale.detach().float().exp())
        rows = []
        for batch in chunks(list(images), self.batch_size):
            pix = self.processor.image_processor(images=batch, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                f = self.model.get_image_features(pixel_values=pix.to(self.device, self.dtype))
            f = torch.nn.functional.normalize(getattr(f, "pooler_output", f).float(), dim=-1)
            rows.append(torch.softmax(scale * f @ text.T, dim=-1).cpu().numpy())
        return np.concatenate(rows, axis=0) if rows else np.zeros((0, len(self.positive) + len(self.negative)))

    def decide(self, images: list[np.ndarray]) -> list[FilterDecision]:
        prompts = self.positive + self.negative
        npos = len(self.positive)
        out = []
        for p in self.probabilities(images):
            score = float(p[:npos].sum())
            neg = self.negative[int(np.argmax(p[npos:]))]
            out.append(FilterDecision(keep=score >= self.threshold, score=score,
                                      best_prompt=prompts[int(np.argmax(p))], best_negative=neg,
                                      probs={k: float(v) for k, v in zip(prompts, p)}))
        return out
