"""The CPU experiment script end to end at `--quick` sizes (render, synth, cpu-tiny with the from-scratch trainer,
blind model, noise ablation, evaluation, probes, tables). Slow (minutes): `make test-slow`."""

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
                        str(work), "--parallel", "1", "--synth-workers", "1",
                        "--set", "scratch.decision_weight=1.0"],  # off in the preset; on here so its probe runs
                       capture_output=True, text=True, timeout=1800, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((work / "results.json").read_text())
    models = res["models"]
    assert {"cpu-tiny", "blind (same model, blank images)", "blind (per-type majority / median)"} <= set(models)
    for m in models.values():
        assert 0.0 <= m["qualitative_accuracy"] <= 1.0 and m["n"] == res["setup"]["test_questions"]
    for name in ("cpu-tiny", "blind"):
        t = res["training"][name]
        assert t["trainer"] == "scratch" and t["steps"] >= 1 and "lookup_mass" in t["last_log"]
    # the lookup probe measured both models on held-out scenes, against the same chance level
    probe = res["lookup_probe"]
    assert probe["cpu-tiny"]["names"] > 0 and probe["cpu-tiny"]["chance"] == pytest.approx(probe["blind"]["chance"])
    # ... and read the saved auxiliary heads: object-head correlations and pair-head signs, also on training scenes
    for name in ("cpu-tiny", "cpu-tiny, training scenes", "blind"):
        assert set(probe[name]["object_r"]) <= {"x_image", "y_image", "log_depth", "z_center", "log_height",
                                                "log_volume"} and "x_image" in probe[name]["object_r"]
        assert all(0.0 <= v <= 1.0 for v in probe[name]["pair_sign"].values())
        assert 0.0 <= probe[name]["decision_acc"] <= 1.0 and probe[name]["decision_by_type"]
    assert 0 < res["seen"]["n"] <= 40
    # what depends on the picture: cpu-tiny against itself given another scene's image, per headline metric
    swapped = models["cpu-tiny, another scene's image (diagnostic)"]
    assert res["picture_margins"]["qualitative"] == pytest.approx(
        100 * (models["cpu-tiny"]["qualitative_accuracy"] - swapped["qualitative_accuracy"]))
    assert set(res["ablation"]) == {"0 (exact)", "0.2"}
    md = (work / "results.md").read_text()
    for heading in ("## Label-noise ablation", "## Per question type", "## Lookup probe", "from-scratch trainer",
                    "What the thrown-away heads read", "scenes it trained on", "The decision head",
                    "what depends on the picture"):
        assert heading in md
    assert len((work / "predictions.jsonl").read_text().splitlines()) == res["setup"]["test_questions"]
