"""bench-build on a few rendered scenes, eval with the baselines through the CLI, and the lmms-eval export."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spatialvlm.cli import app


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("open3d")
    from spatialvlm.render.api import render_scenes

    root = tmp_path_factory.mktemp("bench")
    render_scenes(5, root / "frames", seed=300, progress=False)
    r = CliRunner().invoke(
        app,
        [
            "bench-build",
            "--frames",
            str(root / "frames"),
            "--out",
            str(root / "bench"),
            "--per-type",
            "4",
            "--seed",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    return root


def test_bench_is_a_balanced_hf_dataset_with_exact_answers(built):
    import datasets

    from spatialvlm.qa.taxonomy import TYPES

    bench = built / "bench"
    meta = json.loads((bench / "bench.json").read_text())
    ds = datasets.load_dataset("parquet", data_files=str(bench / "data" / "*.parquet"), split="train")
    assert len(ds) == meta["n_items"] > 40
    row = ds[0]
    assert {"image", "question", "answer", "qa_type", "value_m", "truth", "objects"} <= set(row)
    assert row["image"].size[0] >= 384
    for t, c in meta["counts"].items():
        if TYPES[t].family in ("predicate", "choice", "classify"):
            assert len(c) == 2 and len(set(c.values())) == 1, (t, c)  # exactly balanced over the two answers
    quant = ds.filter(lambda r: r["family"] == "quantitative")
    assert len(quant) and all(v is not None and v > 0 for v in quant["value_m"])
    # same seed, same benchmark
    r = CliRunner().invoke(
        app,
        [
            "bench-build",
            "--frames",
            str(built / "frames"),
            "--out",
            str(built / "bench2"),
            "--per-type",
            "4",
            "--seed",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    ds2 = datasets.load_dataset(
        "parquet", data_files=str(built / "bench2" / "data" / "*.parquet"), split="train"
    )
    assert ds2["id"] == ds["id"] and ds2["truth"] == ds["truth"]


def test_truths_match_an_independent_recomputation(built):
    """Recompute every answer from the generator's ground-truth scene with the type registry, ungated."""
    from spatialvlm.eval.bench import load_bench, truth_scene
    from spatialvlm.eval.metrics import score_item
    from spatialvlm.io.frames import read_frames
    from spatialvlm.qa.types import UNGATED, compute_truth

    items = load_bench(built / "bench")
    frames = {f.image_id: f for f in read_frames(built / "frames")}
    scenes = {k: truth_scene(f)[0] for k, f in frames.items()}
    for it in items:
        sc = scenes[it.image_id]
        objs = [sc.object_by_id(i) for i in it.object_ids]
        truth = compute_truth(it.qa_type, sc, objs[0], objs[1] if len(objs) > 1 else None, UNGATED)
        if it.family == "quantitative":
            assert truth == pytest.approx(it.value_m, rel=1e-9)
        elif it.family == "predicate":
            assert ("yes" if truth else "no") == it.truth
        else:
            assert str(truth) == it.truth
        # the reference answer sentence parses back to the truth
        s = score_item(
            it.family,
            it.truth,
            it.answer,
            value_m=it.value_m,
            options=it.options or None,
            relation=it.relation,
            objects=it.objects,
        )
        assert s.get("correct", 1) == 1 and s.get("within_67_150", 1) == 1, (it.qa_type, it.answer)


def test_eval_cli_with_baselines_and_report(built):
    out = built / "eval_out"
    r = CliRunner().invoke(
        app,
        ["eval", "--model", "blind", "--bench", str(built / "bench"), "--out", str(out), "--n-boot", "100"],
    )
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"blind", "blind-names", "oracle"}
    oracle = metrics["models"]["oracle"]["overall"]
    assert oracle["qualitative"]["correct"]["mean"] > 0.85
    assert oracle["quantitative"]["success_25"]["mean"] > 0.8
    blind = metrics["models"]["blind"]["overall"]
    assert blind["qualitative"]["correct"]["mean"] < 0.7
    preds = json.loads((out / "predictions.json").read_text())
    assert len(preds) == metrics["n_items"] and all(p["prediction"] for p in preds)
    report = (out / "report.md").read_text()
    assert "Within [50, 200]%" in report and "oracle" in report and "blind" in report
    assert (out / "plots" / "error_vs_distance.html").exists()


def test_lmms_export_scores_like_eval(built, tmp_path):
    import datasets

    r = CliRunner().invoke(
        app,
        [
            "eval-export-lmms",
            "--bench",
            str(built / "bench"),
            "--out",
            str(tmp_path / "t"),
            "--task",
            "svlm_test",
        ],
    )
    assert r.exit_code == 0, r.output
    y = (tmp_path / "t" / "svlm_test.yaml").read_text()
    assert "task: svlm_test" in y and "!function utils.process_results" in y
    spec = importlib.util.spec_from_file_location("svlm_lmms_utils", tmp_path / "t" / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    ds = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "t" / "data" / "*.parquet"), split="train"
    )
    doc = ds[0]
    assert utils.doc_to_text(doc) == doc["question"] and utils.doc_to_visual(doc)[0].mode == "RGB"
    got = utils.process_results(doc, [doc["answer"]])
    assert set(got) == set(utils.METRICS)
    assert [v for v in got.values() if v is not None] and all(
        v in (None, 1.0) or v >= 0 for v in got.values()
    )
    assert utils.mean_of_scored([1.0, None, 0.0]) == 0.5
    assert Path(y.split("- ")[1].split("\n")[0]).exists()


def test_eval_cli_runs_a_tiny_hf_model(built, tmp_path):
    pytest.importorskip("transformers")
    import torch
    from test_eval_adapters import _build_tiny_qwen2vl

    torch.set_num_threads(1)
    model_dir = _build_tiny_qwen2vl(tmp_path / "tiny")
    out = tmp_path / "ev"
    r = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            f"hf:{model_dir}",
            "--bench",
            str(built / "bench"),
            "--out",
            str(out),
            "--limit",
            "12",
            "--baselines",
            "",
            "--max-new-tokens",
            "4",
            "--batch-size",
            "4",
            "--n-boot",
            "50",
        ],
    )
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["models"]) == [f"hf:{model_dir}"] and metrics["n_items"] == 12
    preds = json.loads((out / "predictions.json").read_text())
    assert len(preds) == 12 and all(isinstance(p["prediction"], str) for p in preds)
