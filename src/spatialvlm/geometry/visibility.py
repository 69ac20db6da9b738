"""What of an object the camera saw, judged from the image alone: cut by the image border, hidden behind nearer
surfaces along its outline, and (in the canonical frame) whether its top faces the camera so its full depth shows."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SIDES = ("left", "right", "top", "bottom")


def truncation(mask: np.ndarray | None, box: tuple[float, float, float, float] | None, width: int, height: int,
               margin: int = 1) -> dict[str, bool]:
    """Which image borders the object touches (so it may continue outside the picture)."""
    if mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    elif box is not None:
        x0, y0, x1, y1 = box
    else:
        return {s: False for s in SIDES}
    return {
        "left": bool(x0 <= margin),
        "right": bool(x1 >= width - margin),
        "top": bool(y0 <= margin),
        "bottom": bool(y1 >= height - margin),
    }


def occlusion(mask: np.ndarray, depth: np.ndarray, support_height: np.ndarray | None = None,
              min_gap: float = 0.08, rel_gap: float = 0.03) -> dict[str, float]:
    """Fraction of the object's outer outline, per side, where the pixel just outside is nearer than the object
    by more than max(min_gap, rel_gap * depth): something stands in front and may hide part of it.

    ``support_height`` (H x W, metres above the support plane, NaN where unknown) lets floor / table pixels next to the
    object's base be ignored: the surface an object stands on does not hide it."""
    if not mask.any():
        return {s: 0.0 for s in (*SIDES, "all")}
    # work on the object's neighbourhood only
    ys0, xs0 = np.nonzero(mask)
    pad = 4
    y0, y1 = max(0, ys0.min() - pad), min(mask.shape[0], ys0.max() + pad + 1)
    x0, x1 = max(0, xs0.min() - pad), min(mask.shape[1], xs0.max() + pad + 1)
    mask, depth = mask[y0:y1, x0:x1], depth[y0:y1, x0:x1]
    if support_height is not None:
        support_height = support_height[y0:y1, x0:x1]
    filled = ndimage.binary_fill_holes(mask)
    inner = filled & ~ndimage.binary_erosion(filled)
    ring = ndimage.binary_dilation(filled, iterations=2) & ~filled
    if not inner.any():
        return {s: 0.0 for s in SIDES}
    valid = np.isfinite(depth) & (depth > 0)
    obj_depth = np.where(filled & valid, depth, np.inf)
    # for each outline pixel: the nearest depth among ring pixels within 2 px
    ring_depth = np.where(ring & valid, depth, np.inf)
    if support_height is not None:
        on_support = np.isfinite(support_height) & (np.abs(support_height) < 0.03)
        ring_depth = np.where(on_support, np.inf, ring_depth)
    near_ring = ndimage.minimum_filter(ring_depth, size=5, mode="constant", cval=np.inf)
    ys, xs = np.nonzero(inner)
    d_obj = obj_depth[ys, xs]
    d_ring = near_ring[ys, xs]
    ok = np.isfinite(d_obj)
    with np.errstate(invalid="ignore"):
        occluded = ok & np.isfinite(d_ring) & (d_ring < d_obj - np.maximum(min_gap, rel_gap * d_obj))
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    wx, wy = max(x1 - x0, 1), max(y1 - y0, 1)
    sides = {
        "left": xs <= x0 + 0.2 * wx,
        "right": xs >= x1 - 0.2 * wx,
        "top": ys <= y0 + 0.2 * wy,
        "bottom": ys >= y1 - 0.2 * wy,
    }
    # the extreme outline pixels in each direction set the object's extent that way: any of them hidden behind
    # something nearer means the object may go on behind it
    extremes = {
        "left_extreme": xs <= x0 + 2,
        "right_extreme": xs >= x1 - 2,
        "top_extreme": ys <= y0 + 2,
        "bottom_extreme": ys >= y1 - 2,
    }
    out = {}
    for s, sel in {**sides, **extremes}.items():
        sel = sel & ok
        out[s] = float(occluded[sel].mean()) if sel.any() else 0.0
    out["all"] = float(occluded[ok].mean()) if ok.any() else 0.0
    return out
