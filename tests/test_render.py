"""The built-in scene generator: determinism, exact ground truth, camera ranges, variety, placement rules."""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import cache

import numpy as np
import pytest

o3d = pytest.importorskip("open3d")

from spatialvlm.records import Frame
from spatialvlm.render import library as lib
from spatialvlm.render.raycast import render_frame, visible_counts
from spatialvlm.render.scene import RenderConfig, camera_angles, generate_scene_spec


@cache
def _spec(seed: int):
    return generate_scene_spec(seed)


@cache
def _frame(seed: int) -> Frame:
    return render_frame(_spec(seed))


def _backproject(frame: Frame, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    K = frame.intrinsics
    z = frame.depth[v, u].astype(np.float64)
    return np.stack([(u - K.cx) / K.fx * z, (v - K.cy) / K.fy * z, z], axis=1)


def _point_mesh_distance(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Exact (float64) distance from each point to a triangle mesh: closest point on every triangle (Voronoi
    regions of vertices, edges and face), minimum over triangles. Open3D's compute_distance works in float32 and
    was seen to be off by up to ~0.8 mm, too coarse for a 1 mm check."""
    a, b, c = (vertices[triangles[:, k]][None] for k in range(3))  # (1, T, 3)
    p = points[:, None, :]  # (P, 1, 3)
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v, w = vb / denom, vc / denom
        q = a + ab * v[..., None] + ac * w[..., None]  # inside the face
        t_ab = np.clip(d1 / (d1 - d3), 0, 1)
        t_ac = np.clip(d2 / (d2 - d6), 0, 1)
        t_bc = np.clip((d4 - d3) / ((d4 - d3) + (d5 - d6)), 0, 1)
    q = np.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[..., None], a + ab * t_ab[..., None], q)
    q = np.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[..., None], a + ac * t_ac[..., None], q)
    q = np.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[..., None], b + (c - b) * t_bc[..., None], q)
    q = np.where(((d1 <= 0) & (d2 <= 0))[..., None], a, q)
    q = np.where(((d3 >= 0) & (d4 <= d3))[..., None], b, q)
    q = np.where(((d6 >= 0) & (d5 <= d6))[..., None], c, q)
    dist = np.linalg.norm(p - q, axis=-1)
    return np.nan_to_num(dist, nan=np.inf).min(axis=1)


def test_exact_point_mesh_distance_helper():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    t = np.array([[0, 1, 2]])
    pts = np.array([[0.2, 0.2, 0.5], [-1, 0, 0], [2, 2, 0], [0.5, -1, 0], [0.1, 0.1, 0]])
    expect = [0.5, 1.0, np.linalg.norm([1.5, 1.5]), 1.0, 0.0]
    assert np.allclose(_point_mesh_distance(pts, v, t), expect)


def _to_world(frame: Frame, pc: np.ndarray) -> np.ndarray:
    T = frame.world_from_camera
    return pc @ T[:3, :3].T + T[:3, 3]


# ----------------------------------------------------------------------------------------------------------------
# library
# ----------------------------------------------------------------------------------------------------------------
# category -> (min, max) of the tallest extent in metres, a realistic envelope
HEIGHTS = {"bed": (0.8, 1.3), "chair": (0.75, 1.05), "table": (0.7, 0.8), "desk": (0.7, 0.8), "sofa": (0.7, 1.0),
           "mug": (0.08, 0.12), "bottle": (0.2, 0.38), "floor lamp": (1.3, 1.95), "bookshelf": (1.2, 2.0),
           "basketball": (0.22, 0.25), "coffee table": (0.37, 0.5), "book": (0.01, 0.06)}


def test_library_has_enough_composite_categories_at_real_sizes():
    assert len(lib.CATEGORIES) >= 22
    supports = Counter(c.support for c in lib.CATEGORIES.values())
    assert supports["floor"] >= 10 and supports["table"] >= 5 and supports["wall"] >= 2
    rng = np.random.default_rng(3)
    for name in lib.CATEGORIES:
        for _ in range(5):
            m = lib.build(name, rng)
            assert m.category == name and m.color in lib.PALETTE
            v, t, c = m.arrays()
            assert len(t) >= 12 and c.shape == (len(t), 3) and t.max() < len(v)
            size = v.max(axis=0) - v.min(axis=0)
            assert np.all(size > 0.005) and np.all(size < 2.6), (name, size)
            if name in HEIGHTS:
                lo, hi = HEIGHTS[name]
                assert lo <= size[2] <= hi, (name, size)
        if name not in ("basketball", "box", "vase", "bowl", "trash bin"):
            assert len(m.parts) >= 2, f"{name} should be a composite of several solids"


def test_round_solids_have_enough_segments():
    part = lib.cylinder(0.5, 1.0)
    ring = part.vertices[np.isclose(part.vertices[:, 2], 0.0) & (np.linalg.norm(part.vertices[:, :2], axis=1) > 0)]
    assert len(ring) >= 32
    # any rotated frame: the vertex extent matches the circle to within (1 - cos(pi / n))
    for a in np.linspace(0, np.pi, 7):
        proj = ring[:, :2] @ np.array([math.cos(a), math.sin(a)])
        assert proj.max() > 0.5 * math.cos(math.pi / len(ring)) - 1e-9


def test_unknown_category_is_an_error():
    with pytest.raises(KeyError, match="unknown category"):
        lib.build("spaceship", np.random.default_rng(0))


# ----------------------------------------------------------------------------------------------------------------
# determinism
# ----------------------------------------------------------------------------------------------------------------
def test_same_seed_same_arrays_different_seed_different_scene():
    a = render_frame(generate_scene_spec(11))
    b = render_frame(generate_scene_spec(11))
    assert a.image_id == b.image_id == "scene_000011"
    assert np.array_equal(a.image, b.image) and np.array_equal(a.depth, b.depth)
    assert np.array_equal(a.support_mask, b.support_mask)
    assert np.array_equal(a.world_from_camera, b.world_from_camera)
    assert [o.name for o in a.objects] == [o.name for o in b.objects]
    for oa, ob in zip(a.objects, b.objects):
        assert np.array_equal(oa.mask, ob.mask)
        assert np.array_equal(oa.box3d_world.center, ob.box3d_world.center)
    c = render_frame(generate_scene_spec(12))
    assert not np.array_equal(a.depth, c.depth)
    assert not np.allclose(a.world_from_camera, c.world_from_camera)


# ----------------------------------------------------------------------------------------------------------------
# exactness
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 5, 9])
def test_depth_backprojects_onto_the_object_mesh_and_into_its_box(seed):
    spec, frame = _spec(seed), _frame(seed)
    by_id = {o.instance_id: o for o in spec.objects}
    rng = np.random.default_rng(seed)
    inv = np.linalg.inv(frame.world_from_camera)
    assert frame.objects, "expected visible objects"
    for ann in frame.objects:
        obj = by_id[ann.attributes["instance_id"]]
        ys, xs = np.nonzero(ann.mask)
        idx = rng.choice(len(ys), size=min(120, len(ys)), replace=False)
        pc = _backproject(frame, xs[idx], ys[idx])
        pw = _to_world(frame, pc)
        dist = _point_mesh_distance(pw, obj.vertices_world(), np.asarray(obj.mesh.triangles))
        assert dist.max() < 1e-4, (ann.name, float(dist.max()))  # measured: about 1e-6 m
        for box, pts in ((ann.box3d_cam, pc), (ann.box3d_world, pw)):
            local = (pts - box.center) @ box.rotation
            assert np.all(np.abs(local) <= box.size / 2 + 1e-3), ann.name
        # the camera box is the world box moved by inverse(world_from_camera)
        moved = ann.box3d_world.transformed(inv)
        assert np.allclose(moved.center, ann.box3d_cam.center, atol=1e-9)
        assert np.allclose(moved.rotation, ann.box3d_cam.rotation, atol=1e-9)
        assert np.allclose(moved.size, ann.box3d_cam.size)
        # the box is tight around the mesh: its oriented extent equals the vertices' extent in the box frame
        v = (obj.vertices_world() - ann.box3d_world.center) @ ann.box3d_world.rotation
        assert np.allclose(v.max(axis=0) - v.min(axis=0), ann.box3d_world.size, atol=1e-9)


def test_depth_is_camera_z_not_ray_length():
    frame = _frame(0)
    K, T = frame.intrinsics, frame.world_from_camera
    spec = _spec(0)
    # cast an independent ray (unit direction) for a corner pixel and compare to depth * |d_cam|
    scene = o3d.t.geometry.RaycastingScene()
    for s in spec.stuff:
        scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(s.mesh))
    for o in spec.objects:
        scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(o.mesh))
    for u, v in [(5, 5), (K.width - 3, K.height - 7), (K.width // 2, K.height // 2), (17, K.height - 2)]:
        d_cam = np.array([(u - K.cx) / K.fx, (v - K.cy) / K.fy, 1.0])
        n = np.linalg.norm(d_cam)
        d = T[:3, :3] @ (d_cam / n)
        ray = np.concatenate([T[:3, 3], d]).astype(np.float32)[None]
        t = scene.cast_rays(o3d.core.Tensor(ray))["t_hit"].numpy()[0]
        if not np.isfinite(t):
            assert frame.depth[v, u] == 0
            continue
        assert abs(frame.depth[v, u] - t / n) < 1e-4
        assert n > 1.0 + 1e-6 or (u, v) == (K.width // 2, K.height // 2)


def test_floor_and_table_top_pixels_land_on_their_planes():
    checked_table = False
    for seed in (1, 3, 4, 5):
        spec, frame = _spec(seed), _frame(seed)
        ys, xs = np.nonzero(frame.support_mask)
        assert len(ys) > 1000
        pw = _to_world(frame, _backproject(frame, xs, ys))
        tops = [o.top_z for o in spec.objects if o.top_z is not None]
        on_floor = np.abs(pw[:, 2] - spec.floor_z) < 1e-3
        on_top = np.zeros_like(on_floor)
        for z in tops:
            on_top |= np.abs(pw[:, 2] - z) < 1e-3
            checked_table |= bool((np.abs(pw[:, 2] - z) < 1e-3).sum() > 50)
        assert np.all(on_floor | on_top), "support pixels must lie on the floor or a table top"
        # and every visible floor pixel is in the support mask: floor geometry id pixels == z ~ 0 pixels
        ann_union = np.zeros_like(frame.support_mask)
        for a in frame.objects:
            ann_union |= a.mask
        assert not np.any(frame.support_mask & ann_union & ~_table_pixels(frame, spec))
    assert checked_table, "expected at least one scene with a visible table top"


def _table_pixels(frame: Frame, spec) -> np.ndarray:
    out = np.zeros(frame.depth.shape, dtype=bool)
    for a in frame.objects:
        if a.attributes["category"] in lib.SUPPORT_CATEGORIES:
            out |= a.mask
    return out


# ----------------------------------------------------------------------------------------------------------------
# camera, variety, placement
# ----------------------------------------------------------------------------------------------------------------
def test_camera_ranges_over_50_seeds():
    cfg = RenderConfig()
    pitches = []
    for seed in range(50):
        spec = _spec(seed)
        ang = camera_angles(spec.world_from_camera)
        assert 1.0 <= ang["height"] <= 1.8
        assert -35.0 - 1e-6 <= ang["pitch_deg"] <= 5.0 + 1e-6
        assert -5.0 - 1e-6 <= ang["roll_deg"] <= 5.0 + 1e-6
        assert 50.0 - 1e-6 <= spec.intrinsics.hfov_deg <= 80.0 + 1e-6
        assert (spec.intrinsics.width, spec.intrinsics.height) == (cfg.width, cfg.height)
        assert abs(ang["pitch_deg"] - spec.camera["pitch_deg"]) < 1e-6
        assert abs(ang["roll_deg"] - spec.camera["roll_deg"]) < 1e-6
        R = spec.world_from_camera[:3, :3]
        assert np.allclose(R.T @ R, np.eye(3), atol=1e-9) and np.linalg.det(R) > 0.999
        pitches.append(ang["pitch_deg"])
    assert max(pitches) - min(pitches) > 10, "pitch should vary"


def test_category_variety_repeats_and_visibility_over_100_seeds():
    seen: Counter = Counter()
    repeats = 0
    for seed in range(100):
        spec = _spec(seed)
        counts = visible_counts(spec, stride=4)
        assert sum(1 for c in counts.values() if c > 0) >= 3, seed
        cats = [o.category for o in spec.objects if counts.get(o.instance_id, 0) > 0]
        seen.update(set(cats))
        if any(n >= 2 for n in Counter(cats).values()):
            repeats += 1
        assert 4 <= len(spec.objects) <= 9
    assert len(seen) >= 20, sorted(seen)
    assert repeats >= 10, repeats


def _rect(box) -> np.ndarray:
    c = box.corners()
    return c[[0, 2, 6, 4], :2]  # the bottom face's corners, in order around the rectangle


def _sat(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    for poly in (a, b):
        for i in range(4):
            e = poly[(i + 1) % 4] - poly[i]
            ax = np.array([-e[1], e[0]]) / np.linalg.norm(e)
            pa, pb = a @ ax, b @ ax
            if pa.max() <= pb.min() + tol or pb.max() <= pa.min() + tol:
                return False
    return True


def test_objects_do_not_interpenetrate_and_rest_on_their_support():
    for seed in range(30):
        spec = _spec(seed)
        objs = spec.objects
        by_id = {o.instance_id: o for o in objs}
        W, D = spec.room["width"], spec.room["depth"]
        for o in objs:
            b = o.box_world
            zmin = o.vertices_world()[:, 2].min()
            assert np.allclose(b.rotation[:, 2], [0, 0, 1]) and abs(np.linalg.det(b.rotation) - 1) < 1e-9
            if o.support == "floor":
                assert abs(zmin) < 1e-9
            elif o.support == "table":
                assert o.supported_by in by_id and abs(zmin - by_id[o.supported_by].top_z) < 1e-9
                # inside the table top's footprint
                t = by_id[o.supported_by].box_world
                local = (o.vertices_world()[:, :2] - t.center[:2]) @ t.rotation[:2, :2]
                assert np.all(np.abs(local) <= t.size[:2] / 2 + 1e-9)
            else:
                assert o.support == "wall" and zmin > 0.5
                xy = o.vertices_world()[:, :2]
                gaps = [D - xy[:, 1].max(), xy[:, 0].min(), W - xy[:, 0].max()]
                assert min(abs(g) for g in gaps) < 0.02, "wall objects hang on a wall"
        for i in range(len(objs)):
            for j in range(i + 1, len(objs)):
                a, b = objs[i].box_world, objs[j].box_world
                if a.max[2] <= b.min[2] + 1e-6 or b.max[2] <= a.min[2] + 1e-6:
                    continue
                assert not _sat(_rect(a), _rect(b), 1e-6), (seed, objs[i].name, objs[j].name)


def test_frame_fields_and_annotations():
    spec, frame = _spec(2), _frame(2)
    assert frame.image.dtype == np.uint8 and frame.image.shape == (384, 512, 3)
    assert frame.depth.dtype == np.float32 and frame.depth.shape == (384, 512)
    assert frame.meta["seed"] == 2 and frame.meta["generator"] == "spatialvlm.render"
    assert frame.support_mask.dtype == bool and frame.support_mask.shape == (384, 512)
    assert np.all(frame.depth >= 0)
    union = np.zeros((384, 512), dtype=int)
    for a in frame.objects:
        assert a.mask.dtype == bool and a.mask.any()
        assert set(a.attributes) >= {"instance_id", "category", "color", "support", "visible_pixels"}
        assert a.attributes["visible_pixels"] == int(a.mask.sum())
        assert a.name == a.attributes["category"] and a.attributes["color"] in lib.PALETTE
        ys, xs = np.nonzero(a.mask)
        assert a.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert np.all(frame.depth[a.mask] > 0)
        union += a.mask
    assert union.max() == 1, "masks must not overlap"
    # the image is not flat: texture and shading
    assert frame.image.reshape(-1, 3).std(axis=0).min() > 10
    assert len(frame.objects) + len(frame.meta["hidden_objects"]) == len(spec.objects)
    json.dumps(frame.meta)


def test_small_custom_config_and_bad_config():
    cfg = RenderConfig(width=96, height=72, min_objects=4, max_objects=5)
    frame = render_frame(generate_scene_spec(4, cfg))
    assert frame.image.shape == (72, 96, 3) and frame.intrinsics.width == 96
    with pytest.raises(ValueError):
        RenderConfig(min_objects=5, max_objects=4)
    with pytest.raises(ValueError):
        RenderConfig(hfov_deg=(60.0, 50.0))
    with pytest.raises(ValueError):
        generate_scene_spec(-1)


def test_cli_renders_a_folder(tmp_path):
    from typer.testing import CliRunner

    from spatialvlm.cli import app
    from spatialvlm.io.frames import count_frames, read_frames

    res = CliRunner().invoke(app, ["scenes", "render", "-n", "2", "--out", str(tmp_path / "s"), "--seed", "7",
                                   "--width", "128", "--height", "96", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "frames.jsonl" in res.output
    assert count_frames(tmp_path / "s") == 2
    frames = list(read_frames(tmp_path / "s"))
    assert [f.image_id for f in frames] == ["scene_000007", "scene_000008"]
    assert frames[0].image.shape == (96, 128, 3)


def test_visibility_attributes_match_a_render_of_each_object_alone():
    import dataclasses

    occluded = truncated = 0
    for seed in (0, 4, 6):
        spec, frame = _spec(seed), _frame(seed)
        by_id = {o.instance_id: o for o in spec.objects}
        for a in frame.objects:
            at = a.attributes
            alone = dataclasses.replace(spec, objects=[by_id[at["instance_id"]]], stuff=[])
            n_alone = visible_counts(alone).get(at["instance_id"], 0)
            assert at["unoccluded_pixels"] == n_alone
            assert 0 < at["visible_pixels"] <= n_alone
            assert at["visible_fraction"] == pytest.approx(at["visible_pixels"] / n_alone)
            occluded += at["visible_fraction"] < 0.95
            if at["truncated"]:
                truncated += 1
                assert set(at["truncated_sides"]) <= {"left", "right", "top", "bottom", "behind"}
            else:
                # the whole silhouette is inside the image: its projected vertices stay within the borders
                K = frame.intrinsics
                v = (by_id[at["instance_id"]].vertices_world() - frame.world_from_camera[:3, 3]) @ \
                    frame.world_from_camera[:3, :3]
                u = K.fx * v[:, 0] / v[:, 2] + K.cx
                assert v[:, 2].min() > 0 and -0.5 <= u.min() and u.max() <= K.width - 0.5
    assert occluded >= 1 and truncated >= 1


def test_render_config_survives_the_manifest_and_regenerates_the_same_scene(tmp_path):
    from spatialvlm.io.frames import read_frames, write_frames

    cfg = RenderConfig(width=120, height=90, max_objects=6)
    frame = render_frame(generate_scene_spec(21, cfg))
    write_frames([frame], tmp_path)
    (back,) = list(read_frames(tmp_path))
    cfg2 = RenderConfig.from_dict(back.meta["render_config"])
    assert cfg2 == cfg
    again = generate_scene_spec(back.meta["seed"], cfg2)
    assert np.allclose(again.world_from_camera, frame.world_from_camera)
    assert [o.instance_id for o in again.objects][: len(frame.objects)] and all(
        np.allclose(again.objects[a.attributes["instance_id"] - 1].box_world.center, a.box3d_world.center)
        for a in back.objects)
    with pytest.raises(ValueError, match="unknown RenderConfig keys"):
        RenderConfig.from_dict({"width": 10, "colour": 1})
