"""Analytic scenes for tests: boxes sampled as surface points in a world frame (z up), seen by a posed camera."""

from __future__ import annotations

import numpy as np

from spatialvlm.geometry.canonical import canonical_from_pose
from spatialvlm.geometry.scene import make_object
from spatialvlm.qa.naming import assign_names
from spatialvlm.records import CanonicalFrame, Intrinsics, Scene


def camera_pose(height: float = 1.5, pitch_deg: float = -20.0, roll_deg: float = 0.0, yaw_deg: float = 0.0,
                xy=(0.0, 0.0)) -> np.ndarray:
    """world_from_camera for an OpenCV camera at ``height`` looking along world +y (yaw 0), pitched (negative =
    looking down) and rolled."""
    base = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]).T  # columns: camera x, y, z in world
    p, r, y = np.deg2rad([pitch_deg, roll_deg, yaw_deg])
    # pitch about the camera's x axis (positive pitch looks up: rotates forward toward world up)
    Rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    Rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    Ryaw = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    R = Ryaw @ base @ Rx @ Rz
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = [xy[0], xy[1], height]
    return T


def box_surface(center, size, n_per_m2: int = 4000, rng=None) -> np.ndarray:
    rng = rng or np.random.default_rng(0)
    center, size = np.asarray(center, float), np.asarray(size, float)
    pts = []
    for axis in range(3):
        for sign in (-1, 1):
            other = [i for i in range(3) if i != axis]
            area = size[other[0]] * size[other[1]]
            n = max(50, int(area * n_per_m2))
            p = rng.uniform(-0.5, 0.5, size=(n, 3)) * size
            p[:, axis] = sign * size[axis] / 2
            pts.append(p + center)
    return np.concatenate(pts)


def scene_from_boxes(boxes: dict[str, tuple], world_from_camera: np.ndarray, canonical: bool = True,
                     intr: Intrinsics | None = None) -> Scene:
    """A Scene whose objects are the given world boxes {label: (center, size)}; canonical frame from the pose or
    none."""
    intr = intr or Intrinsics.from_fov(640, 480, 60.0)
    cam_from_world = np.linalg.inv(world_from_camera)
    can = canonical_from_pose(world_from_camera) if canonical else CanonicalFrame(False, "disabled for the test")
    objs = []
    for k, (label, (c, s)) in enumerate(boxes.items()):
        pw = box_surface(c, s)
        pc = pw @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
        o = make_object(k, label, pc, can)
        uv = pc[:, :2] / pc[:, 2:3] * [intr.fx, intr.fy] + [intr.cx, intr.cy]
        o.box2d = (float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()), float(uv[:, 1].max()))
        objs.append(o)
    scene = Scene("synthetic", objs, can, intr, (intr.width, intr.height))
    assign_names(scene)
    return scene
