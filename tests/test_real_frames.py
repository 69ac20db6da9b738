"""Real RGB-D frames from ../shared/data: the canonical frame found from depth alone must agree with independent
measurements of the same floor. Skips when the shared data folder is absent."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spatialvlm.geometry.backproject import backproject
from spatialvlm.geometry.canonical import estimate_canonical, ransac_plane
from spatialvlm.records import Intrinsics

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
NYU = DATA / "nyu_kitti_metric3d" / "data" / "nyu_demo"
NYU_K = (518.8579, 519.46961, 325.58245, 253.73617)
pytestmark = pytest.mark.skipif(not NYU.exists(), reason="shared data folder not present")


def nyu_depth_mm(name: str) -> np.ndarray:
    return np.asarray(Image.open(NYU / "depth" / f"sync_depth_{name}.png")).astype(np.float32) / 1000.0


def nyu_raw_disparity() -> np.ndarray:
    """The raw Kinect frame (same basement view as rgb_00000): little-endian disparity, m = 351.3 / (1092.5 - raw)."""
    raw = (DATA / "redwood_tum_sun_open3d" / "RGBD" / "other_formats" / "NYU_depth.pgm").read_bytes()
    header_end = raw.index(b"\n")
    w, h = (int(x) for x in raw[:header_end].split()[1:3])
    d = np.frombuffer(raw[header_end + 1: header_end + 1 + w * h * 2], dtype="<u2").reshape(h, w).astype(np.float64)
    m = 351.3 / (1092.5 - d)
    m[(d >= 2047) | (m <= 0) | (m > 10)] = 0
    return m.astype(np.float32)


@pytest.mark.parametrize("name", ["00000", "00050", "00100"])
def test_nyu_camera_height_from_depth(name):
    depth = nyu_depth_mm(name)
    intr = Intrinsics(*NYU_K, depth.shape[1], depth.shape[0])
    can = estimate_canonical(depth, intr)
    assert can.ok, can.reason
    # independent check: a tight (2 cm) plane fit through the floor strip at the bottom middle of the picture
    strip = np.zeros_like(depth, dtype=bool)
    strip[400:470, 200:500] = True
    pts, _ = backproject(depth, intr, strip)
    plane, inl = ransac_plane(pts, 0.02, 300, np.random.default_rng(1))
    pts = pts[inl]
    assert abs(abs(plane[3]) - can.camera_height) < 0.06
    # a hand-held Kinect, pitched down: the floor is 1.3-1.6 m below the optical centre
    assert 1.3 < can.camera_height < 1.6
    # the camera looks down: forward has a negative component along up
    assert can.plane_cam[2] < 0
    # the floor's canonical height is ~0 for the strip's points
    assert np.median(np.abs(can.to_canon(pts)[:, 2])) < 0.03


def test_nyu_raw_kinect_encoding_agrees_with_registered_depth():
    raw = nyu_raw_disparity()
    intr_depth_cam = Intrinsics(582.62, 582.69, 313.04, 238.44, raw.shape[1], raw.shape[0])
    can_raw = estimate_canonical(raw, intr_depth_cam)
    sync = nyu_depth_mm("00000")
    can_sync = estimate_canonical(sync, Intrinsics(*NYU_K, sync.shape[1], sync.shape[0]))
    assert can_raw.ok and can_sync.ok
    assert abs(can_raw.camera_height - can_sync.camera_height) < 0.08
