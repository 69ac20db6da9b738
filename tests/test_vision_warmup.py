"""Vision warm-up: per-cell targets checked on analytic instance/depth maps, the warm-up trains the vision tower and
projector only (language model untouched) for both tiny families, skips held-out images, and runs inside `train`;
the lookup objective moves the first layer's attention onto the named object and restores the model afterwards."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

sys.path.insert(0, str(Path(__file__).parent))
from test_train_fixtures import SMALL, make_dataset

from spatialvlm.train.config import resolve_config
from spatialvlm.train.tiny import TinyVLMSpec, build_tiny_vlm
from spatialvlm.train.vision_warmup import (
    PRESENCE_MIN_FRACTION,
    _Family,
    _Lookup,
    _open,
    _scene_table,
    cell_targets,
    object_cells,
    warmup_vision,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("wu") / "out", n_images=8)


def test_cell_targets_analytic():
    # 40 x 60 image, 2 x 3 grid of 20 x 20 cells; object 0 (label 1) fills the top-left cell, object 1 (label 0)
    # covers the right half of the bottom-right cell and a sliver (below the presence threshold) of its neighbour
    inst = np.zeros((40, 60), np.int32)
    inst[0:20, 0:20] = 1
    inst[20:40, 50:60] = 2
    inst[39, 39] = 2  # 1 pixel of 400 in cell (1, 1)
    depth = np.full((40, 60), 4.0, np.float32)
    depth[0:20, 0:20] = 1.0
    depth[20:40, 40:60] = 2.0
    depth[0:20, 20:40] = 0.0  # invalid
    t = cell_targets(inst, depth, {0: 1, 1: 0}, 2, 2, 3)
    assert t["presence"].shape == (2, 3, 2)
    expected = np.zeros((2, 3, 2))
    expected[0, 0, 1] = 1
    expected[1, 2, 0] = 1
    assert 1 / 400 < PRESENCE_MIN_FRACTION
    np.testing.assert_array_equal(t["presence"], expected)
    np.testing.assert_allclose(np.exp(t["log_depth"]), [[1, 1, 4], [4, 4, 2]], rtol=1e-6)  # invalid cell: log 0
    np.testing.assert_array_equal(t["depth_valid"], [[1, 0, 1], [1, 1, 1]])
    np.testing.assert_allclose(t["position"][0, 0], [1 / 6, 1 / 4])
    np.testing.assert_allclose(t["position"][1, 2], [5 / 6, 3 / 4])
    # an object id the table does not know (no label) counts as background
    t2 = cell_targets(inst, depth, {0: 1}, 2, 2, 3)
    assert t2["presence"][1, 2].sum() == 0


def test_scene_table_reads_synth_layout(data_dir, tmp_path):
    rows, labels = _scene_table([str(data_dir)], exclude={"img_0_000"})
    assert labels == ["blue box", "green box", "red box"]
    assert len(rows) == 7 and all(Path(r["image"]).exists() and Path(r["masks"]).exists() for r in rows)
    assert all(set(r["labels"]) == {0, 1} for r in rows)
    with pytest.raises(FileNotFoundError, match="scenes.parquet and objects.parquet"):
        _scene_table([str(tmp_path)])


@pytest.mark.parametrize("family", ["idefics3", "qwen2_vl"])
def test_warmup_trains_vision_only(family, data_dir, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    base = build_tiny_vlm(tmp_path / family, ["Is the red box left of the blue box?", "Yes."],
                          TinyVLMSpec(family=family, **SMALL))
    model = AutoModelForImageTextToText.from_pretrained(base)
    proc = AutoProcessor.from_pretrained(base)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log = tmp_path / "wu.jsonl"
    rep = warmup_vision(model, proc, [str(data_dir)], minutes=5, max_steps=40, batch_size=4, learning_rate=3e-3,
                        exclude_images={"img_0_001"}, log_every=10, out_file=log, max_cached=3)
    assert rep.steps == 40 and rep.images == 7 and rep.labels == 3
    assert rep.last_loss < 0.5 * rep.first_loss
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["step"] for r in recs] == [10, 20, 30, 40] and 0 <= recs[-1]["presence_recall"] <= 1
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    vision = {n for n in before if any(k in n for k in ("visual", "vision_model", "connector"))}
    assert changed and changed <= vision  # the language model and its embeddings are untouched
    assert any("merger" in n or "connector" in n for n in changed)  # the projector is trained with the tower


def test_train_runs_the_warmup_and_skips_it_when_blind(data_dir, tmp_path):
    from spatialvlm.train.trainer import train

    base = {"data": [str(data_dir)], "eval_images": 2, "max_steps": 2, "save_steps": 100, "eval_steps": 0,
            "tiny": dict(SMALL), "vision_warmup_minutes": 0.03}
    res = train(resolve_config("test-tiny", {**base, "out": str(tmp_path / "m")}))
    wu = res.info["vision_warmup"]
    assert wu["steps"] >= 1 and res.info["heldout_images"] and wu["images"] == 8 - len(res.info["heldout_images"])
    summary = json.loads((tmp_path / "m" / "train_summary.json").read_text())
    assert summary["info"]["vision_warmup"]["steps"] == wu["steps"] and res.steps == 2
    res = train(resolve_config("test-tiny", {**base, "out": str(tmp_path / "b"), "blind": True}))
    assert "vision_warmup" not in res.info and res.steps == 2
    with pytest.raises(ValueError, match="leave time"):
        resolve_config("test-tiny", {**base, "out": str(tmp_path / "x"), "max_time_minutes": 1,
                                     "vision_warmup_minutes": 1})


def test_object_cells_analytic():
    # 40 x 60 image, 2 x 3 grid of 20 x 20 cells; object 4 covers the whole top-left cell and a quarter of the cell
    # to its right; object 7 is a single pixel, so the cell it fills most is its only cell
    inst = np.zeros((40, 60), np.int32)
    inst[0:20, 0:25] = 5
    inst[30, 45] = 8
    depth = np.full((40, 60), 3.0, np.float32)
    depth[0:20, 0:10] = 1.0
    depth[0:20, 10:25] = 2.0
    o = object_cells(inst, depth, 4, 2, 3)
    np.testing.assert_array_equal(o["cells"], [True, True, False, False, False, False])
    assert o["x"] == pytest.approx(12.5 / 60) and o["y"] == pytest.approx(10 / 40)
    assert o["log_depth"] == pytest.approx(np.log(2.0))  # median of 200 px at 1 m and 300 px at 2 m
    p = object_cells(inst, depth, 7, 2, 3)
    np.testing.assert_array_equal(p["cells"], [False, False, False, False, False, True])
    assert p["x"] == pytest.approx(45.5 / 60) and p["y"] == pytest.approx(30.5 / 40)
    assert object_cells(inst, depth, 2, 2, 3) is None  # no pixel: nothing to look up


def _tiny(family, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    base = build_tiny_vlm(tmp_path / family, ["Where is the red box in the image?", "x 10, y 20, depth 1.0 meters."],
                          TinyVLMSpec(family=family, **SMALL))
    return AutoModelForImageTextToText.from_pretrained(base), AutoProcessor.from_pretrained(base)


def _lookup_mass(model, proc, data_dir) -> float:
    rows, labels = _scene_table([str(data_dir)])
    look, fam = _Lookup(model, proc, labels), _Family(model, proc)
    encs, picks = [], []
    for r in rows:
        image, inst, depth = _open(r)
        enc = fam.encode(image)
        gh, gw = fam.grid(enc)
        for oid, lab in r["labels"].items():
            encs.append(enc)
            picks.append((lab, object_cells(inst, depth, oid, gh, gw), image.size))
    with torch.no_grad(), look:
        return look.loss(fam.features(fam.collate(encs)), picks)[1]


def test_lookup_warmup_focuses_the_first_layer_on_the_named_object(data_dir, tmp_path):
    model, proc = _tiny("idefics3", tmp_path)
    text = model.model.text_model
    n_layers, impl = len(text.layers), model.config._attn_implementation
    _, labels = _scene_table([str(data_dir)])
    look = _Lookup(model, proc, labels)
    ids = look.ids("green box", (64, 48))
    assert proc.tokenizer.decode(ids).endswith("green box")  # the prompt is cut right after the name
    assert int((ids == model.config.image_token_id).sum()) > 0
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mass0 = _lookup_mass(model, proc, data_dir)
    rep = warmup_vision(model, proc, [str(data_dir)], minutes=5, max_steps=60, batch_size=8, learning_rate=3e-3,
                        log_every=20, lookup=True)
    mass1 = _lookup_mass(model, proc, data_dir)
    assert rep.lookup_mass is not None and 0 < rep.lookup_chance < 1
    assert mass1 > 1.5 * mass0, (mass0, mass1)
    # restored: all layers, the attention implementation, every parameter trainable again
    assert len(text.layers) == n_layers and model.config._attn_implementation == impl
    assert all(p.requires_grad for p in text.parameters())
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    allowed = {n for n in before if any(k in n for k in ("vision_model", "connector", "layers.0.self_attn"))}
    assert changed <= allowed and any("layers.0.self_attn" in n for n in changed)
    assert not any("embed_tokens" in n or "text_model.layers.1." in n for n in changed)


def test_lookup_refuses_3d_rotary_positions(data_dir, tmp_path):
    model, proc = _tiny("qwen2_vl", tmp_path)
    with pytest.raises(ValueError, match="3D rotary positions"):
        warmup_vision(model, proc, [str(data_dir)], minutes=1, max_steps=1, batch_size=2, lookup=True)
