"""Composed scenes and rendered episodes: objects put where we say, and one of them moving across frames.

The procedural generator (:mod:`spatialvlm.render.scene`) draws whole rooms from a seed. Here we place library
objects (or a simple robot gripper) at chosen positions, aim a camera, and render with the same ray caster
(:func:`spatialvlm.render.raycast.render_frame`), so the frames carry exact depth, masks and 3D boxes.

* :func:`compose_spec` builds a :class:`~spatialvlm.render.scene.SceneSpec` from :class:`Placement` s;
* :func:`render_episode` moves one object along a path towards another and renders every step; each frame records
  the ground-truth distance (centre to centre) and gap (closest box surfaces) between the two, computed with the
  question-type registry on the exact meshes (the same definitions the ``distance`` / ``gap`` questions use);
* :func:`write_episode` writes an RGB-D folder (``frames.jsonl`` ...) plus ``ground_truth.csv``.

Frames made here carry ``meta["generator"] = "spatialvlm.render.episode"`` (not ``"spatialvlm.render"``): they
cannot be regenerated from the seed alone, so ground-truth consumers use the stored 3D boxes or
:func:`spec_ground_truth_scene`. ``meta`` also holds ``episode_index``, ``frame_index`` and ``timestamp`` (seconds
at ``fps``), the keys a LeRobot dataset uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatialvlm.records import Box3D, Frame, Intrinsics, Scene
from spatialvlm.render import library as lib
from spatialvlm.render.scene import STUFF_ID_BASE, ObjectSpec, RenderConfig, SceneSpec, StuffSpec, camera_pose

GENERATOR = "spatialvlm.render.episode"


# --------------------------------------------------------------------------------------------------------------
# Meshes and placement
# --------------------------------------------------------------------------------------------------------------
def _o3d_mesh(vertices: np.ndarray, triangles: np.ndarray):
    import open3d as o3d

    return o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(vertices, dtype=np.float64)),
                                     o3d.utility.Vector3iVector(np.asarray(triangles, dtype=np.int32)))


def build_gripper(rng: np.random.Generator | None = None) -> lib.Model:
    """A parallel-jaw robot gripper in the library's local frame (x width, y depth, z up, bottom at z = 0):
    two fingers, a palm and a wrist. About 0.14 m wide and 0.2 m tall."""
    rng = rng or np.random.default_rng(0)
    body = lib.rgb(["silver", "dark gray", "white"][int(rng.integers(3))])
    finger = lib.rgb("black")
    fw, fd, fh = 0.022, 0.035, 0.075
    spread = 0.05
    parts = [
        lib.box(fw, fd, fh, -spread, 0.0, 0.0, finger),
        lib.box(fw, fd, fh, spread, 0.0, 0.0, finger),
        lib.box(2 * spread + fw + 0.02, 0.06, 0.04, 0.0, 0.0, fh, body),
        lib.cylinder(0.032, 0.085, 0.0, 0.0, fh + 0.04, lib.rgb("orange"), 40),
    ]
    return lib.Model("gripper", "silver", parts)


def _model(kind: str | lib.Model, rng: np.random.Generator) -> lib.Model:
    if isinstance(kind, lib.Model):
        return kind
    if kind == "gripper":
        return build_gripper(rng)
    return lib.build(kind, rng)


@dataclass
class Placement:
    """One object to place: a library category (``"sofa"``), ``"gripper"`` or a ready :class:`library.Model`;
    ``xy`` = world position of its footprint centre, ``z`` = height of its bottom, ``yaw`` in radians (0: its
    front faces world -y, i.e. the camera of the composed scenes)."""

    kind: str | lib.Model
    xy: tuple[float, float]
    z: float = 0.0
    yaw: float = 0.0
    name: str | None = None  # defaults to the category
    support: str = "floor"  # "floor" | "table" | "air" (free-floating, e.g. a gripper)
    supported_by: int | None = None


@dataclass
class LocalModel:
    """A model normalised to its footprint centre (x, y) and bottom (z = 0)."""

    model: lib.Model
    vertices: np.ndarray
    triangles: np.ndarray
    tri_colors: np.ndarray
    size: np.ndarray
    top_z: float | None


def local_model(kind: str | lib.Model, rng: np.random.Generator) -> LocalModel:
    m = _model(kind, rng)
    v, t, c = m.arrays()
    lo, hi = v.min(axis=0), v.max(axis=0)
    shift = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    top = None if m.top_z is None else float(m.top_z + shift[2])
    return LocalModel(m, v + shift, t, c, hi - lo, top)


def object_spec(local: LocalModel, p: Placement, instance_id: int) -> ObjectSpec:
    """The world-frame :class:`ObjectSpec` of ``local`` placed as ``p``."""
    R = lib.rot_z(p.yaw)
    base = np.array([p.xy[0], p.xy[1], p.z], dtype=np.float64)
    v = local.vertices @ R.T + base
    mesh = _o3d_mesh(v, local.triangles)
    box = Box3D(base + R @ np.array([0.0, 0.0, local.size[2] / 2]), local.size.copy(), R)
    name = p.name or local.model.category
    return ObjectSpec(category=local.model.category, name=name, color=local.model.color, mesh=mesh, box_world=box,
                      support=p.support, instance_id=int(instance_id), yaw=float(p.yaw),
                      top_z=None if local.top_z is None else float(p.z + local.top_z),
                      supported_by=p.supported_by, triangle_colors=local.tri_colors)


def translated(obj: ObjectSpec, offset: np.ndarray) -> ObjectSpec:
    """A copy of ``obj`` moved by ``offset`` (world frame, metres)."""
    offset = np.asarray(offset, dtype=np.float64).reshape(3)
    v = obj.vertices_world() + offset
    mesh = _o3d_mesh(v, np.asarray(obj.mesh.triangles))
    box = Box3D(obj.box_world.center + offset, obj.box_world.size.copy(), obj.box_world.rotation.copy())
    return ObjectSpec(category=obj.category, name=obj.name, color=obj.color, mesh=mesh, box_world=box,
                      support=obj.support, instance_id=obj.instance_id, yaw=obj.yaw,
                      top_z=None if obj.top_z is None else obj.top_z + float(offset[2]),
                      supported_by=obj.supported_by, triangle_colors=obj.triangle_colors)


def room_stuff(width: float, depth: float, height: float = 2.7, floor_color: str = "light brown",
               wall_color: str = "cream") -> list[StuffSpec]:
    """Floor (extended beyond the room) and back, left and right walls of a room spanning x in [0, width],
    y in [0, depth]."""
    m = 6.0
    fv = np.array([[-m, -m, 0.0], [width + m, -m, 0.0], [width + m, depth + m, 0.0], [-m, depth + m, 0.0]])
    out = [StuffSpec("floor", "floor", _o3d_mesh(fv, np.array([[0, 1, 2], [0, 2, 3]])),
                     np.asarray(lib.rgb(floor_color)), STUFF_ID_BASE)]
    t = 0.1
    walls = {
        "back": lib.box(width + 2 * t, t, height, width / 2, depth + t / 2, 0.0),
        "left": lib.box(t, depth + 2 * t, height, -t / 2, depth / 2, 0.0),
        "right": lib.box(t, depth + 2 * t, height, width + t / 2, depth / 2, 0.0),
    }
    base = np.asarray(lib.rgb(wall_color))
    for k, (name, b) in enumerate(walls.items()):
        out.append(StuffSpec("wall", f"{name} wall", _o3d_mesh(b.vertices, b.triangles), base * (1.0 - 0.04 * k),
                             STUFF_ID_BASE + 1 + k))
    return out


def look_at_pose(position: tuple[float, float, float], target: tuple[float, float, float],
                 roll_deg: float = 0.0) -> np.ndarray:
    """world_from_camera of a camera at ``position`` looking at ``target`` (OpenCV camera axes)."""
    p, q = np.asarray(position, dtype=np.float64), np.asarray(target, dtype=np.float64)
    d = q - p
    yaw = math.atan2(d[1], d[0])
    pitch = math.atan2(d[2], math.hypot(d[0], d[1]))
    return camera_pose(p, yaw, pitch, math.radians(roll_deg))


def compose_spec(objects: list[ObjectSpec], camera_position: tuple[float, float, float],
                 look_at: tuple[float, float, float], *, seed: int = 0, hfov_deg: float = 60.0, width: int = 512,
                 height: int = 384, room: tuple[float, float, float] = (6.0, 6.0, 2.7), roll_deg: float = 0.0,
                 config: RenderConfig | None = None) -> SceneSpec:
    """A SceneSpec with the given objects in a plain room and a camera aimed at ``look_at``."""
    cfg = config or RenderConfig(width=width, height=height)
    if (cfg.width, cfg.height) != (width, height):
        cfg = RenderConfig(**{**cfg.__dict__, "width": width, "height": height})
    T = look_at_pose(camera_position, look_at, roll_deg)
    K = Intrinsics.from_fov(width, height, hfov_deg)
    W, D, H = room
    from spatialvlm.render.scene import camera_angles

    cam = {"hfov_deg": float(hfov_deg), **camera_angles(T)}
    return SceneSpec(seed=int(seed), objects=objects, stuff=room_stuff(W, D, H), intrinsics=K, world_from_camera=T,
                     room={"width": W, "depth": D, "wall_height": H, "walls": ["back", "left", "right"]},
                     camera=cam, config=cfg)


def render_composed(spec: SceneSpec, image_id: str, meta: dict[str, Any] | None = None,
                    prepared=None) -> Frame:
    """Render a composed spec; the frame's meta says it came from here (see the module docstring)."""
    from spatialvlm.render.raycast import render_frame

    frame = render_frame(spec, prepared)
    frame.image_id = image_id
    frame.meta["generator"] = GENERATOR
    frame.meta.update(meta or {})
    return frame


