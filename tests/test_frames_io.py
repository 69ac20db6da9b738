"""The RGB-D folder format: round trip, validation with per-line errors, depth encodings, real frames."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spatialvlm.io.frames import count_frames, decode_depth, load_rgb, read_frames, write_frames
from spatialvlm.records import Box3D, Frame, Intrinsics, ItemError, ObjectAnnotation

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
NYU = DATA / "nyu_kitti_metric3d" / "data" / "nyu_demo"
KITTI = DATA / "nyu_kitti_metric3d" / "data" / "kitti_demo"
RGBD = DATA / "redwood_tum_sun_open3d" / "RGBD"


def _synthetic_frame(image_id: str = "f0", h: int = 48, w: int = 64, seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 9.0, size=(h, w)).astype(np.float32)
    depth[:3, :5] = 0.0
    mask = np.zeros((h, w), dtype=bool)
    mask[10:20, 5:30] = True
    support = np.zeros((h, w), dtype=bool)
    support[30:, :] = True
    R = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    objs = [
        ObjectAnnotation("red chair", mask=mask, box3d_cam=Box3D([0.1, 0.2, 2.0], [0.5, 0.9, 0.5], R),
                         box3d_world=Box3D([1.0, 2.0, 0.45], [0.5, 0.5, 0.9]),
                         attributes={"instance_id": 3, "color": "red"}),
        ObjectAnnotation("lamp", box=(40.0, 2.0, 60.5, 30.0), score=0.8),
    ]
    T = np.eye(4)
    T[:3, 3] = [1.0, 0.5, 1.4]
    return Frame(image_id, image, depth, Intrinsics(50.0, 52.0, 31.5, 23.5, w, h), objs, T, support,
                 meta={"seed": seed})


# ----------------------------------------------------------------------------------------------------------------
# round trip
# ----------------------------------------------------------------------------------------------------------------
def test_round_trip_preserves_everything(tmp_path):
    frames = [_synthetic_frame("a", seed=1), _synthetic_frame("b/with space", seed=2)]
    manifest = write_frames(frames, tmp_path)
    assert manifest == tmp_path / "frames.jsonl" and count_frames(tmp_path) == 2
    back = list(read_frames(tmp_path))
    assert all(isinstance(f, Frame) for f in back)
    for src, dst in zip(frames, back):
        assert dst.image_id == src.image_id
        assert np.array_equal(dst.image, src.image)
        assert dst.depth.dtype == np.float32
        assert np.abs(dst.depth - src.depth).max() <= 0.0005 + 1e-6
        assert np.array_equal(dst.depth == 0, src.depth == 0)
        assert np.allclose(dst.intrinsics.K, src.intrinsics.K)
        assert (dst.intrinsics.width, dst.intrinsics.height) == (64, 48)
        assert np.allclose(dst.world_from_camera, src.world_from_camera)
        assert np.array_equal(dst.support_mask, src.support_mask)
        assert [o.name for o in dst.objects] == ["red chair", "lamp"]
        a, b = src.objects[0], dst.objects[0]
        assert np.array_equal(a.mask, b.mask) and b.box == a.bbox()
        assert np.allclose(b.box3d_cam.rotation, a.box3d_cam.rotation)
        assert np.allclose(b.box3d_cam.center, a.box3d_cam.center)
        assert np.allclose(b.box3d_world.size, a.box3d_world.size)
        assert b.attributes == a.attributes
        assert dst.objects[1].box == (40.0, 2.0, 60.5, 30.0) and dst.objects[1].mask is None
        assert dst.objects[1].score == pytest.approx(0.8)
        assert dst.meta["seed"] == src.meta["seed"]


def test_round_trip_of_rendered_scenes(tmp_path):
    pytest.importorskip("open3d")
    from spatialvlm.render.raycast import render_frame
    from spatialvlm.render.scene import RenderConfig, generate_scene_spec

    frame = render_frame(generate_scene_spec(3, RenderConfig(width=160, height=120)))
    write_frames([frame], tmp_path)
    (back,) = list(read_frames(tmp_path))
    assert np.abs(back.depth - frame.depth).max() <= 0.0005 + 1e-6
    assert len(back.objects) == len(frame.objects)
    for a, b in zip(frame.objects, back.objects):
        assert np.array_equal(a.mask, b.mask) and a.box == b.box and a.name == b.name
        assert np.allclose(a.box3d_cam.corners(), b.box3d_cam.corners())
    assert back.meta["generator"] == "spatialvlm.render"


def test_far_depth_is_clipped_with_a_warning(tmp_path):
    f = _synthetic_frame()
    f.depth[5, 5] = 70.0
    f.depth[6, 6] = np.nan
    with pytest.warns(UserWarning, match="1 depth pixels"):
        write_frames([f], tmp_path)
    (back,) = list(read_frames(tmp_path))
    assert back.depth[5, 5] == 0 and back.depth[6, 6] == 0
    assert back.meta["depth_clipped_pixels"] == 1


def test_duplicate_ids_rejected_on_write_and_made_unique_on_read(tmp_path):
    with pytest.raises(ValueError, match="duplicate image id"):
        write_frames([_synthetic_frame("x"), _synthetic_frame("x")], tmp_path / "w")
    # ids that sanitise to the same file stem still get distinct files; none escapes the folder
    write_frames([_synthetic_frame("a b", seed=1), _synthetic_frame("a_b", seed=2),
                  _synthetic_frame("../up", seed=3)], tmp_path / "c")
    back = list(read_frames(tmp_path / "c"))
    assert [f.image_id for f in back] == ["a b", "a_b", "../up"]
    assert not np.array_equal(back[0].image, back[1].image)
    assert not (tmp_path / "up.png").exists() and len(list((tmp_path / "c" / "rgb").iterdir())) == 3
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "im.png")
    (tmp_path / "frames.jsonl").write_text('{"image": "im.png"}\n\n# a comment\n{"image": "im.png"}\n')
    assert count_frames(tmp_path) == 2
    ids = [f.image_id for f in read_frames(tmp_path)]
    assert ids == ["im", "im_2"]


# ----------------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------------
def test_broken_lines_yield_item_errors_and_good_lines_still_load(tmp_path):
    Image.fromarray(np.full((20, 30, 3), 100, np.uint8)).save(tmp_path / "ok.png")
    Image.fromarray(np.full((20, 30), 1500, np.uint16)).save(tmp_path / "d_ok.png")
    Image.fromarray(np.full((10, 30), 1500, np.uint16)).save(tmp_path / "d_small.png")
    Image.fromarray(np.full((20, 30), 255, np.uint8)).save(tmp_path / "m.png")
    K = [[40, 0, 15], [0, 40, 10], [0, 0, 1]]
    good = {"image": "ok.png", "depth": "d_ok.png", "depth_scale": 1000, "K": K,
            "objects": [{"name": "bed", "box": [1, 2, 10, 12]}, {"name": "lamp", "mask": "m.png"}]}
    lines = [
        json.dumps(good),
        '{"image": "ok.png", "depth": ',  # malformed JSON
        json.dumps({**good, "image": "missing.png"}),
        json.dumps({**good, "depth": "d_small.png"}),
        json.dumps({**good, "K": [[-40, 0, 15], [0, 40, 10], [0, 0, 1]]}),
        json.dumps({**good, "K": [[40, 0, 15], [0, 40, 10]]}),
        json.dumps({**good, "objects": [{"name": "x"}]}),
        json.dumps({**good, "objects": [{"name": "x", "mask": "nope.png"}]}),
        json.dumps({**good, "depth_encoding": "weird"}),
        json.dumps({**good, "objects": [{"name": "x", "box": [5, 5, 2, 9]}]}),
        json.dumps([1, 2]),
        json.dumps({**good, "K": [[40, 5, 15], [0, 40, 10], [0, 0, 1]]}),
        json.dumps({**good, "image_id": "last"}),
    ]
    (tmp_path / "frames.jsonl").write_text("\n".join(lines) + "\n")
    out = list(read_frames(tmp_path))
    assert len(out) == len(lines)
    assert isinstance(out[0], Frame) and isinstance(out[-1], Frame) and out[-1].image_id == "last"
    errs = out[1:-1]
    assert all(isinstance(e, ItemError) and e.stage == "read" for e in errs)
    expect = ["malformed JSON", "image file not found", "depth", "focal lengths must be positive", "K must be 3x3",
              "needs a 'box' or a 'mask'", "mask file not found", "unknown depth_encoding", "x1 > x0",
              "must be a JSON object", "K must be [[fx,0,cx]"]
    assert len(errs) == len(expect)
    for e, word in zip(errs, expect):
        assert word in e.reason, (e.reason, word)
    assert "30x10" in errs[2].reason and "30x20" in errs[2].reason
    assert [e.item.rsplit(":", 1)[1] for e in errs] == [str(i) for i in range(2, 13)]
    f = out[0]
    assert f.depth.dtype == np.float32 and np.allclose(f.depth, 1.5)
    assert f.objects[0].box == (1.0, 2.0, 10.0, 12.0) and f.objects[1].mask.all()
    assert f.intrinsics.fx == 40 and f.intrinsics.width == 30


def test_missing_manifest_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="frames.jsonl"):
        list(read_frames(tmp_path))


# ----------------------------------------------------------------------------------------------------------------
# encodings and image conversions
# ----------------------------------------------------------------------------------------------------------------
def test_depth_encodings():
    raw = np.array([[0, 1000, 65535]], dtype=np.uint16)
    assert np.allclose(decode_depth(raw, 1000), [[0, 1.0, 65.535]])
    assert np.allclose(decode_depth(raw, 5000), [[0, 0.2, 13.107]])
    mm = np.array([[0, 1234, 7999]], dtype=np.uint16)
    stored = ((mm << np.uint16(3)) | (mm >> np.uint16(13))).astype(np.uint16)  # how SUN3D writes it
    assert np.allclose(decode_depth(stored, 1000, "sun3d"), mm / 1000.0)
    disp = np.array([[2047, 800, 1092, 1100]], dtype=np.uint16)
    d = decode_depth(disp, 1, "kinect_disparity")
    assert d[0, 0] == 0 and np.isclose(d[0, 1], 351.3 / 292.5) and d[0, 2] == pytest.approx(702.6) and d[0, 3] == 0
    with pytest.raises(ValueError):
        decode_depth(raw, 0)
    with pytest.raises(ValueError):
        decode_depth(raw, 1000, "nope")


def test_image_modes_are_converted_to_rgb(tmp_path):
    g = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    Image.fromarray(g).save(tmp_path / "g.png")
    assert np.array_equal(load_rgb(tmp_path / "g.png"), np.repeat(g[..., None], 3, 2))
    rgba = np.zeros((12, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :8, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    a = load_rgb(tmp_path / "a.png")
    assert a.shape == (12, 16, 3) and tuple(a[0, 0]) == (200, 0, 0) and tuple(a[0, 15]) == (255, 255, 255)
    Image.fromarray(np.full((12, 16), 65535, np.uint16)).save(tmp_path / "w16.png")
    assert load_rgb(tmp_path / "w16.png").min() == 255
    # EXIF orientation 6 (rotate 90 degrees clockwise to display): stored 16 x 12 shows as 12 wide x 16 high
    im = Image.fromarray(np.zeros((12, 16, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "e.jpg", exif=exif)
    assert load_rgb(tmp_path / "e.jpg").shape == (16, 12, 3)


# ----------------------------------------------------------------------------------------------------------------
# real frames (../shared/data), read through manifests that point at the shared files with absolute paths
# ----------------------------------------------------------------------------------------------------------------
def _write_manifest(tmp_path: Path, lines: list[dict]) -> Path:
    p = tmp_path / "frames.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return p


@pytest.mark.skipif(not NYU.is_dir(), reason="shared NYU frames not available")
def test_real_nyu_frames_in_metres(tmp_path):
    ann = json.loads((NYU / "test_annotations.json").read_text())["files"]
    lines = []
    for a in ann:
        fx, fy, cx, cy = a["cam_in"]
        lines.append({"image": str((NYU / "rgb" / Path(a["rgb"]).name).resolve()),
                      "depth": str((NYU / "depth" / Path(a["depth"]).name).resolve()),
                      "depth_scale": a["depth_scale"], "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]})
    frames = list(read_frames(_write_manifest(tmp_path, lines)))
    assert len(frames) == 3 and all(isinstance(f, Frame) for f in frames), frames
    for f in frames:
        assert f.image.shape == (480, 640, 3) and f.depth.shape == (480, 640)
        v = f.depth[f.depth > 0]
        assert 0.6 < v.size / f.depth.size < 0.8
        assert 0.5 <= np.percentile(v, 1) and np.percentile(v, 99) <= 10.0
        assert 1.0 < np.median(v) < 6.0
        assert f.intrinsics.fx == pytest.approx(518.8579)


@pytest.mark.skipif(not RGBD.is_dir(), reason="shared Redwood/TUM/SUN3D frames not available")
def test_real_redwood_tum_sun3d_and_kinect_frames(tmp_path):
    K525 = [[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]]
    of = RGBD / "other_formats"
    lines = [{"image": str((RGBD / "color" / f"{i:05d}.jpg").resolve()),
              "depth": str((RGBD / "depth" / f"{i:05d}.png").resolve()), "depth_scale": 1000, "K": K525}
             for i in range(5)]
    lines += [
        {"image": str(of / "SUN_color.jpg"), "depth": str(of / "SUN_depth.png"), "depth_encoding": "sun3d"},
        {"image": str(of / "TUM_color.png"), "depth": str(of / "TUM_depth.png"), "depth_scale": 5000},
        {"image": str(of / "NYU_color.ppm"), "depth": str(of / "NYU_depth.pgm"), "depth_encoding": "kinect_disparity"},
        # the same SUN3D file read as plain millimetres is garbage: the encoding matters
        {"image": str(of / "SUN_color.jpg"), "depth": str(of / "SUN_depth.png"), "depth_scale": 1000,
         "image_id": "sun_as_linear"},
    ]
    out = list(read_frames(_write_manifest(tmp_path, lines)))
    assert all(isinstance(f, Frame) for f in out), [f for f in out if isinstance(f, ItemError)]
    for f in out[:5]:  # Redwood: mm PNGs, about 0.95 - 2.7 m
        v = f.depth[f.depth > 0]
        assert 0.8 < np.percentile(v, 1) and np.percentile(v, 99) < 3.0
    for f in out[5:8]:  # SUN3D, TUM, raw Kinect: indoor metres
        v = f.depth[f.depth > 0]
        assert v.size > 0.5 * f.depth.size
        assert 0.4 < np.percentile(v, 1) and np.percentile(v, 99) < 10.0 and 1.0 < np.median(v) < 5.0, f.image_id
    garbage = out[8].depth[out[8].depth > 0]
    assert np.percentile(garbage, 99) > 20.0


@pytest.mark.skipif(not KITTI.is_dir(), reason="shared KITTI frames not available")
def test_real_kitti_frames_value_over_256(tmp_path):
    lines = [{"image": str(p.resolve()), "depth": str((KITTI / "depth" / p.name).resolve()), "depth_scale": 256,
              "K": [[707.0493, 0, 604.0814], [0, 707.0493, 180.5066], [0, 0, 1]]}
             for p in sorted((KITTI / "rgb").glob("*.png"))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = list(read_frames(_write_manifest(tmp_path, lines)))
    assert len(frames) == 3
    for f in frames:
        v = f.depth[f.depth > 0]
        assert 0.1 < v.size / f.depth.size < 0.3 and 2.0 < np.median(v) < 40.0 and v.max() < 100.0


def test_corrupt_files_are_item_errors_not_crashes(tmp_path):
    Image.fromarray(np.full((20, 30, 3), 100, np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    lines = [{"image": "junk.png"},
             {"image": "ok.png", "depth": "junk.png"},
             {"image": "ok.png", "objects": [{"name": "cup", "mask": "junk.png"}]},
             {"image": "ok.png", "support_mask": "junk.png"},
             {"image": "ok.png", "objects": [{"name": "cup", "box": [0, 0, 5, 5]}]}]
    (tmp_path / "frames.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = list(read_frames(tmp_path))
    assert [type(x).__name__ for x in out] == ["ItemError"] * 4 + ["Frame"]
    assert "cannot read image" in out[0].reason and "cannot read depth" in out[1].reason
    assert "cannot read objects[0].mask" in out[2].reason and "cannot read support_mask" in out[3].reason
