"""3D boxes from points: axis-aligned in a frame, and gravity-aligned oriented boxes (yaw about z only)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from ..records import Box3D


def aabb(points: np.ndarray) -> Box3D:
    return Box3D.from_points(points)


def min_area_rect(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Smallest-area rectangle around 2D points: (centre, size (2,), angle of its first axis in radians)."""
    try:
        hull = xy[ConvexHull(xy).vertices]
    except (QhullError, ValueError):
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        return (lo + hi) / 2, hi - lo, 0.0
    best = None
    for i in range(len(hull)):
        e = hull[(i + 1) % len(hull)] - hull[i]
        n = np.linalg.norm(e)
        if n < 1e-12:
            continue
        a = np.arctan2(e[1], e[0])
        c, s = np.cos(a), np.sin(a)
        R = np.array([[c, s], [-s, c]])  # rotates the edge onto the x axis
        p = hull @ R.T
        lo, hi = p.min(axis=0), p.max(axis=0)
        area = float(np.prod(hi - lo))
        if best is None or area < best[0]:
            centre = R.T @ ((lo + hi) / 2)
            best = (area, centre, hi - lo, a)
    if best is None:
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        return (lo + hi) / 2, hi - lo, 0.0
    return best[1], best[2], best[3]


def gravity_obb(points_canon: np.ndarray) -> Box3D:
    """Oriented box in the canonical frame: minimum-area footprint rectangle, vertical extent along z."""
    xy = points_canon[:, :2]
    if len(xy) > 4000:
        xy = xy[np.random.default_rng(0).choice(len(xy), 4000, replace=False)]
    centre, size, angle = min_area_rect(xy)
    z0, z1 = points_canon[:, 2].min(), points_canon[:, 2].max()
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return Box3D(np.array([centre[0], centre[1], (z0 + z1) / 2]), np.array([size[0], size[1], z1 - z0]), R)


def box_distance(a: Box3D, b: Box3D) -> float:
    """Distance between two axis-aligned boxes (0 when they touch or overlap)."""
    gap = np.maximum(0.0, np.maximum(a.min - b.max, b.min - a.max))
    return float(np.linalg.norm(gap))