# --------------------------------------------------------------------------------------------------------------
# Ground truth from the meshes
# --------------------------------------------------------------------------------------------------------------
def spec_ground_truth_scene(spec: SceneSpec, instance_ids: list[int] | None = None,
                            image_id: str = "") -> Scene:
    """The exact Scene of ``spec`` (objects = mesh vertices in the camera frame, canonical frame from the true
    pose), for the objects ``instance_ids`` (default: all, whether seen or not). Object ``id`` = instance id,
    ``name`` = the spec's name."""
    from spatialvlm.geometry.canonical import canonical_from_pose
    from spatialvlm.geometry.scene import make_object

    T = np.asarray(spec.world_from_camera, dtype=np.float64)
    canonical = canonical_from_pose(T, spec.floor_z)
    cam_from_world = np.linalg.inv(T)
    objs = []
    for o in spec.objects:
        if instance_ids is not None and o.instance_id not in instance_ids:
            continue
        pts = o.vertices_world() @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
        ob = make_object(o.instance_id, o.name, pts, canonical, meta={"ground_truth": True})
        ob.name = o.name
        objs.append(ob)
    K = spec.intrinsics
    return Scene(image_id or spec.image_id, objs, canonical, K, (K.width, K.height), [], None,
                 meta={"ground_truth": True})


