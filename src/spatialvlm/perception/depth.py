"""Metric monocular depth backends (transformers): DepthPro, Depth Anything V2 (metric), ZoeDepth.

Every backend returns :class:`DepthPrediction` at the original image resolution in metres (0 = invalid)."""

from __future__ import annotations

import numpy as np

from .adapters import focal_from_fov, fov_from_focal, inverse_depth_to_metric, resize_depth
from .loading import TorchBackend, check_images, chunks, groups_by_size, load_pretrained, quiet_transformers
from .protocols import DepthPrediction

# a predicted field of view outside this range is not believed (the caller's fallback focal is used instead)
PLAUSIBLE_FOV_DEG = (15.0, 150.0)


class _DepthBase(TorchBackend):
    kind = "depth"
    model_cls = ""
    what = "depth"

    def __init__(self, spec: str, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 4):
        import transformers
        from transformers import AutoImageProcessor

        super().__init__(spec, model, device, dtype, batch_size)
        quiet_transformers()
        self.processor = load_pretrained(AutoImageProcessor, model, f"{self.what} (image processor)")
        cls = getattr(transformers, self.model_cls)
        self.model = load_pretrained(cls, model, self.what, dtype=self.dtype).to(self.device).eval()

    def predict(self, images: list[np.ndarray], focal_px: list[float | None] | None = None,
                fallback_focal_px: list[float | None] | None = None) -> list[DepthPrediction]:
        """Metric depth per image. ``focal_px`` (known focal, original resolution) and ``fallback_focal_px``
        (used when the model predicts no plausible field of view) only matter to models whose metric scale depends
        on the focal length (DepthPro); the others ignore them."""
        check_images(images)
        n = len(images)
        focal_px = list(focal_px) if focal_px is not None else [None] * n
        fallback_focal_px = list(fallback_focal_px) if fallback_focal_px is not None else [None] * n
        if len(focal_px) != n or len(fallback_focal_px) != n:
            raise ValueError("focal_px / fallback_focal_px must have one entry per image")
        out: list[DepthPrediction | None] = [None] * n
        for group in groups_by_size(images):
            for idx in chunks(group, self.batch_size):
                preds = self._run([images[i] for i in idx], [focal_px[i] for i in idx],
                                  [fallback_focal_px[i] for i in idx])
                for i, p in zip(idx, preds):
                    out[i] = p
        return out  # type: ignore[return-value]

    def _forward(self, images: list[np.ndarray]):
        import torch

        inputs = self.processor(images=images, return_tensors="pt")
        with torch.inference_mode():
            return inputs, self.model(**self._to_device(dict(inputs)))

    def _run(self, images, focal_px, fallback):  # pragma: no cover - abstract
        raise NotImplementedError


class DepthProBackend(_DepthBase):
    """Apple DepthPro (``apple/DepthPro-hf``): canonical inverse depth + a field-of-view head.

    Metric depth = focal_px / (width * canonical_inverse_depth); the focal length comes from, in order: the
    caller's known focal (user override / calibrated frame), the model's own field of view, the caller's
    fallback (EXIF or the prior)."""

    model_cls = "DepthProForDepthEstimation"
    what = "DepthPro depth"

    def _run(self, images, focal_px, fallback):
        _, outputs = self._forward(images)
        inv = outputs.predicted_depth.float().cpu().numpy()
        fov = outputs.field_of_view
        fov = fov.float().cpu().numpy().reshape(-1) if fov is not None else [None] * len(images)
        preds = []
        for im, c, f_known, f_fb, fov_deg in zip(images, inv, focal_px, fallback, fov):
            h, w = im.shape[:2]
            f_model = None
            if fov_deg is not None and np.isfinite(fov_deg) and PLAUSIBLE_FOV_DEG[0] < fov_deg < PLAUSIBLE_FOV_DEG[1]:
                f_model = focal_from_fov(float(fov_deg), w)
            f_use = f_known or f_model or f_fb
            if f_use is None:
                raise ValueError(
                    f"DepthPro predicted no plausible field of view ({fov_deg}) and no fallback focal length was "
                    "given: cannot scale its output to metres")
            depth = inverse_depth_to_metric(c, float(f_use), w, size=(h, w))
            preds.append(DepthPrediction(depth, focal_px=f_model,
                                         fov_deg=None if f_model is None else fov_from_focal(f_model, w)))
        return preds


class DepthAnythingMetricBackend(_DepthBase):
    """Depth Anything V2 metric (``depth-anything/Depth-Anything-V2-Metric-{Indoor,Outdoor}-{Small,Base,Large}-hf``):
    metres directly (sigmoid x max_depth: 20 m indoor, 80 m outdoor); no intrinsics."""

    model_cls = "DepthAnythingForDepthEstimation"
    what = "Depth Anything V2 metric depth"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if getattr(self.model.config, "depth_estimation_type", "relative") != "metric":
            raise ValueError(
                f"{self.model_id!r} is a relative (not metric) Depth Anything model; use a *-Metric-* checkpoint such "
                "as depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf")

    def _run(self, images, focal_px, fallback):
        _, outputs = self._forward(images)
        pred = outputs.predicted_depth.float().cpu().numpy()
        return [DepthPrediction(resize_depth(d, im.shape[:2])) for im, d in zip(images, pred)]


class ZoeDepthBackend(_DepthBase):
    """ZoeDepth (``Intel/zoedepth-nyu-kitti``, ``Intel/zoedepth-nyu``, ``Intel/zoedepth-kitti``): metres; the
    processor pads the input, the padding is removed before resizing back to the image."""

    model_cls = "ZoeDepthForDepthEstimation"
    what = "ZoeDepth depth"

    def _run(self, images, focal_px, fallback):
        _, outputs = self._forward(images)
        outputs.predicted_depth = outputs.predicted_depth.float()
        sizes = [im.shape[:2] for im in images]
        post = self.processor.post_process_depth_estimation(outputs, source_sizes=sizes)
        return [DepthPrediction(resize_depth(p["predicted_depth"].cpu().numpy(), s)) for p, s in zip(post, sizes)]
