"""Vision warm-up: per-cell targets checked on analytic instance/depth maps, the warm-up trains the vision tower and
projector only (language model untouched) for both tiny families, skips held-out images, and runs inside `train`."""

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
from spatialvlm.train.vision_warmup import PRESENCE_MIN_FRACTION, _scene_table, cell_targets, warmup_vision

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
