"""Procedural rooms: floor, walls, furniture and small objects placed without interpenetration, and a camera.

World frame: z up, floor at z = 0, the room's interior spans x in [0, W], y in [0, D]; the camera stands near
y = 0 and looks roughly along +y into the room. Everything is drawn from ``numpy.random.default_rng(seed)``, so a
seed fully determines a scene (layout, sizes, colours, camera).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spatialvlm.records import Box3D, Intrinsics
from spatialvlm.render import library as lib


# --------------------------------------------------------------------------------------------------------------
# Configuration and specs
# --------------------------------------------------------------------------------------------------------------
@dataclass
class RenderConfig:
    """Knobs of the generator. Ranges are (low, high), angles in degrees, lengths in metres."""

    width: int = 512
    height: int = 384
    min_objects: int = 4
    max_objects: int = 9
    min_visible: int = 3  # resample the camera (then the room) until at least this many objects are seen
    camera_height: tuple[float, float] = (1.0, 1.8)
    pitch_deg: tuple[float, float] = (-35.0, 5.0)  # negative = looking down
    roll_deg: tuple[float, float] = (-5.0, 5.0)
    hfov_deg: tuple[float, float] = (50.0, 80.0)
    room_width: tuple[float, float] = (3.6, 6.0)
    room_depth: tuple[float, float] = (4.2, 7.0)
    wall_height: tuple[float, float] = (2.5, 3.0)
    table_prob: float = 0.65  # chance of a table / desk / coffee table with small objects on it
    repeat_prob: float = 0.2  # chance that an object repeats a category already in the room
    image_noise: float = 2.0  # std of per-pixel noise, in 8-bit levels
    shadows: bool = True  # cast shadows from the sun-like light (one more ray per lit pixel)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RenderConfig:
        """Inverse of ``dataclasses.asdict`` after a JSON round trip (lists back to tuples); unknown keys are an
        error so that a frame written by a newer generator is not silently regenerated differently."""
        known = {f for f in cls.__dataclass_fields__}
        extra = set(d) - known
        if extra:
            raise ValueError(f"unknown RenderConfig keys: {sorted(extra)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError(f"image size must be at least 16 x 16, got {self.width} x {self.height}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if self.min_visible > self.min_objects:
            raise ValueError(f"min_visible ({self.min_visible}) cannot exceed min_objects ({self.min_objects})")
        for name in ("camera_height", "pitch_deg", "roll_deg", "hfov_deg", "room_width", "room_depth",
                     "wall_height"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: low {lo} > high {hi}")
        if not (1.0 < self.hfov_deg[0] and self.hfov_deg[1] < 179.0):
            raise ValueError(f"hfov_deg must lie in (1, 179), got {self.hfov_deg}")


@dataclass
class ObjectSpec:
    """One placed object. ``mesh`` is in the world frame and carries per-vertex colours (one colour per part)."""

    category: str
    name: str  # what people call it ("floor lamp"); equal to category here
    color: str
    mesh: Any  # open3d.geometry.TriangleMesh, world frame
    box_world: Box3D  # oriented: centre, full size, rotation = yaw about z
    support: str  # "floor" | "table" | "wall"
    instance_id: int
    yaw: float = 0.0  # radians about world z
    top_z: float | None = None  # world height of its upward support surface (tables), if any
    supported_by: int | None = None  # instance id of the table it stands on
    triangle_colors: np.ndarray | None = None  # (T, 3) float in [0, 1]

    def vertices_world(self) -> np.ndarray:
        """Mesh vertices (N, 3), world frame. The mesh is polyhedral, so these bound its surface exactly."""
        return np.asarray(self.mesh.vertices, dtype=np.float64)


@dataclass
class StuffSpec:
    """Background surfaces: the floor and the walls."""

    kind: str  # "floor" | "wall"
    name: str  # "floor", "back wall", "left wall", ...
    mesh: Any  # open3d.geometry.TriangleMesh, world frame
    color: np.ndarray  # base colour (3,)
    instance_id: int


@dataclass
class SceneSpec:
    seed: int
    objects: list[ObjectSpec]
    stuff: list[StuffSpec]
    intrinsics: Intrinsics
    world_from_camera: np.ndarray  # 4 x 4, camera axes OpenCV (x right, y down, z forward)
    floor_z: float = 0.0
    room: dict[str, Any] = field(default_factory=dict)
    camera: dict[str, float] = field(default_factory=dict)  # height, pitch_deg, roll_deg, yaw_deg, hfov_deg
    config: RenderConfig = field(default_factory=RenderConfig)

    @property
    def image_id(self) -> str:
        return f"scene_{self.seed:06d}"


STUFF_ID_BASE = 1000  # instance ids of floor / walls start here; objects are numbered 1..n


# --------------------------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------------------------
def _rot_z(a: float) -> np.ndarray:
    return lib.rot_z(a)


def _mesh(vertices: np.ndarray, triangles: np.ndarray, tri_colors: np.ndarray | None = None):
    import open3d as o3d

    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(vertices, dtype=np.float64)),
                                  o3d.utility.Vector3iVector(np.asarray(triangles, dtype=np.int32)))
    if tri_colors is not None:
        vc = np.zeros((len(vertices), 3))
        vc[np.asarray(triangles)[:, 0]] = tri_colors
        vc[np.asarray(triangles)[:, 1]] = tri_colors
        vc[np.asarray(triangles)[:, 2]] = tri_colors
        m.vertex_colors = o3d.utility.Vector3dVector(vc)
    return m


@dataclass
class _Local:
    """A model normalised so that its vertex AABB is centred on the origin in plan with its bottom at z = 0."""

    model: lib.Model
    vertices: np.ndarray
    triangles: np.ndarray
    tri_colors: np.ndarray
    size: np.ndarray  # (3,) AABB extents in the local frame
    top_z: float | None
    top_extent: tuple[float, float] | None


def _normalise(model: lib.Model) -> _Local:
    v, t, c = model.arrays()
    lo, hi = v.min(axis=0), v.max(axis=0)
    shift = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    v = v + shift
    top = None if model.top_z is None else model.top_z + shift[2]
    return _Local(model, v, t, c, hi - lo, top, model.top_extent)


def _footprint(center_xy: np.ndarray, size_xy: np.ndarray, yaw: float, pad: float = 0.0) -> np.ndarray:
    """The 4 corners (4, 2) of an oriented rectangle."""
    hx, hy = size_xy[0] / 2 + pad, size_xy[1] / 2 + pad
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    return center_xy + local @ np.array([[c, s], [-s, c]])


def _rects_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex quadrilaterals (4, 2)."""
    for poly in (a, b):
        for i in range(4):
            e = poly[(i + 1) % 4] - poly[i]
            axis = np.array([-e[1], e[0]])
            pa, pb = a @ axis, b @ axis
            if pa.max() <= pb.min() or pb.max() <= pa.min():
                return False
    return True


