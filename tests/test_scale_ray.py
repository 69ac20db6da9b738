"""The same small job on the local engine and on Ray Data (a local 2-CPU cluster started inside the test):
the output folders must be byte-identical (every file but summary.json / report.html, which hold timings).
A run interrupted on one engine and resumed on the other must give the same bytes too."""

from __future__ import annotations

import json

import pytest
from test_scale_fixtures import small_scenes, tree_digest

from spatialvlm.pipeline.run import SynthConfig, run_synth

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(400)  # a scheduling bug would hang, not fail

CFG = ["qa.per_image=10", "report_images=0", "shard_size=2", "batch_size=2", "ray.workers=2"]


@pytest.fixture(scope="module")
def ray_cluster():
    import os

    if ray.is_initialized():
        ray.shutdown()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rayjob")
    src = small_scenes(tmp, 5)
    # one broken line, so errors travel through Ray as well
    with open(src / "frames.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"image": "rgb/missing.png"}\n')
    local_out = tmp / "local"
    summary = run_synth(str(src), local_out, SynthConfig.load(None, CFG), progress=False)
    return tmp, src, local_out, summary


def test_ray_engine_matches_local_byte_for_byte(ray_cluster, job):
    tmp, src, local_out, local_summary = job
    ray_out = tmp / "ray"
    summary = run_synth(str(src), ray_out, SynthConfig.load(None, CFG), progress=False, engine="ray")
    a, b = tree_digest(local_out), tree_digest(ray_out)
    assert a.keys() == b.keys()
    differing = sorted(k for k in a if a[k] != b[k])
    assert not differing, differing
    assert "qa.parquet" in a and any(k.startswith("images/") for k in a)
    assert summary["engine"] == "ray" and summary["ray_workers"] == 2
    for key in ("images_in", "images_ok", "errors", "qa_total", "qa_by_type", "failures"):
        assert summary[key] == local_summary[key], key
    assert local_summary["qa_total"] > 0 and local_summary["errors"] >= 1
    # per-stage seconds are measured inside the Ray workers
    assert summary["seconds_by_stage"]["geometry"] > 0 and summary["seconds_by_stage"]["read"] > 0


def test_interrupted_local_run_resumed_on_ray(ray_cluster, job, monkeypatch):
    tmp, src, local_out, _ = job
    out = tmp / "mixed"
    from spatialvlm.pipeline import shards

    real = shards.write_shard
    calls = {"n": 0}

    def crash_after_one(*args, **kwargs):
        if calls["n"] == 1:
            raise KeyboardInterrupt("simulated Ctrl-C")
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(shards, "write_shard", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_synth(str(src), out, SynthConfig.load(None, CFG), progress=False)
    monkeypatch.setattr(shards, "write_shard", real)
    assert len(list((out / "_shards").glob("*.done.json"))) == 1
    summary = run_synth(str(src), out, SynthConfig.load(None, CFG), progress=False, engine="ray", resume=True)
    assert summary["shards_resumed"] == 1 and summary["images_resumed"] == 2
    assert tree_digest(out) == tree_digest(local_out)
    assert json.loads((out / "summary.json").read_text())["complete"] is True