def ground_truth_value(spec: SceneSpec, qa_type: str, a_iid: int, b_iid: int | None = None):
    """``qa_type``'s exact (ungated) truth about objects ``a_iid`` (and ``b_iid``) of ``spec``."""
    from spatialvlm.qa.types import UNGATED, evaluate

    ids = [a_iid] + ([b_iid] if b_iid is not None else [])
    scene = spec_ground_truth_scene(spec, ids)
    by = {o.id: o for o in scene.objects}
    r = evaluate(qa_type, scene, by[a_iid], by.get(b_iid) if b_iid is not None else None, UNGATED)
    if r is None:
        raise ValueError(f"{qa_type} cannot be computed for objects {ids} (needs the canonical frame)")
    return r


# --------------------------------------------------------------------------------------------------------------
# Episodes
# --------------------------------------------------------------------------------------------------------------
@dataclass
class EpisodeConfig:
    """An object (``mover``) travelling towards another (``target``) standing on a table.

    The mover starts ``start_offset`` metres from the target (world x, y, z offset of footprint centres) and ends
    ``end_gap`` metres from it along x, following an eased path (slow start and stop) with a sideways arc of
    ``arc`` metres. With ``retreat`` > 0 the last frames move back out (``retreat`` = outgoing / incoming frames,
    the episode keeps ``n_frames``), so the distance is not monotonic. Sizes and colours are drawn from ``seed``. ``depth_noise`` / ``depth_scale_jitter`` corrupt the
    stored depth (not the ground truth) to mimic a sensor / a monocular depth model; the frame's
    ``meta["depth_corruption"]`` records the scale drawn."""

    n_frames: int = 24
    seed: int = 0
    episode_index: int = 0
    mover: str = "gripper"
    target: str = "bottle"
    start_offset: tuple[float, float, float] = (-0.75, -0.05, 0.18)
    end_gap: float = 0.04
    end_height: float = 0.03  # mover bottom above the table top at the end
    arc: float = 0.12
    retreat: float = 0.0
    fps: float = 10.0
    width: int = 512
    height: int = 384
    hfov_deg: float = 60.0
    camera_distance: float = 1.5  # metres in front of the table, camera height above the table top below
    camera_height: float = 0.75
    camera_yaw_deg: float = 0.0  # camera heading offset (0: looking straight along +y)
    depth_noise: float = 0.0  # relative std of independent per-pixel depth noise (a sensor)
    depth_scale_jitter: float = 0.0  # relative std of one depth scale error per frame (a monocular depth model)

    def __post_init__(self) -> None:
        if self.n_frames < 2:
            raise ValueError(f"an episode needs at least 2 frames, got {self.n_frames}")
        if self.mover == self.target:
            raise ValueError("mover and target must be different objects (names must tell them apart)")
        if not 0.0 <= self.retreat <= 1.0:
            raise ValueError(f"retreat must be in [0, 1], got {self.retreat}")
        if self.fps <= 0:
            raise ValueError("fps must be positive")
        if not 0.0 <= self.depth_noise < 0.5 or not 0.0 <= self.depth_scale_jitter < 0.5:
            raise ValueError("depth_noise and depth_scale_jitter must be in [0, 0.5)")


