"""The gravity-aligned canonical frame from the support plane.

With a floor / table-top mask: RANSAC (5 cm, 1000 iterations) on those pixels' points, the biggest plane; if a
second, parallel plane lies lower (a floor below a table top), the lower one is the origin. Without a mask, the
geometric fallback: the dominant near-horizontal plane below the camera, where "near-horizontal" means a normal
within ``max_tilt_deg`` of the camera's up axis (-y); the camera is never pitched or rolled that far in a photo
(walls, whose normals are horizontal, are rejected). If neither gives a plane with enough support, the scene is
*not canonicalized* and the question types that need gravity are not generated.

Canonical axes: z = plane normal (up), y = the optical axis projected on the plane (forward), x = y cross z
(to the viewer's right); origin = the camera centre projected on the plane, so the camera sits at (0, 0, h)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..records import CanonicalFrame, Intrinsics
from .backproject import backproject

CAM_UP = np.array([0.0, -1.0, 0.0])
CAM_FORWARD = np.array([0.0, 0.0, 1.0])


@dataclass
class CanonicalConfig:
    ransac_threshold: float = 0.05
    ransac_iterations: int = 1000
    max_tilt_deg: float = 45.0  # plane normal vs camera up
    min_camera_height: float = 0.2  # the camera must be at least this far above the plane
    min_inliers: int = 400
    min_inlier_fraction_fallback: float = 0.03  # of all valid points, geometric fallback only
    max_points: int = 30000
    lower_plane_fraction: float = 0.15  # a lower parallel plane with this share of the first's inliers wins


def fit_plane_lsq(points: np.ndarray) -> np.ndarray:
    """Least-squares plane (a, b, c, d) with unit normal, n . p + d = 0."""
    c = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - c, full_matrices=False)
    n = vt[-1]
    return np.append(n, -n @ c)


def orient_up(plane: np.ndarray) -> np.ndarray:
    """Flip the plane so its normal points to the camera's side (d > 0: the camera origin is above it)."""
    return -plane if plane[3] < 0 else plane


def ransac_plane(points: np.ndarray, threshold: float, iterations: int, rng: np.random.Generator,
                 max_tilt_deg: float | None = None, min_height: float = 0.0) -> tuple[np.ndarray | None, np.ndarray]:
    """Plane with the most inliers among those that pass the constraints (tilt vs camera up, camera height).

    Returns ``(plane, inlier_mask)`` with the plane refit on its inliers, or ``(None, empty mask)``."""
    n = len(points)
    if n < 3:
        return None, np.zeros(n, dtype=bool)
    cos_tilt = None if max_tilt_deg is None else np.cos(np.deg2rad(max_tilt_deg))
    idx = rng.integers(0, n, size=(iterations, 3))
    p0, p1, p2 = points[idx[:, 0]], points[idx[:, 1]], points[idx[:, 2]]
    normals = np.cross(p1 - p0, p2 - p0)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-9
    normals[ok] /= norms[ok, None]
    d = -np.einsum("ij,ij->i", normals, p0)
    flip = d < 0  # orient every candidate so the camera is on its positive side
    normals[flip] *= -1
    d[flip] *= -1
    if cos_tilt is not None:
        ok &= normals @ CAM_UP >= cos_tilt
    ok &= d >= min_height
    cand = np.flatnonzero(ok)
    if not len(cand):
        return None, np.zeros(n, dtype=bool)
    counts = np.zeros(len(cand), dtype=np.int64)
    pts32 = points.astype(np.float32)
    for s in range(0, len(cand), 64):  # inlier counts, 64 candidate planes at a time
        c = cand[s:s + 64]
        dist = np.abs(pts32 @ normals[c].T.astype(np.float32) + d[c].astype(np.float32))
        counts[s:s + 64] = (dist < threshold).sum(axis=0)
    b = cand[int(np.argmax(counts))]
    best = np.append(normals[b], d[b])
    inl = np.abs(points @ best[:3] + best[3]) < threshold
    refit = orient_up(fit_plane_lsq(points[inl]))
    if cos_tilt is not None and refit[:3] @ CAM_UP < cos_tilt:
        refit = best
    inl = np.abs(points @ refit[:3] + refit[3]) < threshold
    return refit, inl


def frame_from_plane(plane: np.ndarray) -> np.ndarray:
    """4 x 4 canon_from_cam for a support plane (unit normal pointing up, d = camera height)."""
    z = plane[:3] / np.linalg.norm(plane[:3])
    f = CAM_FORWARD - (CAM_FORWARD @ z) * z
    if np.linalg.norm(f) < 1e-6:  # looking straight down: use the image's up direction as forward
        f = CAM_UP - (CAM_UP @ z) * z
    y = f / np.linalg.norm(f)
    x = np.cross(y, z)
    R = np.stack([x, y, z])
    origin = -plane[3] * z  # the camera centre projected on the plane
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = -R @ origin
    return T


def canonical_from_plane(plane: np.ndarray, support: str, inliers: int) -> CanonicalFrame:
    plane = orient_up(np.asarray(plane, dtype=np.float64))
    plane = plane / np.linalg.norm(plane[:3])
    return CanonicalFrame(True, "", frame_from_plane(plane), plane, float(plane[3]), support, int(inliers))


