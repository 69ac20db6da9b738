"""Geometry against analytic cases: back-projection, cleaning, support plane and canonical frame, boxes."""

import numpy as np
import pytest
from scenes_synthetic import box_surface, camera_pose

from spatialvlm.geometry.backproject import backproject, project
from spatialvlm.geometry.boxes import box_distance, gravity_obb, min_area_rect
from spatialvlm.geometry.canonical import canonical_from_pose, estimate_canonical, frame_from_plane
from spatialvlm.geometry.clean import CleanConfig, clean_points, object_scale
from spatialvlm.records import Box3D, Intrinsics


def plane_depth(intr: Intrinsics, world_from_camera: np.ndarray, floor_z: float = 0.0) -> np.ndarray:
    """Exact depth (camera z) of the floor plane z = floor_z seen by a posed camera; 0 where the ray misses."""
    u, v = np.meshgrid(np.arange(intr.width), np.arange(intr.height))
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u, float)], -1)
    R, t = world_from_camera[:3, :3], world_from_camera[:3, 3]
    dz = rays @ R[2]  # world z component of each ray (per unit camera z)
    with np.errstate(divide="ignore"):
        s = (floor_z - t[2]) / dz
    return np.where((dz < 0) & (s > 0), s, 0.0).astype(np.float32)


def test_backproject_roundtrip():
    intr = Intrinsics(500.0, 480.0, 320.0, 240.0, 640, 480)
    depth = np.full((480, 640), 2.0, np.float32)
    depth[10, 20] = 0  # invalid
    depth[11, 20] = np.nan
    pts, pix = backproject(depth, intr)
    assert len(pts) == 640 * 480 - 2
    uv = project(pts, intr)
    assert np.allclose(uv, pix, atol=1e-6)
    i = np.flatnonzero((pix[:, 0] == 320) & (pix[:, 1] == 240))[0]
    assert np.allclose(pts[i], [0, 0, 2.0])
    i = np.flatnonzero((pix[:, 0] == 570) & (pix[:, 1] == 240))[0]
    assert np.allclose(pts[i], [250 / 500 * 2.0, 0, 2.0])


def test_backproject_rejects_mismatched_intrinsics():
    with pytest.raises(ValueError, match="rescale"):
        backproject(np.ones((10, 10), np.float32), Intrinsics(5, 5, 5, 5, 20, 10))


def test_intrinsics_scaling_keeps_rays():
    intr = Intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)
    half = intr.scaled(320, 240)
    # the centre of pixel (u, v) at full size is the same ray as (u+0.5)/2-0.5 at half size
    u, v = 100.0, 50.0
    ray_full = [(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy]
    uh, vh = (u + 0.5) / 2 - 0.5, (v + 0.5) / 2 - 0.5
    ray_half = [(uh - half.cx) / half.fx, (vh - half.cy) / half.fy]
    assert np.allclose(ray_full, ray_half)
    assert Intrinsics.from_fov(640, 480, 60.0).hfov_deg == pytest.approx(60.0)


@pytest.mark.parametrize("height,pitch,roll", [(1.0, -35, 5), (1.5, -10, -5), (1.8, -20, 0), (1.2, 3, 2)])
def test_canonical_frame_from_floor_depth(height, pitch, roll):
    intr = Intrinsics.from_fov(320, 240, 70.0)
    T = camera_pose(height, pitch, roll)
    depth = plane_depth(intr, T)
    assert (depth > 0).sum() > 2000
    can = estimate_canonical(depth, intr)
    assert can.ok, can.reason
    assert can.support == "geometric"
    assert can.camera_height == pytest.approx(height, abs=0.01)
    truth = canonical_from_pose(T)
    assert np.allclose(can.canon_from_cam, truth.canon_from_cam, atol=1e-3)
    # floor points land at z = 0; the camera at (0, 0, h); canonical y is forward, x is right
    pts, _ = backproject(depth, intr, stride=7)
    assert np.abs(can.to_canon(pts)[:, 2]).max() < 1e-3
    assert np.allclose(can.to_canon(np.zeros((1, 3)))[0], [0, 0, height], atol=1e-3)
    fwd = can.to_canon(np.array([[0, 0, 1.0]]))[0] - can.to_canon(np.zeros((1, 3)))[0]
    assert fwd[1] > 0 and abs(fwd[0]) < 1e-6
    right = can.to_canon(np.array([[1.0, 0, 0]]))[0] - can.to_canon(np.zeros((1, 3)))[0]
    assert right[0] > 0.99 * np.cos(np.deg2rad(abs(roll))) - 1e-6


def test_walls_are_not_floors():
    # a camera looking at a wall (vertical plane) only: no canonical frame
    intr = Intrinsics.from_fov(200, 150, 60.0)
    depth = np.full((150, 200), 3.0, np.float32)
    can = estimate_canonical(depth, intr)
    assert not can.ok and "no near-horizontal support plane" in can.reason
    empty = estimate_canonical(np.zeros((150, 200), np.float32), intr)
    assert not empty.ok and "too few valid depth" in empty.reason


def test_support_mask_prefers_lowest_parallel_plane():
    # floor (z=0) and a table top (z=0.75) both in the support mask: the origin is on the floor
    intr = Intrinsics.from_fov(320, 240, 70.0)
    T = camera_pose(1.6, -30, 0)
    floor = plane_depth(intr, T, 0.0)
    table = plane_depth(intr, T, 0.75)
    depth = floor.copy()
    band = slice(150, 240)
    depth[band] = table[band]  # the lower half of the picture is table top
    can = estimate_canonical(depth, intr, support_mask=depth > 0)
    assert can.ok and can.support == "support"  # floor or table: the mask does not say which
    assert can.camera_height == pytest.approx(1.6, abs=0.01)
    # a floor mask says which pixels are floor: heights are then above the floor for sure
    floor_only = np.zeros_like(depth, dtype=bool)
    floor_only[:150] = depth[:150] > 0
    can = estimate_canonical(depth, intr, support_mask=depth > 0, floor_mask=floor_only)
    assert can.ok and can.support == "floor" and can.camera_height == pytest.approx(1.6, abs=0.01)
    # only a table top visible: z = 0 is the table, and the frame says it is not known to be the floor
    table_only = table.copy()
    can = estimate_canonical(table_only, intr, support_mask=table_only > 0)
    assert can.ok and can.support == "support" and can.camera_height == pytest.approx(1.6 - 0.75, abs=0.01)


def test_frame_from_plane_is_right_handed():
    T = frame_from_plane(np.array([0.0, -1.0, 0.0, 1.5]))
    R = T[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3)) and np.linalg.det(R) == pytest.approx(1.0)