@dataclass
class Episode:
    config: EpisodeConfig
    frames: list[Frame]
    ground_truth: list[dict[str, Any]] = field(default_factory=list)  # one row per frame


def _ease(t: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(t, 0.0, 1.0))


def episode_path(cfg: EpisodeConfig, mover_size: np.ndarray, target_size: np.ndarray) -> np.ndarray:
    """Offsets (n_frames, 3) of the mover's footprint centre from the target's footprint centre (bottom level)."""
    n_out = round(cfg.n_frames * cfg.retreat / (1.0 + cfg.retreat))
    n_in = cfg.n_frames - n_out
    start = np.asarray(cfg.start_offset, dtype=np.float64)
    side = -1.0 if start[0] < 0 else 1.0
    end = np.array([side * ((mover_size[0] + target_size[0]) / 2 + cfg.end_gap), 0.0, cfg.end_height])
    s = _ease(np.linspace(0.0, 1.0, n_in))
    path = start[None] + s[:, None] * (end - start)[None]
    path[:, 1] += cfg.arc * np.sin(np.pi * s)  # sideways arc: the path is not a straight line
    if n_out:
        back = _ease(np.linspace(0.0, 1.0, n_out + 1)[1:]) * 0.6
        out = end[None] + back[:, None] * (start - end)[None]
        path = np.concatenate([path, out])
    return path


