"""Headless rendering of a :class:`~spatialvlm.render.scene.SceneSpec` with Open3D's ``RaycastingScene``.

One ray per pixel through the pixel centre of the pinhole model (OpenCV conventions: u = fx * x / z + cx with
integer pixel indices u, v). Ray directions are built in the camera frame with z = 1, so the ray parameter of a hit
is the camera-frame z of the surface point: the depth map is exact (camera z, not ray length). Per-pixel instance
ids come from the id of the hit geometry; colour is Lambertian shading of per-part colours under a sun-like light,
a soft fill light and ambient light, with procedural texture on the floor and walls and a little pixel noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spatialvlm.records import Box3D, Frame, Intrinsics, ObjectAnnotation
from spatialvlm.render.scene import SceneSpec


@dataclass
class _Tables:
    """Per-geometry lookup tables for shading."""

    kind: np.ndarray  # (G,) 0 floor, 1 wall, 2 object
    color: np.ndarray  # (G, 3) base colour of floor / walls
    top_z: np.ndarray  # (G,) support-surface height of objects with one, else NaN
    tri_offset: np.ndarray  # (G,) offset of the geometry's triangles in tri_colors
    tri_colors: np.ndarray  # (sum of object triangles, 3)


@dataclass
class _Prepared:
    scene: object  # open3d.t.geometry.RaycastingScene
    kinds: list[tuple[str, int]]  # geometry id -> ("object" | "stuff", index into spec.objects / spec.stuff)
    _tables: _Tables | None = None

    def tables(self, spec: SceneSpec) -> _Tables:
        if self._tables is None:
            G = len(self.kinds)
            kind = np.zeros(G, dtype=np.int64)
            color = np.zeros((G, 3))
            top = np.full(G, np.nan)
            off = np.zeros(G, dtype=np.int64)
            cols = [np.zeros((1, 3))]
            n = 1
            for g, (k, i) in enumerate(self.kinds):
                if k == "stuff":
                    st = spec.stuff[i]
                    kind[g] = 0 if st.kind == "floor" else 1
                    color[g] = st.color
                else:
                    o = spec.objects[i]
                    kind[g] = 2
                    top[g] = np.nan if o.top_z is None else o.top_z
                    off[g] = n
                    cols.append(o.triangle_colors)
                    n += len(o.triangle_colors)
            self._tables = _Tables(kind, color, top, off, np.concatenate(cols))
        return self._tables


def prepare(spec: SceneSpec) -> _Prepared:
    """Build the ray-casting acceleration structure for ``spec`` (reusable across cameras of the same room)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    kinds: list[tuple[str, int]] = []
    for i, s in enumerate(spec.stuff):
        gid = scene.add_triangles(*_tensor_mesh(s.mesh))
        assert gid == len(kinds)
        kinds.append(("stuff", i))
    for i, o in enumerate(spec.objects):
        gid = scene.add_triangles(*_tensor_mesh(o.mesh))
        assert gid == len(kinds)
        kinds.append(("object", i))
    return _Prepared(scene, kinds)


def _tensor_mesh(mesh):
    import open3d as o3d

    v = np.asarray(mesh.vertices, dtype=np.float32)
    t = np.asarray(mesh.triangles, dtype=np.uint32)
    return o3d.core.Tensor(v), o3d.core.Tensor(t)


