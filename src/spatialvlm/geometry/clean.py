"""Per-object point-cloud cleaning with thresholds scaled to the object (SpatialVLM appendix A.2).

scale = 3 * ||std(points)||; statistical outlier removal (50 neighbours, std ratio 1.2); voxel down-sampling at
max(1 cm, scale / 20); DBSCAN with eps = scale / 3.6 and min_points = n / 10 on the voxels; keep the largest
cluster (or, for box-only objects, the cluster most likely to be the object, see ``prefer``).

Cleaning *selects* points; it never moves them. The kept set is the full-resolution points whose voxel belongs to the
chosen cluster, plus points removed by the outlier filter that lie within 1.5 voxels of a kept point (edge points,
which the statistical filter tends to cut and which set the object's extents).

With a mask (``prefer="largest"``) the kept cluster is then grown to every voxel linked to it by steps shorter than
eps: the mask already says what the object is, and DBSCAN's density rule would otherwise cut thin parts. Isolated
outliers (farther than eps from the object) still go."""

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
    mean of that statistic by ``std_ratio`` standard deviations (Open3D's implementation of the filter)."""
    import open3d as o3d

    n = len(points)
    if n <= k + 1:
        return np.ones(n, dtype=bool)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64)))
    _, idx = pcd.remove_statistical_outlier(nb_neighbors=k, std_ratio=std_ratio)
    keep = np.zeros(n, dtype=bool)
    keep[np.asarray(idx, dtype=np.int64)] = True
    return keep


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


def _add_parts(centroids: np.ndarray, labels: np.ndarray, keep_vox: np.ndarray, eps: float) -> np.ndarray:
    """Other clusters of a masked object that are its parts, not a leak of the background: any cluster that does
    not lie behind the kept one (a floor lamp's base, far below its shade). A mask that leaks takes in what is
    behind the object, never what is in front of it."""
    main = centroids[keep_vox]
    far_limit = main[:, 2].max() + eps / 2
    out = keep_vox.copy()
    for c in np.unique(labels[(labels >= 0) & ~keep_vox]):
        sel = labels == c
        if np.median(centroids[sel][:, 2]) <= far_limit:
            out |= sel
    return out


def _grow(centroids: np.ndarray, seed_mask: np.ndarray, eps: float) -> np.ndarray:
    """Voxels linked to the seed cluster by chains of steps shorter than ``eps``: thin parts (a lamp's pole and
    base, a suitcase handle, chair legs) hold too few voxels to be DBSCAN core points, yet belong to the object."""
    from scipy.sparse.csgraph import connected_components

    tree = cKDTree(centroids)
    pairs = tree.query_pairs(eps, output_type="ndarray")
    if len(pairs) == 0:
        return seed_mask
    from scipy.sparse import coo_matrix

    n = len(centroids)
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    return np.isin(comp, np.unique(comp[seed_mask]))


def clean_points(points: np.ndarray, cfg: CleanConfig | None = None, *, prefer: str = "largest",
                 center_hint: np.ndarray | None = None, seed: int = 0) -> CleanResult:
    """Select the points that belong to the object.

    ``prefer="all"`` is for trusted (annotated) masks: every DBSCAN cluster linked to the largest within 2 eps is
    kept, so parts seen apart (a headboard behind a mattress, a lamp's base below its shade) stay; only isolated
    specks and statistical outliers go.
    ``prefer="largest"`` keeps the largest DBSCAN cluster (the paper's rule, for predicted masks, which leak).
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
    if prefer == "all":
        # trusted mask: every cluster is the object; only specks far from everything else go
        # (every voxel chained to the largest cluster by steps under 2 eps, noise voxels included)
        chosen = ids[int(np.argmax(counts))]
        keep_vox = _grow(centroids, labels == chosen, 2 * eps)
    elif prefer == "nearest" and len(ids) > 1:
        big = ids[counts >= 0.25 * counts.max()]
        depth = [np.median(centroids[labels == c][:, 2]) for c in big]
        chosen = big[int(np.argmin(depth))]
    else:
        chosen = ids[int(np.argmax(counts))]
    if prefer != "all":
        keep_vox = labels == chosen
    if prefer == "largest":
        keep_vox = _add_parts(centroids, labels, keep_vox, eps)
        keep_vox = _grow(centroids, keep_vox, eps)
    keep_sub = keep_vox[inv]
    keep = np.zeros(n, dtype=bool)
    keep[np.flatnonzero(inlier)[keep_sub]] = True
    # re-admit points the outlier filter removed when they sit next to the kept object (edges), and, with a mask,
    # chains of them that hang on to it (thin parts: a lamp's pole, chair legs, a suitcase handle)
    removed = np.flatnonzero(~inlier)
    if len(removed) and keep.any():
        r = cfg.readmit_voxels * voxel
        d, _ = cKDTree(points[keep]).query(points[removed], k=1, workers=1)
        new = removed[d <= r]
        keep[new] = True
        if prefer in ("largest", "all"):
            pending = np.setdiff1d(removed, new)
            tree = cKDTree(points[pending]) if len(pending) else None
            taken = np.zeros(len(pending), dtype=bool)
            frontier = points[keep]
            if tree is not None:  # start from the kept points that touch a pending one
                dd, _ = tree.query(frontier, k=1, distance_upper_bound=r, workers=1)
                frontier = frontier[np.isfinite(dd)]
            while tree is not None and len(frontier) and not taken.all():
                hits = tree.query_ball_point(frontier, r, workers=1)
                idx = np.unique(np.concatenate([np.asarray(h, dtype=np.int64) for h in hits])) if len(hits) else []
                idx = np.asarray([i for i in idx if not taken[i]], dtype=np.int64)
                if not len(idx):
                    break
                taken[idx] = True
                keep[pending[idx]] = True
                frontier = points[pending[idx]]
    if keep.sum() < cfg.min_points:
        return CleanResult(keep, scale, voxel, len(ids), f"too few points after cleaning ({int(keep.sum())})")
    return CleanResult(keep, scale, voxel, len(ids))