def canonical_from_pose(world_from_camera: np.ndarray, floor_z: float = 0.0) -> CanonicalFrame:
    """Ground-truth canonical frame from a known camera pose (world z up, floor at ``floor_z``)."""
    T = np.asarray(world_from_camera, dtype=np.float64)
    R, t = T[:3, :3], T[:3, 3]
    n_cam = R.T @ np.array([0.0, 0.0, 1.0])  # world up in camera coordinates
    height = t[2] - floor_z
    plane = np.append(n_cam, height)  # n . p + d = 0 for floor points in camera coordinates
    return canonical_from_plane(plane, "ground_truth", 0)


def _lowest_parallel(points: np.ndarray, plane: np.ndarray, inl: np.ndarray, cfg: CanonicalConfig,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """If the remaining points hold a parallel plane farther below the camera (a floor under a table top) with
    enough support, return it instead."""
    rest = points[~inl]
    if len(rest) < cfg.min_inliers:
        return plane, inl, False
    heights = rest @ plane[:3] + plane[3]  # signed height above the plane: negative = below it
    below = rest[heights < -cfg.ransac_threshold * 2]
    if len(below) < max(cfg.min_inliers, cfg.lower_plane_fraction * inl.sum()):
        return plane, inl, False
    cand, cinl = ransac_plane(below, cfg.ransac_threshold, cfg.ransac_iterations // 2, rng,
                              cfg.max_tilt_deg, cfg.min_camera_height)
    if cand is None or cinl.sum() < max(cfg.min_inliers, cfg.lower_plane_fraction * inl.sum()):
        return plane, inl, False
    if np.degrees(np.arccos(np.clip(cand[:3] @ plane[:3], -1, 1))) > 10.0:
        return plane, inl, False
    full = np.abs(points @ cand[:3] + cand[3]) < cfg.ransac_threshold
    return cand, full, True


def _sampled_points(depth: np.ndarray, intr: Intrinsics, mask: np.ndarray | None, cfg: CanonicalConfig,
                    rng: np.random.Generator) -> np.ndarray:
    """Back-projected points of ``mask`` (all valid pixels when None), at most ``cfg.max_points`` of them."""
    pts, _ = backproject(depth, intr, mask)
    if len(pts) > cfg.max_points:
        pts = pts[rng.choice(len(pts), cfg.max_points, replace=False)]
    return pts


def estimate_canonical(depth: np.ndarray, intr: Intrinsics, support_mask: np.ndarray | None = None,
                       cfg: CanonicalConfig | None = None, seed: int = 0,
                       floor_mask: np.ndarray | None = None) -> CanonicalFrame:
    """Find the support plane and build the canonical frame, or say why not.

    ``support`` of the result says what z = 0 is: "floor" (from floor pixels), "support" (the lowest plane among
    floor / table-top pixels, which may be a table when no floor shows) or "geometric" (the lowest large
    near-horizontal plane in the whole picture)."""
    cfg = cfg or CanonicalConfig()
    rng = np.random.default_rng(seed)
    if floor_mask is not None and np.count_nonzero(floor_mask & (depth > 0)) >= cfg.min_inliers:
        pts = _sampled_points(depth, intr, floor_mask, cfg, rng)
        plane, inl = ransac_plane(pts, cfg.ransac_threshold, cfg.ransac_iterations, rng,
                                  cfg.max_tilt_deg, cfg.min_camera_height)
        if plane is not None and inl.sum() >= cfg.min_inliers:
            return canonical_from_plane(plane, "floor", int(inl.sum()))
    if support_mask is not None and np.count_nonzero(support_mask) >= cfg.min_inliers:
        pts = _sampled_points(depth, intr, support_mask, cfg, rng)
        if len(pts) >= cfg.min_inliers:
            plane, inl = ransac_plane(pts, cfg.ransac_threshold, cfg.ransac_iterations, rng,
                                      cfg.max_tilt_deg, cfg.min_camera_height)
            if plane is not None and inl.sum() >= cfg.min_inliers:
                plane, inl, lowered = _lowest_parallel(pts, plane, inl, cfg, rng)
                # a table top can fill the support pixels; a parallel plane lower in the whole picture is the floor
                allp = _sampled_points(depth, intr, None, cfg, rng)
                on = np.abs(allp @ plane[:3] + plane[3]) < cfg.ransac_threshold
                plane2, on2, lowered2 = _lowest_parallel(allp, plane, on, cfg, rng)
                if lowered2:
                    plane, inl = plane2, on2
                return canonical_from_plane(plane, "support", int(inl.sum()))
    # geometric fallback over the whole image
    pts = _sampled_points(depth, intr, None, cfg, rng)  # min_inliers < max_points: a short cloud is never cut
    if len(pts) < cfg.min_inliers:
        return CanonicalFrame(False, f"too few valid depth pixels ({len(pts)})")
    plane, inl = ransac_plane(pts, cfg.ransac_threshold, cfg.ransac_iterations, rng,
                              cfg.max_tilt_deg, cfg.min_camera_height)
    need = max(cfg.min_inliers * min(1.0, len(pts) / cfg.max_points), cfg.min_inlier_fraction_fallback * len(pts))
    if plane is None or inl.sum() < need:
        found = 0 if plane is None else int(inl.sum())
        return CanonicalFrame(
            False,
            f"no near-horizontal support plane below the camera (best had {found} of {len(pts)} sampled points; "
            f"needed {int(need)})",
        )
    plane, inl, _ = _lowest_parallel(pts, plane, inl, cfg, rng)
    return canonical_from_plane(plane, "geometric", int(inl.sum()))
