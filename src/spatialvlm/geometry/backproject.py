"""Pixels + metric depth + intrinsics -> 3D points in the camera frame (OpenCV: x right, y down, z forward)."""

from __future__ import annotations

import numpy as np

from ..records import Intrinsics


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """Boolean mask of usable depth: finite and strictly positive."""
    return np.isfinite(depth) & (depth > 0)


def backproject(depth: np.ndarray, intr: Intrinsics, mask: np.ndarray | None = None,
                stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Back-project the valid pixels of ``depth`` (H x W metres, z in the camera frame) that lie in ``mask``.

    Returns ``(points, pixels)``: points N x 3 (float64, camera frame) and their pixel coordinates N x 2 (u, v).
    ``stride`` > 1 subsamples the pixel grid (for whole-image work such as plane fitting)."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be H x W, got shape {depth.shape}")
    h, w = depth.shape
    if (intr.width, intr.height) != (w, h):
        raise ValueError(
            f"intrinsics are for a {intr.width}x{intr.height} image but depth is {w}x{h}; rescale them first"
        )
    sel = valid_depth(depth)
    if mask is not None:
        if mask.shape != depth.shape:
            raise ValueError(f"mask shape {mask.shape} differs from depth shape {depth.shape}")
        sel &= mask.astype(bool)
    if stride > 1:
        grid = np.zeros_like(sel)
        grid[::stride, ::stride] = True
        sel &= grid
    v, u = np.nonzero(sel)
    z = depth[v, u].astype(np.float64)
    x = (u - intr.cx) / intr.fx * z
    y = (v - intr.cy) / intr.fy * z
    return np.stack([x, y, z], axis=1), np.stack([u, v], axis=1)


def project(points: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Camera-frame points N x 3 -> pixel coordinates N x 2 (u, v); points must have z > 0."""
    points = np.asarray(points, dtype=np.float64)
    z = points[:, 2]
    if np.any(z <= 0):
        raise ValueError("cannot project points at or behind the camera (z <= 0)")
    return np.stack([intr.fx * points[:, 0] / z + intr.cx, intr.fy * points[:, 1] / z + intr.cy], axis=1)
