"""Known-value tests of the perception adapters (no models): depth resizing and units, DepthPro's inverse-depth
conversion, NMS, box/mask handling, intrinsics from focal / FoV / EXIF and their rescaling, specs and config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spatialvlm.perception import adapters as A
from spatialvlm.perception.caption import clean_caption, quantize_box, region_prompt
from spatialvlm.perception.embed import near_duplicate_groups
from spatialvlm.perception.registry import backend_class, get_backend, parse_spec
from spatialvlm.perception.stage import PerceptionConfig, override_intrinsics
from spatialvlm.records import Intrinsics


def plane_depth(h: int, w: int, intr: Intrinsics, n=(0.0, -1.0, 0.0), d=1.5) -> np.ndarray:
    """Depth of the plane n . X + d = 0 seen through ``intr`` (default: a floor 1.5 m below the camera)."""
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u, dtype=float)], -1)
    denom = rays @ np.asarray(n)
    z = np.where(denom < -1e-9, -d / np.where(denom == 0, 1, denom), 0.0)
    return np.where(z > 0, z, 0.0).astype(np.float32)


def test_resize_depth_keeps_a_plane_metric():
    # model output at 96 x 128 of a floor plane; resized to the 480 x 640 image it must still be that plane
    big = Intrinsics.from_fov(640, 480, 60.0)
    small = big.scaled(128, 96)
    d_small = plane_depth(96, 128, small)
    d_big = A.resize_depth(d_small, (480, 640))
    assert d_big.shape == (480, 640) and d_big.dtype == np.float32
    truth = plane_depth(480, 640, big)
    rows = slice(300, 470)  # well below the horizon, where the floor is finite and smooth
    rel = np.abs(d_big[rows] - truth[rows]) / truth[rows]
    assert np.median(rel) < 0.01
    # points back-projected from the resized map lie on the plane y = 1.5
    v, u = 400, 320
    y = (v - big.cy) / big.fy * d_big[v, u]
    assert y == pytest.approx(1.5, rel=0.02)


def test_resize_depth_does_not_invent_depth_in_holes():
    d = np.full((10, 10), 2.0, np.float32)
    d[:, 5:] = 0.0  # right half invalid
    d[0, 0] = np.nan
    out = A.resize_depth(d, (20, 20))
    assert np.all(out[:, 12:] == 0.0)  # stays invalid
    assert np.allclose(out[:, :8][out[:, :8] > 0], 2.0)  # no blending of 2 m with 0 m
    assert np.isfinite(out).all()
    near = A.resize_depth(d, (20, 20), mode="nearest")
    assert set(np.unique(near)) <= {0.0, 2.0}
    with pytest.raises(ValueError):
        A.resize_depth(d, (20, 20), mode="cubic")


def test_inverse_depth_to_metric_known_values():
    # canonical inverse depth c -> depth = f / (W c); with f = W / 2 (90 deg FoV) and c = 0.25 -> 2 m
    c = np.full((8, 8), 0.25, np.float32)
    c[0, 0] = 0.0
    d = A.inverse_depth_to_metric(c, focal_px=320.0, width=640, size=(48, 64))
    assert d.shape == (48, 64)
    assert np.median(d) == pytest.approx(2.0, rel=1e-5)
    assert d.min() >= 0.0
    # doubling the focal length doubles every depth (the metric scale comes from the focal)
    d2 = A.inverse_depth_to_metric(c, focal_px=640.0, width=640, size=(48, 64))
    assert np.median(d2) == pytest.approx(4.0, rel=1e-5)


def test_clip_depth_marks_out_of_range_invalid():
    d = np.array([[0.01, 1.0, 500.0, np.inf]], np.float32)
    assert A.clip_depth(d, 0.05, 100.0).tolist() == [[0.0, 1.0, 0.0, 0.0]]


def test_nms_known_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    assert A.nms(boxes, scores, 0.5) == [3, 2]
    # per-label: the overlapping box of another label survives
    assert A.nms(boxes, scores, 0.5, labels=["a", "b", "a", "a"]) == [3, 1, 2]
    # IoU of the first two: 81 / 119
    assert A.box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)
    assert A.nms(np.zeros((0, 4)), np.zeros(0), 0.5) == []


def test_box_conversions_and_masks():
    xyxy = A.cxcywh_to_xyxy(np.array([[0.5, 0.5, 0.2, 0.4]]))
    assert xyxy[0].tolist() == pytest.approx([0.4, 0.3, 0.6, 0.7])
    assert A.clip_boxes(np.array([[-5, 2, 50, 60]]), 40, 30).tolist() == [[0, 2, 40, 30]]
    m = A.box_mask((2.0, 1.0, 5.0, 3.0), 6, 8)
    assert m.sum() == 6 and m[1, 2] and m[2, 4] and not m[3, 4]
    small = np.zeros((2, 4, 4), np.float32)
    small[0, :2, :2] = 1.0
    big = A.resize_masks(small, (8, 8))
    assert big.shape == (2, 8, 8) and big.dtype == bool
    assert big[0, :4, :4].all() and not big[0, 4:, :].any() and not big[1].any()


def test_intrinsics_from_fov_focal_and_scaling():
    K = A.intrinsics_from_fov_prior(640, 480, 90.0)  # 90 deg across the longer side -> f = 320
    assert K.fx == pytest.approx(320.0) and K.cx == pytest.approx(319.5) and K.cy == pytest.approx(239.5)
    P = A.intrinsics_from_fov_prior(480, 640, 90.0)  # portrait: same camera, same focal
    assert P.fx == pytest.approx(320.0)
    assert A.fov_from_focal(A.focal_from_fov(65.0, 1000), 1000) == pytest.approx(65.0)
    # a model that ran at half resolution: its intrinsics scale back exactly
    half = Intrinsics(250.0, 250.0, 159.5, 119.5, 320, 240)
    full = A.rescale_intrinsics(half, 640, 480)
    assert (full.fx, full.fy, full.cx, full.cy) == pytest.approx((500.0, 500.0, 319.5, 239.5))


def test_focal_from_exif():
    # 26 mm equivalent on a 4000 x 3000 photo: f = 26 * 5000 / 43.27
    f = A.focal_from_exif({"focal_length_35mm": 26.0}, 4000, 3000)
    assert f == pytest.approx(26.0 * 5000.0 / math.hypot(36, 24))
    # same photo downscaled to 1000 x 750 -> focal scales with it; rotated -> unchanged
    assert A.focal_from_exif({"focal_length_35mm": 26.0}, 1000, 750) == pytest.approx(f / 4)
    assert A.focal_from_exif({"focal_length_35mm": 26.0}, 3000, 4000) == pytest.approx(f)
    # focal-plane resolution path: 4.25 mm lens, 1000 px / mm, image at full 4000 px width
    f2 = A.focal_from_exif({"focal_length_mm": 4.25, "focal_plane_x_res": 1000.0, "focal_plane_unit_mm": 1.0,
                            "exif_width": 4000}, 4000, 3000)
    assert f2 == pytest.approx(4250.0)
    assert A.focal_from_exif({}, 100, 100) is None
    assert A.focal_from_exif({"focal_length_35mm": 2000.0}, 4000, 3000) is None  # implausibly narrow


def test_override_intrinsics_wins_and_rescales():
    cfg = PerceptionConfig(intrinsics=[500.0, 500.0, 319.5, 239.5], intrinsics_size=[640, 480], scene_filter=None,
                           depth=None, detector=None, segmenter=None)
    K = override_intrinsics(cfg, 320, 240)
    assert (K.fx, K.cx, K.width) == pytest.approx((250.0, 159.5, 320))
    cfg2 = PerceptionConfig(fov_deg=90.0, depth=None, detector=None, segmenter=None, scene_filter=None)
    assert override_intrinsics(cfg2, 640, 480).fx == pytest.approx(320.0)


def test_parse_spec_and_registry_errors():
    assert parse_spec("owlv2:google/owlv2-base-patch16-ensemble") == ("owlv2", "google/owlv2-base-patch16-ensemble")
    assert parse_spec("sam:/models/x:y") == ("sam", "/models/x:y")
    assert parse_spec("zoedepth") == ("zoedepth", "Intel/zoedepth-nyu-kitti")
    with pytest.raises(ValueError, match="names no model"):
        parse_spec("nonsense")
    with pytest.raises(ValueError, match="unknown depth backend"):
        get_backend("depth", "midas:foo/bar")
    with pytest.raises(ValueError, match="unknown backend kind"):
        backend_class("tracker", "owlv2")


def test_config_roundtrip_and_overrides(tmp_path):
    cfg = PerceptionConfig(vocabulary=["cup", "chair"])
    d = cfg.to_dict()
    assert d["versions"]["numpy"] and d["depth"].startswith("depth-pro:")
    p = tmp_path / "p.yaml"
    cfg.to_yaml(p)
    back = PerceptionConfig.from_yaml(p)
    assert back == cfg
    o = cfg.with_overrides(["detector=null", "nms_iou=0.3", "vocabulary=[mug, lamp]", "fov_prior_deg=70"])
    assert o.detector is None and o.nms_iou == 0.3 and o.vocabulary == ["mug", "lamp"] and o.fov_prior_deg == 70
    with pytest.raises(ValueError, match="unknown perception config key"):
        cfg.with_overrides(["nope=1"])
    with pytest.raises(ValueError, match="unknown perception config keys"):
        PerceptionConfig.from_dict({"detectr": "x"})
    vf = tmp_path / "v.txt"
    vf.write_text("# mine\nmug\n\nlamp  # desk lamp\nmug\n")
    assert PerceptionConfig(vocabulary_file=str(vf)).vocabulary == ["mug", "lamp"]


def test_florence_region_prompt_and_caption_cleaning():
    assert quantize_box((0, 0, 640, 480), 640, 480) == (0, 0, 999, 999)
    assert quantize_box((320, 240, 321, 241), 640, 480) == (500, 500, 501, 502)
    assert region_prompt((0, 0, 64, 48), 640, 480) == "<REGION_TO_DESCRIPTION><loc_0><loc_0><loc_100><loc_100>"
    assert clean_caption("</s><s>A red mug, with handle on the table!<loc_3>") == "a red mug with handle on"
    assert clean_caption("<pad><loc_1>") == ""


class _FakeEmbedder:
    spec = "fake"

    def __init__(self, table):
        self.table = table

    def embed(self, texts):
        e = np.array([self.table[t] for t in texts], float)
        return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_near_duplicate_groups():
    emb = _FakeEmbedder({"cup": [1, 0, 0], "mug": [0.99, 0.14, 0], "chair": [0, 1, 0], "lamp": [0, 0, 1],
                         "sofa": [0, 0.7, 0.7]})
    names = ["cup", "chair", "mug", "lamp", "Cup ", "sofa"]
    assert near_duplicate_groups(names, emb, 0.95) == [[0, 2, 4]]
    assert near_duplicate_groups(names, emb, 0.999) == [[0, 4]]
    assert near_duplicate_groups(names, None) == [[0, 4]]
    assert near_duplicate_groups([], emb) == []
