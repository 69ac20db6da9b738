"""The local engine: sharding does not change the data, the summary says what happened, bad configuration fails
before any work, and `spatialvlm synth` exits with the documented codes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_scale_fixtures import small_scenes, tree_digest
from typer.testing import CliRunner

from spatialvlm.cli import app
from spatialvlm.pipeline.run import SynthConfig, prepare_run, run_synth

SETS = ["qa.per_image=10", "report_images=0"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return small_scenes(tmp_path_factory.mktemp("pipe"), 4)


def test_shard_size_and_batch_size_do_not_change_the_data(scenes, tmp_path):
    a = run_synth(str(scenes), tmp_path / "a", SynthConfig.load(None, SETS + ["shard_size=1", "batch_size=1"]),
                  progress=False)
    b = run_synth(str(scenes), tmp_path / "b", SynthConfig.load(None, SETS + ["shard_size=64", "batch_size=8"]),
                  progress=False)
    assert a["shards"] == 4 and b["shards"] == 1
    skip = ("summary.json", "report.html", "config.yaml")  # config.yaml records the two settings
    da, db = tree_digest(tmp_path / "a", skip), tree_digest(tmp_path / "b", skip)
    assert da == db and "points/scene_000000.npz" in da


def test_summary_counts_stages_and_reasons(scenes, tmp_path):
    src = tmp_path / "in"
    import shutil

    shutil.copytree(scenes, src)
    with open(src / "frames.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"image": "rgb/nope.png"}\n{"image": "rgb/nope2.png"}\nnot json\n')
    s = run_synth(str(src), tmp_path / "out", SynthConfig.load(None, SETS), progress=False)
    assert s["images_in"] == 7 and s["images_failed"]["read"] == 3
    assert s["failures"]["read"]["image file not found: <path>"] == 2
    assert any(k.startswith("malformed JSON") for k in s["failures"]["read"])
    assert {"read", "geometry", "qa", "encode", "merge"} <= set(s["seconds_by_stage"])
    assert s["images_processed"] == 7 and s["images_per_second"] > 0 and s["exit_code"] == 1
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["failures"] == s["failures"] and on_disk["qa_total"] == s["qa_total"] > 0
    errors = pd.read_parquet(tmp_path / "out" / "errors.parquet")
    assert set(errors["item"]) >= {"frames.jsonl:5", "frames.jsonl:6", "frames.jsonl:7"}


@pytest.mark.parametrize("override, needle", [
    ("qa.per_image=0", "qa.per_image"),
    ("shard_size=0", "shard_size"),
    ("batch_size=-2", "batch_size"),
    ("qa.types={not_a_type: 1}", "unknown question types"),
    ("geometry.canonical_source=guess", "canonical_source"),
    ("ray.read_cpus=-1", "ray.read_cpus"),
])
def test_bad_config_fails_before_any_work(scenes, tmp_path, override, needle):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=needle):
        run_synth(str(scenes), out, SynthConfig.load(None, SETS + [override]), progress=False)
    assert not out.exists()


class _Out:
    """CLI output with the error box's borders and line wrapping removed."""

    def __init__(self, r):
        import re

        self.exit_code = r.exit_code
        self.output = " ".join(re.sub(r"[\u2500-\u257f]", " ", r.output).split())


def test_unknown_key_and_cli_exit_codes(scenes, tmp_path):
    class runner:
        _r = CliRunner(env={"COLUMNS": "200"})

        @classmethod
        def invoke(cls, *a, **k):
            return _Out(cls._r.invoke(*a, **k))

    base = ["synth", "-i", str(scenes), "--quiet", "--set", "report_images=0", "--per-image", "10"]
    r = runner.invoke(app, base + ["-o", str(tmp_path / "o1"), "--set", "qa.nope=1"])
    assert r.exit_code == 2 and "qa.nope" in r.output and not (tmp_path / "o1").exists()
    r = runner.invoke(app, base + ["-o", str(tmp_path / "o2"), "--engine", "spark"])
    assert r.exit_code == 2 and "engine" in r.output
    r = runner.invoke(app, base + ["-o", str(tmp_path / "o3"), "--ray-address", "auto"])
    assert r.exit_code == 2 and "--engine ray" in r.output
    # all inputs broken: nothing produced -> 3
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "frames.jsonl").write_text('{"image": "x.png"}\n')
    r = runner.invoke(app, ["synth", "-i", str(bad), "-o", str(tmp_path / "o4"), "--quiet"])
    assert r.exit_code == 3, r.output
    # a good run -> 0 or 1 (1 only when some scene gave no QA, and then errors.parquet says which)
    r = runner.invoke(app, base + ["-o", str(tmp_path / "o5")])
    errors = pd.read_parquet(tmp_path / "o5" / "errors.parquet")
    assert r.exit_code == (1 if len(errors) else 0), r.output
    assert "img/s" in r.output
    # the folder is now taken: refused without --overwrite / --resume, before any work
    r = runner.invoke(app, base + ["-o", str(tmp_path / "o5")])
    assert r.exit_code == 2 and "not empty" in r.output
    r = runner.invoke(app, base + ["-o", str(tmp_path / "o5"), "--resume"])
    assert r.exit_code == 2 and "finished run" in r.output
    r = runner.invoke(app, base + ["-o", str(tmp_path / "o5"), "--overwrite", "--limit", "1"])
    assert r.exit_code in (0, 1) and len(pd.read_parquet(tmp_path / "o5" / "scenes.parquet")) == 1


def test_prepare_run_plans_shards(scenes, tmp_path):
    plan = prepare_run(str(scenes), tmp_path / "p", SynthConfig.load(None, SETS + ["shard_size=3"]), limit=4)
    assert (plan.n_items, plan.n_shards, plan.pending()) == (4, 2, [0, 1])


def test_bench_reports_throughput(scenes):
    from spatialvlm.pipeline.bench import bench

    r = bench(str(scenes), SynthConfig.load(None, SETS), limit=2)
    assert r["images"] == 2 and r["images_per_second_processing"] > 0 and "geometry" in r["seconds_by_stage"]


def test_ray_placement_that_cannot_run_is_refused():
    from spatialvlm.pipeline.ray_runner import resources

    assert resources(SynthConfig.load(None, []), 2.0) == (1, 1.0)  # 2 - 0.25 read headroom -> 1 actor
    assert resources(SynthConfig.load(None, ["ray.workers=2"]), 2.0) == (2, 0.875)
    assert resources(SynthConfig.load(None, ["ray.perception_gpus=0"]), 4.0, photos=True) == (2, 1.0)
    with pytest.raises(ValueError, match="ray.workers"):
        resources(SynthConfig.load(None, ["ray.workers=2", "ray.worker_cpus=1"]), 2.0)
    with pytest.raises(ValueError, match="perception_gpus=0"):
        resources(SynthConfig.load(None, []), 8.0, photos=True, total_gpus=0.0)