def iter_episode(cfg: EpisodeConfig) -> Iterator[tuple[Frame, dict[str, Any]]]:
    """Render the frames of an episode one by one: (frame, ground-truth row)."""
    from spatialvlm.render.raycast import prepare

    rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), 0xE915]))
    table_local = local_model("table", rng)
    room_w, room_d = 6.0, 6.0
    tx, ty = room_w / 2, 3.0
    table = object_spec(table_local, Placement("table", (tx, ty)), 1)
    top = float(table.top_z)
    tgt_local = local_model(cfg.target, rng)
    tgt_xy = (tx + 0.15, ty)
    target = object_spec(tgt_local, Placement(cfg.target, tgt_xy, z=top, support="table", supported_by=1), 2)
    mov_local = local_model(cfg.mover, rng)
    path = episode_path(cfg, mov_local.size, tgt_local.size)
    base = np.array([tgt_xy[0], tgt_xy[1], top])
    first = base + path[0]
    support = "air" if cfg.mover == "gripper" else "table"
    mover0 = object_spec(mov_local, Placement(cfg.mover, (first[0], first[1]), z=first[2], support=support), 3)
    mid = base + path.mean(axis=0)
    yaw = math.radians(cfg.camera_yaw_deg)
    cam = (mid[0] - cfg.camera_distance * math.sin(yaw), mid[1] - cfg.camera_distance * math.cos(yaw),
           top + cfg.camera_height)
    look = (mid[0], mid[1], top + 0.08)
    for i, off in enumerate(path):
        mover = translated(mover0, (base + off) - first)
        spec = compose_spec([table, target, mover], cam, look, seed=cfg.seed, hfov_deg=cfg.hfov_deg,
                            width=cfg.width, height=cfg.height, room=(room_w, room_d, 2.7))
        prepared = prepare(spec)
        dval = ground_truth_value(spec, "distance", 3, 2)[1]
        gval = ground_truth_value(spec, "gap", 3, 2)[1]
        gt = {"episode_index": cfg.episode_index, "frame_index": i, "timestamp": i / cfg.fps,
              "from": mover.name, "to": target.name, "gt_distance_m": float(dval), "gt_gap_m": float(gval)}
        meta = {"episode_index": cfg.episode_index, "frame_index": i, "timestamp": i / cfg.fps,
                "ground_truth": {"from": mover.name, "to": target.name, "distance_m": float(dval),
                                 "gap_m": float(gval)}}
        frame = render_composed(spec, f"ep{cfg.episode_index:03d}_f{i:04d}", meta, prepared)
        if cfg.depth_noise > 0 or cfg.depth_scale_jitter > 0:
            nrng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), 0xDE97, i]))
            scale = 1.0 + cfg.depth_scale_jitter * float(nrng.standard_normal())
            d = frame.depth.astype(np.float64)
            noisy = d * scale * (1.0 + cfg.depth_noise * nrng.standard_normal(d.shape))
            frame.depth = np.where(d > 0, np.maximum(noisy, 1e-3), 0.0).astype(np.float32)
            frame.meta["depth_corruption"] = {"scale": scale, "pixel_noise": cfg.depth_noise}
        yield frame, gt


def render_episode(cfg: EpisodeConfig | None = None) -> Episode:
    cfg = cfg or EpisodeConfig()
    frames, gts = [], []
    for f, g in iter_episode(cfg):
        frames.append(f)
        gts.append(g)
    return Episode(cfg, frames, gts)


def write_episode(cfg: EpisodeConfig, out_dir: Path, progress: bool = False) -> Path:
    """Render an episode into an RGB-D folder ``out_dir`` (see docs/formats.md) plus ``ground_truth.csv``
    (episode_index, frame_index, timestamp, from, to, gt_distance_m, gt_gap_m). Returns the manifest path."""
    import csv

    from spatialvlm.io.frames import write_frames

    out_dir = Path(out_dir)
    rows: list[dict[str, Any]] = []

    def frames() -> Iterator[Frame]:
        it = iter_episode(cfg)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=cfg.n_frames, desc="rendering episode", unit="frame")
        for f, g in it:
            rows.append(g)
            yield f

    manifest = write_frames(frames(), out_dir)
    with (out_dir / "ground_truth.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest
