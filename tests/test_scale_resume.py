"""Kill a real `spatialvlm synth` process midway (SIGKILL: no cleanup at all), resume it with --resume, and
check the dataset against an uninterrupted run: no duplicate and no missing records, byte-identical files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from test_scale_fixtures import small_scenes, tree_digest

from spatialvlm.pipeline.run import SynthConfig, run_synth

SETS = ["qa.per_image=10", "report_images=0", "batch_size=1"]
pytestmark = pytest.mark.timeout(400)


def _cmd(src, out, *extra):
    args = [sys.executable, "-m", "spatialvlm.cli", "synth", "-i", str(src), "-o", str(out), "--quiet",
            "--shard-size", "1"]
    for s in SETS:
        args += ["--set", s]
    return args + list(extra)


def test_kill_midway_then_resume(tmp_path):
    src = small_scenes(tmp_path, 8)
    ref = tmp_path / "ref"
    run_synth(str(src), ref, SynthConfig.load(None, SETS + ["shard_size=1"]), progress=False)

    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cmd(src, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shards = out / "_shards"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(shards.glob("shard-*.done.json"))) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_at_kill = len(list(shards.glob("shard-*.done.json")))
    assert 3 <= done_at_kill < 8
    assert not (out / "qa.parquet").exists()  # nothing merged yet

    # without --resume the folder is refused, with a hint
    r = subprocess.run(_cmd(src, out), check=False, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--resume" in r.stderr

    r = subprocess.run(_cmd(src, out, "--resume"), check=False, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards_resumed"] >= done_at_kill and summary["complete"] is True
    assert summary["images_resumed"] + summary["images_processed"] == 8

    scenes = pd.read_parquet(out / "scenes.parquet")
    qa = pd.read_parquet(out / "qa.parquet")
    ref_scenes, ref_qa = pd.read_parquet(ref / "scenes.parquet"), pd.read_parquet(ref / "qa.parquet")
    assert not scenes["image_id"].duplicated().any()
    assert sorted(scenes["image_id"]) == sorted(ref_scenes["image_id"])
    assert not qa.duplicated(["image_id", "qa_type", "question"]).any()
    assert len(qa) == len(ref_qa) and len(qa) > 0
    assert tree_digest(out) == tree_digest(ref)
    assert not (out / "_shards").exists()  # the shard store is removed after a complete merge


def test_resume_refuses_other_settings(tmp_path):
    src = small_scenes(tmp_path, 2)
    out = tmp_path / "out"
    cfg = SynthConfig.load(None, SETS + ["shard_size=1"])
    from spatialvlm.pipeline import run as run_mod

    plan = run_mod.prepare_run(str(src), out, cfg)
    assert plan.n_shards == 2 and (out / "_shards" / "run.json").exists()
    other = SynthConfig.load(None, SETS + ["shard_size=1", "qa.seed=5"])
    try:
        run_mod.prepare_run(str(src), out, other, resume=True)
    except ValueError as exc:
        assert "qa.seed" in str(exc) and "--overwrite" in str(exc)
    else:
        raise AssertionError("resume with another config must fail")
    # batching and engine placement do not change the data: resuming with them changed is fine
    same = SynthConfig.load(None, SETS + ["shard_size=1", "batch_size=4", "ray.workers=3"])
    assert run_mod.prepare_run(str(src), out, same, resume=True).n_shards == 2


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path):
    src = small_scenes(tmp_path, 8)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A shell that starts the test suite in the background ignores SIGINT, the child inherits that, and Python only
    # turns SIGINT into KeyboardInterrupt when it is not ignored at start: give the child the default disposition.
    proc = subprocess.Popen(_cmd(src, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list((out / "_shards").glob("*.done.json")):
        time.sleep(0.05)
    assert proc.poll() is None, "run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err
    r = subprocess.run(_cmd(src, out, "--resume"), check=False, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    assert len(pd.read_parquet(out / "scenes.parquet")) == 8