@dataclass
class _Placed:
    local: _Local
    category: str
    support: str
    center: np.ndarray  # world position of the local origin (bottom centre)
    yaw: float
    supported_by: int | None = None

    @property
    def zrange(self) -> tuple[float, float]:
        return float(self.center[2]), float(self.center[2] + self.local.size[2])

    def footprint(self, pad: float = 0.0) -> np.ndarray:
        return _footprint(self.center[:2], self.local.size[:2], self.yaw, pad)


def _collides(p: _Placed, others: list[_Placed], clearance: float) -> bool:
    za = p.zrange
    fa = p.footprint(clearance / 2)
    for o in others:
        zb = o.zrange
        if za[1] <= zb[0] + 1e-6 or zb[1] <= za[0] + 1e-6:
            continue
        if _rects_overlap(fa, o.footprint(clearance / 2)):
            return True
    return False


# --------------------------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------------------------
def _weighted_choice(rng: np.random.Generator, names: list[str]) -> str:
    w = np.array([lib.CATEGORIES[n].weight for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def _choose_categories(rng: np.random.Generator, cfg: RenderConfig) -> tuple[str | None, list[str], list[str],
                                                                              list[str]]:
    n_total = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    support = None
    if rng.random() < cfg.table_prob:
        support = lib.SUPPORT_CATEGORIES[int(rng.choice(3, p=[0.45, 0.35, 0.2]))]
    floor_names = [n for n, c in lib.CATEGORIES.items() if c.support == "floor" and n not in lib.SUPPORT_CATEGORIES]
    table_names = [n for n, c in lib.CATEGORIES.items() if c.support == "table"]
    wall_names = [n for n, c in lib.CATEGORIES.items() if c.support == "wall"]
    remaining = n_total - (1 if support else 0)
    n_top = 0
    if support:
        n_top = int(min(remaining - 1, rng.integers(1, 5)))
    n_wall = int(min(remaining - n_top - 1, rng.choice([0, 1, 1, 2])))
    n_wall = max(n_wall, 0)
    n_floor = remaining - n_top - n_wall

    def pick(names: list[str], k: int) -> list[str]:
        out: list[str] = []
        for _ in range(k):
            if out and rng.random() < cfg.repeat_prob:
                out.append(out[int(rng.integers(len(out)))])
            else:
                out.append(_weighted_choice(rng, names))
        return out

    tops = pick(table_names, n_top)
    floors = pick(floor_names, n_floor)
    if support in ("table", "desk") and floors and rng.random() < 0.35:  # chairs at the table
        k = int(rng.integers(1, min(3, len(floors)) + 1))
        floors[:k] = ["chair"] * k
    walls = pick(wall_names, n_wall)
    return support, tops, floors, walls


def _wall_pose(wall: str, W: float, D: float, along: float, depth: float) -> tuple[np.ndarray, float]:
    """Position (x, y) of an object with its back (+y local) against ``wall``, and its yaw."""
    off = depth / 2 + 0.005
    if wall == "back":
        return np.array([along, D - off]), 0.0
    if wall == "left":
        return np.array([off, along]), math.pi / 2
    if wall == "right":
        return np.array([W - off, along]), -math.pi / 2
    raise ValueError(wall)


def _layout(rng: np.random.Generator, cfg: RenderConfig) -> tuple[dict, list[_Placed]]:
    W = float(rng.uniform(*cfg.room_width))
    D = float(rng.uniform(*cfg.room_depth))
    H = float(rng.uniform(*cfg.wall_height))
    walls = ["back"]
    for side in ("left", "right"):
        if rng.random() < 0.7:
            walls.append(side)
    if len(walls) == 1:
        walls.append("left" if rng.random() < 0.5 else "right")
    if rng.random() < 0.3:
        walls.append("front")
    room = {"width": W, "depth": D, "wall_height": H, "walls": walls}
    y_min = 1.4  # keep the first 1.4 m free for the camera
    support, tops, floors, wall_items = _choose_categories(rng, cfg)
    placed: list[_Placed] = []
    clearance = 0.05

    def inside(p: _Placed) -> bool:
        f = p.footprint()
        return bool(f[:, 0].min() >= 0.02 and f[:, 0].max() <= W - 0.02 and f[:, 1].min() >= y_min
                    and f[:, 1].max() <= D - 0.02)

    def place_floor(cat: str, tries: int = 60) -> _Placed | None:
        local = _normalise(lib.build(cat, rng))
        info = lib.CATEGORIES[cat]
        side_walls = [w for w in walls if w != "front"]
        for _ in range(tries):
            if rng.random() < info.wall_prob:
                wall = side_walls[int(rng.integers(len(side_walls)))]
                span = (0.0, W) if wall == "back" else (y_min, D)
                half = local.size[0] / 2 + 0.03
                if span[1] - span[0] < 2 * half:
                    continue
                xy, yaw = _wall_pose(wall, W, D, float(rng.uniform(span[0] + half, span[1] - half)), local.size[1])
            else:
                xy = np.array([rng.uniform(0.1, W - 0.1), rng.uniform(y_min, D - 0.1)])
                yaw = float(rng.uniform(-math.pi, math.pi))
            p = _Placed(local, cat, "floor", np.array([xy[0], xy[1], 0.0]), yaw)
            if inside(p) and not _collides(p, placed, clearance):
                return p
        return None

    if support:
        p = place_floor(support, 100)
        if p is not None:
            placed.append(p)
            sup_index = len(placed)  # instance ids are 1-based positions in `placed`
            ext = np.asarray(p.local.top_extent)
            on_top: list[_Placed] = []
            for cat in tops:
                local = _normalise(lib.build(cat, rng))
                for _ in range(40):
                    lx, ly = rng.uniform(-ext[0] / 2, ext[0] / 2), rng.uniform(-ext[1] / 2, ext[1] / 2)
                    lyaw = float(rng.uniform(-math.pi, math.pi))
                    corners = _footprint(np.array([lx, ly]), local.size[:2], lyaw)
                    if np.any(np.abs(corners[:, 0]) > ext[0] / 2) or np.any(np.abs(corners[:, 1]) > ext[1] / 2):
                        continue
                    xy = p.center[:2] + _rot_z(p.yaw)[:2, :2] @ np.array([lx, ly])
                    q = _Placed(local, cat, "table", np.array([xy[0], xy[1], p.center[2] + p.local.top_z]),
                                p.yaw + lyaw, supported_by=sup_index)
                    if not _collides(q, on_top, 0.02):
                        on_top.append(q)
                        break
            placed.extend(on_top)
    floors = sorted(floors, key=lambda c: -lib.CATEGORIES[c].wall_prob)  # wall-hugging furniture first
    for cat in floors:
        p = place_floor(cat)
        if p is not None:
            placed.append(p)
    hang_walls = [w for w in walls if w != "front"]
    for cat in wall_items:
        local = _normalise(lib.build(cat, rng))
        info = lib.CATEGORIES[cat]
        for _ in range(40):
            wall = hang_walls[int(rng.integers(len(hang_walls)))]
            span = (0.0, W) if wall == "back" else (y_min, D)
            half = local.size[0] / 2 + 0.05
            if span[1] - span[0] < 2 * half:
                continue
            xy, yaw = _wall_pose(wall, W, D, float(rng.uniform(span[0] + half, span[1] - half)), local.size[1])
            z0 = float(rng.uniform(*info.wall_z))
            if z0 + local.size[2] > H - 0.05:
                continue
            p = _Placed(local, cat, "wall", np.array([xy[0], xy[1], z0]), yaw)
            if not _collides(p, placed, clearance):
                placed.append(p)
                break
    return room, placed


def _room_stuff(room: dict, rng: np.random.Generator) -> list[StuffSpec]:
    W, D, H = room["width"], room["depth"], room["wall_height"]
    stuff: list[StuffSpec] = []
    m = 6.0
    fv = np.array([[-m, -m, 0.0], [W + m, -m, 0.0], [W + m, D + m, 0.0], [-m, D + m, 0.0]])
    floor_col = np.asarray(lib.rgb(["light brown", "brown", "beige", "gray", "cream"][int(rng.integers(5))]))
    stuff.append(StuffSpec("floor", "floor", _mesh(fv, np.array([[0, 1, 2], [0, 2, 3]])), floor_col, STUFF_ID_BASE))
    wall_col = np.asarray(lib.rgb(["white", "cream", "beige", "light blue", "gray", "pink"][int(rng.integers(6))]))
    t = 0.1
    boxes = {
        "back": lib.box(W + 2 * t, t, H, W / 2, D + t / 2, 0.0),
        "front": lib.box(W + 2 * t, t, H, W / 2, -t / 2, 0.0),
        "left": lib.box(t, D + 2 * t, H, -t / 2, D / 2, 0.0),
        "right": lib.box(t, D + 2 * t, H, W + t / 2, D / 2, 0.0),
    }
    for k, w in enumerate(room["walls"]):
        b = boxes[w]
        col = wall_col * (1.0 - 0.04 * k)
        stuff.append(StuffSpec("wall", f"{w} wall", _mesh(b.vertices, b.triangles), col, STUFF_ID_BASE + 1 + k))
    return stuff


# --------------------------------------------------------------------------------------------------------------
# Camera
# --------------------------------------------------------------------------------------------------------------
def camera_pose(position: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """world_from_camera (4 x 4) for a camera at ``position`` whose optical axis has heading ``yaw`` (radians,
    from world +x towards +y), ``pitch`` (radians, positive = looking up) and ``roll`` (radians, about the optical
    axis). Camera axes follow OpenCV: x right, y down, z forward."""
    fwd = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    up = np.array([0.0, 0.0, 1.0])
    right = np.cross(fwd, up)
    down = np.cross(fwd, right)
    base = np.stack([right, down, fwd], axis=1)
    cp, sp = math.cos(pitch), math.sin(pitch)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    cr, sr = math.cos(roll), math.sin(roll)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = base @ rx @ rz
    T[:3, 3] = position
    return T


def camera_angles(world_from_camera: np.ndarray) -> dict[str, float]:
    """Inverse of :func:`camera_pose`: height (z), yaw, pitch and roll in degrees."""
    R = np.asarray(world_from_camera)[:3, :3]
    fwd, right = R[:, 2], R[:, 0]
    pitch = math.asin(float(np.clip(fwd[2], -1, 1)))
    yaw = math.atan2(fwd[1], fwd[0])
    roll = math.asin(float(np.clip(-right[2] / max(math.cos(pitch), 1e-9), -1, 1)))
    return {"height": float(world_from_camera[2, 3]), "yaw_deg": math.degrees(yaw),
            "pitch_deg": math.degrees(pitch), "roll_deg": math.degrees(roll)}


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------
def _to_specs(placed: list[_Placed]) -> list[ObjectSpec]:
    objs: list[ObjectSpec] = []
    for i, p in enumerate(placed, start=1):
        R = _rot_z(p.yaw)
        v = p.local.vertices @ R.T + p.center
        center = p.center + R @ np.array([0.0, 0.0, p.local.size[2] / 2])
        box = Box3D(center, p.local.size.copy(), R)
        top = None if p.local.top_z is None else float(p.center[2] + p.local.top_z)
        objs.append(ObjectSpec(category=p.category, name=p.category, color=p.local.model.color,
                               mesh=_mesh(v, p.local.triangles, p.local.tri_colors), box_world=box,
                               support=p.support, instance_id=i, yaw=float(p.yaw), top_z=top,
                               supported_by=p.supported_by, triangle_colors=p.local.tri_colors))
    return objs


def generate_scene_spec(seed: int, config: RenderConfig | None = None) -> SceneSpec:
    """A room, its objects and a camera that sees at least ``config.min_visible`` objects; deterministic by seed."""
    from spatialvlm.render.raycast import prepare, visible_counts

    cfg = config or RenderConfig()
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED]))
    for _room_try in range(20):
        room, placed = _layout(rng, cfg)
        if len(placed) < cfg.min_objects:
            continue
        objects = _to_specs(placed)
        stuff = _room_stuff(room, rng)
        centres = np.array([o.box_world.center for o in objects])
        prepared = None
        best_n, best_spec = -1, None
        for _cam_try in range(12):
            h = float(rng.uniform(*cfg.camera_height))
            pos = np.array([rng.uniform(0.3, 0.7) * room["width"], rng.uniform(0.15, 0.8), h])
            # aim at a random subset's centroid so different views occur, then jitter
            k = int(rng.integers(max(1, len(objects) // 2), len(objects) + 1))
            target = centres[rng.permutation(len(objects))[:k]].mean(axis=0)
            d = target - pos
            yaw = math.atan2(d[1], d[0]) + math.radians(rng.normal(0.0, 6.0))
            aim_pitch = math.degrees(math.atan2(d[2], math.hypot(d[0], d[1]))) + rng.normal(0.0, 5.0)
            pitch = float(np.clip(aim_pitch, *cfg.pitch_deg))
            roll = float(rng.uniform(*cfg.roll_deg))
            hfov = float(rng.uniform(*cfg.hfov_deg))
            T = camera_pose(pos, yaw, math.radians(pitch), math.radians(roll))
            K = Intrinsics.from_fov(cfg.width, cfg.height, hfov)
            spec = SceneSpec(seed=int(seed), objects=objects, stuff=stuff, intrinsics=K, world_from_camera=T,
                             room=room, camera={"height": h, "yaw_deg": math.degrees(yaw), "pitch_deg": pitch,
                                                "roll_deg": roll, "hfov_deg": hfov},
                             config=cfg)
            if prepared is None:
                prepared = prepare(spec)
            counts = visible_counts(spec, stride=4, prepared=prepared)
            n_vis = int(sum(1 for c in counts.values() if c > 0))
            if n_vis > best_n:
                best_n, best_spec = n_vis, spec
            if n_vis >= max(cfg.min_visible, math.ceil(0.75 * len(objects))):
                break
        if best_spec is not None and best_n >= cfg.min_visible:
            return best_spec
    raise RuntimeError(f"seed {seed}: no room layout with {cfg.min_visible} visible objects in 20 tries; "
                       f"loosen RenderConfig (min_visible, image size, field of view)")
