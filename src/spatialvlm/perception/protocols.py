"""The small interfaces every perception backend implements, and the plain results they return.

Every method takes a *batch* (a list of H x W x 3 uint8 RGB images) and returns one result per image, already
mapped back to the original image resolution and to metres. Backends are created by
:func:`spatialvlm.perception.registry.get_backend` from a spec such as ``"owlv2:google/owlv2-base-patch16-ensemble"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the original image (x1, y1 exclusive)


@dataclass
class DepthPrediction:
    """Metric depth for one image at its original resolution.

    ``depth`` is float32 metres (z along the optical axis), 0 where the model gave nothing usable.
    ``focal_px`` is the focal length (pixels, original resolution) the model predicted or used, when it has one;
    ``fov_deg`` the matching horizontal field of view."""

    depth: np.ndarray
    focal_px: float | None = None
    fov_deg: float | None = None


@dataclass
class Detection:
    label: str  # the vocabulary entry (prompt) that matched
    box: Box
    score: float


@dataclass
class MaskPrediction:
    mask: np.ndarray  # bool H x W at the original resolution
    score: float  # the segmenter's own quality estimate (predicted IoU), 0..1


@dataclass
class FilterDecision:
    keep: bool
    score: float  # probability mass on the positive prompts, 0..1
    best_prompt: str  # the single most likely prompt
    best_negative: str = ""  # the most likely negative prompt
    probs: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class DepthEstimator(Protocol):
    spec: str

    def predict(self, images: list[np.ndarray], focal_px: list[float | None] | None = None,
                fallback_focal_px: list[float | None] | None = None) -> list[DepthPrediction]:
        """``focal_px`` (optional, per image, original resolution): a known focal length, and
        ``fallback_focal_px`` one to use when the model predicts none. Only models whose metric scale depends on
        the focal length (DepthPro) use them."""
        ...


@runtime_checkable
class Detector(Protocol):
    spec: str

    def detect(self, images: list[np.ndarray], vocabulary: list[str], threshold: float) -> list[list[Detection]]:
        ...


@runtime_checkable
class Segmenter(Protocol):
    spec: str

    def segment(self, images: list[np.ndarray], boxes: list[list[Box]]) -> list[list[MaskPrediction]]:
        ...


@runtime_checkable
class Captioner(Protocol):
    spec: str

    def caption(self, images: list[np.ndarray], boxes: list[list[Box]]) -> list[list[str]]:
        ...


@runtime_checkable
class SceneFilter(Protocol):
    spec: str

    def decide(self, images: list[np.ndarray]) -> list[FilterDecision]:
        ...


@runtime_checkable
class TextEmbedder(Protocol):
    spec: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, d) float32, each row unit norm."""
        ...
