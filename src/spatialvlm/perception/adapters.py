"""Model-independent output adapters: resizing predictions back to the image, units, boxes, NMS, intrinsics.

Pure numpy (torch only for interpolation), so the maths is checked with known values in tests independently of
any model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..records import Intrinsics

# --------------------------------------------------------------------------------------------------------------
# depth
# --------------------------------------------------------------------------------------------------------------


def _interp(arr: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None]
    kw: dict[str, Any] = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return torch.nn.functional.interpolate(t, size=size, mode=mode, **kw)[0, 0].numpy()


def resize_depth(depth: np.ndarray, size: tuple[int, int], mode: str = "bilinear",
                 min_valid_fraction: float = 0.5) -> np.ndarray:
    """Resize a metric depth map (metres, 0 / NaN / inf / negative = invalid) to ``size`` = (height, width).

    ``bilinear`` interpolates only among valid pixels (normalised convolution): an output pixel whose
    interpolation weight on valid input pixels is below ``min_valid_fraction`` becomes 0 (invalid), so holes never
    bleed into made-up depths between an object and the wall behind it. ``nearest`` copies values.
    Returns float32 with 0 for invalid pixels."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be H x W, got shape {depth.shape}")
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"target size must be positive, got {size}")
    valid = np.isfinite(depth) & (depth > 0)
    clean = np.where(valid, depth, 0.0).astype(np.float32)
    if depth.shape == (h, w):
        return clean
    if mode == "nearest":
        return _interp(clean, (h, w), "nearest").astype(np.float32)
    if mode != "bilinear":
        raise ValueError(f"unknown depth resize mode {mode!r} (use 'bilinear' or 'nearest')")
    num = _interp(clean, (h, w), "bilinear")
    den = _interp(valid.astype(np.float32), (h, w), "bilinear")
    out = np.zeros((h, w), dtype=np.float32)
    ok = den >= max(min_valid_fraction, 1e-6)
    out[ok] = num[ok] / den[ok]
    return out


def inverse_depth_to_metric(canonical_inverse_depth: np.ndarray, focal_px: float, width: int,
                            size: tuple[int, int] | None = None) -> np.ndarray:
    """DepthPro's output convention: the network predicts a *canonical inverse depth* c; the metric depth of an
    image ``width`` pixels wide with focal length ``focal_px`` is ``focal_px / (width * c)``.

    The inverse depth is resized to ``size`` first (inverse depth interpolates better than depth across edges).
    Non-positive / non-finite inputs give 0 (invalid)."""
    inv = np.asarray(canonical_inverse_depth, dtype=np.float32)
    if focal_px <= 0 or width <= 0:
        raise ValueError(f"need a positive focal length and width, got focal_px={focal_px} width={width}")
    if size is not None and inv.shape != tuple(size):
        inv = _interp(np.where(np.isfinite(inv), inv, 0.0), (int(size[0]), int(size[1])), "bilinear")
    out = np.zeros(inv.shape, dtype=np.float32)
    ok = np.isfinite(inv) & (inv > 1e-8)
    out[ok] = (focal_px / (width * inv[ok])).astype(np.float32)
    return out


def clip_depth(depth: np.ndarray, min_m: float, max_m: float) -> np.ndarray:
    """Depths outside [min_m, max_m] become 0 (invalid)."""
    out = np.asarray(depth, dtype=np.float32).copy()
    out[~np.isfinite(out) | (out < min_m) | (out > max_m)] = 0.0
    return out


# --------------------------------------------------------------------------------------------------------------
# masks and boxes
# --------------------------------------------------------------------------------------------------------------


def resize_masks(masks: np.ndarray, size: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """(n, h, w) mask probabilities / booleans -> (n, H, W) bool at ``size`` = (height, width), bilinear then
    thresholded."""
    import torch

    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"masks must be n x h x w, got shape {masks.shape}")
    if masks.shape[0] == 0:
        return np.zeros((0, int(size[0]), int(size[1])), dtype=bool)
    t = torch.from_numpy(masks.astype(np.float32))[:, None]
    if tuple(masks.shape[1:]) != (int(size[0]), int(size[1])):
        t = torch.nn.functional.interpolate(t, size=(int(size[0]), int(size[1])), mode="bilinear",
                                            align_corners=False)
    return (t[:, 0] > threshold).numpy()


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def scale_boxes(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] *= sx
    b[:, [1, 3]] *= sy
    return b


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    return b


