"""The whole perception stage with tiny models on real photos: Frame in, Frame (depth, intrinsics, objects, masks,
support mask) or ItemError out; intrinsics precedence; sensor depth kept; the `perceive` command end to end.
The QA such frames would give is nonsense; the plumbing is what is checked."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from perception_tiny import build_all, spec

from spatialvlm.perception.stage import PerceptionConfig, PerceptionStage
from spatialvlm.records import Frame, Intrinsics, ItemError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
NYU = DATA / "nyu_kitti_metric3d" / "data" / "nyu_demo"
NYU_K = (518.8579, 519.46961, 325.58245, 253.73617)
KITTI = DATA / "nyu_kitti_metric3d" / "data" / "kitti_demo" / "rgb" / "0000000005.png"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return build_all(tmp_path_factory.mktemp("tiny_stage"),
                     ["depth-pro", "depth-anything-v2-metric", "grounding-dino", "owlv2", "sam", "sam2",
                      "florence2", "clip"])


@pytest.fixture(scope="module")
def photos():
    if not NYU.exists():
        pytest.skip(f"shared test data not found at {DATA}")
    from spatialvlm.io.photos import load_image

    return [load_image(NYU / "rgb" / "rgb_00000.jpg")[0], load_image(KITTI)[0]]


def cfg_for(tiny, **kw) -> PerceptionConfig:
    base = dict(depth=spec("depth-pro", tiny["depth-pro"]), detector=spec("grounding-dino", tiny["grounding-dino"]),
                segmenter=spec("sam", tiny["sam"]), captioner=None, scene_filter=spec("clip", tiny["clip"]),
                embedder=None, filter_threshold=0.0, detection_threshold=0.0, vocabulary=["chair", "table", "cup"],
                device="cpu", batch_size=2, max_objects=5, min_mask_pixels=1)
    base.update(kw)
    return PerceptionConfig(**base)


def test_full_stage_on_photos(tiny, photos):
    stage = PerceptionStage(cfg_for(tiny, captioner=spec("florence2", tiny["florence2"])))
    frames = [Frame("nyu", photos[0]), Frame("kitti", photos[1]), Frame("broken", np.zeros((4, 4), np.uint8))]
    out = stage(frames)
    assert len(out) == 3
    assert isinstance(out[2], ItemError) and out[2].item == "broken" and "uint8 RGB" in out[2].reason
    for f, img in zip(out[:2], photos):
        assert isinstance(f, Frame)
        h, w = img.shape[:2]
        assert f.depth.shape == (h, w) and f.depth.dtype == np.float32
        assert (f.depth >= 0).all() and (f.depth <= 65.0).all() and (f.depth > 0).any()
        # DepthPro's tiny FoV head says 60 degrees over the width
        assert f.meta["intrinsics_source"] == "model"
        assert (f.intrinsics.width, f.intrinsics.height) == (w, h)
        assert f.intrinsics.hfov_deg == pytest.approx(60.0, abs=1.0)
        assert f.meta["filter"]["keep"] is True and 0.0 <= f.meta["filter"]["score"] <= 1.0
        assert 0 < len(f.objects) <= 5
        for o in f.objects:
            assert o.mask.shape == (h, w) and o.mask.dtype == bool and o.mask.any()
            assert o.attributes["class"] in ("chair", "table", "cup") and o.attributes["source"] == "perception"
            assert o.name  # the caption when the captioner said something, else the class word
            x0, _, x1, _ = o.box
            # masks are kept within their box (+5% margin)
            xs = np.nonzero(o.mask)[1]
            assert xs.min() >= x0 - 0.05 * (x1 - x0) - 1 and xs.max() <= x1 + 0.05 * (x1 - x0) + 1
        # no two kept boxes overlap more than the NMS threshold
        from spatialvlm.perception.adapters import box_iou

        b = np.array([o.box for o in f.objects])
        iou = box_iou(b, b) - np.eye(len(b))
        assert iou.max() <= 0.5 + 1e-9
        # floor / table-top detections became the support mask, not objects
        assert f.support_mask is None or (f.support_mask.shape == (h, w) and f.support_mask.dtype == bool)
        assert all(o.attributes["class"] not in ("floor", "table top") for o in f.objects)
    assert set(stage.timings) >= {"filter", "depth", "detect", "segment", "caption"}
    d = stage.describe()
    assert d["resolved"]["depth"]["device"] == "cpu" and "transformers" in d["versions"]


def test_scene_filter_rejects_with_reason(tiny, photos):
    stage = PerceptionStage(cfg_for(tiny, filter_threshold=1.01, detector=None, segmenter=None))
    out = stage([Frame("nyu", photos[0])])
    assert isinstance(out[0], ItemError) and out[0].stage == "filter"
    assert out[0].reason.startswith("rejected by scene filter: score=") and "best negative prompt=" in out[0].reason


def test_rgbd_frame_without_objects_keeps_sensor_depth(tiny, photos):
    from PIL import Image

    depth = np.asarray(Image.open(NYU / "depth" / "sync_depth_00000.png")).astype(np.float32) / 1000.0
    K = Intrinsics(*NYU_K, 640, 480)
    stage = PerceptionStage(cfg_for(tiny, segmenter=spec("sam2", tiny["sam2"])))
    f = stage([Frame("nyu", photos[0], depth=depth.copy(), intrinsics=K)])[0]
    assert isinstance(f, Frame)
    assert np.array_equal(f.depth, depth) and f.intrinsics == K
    assert f.meta["intrinsics_source"] == "frame" and "depth_source" not in f.meta
    assert "filter" not in f.meta  # RGB-D frames are not scene-filtered unless filter_rgbd
    assert len(f.objects) > 0


def test_intrinsics_precedence(tiny, photos):
    img = photos[0]
    # 1. a user override wins over the model's FoV, and DepthPro's metric scale follows it
    base = PerceptionStage(cfg_for(tiny, detector=None, segmenter=None))([Frame("a", img)])[0]
    over = PerceptionStage(cfg_for(tiny, detector=None, segmenter=None, intrinsics=[2 * base.intrinsics.fx,
                           2 * base.intrinsics.fx, 319.5, 239.5]))([Frame("a", img)])[0]
    assert over.meta["intrinsics_source"] == "override" and over.intrinsics.fx == pytest.approx(2 * base.intrinsics.fx)
    ok = (base.depth > 0) & (over.depth > 0) & (over.depth < 50)
    assert np.median(over.depth[ok] / base.depth[ok]) == pytest.approx(2.0, rel=1e-3)
    # 2. a model without intrinsics: EXIF focal, else the FoV prior
    da = cfg_for(tiny, depth=spec("depth-anything-v2-metric", tiny["depth-anything-v2-metric"]), detector=None,
                 segmenter=None, fov_prior_deg=70.0)
    stage = PerceptionStage(da)
    exif, prior = stage([Frame("e", img, meta={"exif": {"focal_length_35mm": 26.0}}), Frame("p", img)])
    assert exif.meta["intrinsics_source"] == "exif"
    assert exif.intrinsics.fx == pytest.approx(26.0 * math.hypot(640, 480) / math.hypot(36, 24))
    assert prior.meta["intrinsics_source"] == "prior"
    assert prior.intrinsics.fx == pytest.approx(320.0 / math.tan(math.radians(35.0)))
    assert exif.depth.max() <= 20.0 + 1e-4  # Depth Anything metric indoor: metres, <= max_depth


def test_no_segmenter_gives_box_masks_and_missing_depth_model_is_an_error(tiny, photos):
    stage = PerceptionStage(cfg_for(tiny, depth=None, segmenter=None, detector=spec("owlv2", tiny["owlv2"]),
                                    scene_filter=None))
    depth = np.full(photos[0].shape[:2], 2.0, np.float32)
    ok, bad = stage([Frame("d", photos[0], depth=depth), Frame("nod", photos[0])])
    assert isinstance(ok, Frame) and ok.meta["intrinsics_source"] == "prior"
    assert ok.objects and all(o.attributes["mask_source"] == "box" for o in ok.objects)
    for o in ok.objects:
        x0, y0, x1, y1 = o.box
        assert o.mask.sum() == pytest.approx((math.ceil(x1) - math.floor(x0)) * (math.ceil(y1) - math.floor(y0)),
                                             rel=0.05)
    assert isinstance(bad, ItemError) and "no depth model" in bad.reason


def test_perceive_command_writes_an_rgbd_folder(tiny, photos, tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from spatialvlm.cli import app
    from spatialvlm.io.frames import read_frames

    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(photos[0]).save(src / "room.jpg")
    Image.fromarray(photos[1][:, :600]).save(src / "street.png")
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    c = cfg_for(tiny)
    sets = [f"depth={c.depth}", f"detector={c.detector}", f"segmenter={c.segmenter}",
            f"scene_filter={c.scene_filter}", "embedder=null", "filter_threshold=0.0", "detection_threshold=0.0",
            "vocabulary=[chair, cup]", "device=cpu", "max_objects=3", "min_mask_pixels=1"]
    args = ["perceive", "--input", f"photos:{src}", "--out", str(out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    frames = [f for f in read_frames(out)]
    assert [type(f).__name__ for f in frames] == ["Frame", "Frame"]
    for f in frames:
        assert f.depth is not None and f.depth.shape == f.image.shape[:2] and f.intrinsics is not None
        assert 0 < len(f.objects) <= 3 and all(o.mask is not None for o in f.objects)
    errors = (out / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 1 and "broken" in errors[0] and '"stage": "read"' in errors[0]
    assert "depth-pro:" in (out / "perception.yaml").read_text()


def test_synth_from_rgbd_folder_without_objects(tiny, photos, tmp_path):
    """The whole pipeline on real NYU frames (sensor depth + K, no objects): perception adds objects and masks,
    geometry and QA run unchanged. The object names are random; the QA must still come out, with raw metres."""
    import yaml
    from PIL import Image
    from typer.testing import CliRunner

    from spatialvlm.cli import app
    from spatialvlm.io.frames import write_frames

    if "synth" not in [c.name for c in app.registered_commands]:
        pytest.skip("the synth command is not available in this checkout")
    frames = []
    for n in ("00000", "00050"):
        img = np.array(Image.open(NYU / "rgb" / f"rgb_{n}.jpg").convert("RGB"))
        depth = np.asarray(Image.open(NYU / "depth" / f"sync_depth_{n}.png")).astype(np.float32) / 1000.0
        frames.append(Frame(n, img, depth=depth, intrinsics=Intrinsics(*NYU_K, 640, 480)))
    write_frames(frames, tmp_path / "rgbd")
    cfg = {"perception": {"depth": None, "detector": spec("grounding-dino", tiny["grounding-dino"]),
                          "segmenter": spec("sam", tiny["sam"]), "scene_filter": None, "embedder": None,
                          "detection_threshold": 0.0, "max_objects": 6, "device": "cpu",
                          "vocabulary": ["chair", "table", "cup", "lamp", "sofa", "bed", "book", "plant", "bottle",
                                         "door"]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["synth", "--input", str(tmp_path / "rgbd"), "--out", str(out), "--config",
                                   str(tmp_path / "c.yaml"), "--quiet"])
    assert (out / "qa.parquet").exists(), res.output + repr(res.exception)
    import pandas as pd

    qa = pd.read_parquet(out / "qa.parquet")
    assert len(qa) > 0 and set(qa["image_id"]) <= {"00000", "00050"}
    quant = qa[qa["family"] == "quantitative"]
    assert quant["value_m"].notna().all() and (quant["value_m"] >= 0).all() and (quant["value_m"] < 20).all()
