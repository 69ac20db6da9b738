"""The CPU experiment script end to end at `--quick` sizes (render, synth, vision warm-up, cpu-tiny, blind model,
noise ablation, evaluation, tables). Slow (minutes): `make test-slow`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_experiment_runs_end_to_end(tmp_path):
    work = tmp_path / "exp"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "cpu_tiny_experiment.py"), "--quick", "--work",
                        str(work), "--parallel", "1", "--synth-workers", "1"],
                       capture_output=True, text=True, timeout=1800, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((work / "results.json").read_text())
    models = res["models"]
    assert {"cpu-tiny", "blind (same model, blank images)", "blind (per-type majority / median)"} <= set(models)
    for m in models.values():
        assert 0.0 <= m["qualitative_accuracy"] <= 1.0 and m["n"] == res["setup"]["test_questions"]
    # the warm-up ran for the image model (its share of the budget) and not for the blind one
    assert res["training"]["cpu-tiny"]["vision_warmup"]["steps"] >= 1
    assert res["training"]["blind"]["vision_warmup"] is None
    assert set(res["ablation"]) == {"0 (exact)", "0.2"}
    md = (work / "results.md").read_text()
    assert "## Label-noise ablation" in md and "## Per question type" in md and "vision warm-up" in md.lower()
    assert len((work / "predictions.jsonl").read_text().splitlines()) == res["setup"]["test_questions"]