def camera_rays(K: Intrinsics, world_from_camera: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rays (H', W', 6) float32 in the world frame for the pixels (u, v) = (stride * i, stride * j); the direction
    has camera-frame z = 1. Also returns the camera-frame directions (H', W', 3)."""
    us = np.arange(0, K.width, stride, dtype=np.float64)
    vs = np.arange(0, K.height, stride, dtype=np.float64)
    uu, vv = np.meshgrid(us, vs)
    d_cam = np.stack([(uu - K.cx) / K.fx, (vv - K.cy) / K.fy, np.ones_like(uu)], axis=-1)
    T = np.asarray(world_from_camera, dtype=np.float64)
    d_world = d_cam @ T[:3, :3].T
    o = np.broadcast_to(T[:3, 3], d_world.shape)
    return np.concatenate([o, d_world], axis=-1).astype(np.float32), d_cam


def _cast(prep: _Prepared, rays: np.ndarray) -> dict[str, np.ndarray]:
    import open3d as o3d

    out = prep.scene.cast_rays(o3d.core.Tensor(np.ascontiguousarray(rays)), nthreads=0)
    return {k: v.numpy() for k, v in out.items()}


def visible_counts(spec: SceneSpec, stride: int = 1, prepared: _Prepared | None = None) -> dict[int, int]:
    """Number of pixels (on the grid of every ``stride``-th pixel) where each object is the first hit, by
    instance id. Objects not seen are absent. A pixel counted at a stride is also a pixel of the full image."""
    prep = prepared or prepare(spec)
    rays, _ = camera_rays(spec.intrinsics, spec.world_from_camera, stride)
    hit = _cast(prep, rays)
    gid = hit["geometry_ids"]
    valid = np.isfinite(hit["t_hit"])
    counts: dict[int, int] = {}
    ids, n = np.unique(gid[valid], return_counts=True)
    for g, c in zip(ids, n):
        kind, idx = prep.kinds[int(g)]
        if kind == "object":
            counts[spec.objects[idx].instance_id] = int(c)
    return counts


# --------------------------------------------------------------------------------------------------------------
# Procedural textures (deterministic functions of the world position)
# --------------------------------------------------------------------------------------------------------------
def _hash01(*ints: np.ndarray) -> np.ndarray:
    h = np.zeros(np.broadcast(*ints).shape, dtype=np.uint64)
    for k, a in enumerate(ints):
        h ^= (np.asarray(a).astype(np.int64).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15 + k)) * np.uint64(
            0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(29)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _floor_texture(p: np.ndarray, seed: int) -> np.ndarray:
    """Brightness factor for floor points: planks 0.16 m wide with staggered joints and a fine grain."""
    width = 0.16
    row = np.floor(p[:, 0] / width)
    plank_len = 1.2
    joint = np.floor(p[:, 1] / plank_len + _hash01(row, np.full_like(row, seed)) )
    tone = 0.86 + 0.22 * _hash01(row, joint, np.full_like(row, seed + 7))
    grain = 1.0 + 0.05 * np.sin(p[:, 1] * 55.0 + 3.0 * np.sin(p[:, 0] * 9.0 + row))
    gap = (np.abs(p[:, 0] / width - np.round(p[:, 0] / width)) * width < 0.003)
    return tone * grain * np.where(gap, 0.6, 1.0)


def _wall_texture(p: np.ndarray, seed: int) -> np.ndarray:
    """Brightness factor for wall points: a faint mottled plaster pattern."""
    cell = np.floor(p * 12.0)
    fine = _hash01(cell[:, 0], cell[:, 1], cell[:, 2], np.full(len(p), seed))
    return 0.95 + 0.06 * fine + 0.03 * np.sin(p[:, 2] * 4.0 + p[:, 0] * 3.0 + p[:, 1] * 2.0)


# --------------------------------------------------------------------------------------------------------------
# Visibility of one object: truncation by the image border and occlusion by other geometry
# --------------------------------------------------------------------------------------------------------------
def _visibility(obj, K: Intrinsics, T: np.ndarray, cam_from_world: np.ndarray, rays: np.ndarray,
                visible: int) -> dict:
    """``truncated``: some of the object lies outside the image (or behind the camera); ``truncated_sides``: which
    borders cut it; ``unoccluded_pixels``: pixels it would cover with nothing else in the scene;
    ``visible_fraction`` = visible / unoccluded pixels (1.0 = not occluded at all)."""
    import open3d as o3d

    v = obj.vertices_world() @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
    sides: list[str] = []
    front = v[:, 2] > 1e-6
    if not front.all():
        sides.append("behind")
    u = K.fx * v[front, 0] / v[front, 2] + K.cx
    w = K.fy * v[front, 1] / v[front, 2] + K.cy
    # a pixel (integer index) sees the object when its centre lies inside the silhouette
    if len(u):
        if u.min() < -0.5:
            sides.append("left")
        if u.max() > K.width - 0.5:
            sides.append("right")
        if w.min() < -0.5:
            sides.append("top")
        if w.max() > K.height - 0.5:
            sides.append("bottom")
    if front.all() and len(u):
        x0, x1 = int(max(0, np.floor(u.min()))), int(min(K.width, np.ceil(u.max()) + 1))
        y0, y1 = int(max(0, np.floor(w.min()))), int(min(K.height, np.ceil(w.max()) + 1))
    else:  # partly behind the camera: the silhouette is unbounded, use the whole image
        x0, x1, y0, y1 = 0, K.width, 0, K.height
    alone = 0
    if x1 > x0 and y1 > y0:
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(np.asarray(obj.mesh.vertices, dtype=np.float32)),
                            o3d.core.Tensor(np.asarray(obj.mesh.triangles, dtype=np.uint32)))
        sub = np.ascontiguousarray(rays[y0:y1, x0:x1].reshape(-1, 6))
        t = scene.cast_rays(o3d.core.Tensor(sub), nthreads=0)["t_hit"].numpy()
        alone = int(np.isfinite(t).sum())
    alone = max(alone, visible)
    return {"truncated": bool(sides), "truncated_sides": sides, "unoccluded_pixels": alone,
            "visible_fraction": float(visible / alone) if alone else 0.0}


# --------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------
def render_frame(spec: SceneSpec, prepared: _Prepared | None = None) -> Frame:
    """Render ``spec`` into a :class:`~spatialvlm.records.Frame` with exact depth, masks and 3D boxes."""
    prep = prepared or prepare(spec)
    K = spec.intrinsics
    T = np.asarray(spec.world_from_camera, dtype=np.float64)
    H, W = K.height, K.width
    rays, _ = camera_rays(K, T, 1)
    hit = _cast(prep, rays.reshape(-1, 6))
    t = hit["t_hit"].astype(np.float64)
    valid = np.isfinite(t)
    gid = np.where(valid, hit["geometry_ids"].astype(np.int64), -1)
    prim = hit["primitive_ids"].astype(np.int64)
    normals = hit["primitive_normals"].astype(np.float64)
    d_world = rays.reshape(-1, 6)[:, 3:].astype(np.float64)
    tt = np.where(valid, t, 0.0)
    points = T[:3, 3] + d_world * tt[:, None]

    # depth: camera-frame z of the hit = ray parameter (directions have camera z = 1)
    depth = np.where(valid, t, 0.0).astype(np.float32).reshape(H, W)

    # normals facing the camera
    flip = np.einsum("ij,ij->i", normals, d_world) > 0
    normals[flip] *= -1

    rng = np.random.default_rng(np.random.SeedSequence([int(spec.seed), 0xC0105]))
    tab = prep.tables(spec)
    code = np.where(valid, tab.kind[np.maximum(gid, 0)], -1)  # -1 sky, 0 floor, 1 wall, 2 object
    base = np.empty((H * W, 3))
    base[code == -1] = (0.80, 0.84, 0.90)
    sel = code == 0
    base[sel] = tab.color[gid[sel]] * _floor_texture(points[sel], spec.seed)[:, None]
    support = sel.copy()
    floor = sel.copy()
    sel = code == 1
    base[sel] = tab.color[gid[sel]] * _wall_texture(points[sel], spec.seed)[:, None]
    sel = code == 2
    g_sel = gid[sel]
    base[sel] = tab.tri_colors[tab.tri_offset[g_sel] + prim[sel]]
    # table tops: upward faces at the height of the object's support surface
    top = np.full(H * W, np.nan)
    top[sel] = tab.top_z[g_sel]
    with np.errstate(invalid="ignore"):
        support |= sel & (normals[:, 2] > 0.95) & (np.abs(points[:, 2] - top) < 0.005)

    # lighting: a sun from above (fixed per scene), a fill light at the camera, ambient
    az = rng.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(az) * 0.5, np.sin(az) * 0.5, 1.0])
    sun /= np.linalg.norm(sun)
    view = -d_world / np.linalg.norm(d_world, axis=1, keepdims=True)
    lam = np.clip(normals @ sun, 0.0, None)
    if spec.config.shadows:  # points that do not see the sun get no direct light
        lit = valid & (lam > 0)
        origins = points[lit] + normals[lit] * 1e-4
        srays = np.concatenate([origins, np.broadcast_to(sun, origins.shape)], axis=1).astype(np.float32)
        blocked = np.isfinite(_cast(prep, srays)["t_hit"])
        shade = np.ones(H * W)
        shade[np.flatnonzero(lit)[blocked]] = 0.0
        lam = lam * shade
    fill = np.clip(np.einsum("ij,ij->i", normals, view), 0.0, None)
    light = 0.38 + 0.45 * lam + 0.25 * fill
    light = np.where(valid, light, 1.0)
    rgb = base * (light * 255.0)[:, None]
    if spec.config.image_noise > 0:  # sensor-like luminance noise
        rgb += (rng.standard_normal(H * W, dtype=np.float32) * spec.config.image_noise)[:, None]
    image = np.clip(np.round(rgb), 0, 255).astype(np.uint8).reshape(H, W, 3)

    cam_from_world = np.linalg.inv(T)
    gid_img = gid.reshape(H, W)
    kinds = prep.kinds
    objects: list[ObjectAnnotation] = []
    hidden: list[str] = []
    obj_gid = {idx: g for g, (kind, idx) in enumerate(kinds) if kind == "object"}
    for idx, o in enumerate(spec.objects):
        mask = gid_img == obj_gid[idx]
        n = int(mask.sum())
        if n == 0:
            hidden.append(f"{o.name}#{o.instance_id}")
            continue
        ys, xs = np.nonzero(mask)
        box2d = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        vis = _visibility(o, K, T, cam_from_world, rays[..., :6], n)
        objects.append(ObjectAnnotation(
            name=o.name, box=box2d, mask=mask, score=1.0,
            box3d_cam=o.box_world.transformed(cam_from_world),
            box3d_world=Box3D(o.box_world.center.copy(), o.box_world.size.copy(), o.box_world.rotation.copy()),
            attributes={"instance_id": int(o.instance_id), "category": o.category, "color": o.color,
                        "support": o.support, "visible_pixels": n, **vis,
                        **({"supported_by": int(o.supported_by)} if o.supported_by is not None else {})},
        ))
    meta = {
        "seed": int(spec.seed),
        "generator": "spatialvlm.render",
        "camera": {k: float(v) for k, v in spec.camera.items()},
        "room": {k: (v if not isinstance(v, float) else float(v)) for k, v in spec.room.items()},
        "floor_z": float(spec.floor_z),
        "num_objects": len(spec.objects),
        "hidden_objects": hidden,
        "render_config": asdict(spec.config),
    }
    return Frame(image_id=spec.image_id, image=image, depth=depth, intrinsics=K, objects=objects,
                 world_from_camera=T.copy(), support_mask=support.reshape(H, W),
                 floor_mask=floor.reshape(H, W), source="spatialvlm.render",
                 meta=meta)