def test_cleaning_removes_outliers_and_keeps_extents():
    rng = np.random.default_rng(0)
    obj = box_surface([0.0, 0.0, 3.0], [0.4, 0.3, 0.5], n_per_m2=20000, rng=rng)
    far = rng.normal([0.0, 0.0, 6.0], 0.05, size=(40, 3))  # a stray blob far behind
    spray = rng.uniform([-1, -1, 2], [1, 1, 4], size=(30, 3))  # isolated flying pixels
    pts = np.concatenate([obj, far, spray])
    res = clean_points(pts, CleanConfig())
    assert res.ok
    kept = pts[res.keep]
    assert res.keep[: len(obj)].mean() > 0.99  # the object stays
    assert not res.keep[len(obj): len(obj) + len(far)].any()  # the blob goes
    assert res.keep[len(obj) + len(far):].mean() < 0.2
    assert np.allclose(kept.max(0) - kept.min(0), [0.4, 0.3, 0.5], atol=0.01)
    assert res.voxel == pytest.approx(max(0.01, object_scale(pts) / 20))


def test_cleaning_box_prefers_the_object_in_front_of_the_wall():
    rng = np.random.default_rng(1)
    obj = box_surface([0.0, 0.0, 2.0], [0.3, 0.3, 0.3], n_per_m2=6000, rng=rng)
    wall = np.stack([rng.uniform(-0.6, 0.6, 6000), rng.uniform(-0.6, 0.6, 6000), np.full(6000, 3.5)], 1)
    pts = np.concatenate([obj, wall])
    largest = clean_points(pts, prefer="largest")
    nearest = clean_points(pts, prefer="nearest")
    assert largest.keep[len(obj):].mean() > 0.9  # the paper's rule keeps the wall here
    assert nearest.keep[: len(obj)].mean() > 0.95 and nearest.keep[len(obj):].mean() < 0.01


def test_cleaning_drops_tiny_objects():
    res = clean_points(np.random.default_rng(0).normal(size=(10, 3)))
    assert not res.ok and "too few points" in res.reason


def test_boxes():
    rng = np.random.default_rng(2)
    ang = np.deg2rad(30)
    R = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
    local = rng.uniform(-0.5, 0.5, (4000, 3)) * [2.0, 1.0, 0.5]
    pts = local @ R.T + [1, 2, 0.25]
    obb = gravity_obb(pts)
    assert sorted(obb.size[:2]) == pytest.approx([1.0, 2.0], abs=0.02)
    assert obb.size[2] == pytest.approx(0.5, abs=0.01)
    c, s, a = min_area_rect(pts[:, :2])
    assert np.prod(s) == pytest.approx(2.0, rel=0.03)
    a1 = Box3D([0, 0, 0], [1, 1, 1])
    a2 = Box3D([3, 0, 0], [1, 1, 1])
    assert box_distance(a1, a2) == pytest.approx(2.0)
    assert box_distance(a1, Box3D([0.5, 0, 0], [1, 1, 1])) == 0.0
    box = Box3D([1, 2, 3], [2, 4, 6], R)
    T = np.eye(4)
    T[:3, 3] = [1, 0, 0]
    moved = box.transformed(T)
    assert np.allclose(moved.corners(), box.corners() + [1, 0, 0])
    assert Box3D.from_dict(box.to_dict()).volume == pytest.approx(48.0)