def box_area(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (n, 4) and (m, 4) xyxy boxes -> (n, m)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
        labels: Sequence[str] | None = None) -> list[int]:
    """Greedy non-maximum suppression. Returns the kept indices, highest score first.

    With ``labels`` suppression only happens among boxes of the same label (per-class NMS); without, any two
    boxes overlapping more than ``iou_threshold`` suppress each other (class-agnostic)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    if labels is not None and len(labels) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    order = list(np.argsort(-scores, kind="stable"))
    iou = box_iou(boxes, boxes)
    keep: list[int] = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        over = iou[i] > iou_threshold
        if labels is not None:
            over &= np.array([lab == labels[i] for lab in labels])
        suppressed |= over
    return keep


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """A filled rectangle as a bool mask (used when no segmenter is configured)."""
    x0, y0, x1, y1 = box
    m = np.zeros((height, width), dtype=bool)
    m[max(0, math.floor(y0)):min(height, math.ceil(y1)), max(0, math.floor(x0)):min(width, math.ceil(x1))] = True
    return m


# --------------------------------------------------------------------------------------------------------------
# intrinsics
# --------------------------------------------------------------------------------------------------------------

FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm: the 35 mm film frame the "equivalent" focal refers to


def focal_from_fov(fov_deg: float, extent_px: float) -> float:
    """Focal length in pixels for a field of view ``fov_deg`` spanning ``extent_px`` pixels."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_deg}")
    return (extent_px / 2.0) / math.tan(math.radians(fov_deg) / 2.0)


def fov_from_focal(focal_px: float, extent_px: float) -> float:
    return math.degrees(2.0 * math.atan(extent_px / (2.0 * focal_px)))


def intrinsics_from_focal(focal_px: float, width: int, height: int) -> Intrinsics:
    """Square pixels, principal point at the image centre (pixel-index convention: (W-1)/2, (H-1)/2)."""
    if not focal_px > 0:
        raise ValueError(f"focal length must be positive, got {focal_px}")
    return Intrinsics(float(focal_px), float(focal_px), (width - 1) / 2.0, (height - 1) / 2.0, int(width),
                      int(height))


def intrinsics_from_fov_prior(width: int, height: int, fov_deg: float) -> Intrinsics:
    """The field-of-view prior: ``fov_deg`` spans the *longer* image side (so portrait and landscape photos from
    the same camera get the same focal length)."""
    return intrinsics_from_focal(focal_from_fov(fov_deg, max(width, height)), width, height)


def focal_from_exif(exif: dict[str, Any] | None, width: int, height: int) -> float | None:
    """Focal length in pixels from EXIF fields kept by :func:`spatialvlm.io.photos.read_photos`, or None.

    1. ``focal_length_35mm`` (35 mm equivalent): it maps the image diagonal to the 43.27 mm full-frame diagonal,
       which holds whatever the aspect ratio and orientation: f_px = f35 * diag_px / 43.27.
    2. ``focal_length_mm`` with ``focal_plane_x_res`` (pixels per ``focal_plane_unit_mm``) measured for an image
       ``exif_width`` pixels wide: f_px = f_mm * res / unit_mm * (width / exif_width).
    Implausible results (field of view outside 10..150 degrees on the longer side) are rejected."""
    if not exif:
        return None
    diag = math.hypot(width, height)
    f_px: float | None = None
    f35 = exif.get("focal_length_35mm")
    if f35 is not None and float(f35) > 0:
        f_px = float(f35) * diag / FULL_FRAME_DIAGONAL_MM
    else:
        fmm, res = exif.get("focal_length_mm"), exif.get("focal_plane_x_res")
        unit = exif.get("focal_plane_unit_mm")
        if fmm and res and unit and float(fmm) > 0 and float(res) > 0 and float(unit) > 0:
            ref_w = float(exif.get("exif_width") or 0)
            # the focal plane resolution is for the long side of the sensor's full-resolution image
            scale = max(width, height) / ref_w if ref_w > 0 else 1.0
            f_px = float(fmm) * float(res) / float(unit) * scale
    if f_px is None:
        return None
    fov = fov_from_focal(f_px, max(width, height))
    if not 10.0 <= fov <= 150.0:
        return None
    return f_px


def rescale_intrinsics(intr: Intrinsics, width: int, height: int) -> Intrinsics:
    """Intrinsics for the same camera when the image was resized to ``width`` x ``height`` (e.g. a model that ran
    at its own resolution)."""
    return intr.scaled(width, height)
