"""Per-object point-cloud cleaning with thresholds scaled to the object (SpatialVLM appendix A.2).

scale = 3 * ||std(points)||; statistical outlier removal (50 neighbours, std ratio 1.2); voxel down-sampling at
max(1 cm, scale / 20); DBSCAN with eps = scale / 3.6 and min_points = n / 10 on the voxels; keep the largest
cluster (or, for box-only objects, the cluster most likely to be the object, see ``prefer``).

Cleaning *selects* points; it never moves them. The kept set is the full-resolution points whose voxel belongs to the
chosen cluster, plus points removed by the outlier filter that lie within 1.5 voxels of a kept point (edge points,
which the statistical filter tends to cut and which set the object's extents)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class CleanConfig:
    sor_neighbors: int = 50
    sor_std_ratio: float = 1.2
    min_voxel: float = 0.01
    voxel_divisor: float = 20.0
    dbscan_eps_divisor: float = 3.6
    dbscan_min_fraction: float = 0.1
    min_points: int = 60  # objects with fewer points after cleaning are dropped
    readmit_voxels: float = 1.5
    max_sor_points: int = 60000  # above this, the outlier filter runs on a random subset's statistics


@dataclass
class CleanResult:
    keep: np.ndarray  # bool over the input points
    scale: float
    voxel: float
    n_clusters: int
    reason: str = ""  # non-empty when the object should be dropped

    @property
    def ok(self) -> bool:
        return not self.reason


def object_scale(points: np.ndarray) -> float:
    return float(3.0 * np.linalg.norm(np.std(points, axis=0)))


def statistical_outliers(points: np.ndarray, k: int, std_ratio: float, rng: np.random.Generator,
                         max_points: int) -> np.ndarray:
    """Boolean inlier mask: a point is an outlier when its mean distance to its k nearest neighbours exceeds the
    mean of that statistic by ``std_ratio`` standard deviations."""
    n = len(points)
    if n <= k + 1:
        return np.ones(n, dtype=bool)
    tree = cKDTree(points)
    dists, _ = tree.query(points, k=k + 1, workers=1)
    mean_d = dists[:, 1:].mean(axis=1)
    ref = mean_d if n <= max_points else mean_d[rng.choice(n, max_points, replace=False)]
    return mean_d <= ref.mean() + std_ratio * ref.std()


def voxel_ids(points: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """Voxel centroids and, for each point, the index of its voxel."""
    keys = np.floor(points / voxel).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = np.zeros((len(counts), 3))
    np.add.at(sums, inverse, points)
    return sums / counts[:, None], inverse


def dbscan(points: np.ndarray, eps: float, min_points: int) -> np.ndarray:
    """DBSCAN labels (-1 = noise) using Open3D's implementation."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64)))
    return np.asarray(pcd.cluster_dbscan(eps=float(eps), min_points=int(min_points), print_progress=False))


def clean_points(points: np.ndarray, cfg: CleanConfig | None = None, *, prefer: str = "largest",
                 center_hint: np.ndarray | None = None, seed: int = 0) -> CleanResult:
    """Select the points that belong to the object.

    ``prefer="largest"`` keeps the largest DBSCAN cluster (the paper's rule, right when the points come from a mask).
    ``prefer="nearest"`` is for points taken from a 2D box: among clusters holding at least a quarter as many
    voxels as the largest, keep the one nearest the camera (the object stands in front of what shows behind it)."""
    cfg = cfg or CleanConfig()
    n = len(points)
    if n < cfg.min_points:
        return CleanResult(np.zeros(n, dtype=bool), 0.0, 0.0, 0, f"too few points ({n} < {cfg.min_points})")
    rng = np.random.default_rng(seed)
    scale = object_scale(points)
    if not np.isfinite(scale) or scale <= 0:
        return CleanResult(np.zeros(n, dtype=bool), 0.0, 0.0, 0, "degenerate point cloud (zero spread)")
    inlier = statistical_outliers(points, cfg.sor_neighbors, cfg.sor_std_ratio, rng, cfg.max_sor_points)
    pts = points[inlier]
    voxel = max(cfg.min_voxel, scale / cfg.voxel_divisor)
    centroids, inv = voxel_ids(pts, voxel)
    eps = scale / cfg.dbscan_eps_divisor
    min_pts = max(1, int(len(centroids) * cfg.dbscan_min_fraction))
    labels = dbscan(centroids, eps, min_pts)
    valid = labels >= 0
    if not valid.any():
        return CleanResult(np.zeros(n, dtype=bool), scale, voxel, 0, "no DBSCAN cluster (points too scattered)")
    ids, counts = np.unique(labels[valid], return_counts=True)
    if prefer == "nearest" and len(ids) > 1:
        big = ids[counts >= 0.25 * counts.max()]
        depth = [np.median(centroids[labels == c][:, 2]) for c in big]
        chosen = big[int(np.argmin(depth))]
    else:
        chosen = ids[int(np.argmax(counts))]
    keep_vox = labels == chosen
    keep_sub = keep_vox[inv]
    keep = np.zeros(n, dtype=bool)
    keep[np.flatnonzero(inlier)[keep_sub]] = True
    # re-admit edge points the outlier filter removed, when they sit right next to the kept object
    removed = np.flatnonzero(~inlier)
    if len(removed) and keep.any():
        d, _ = cKDTree(points[keep]).query(points[removed], k=1, workers=1)
        keep[removed[d <= cfg.readmit_voxels * voxel]] = True
    if keep.sum() < cfg.min_points:
        return CleanResult(keep, scale, voxel, len(ids), f"too few points after cleaning ({int(keep.sum())})")
    return CleanResult(keep, scale, voxel, len(ids))
