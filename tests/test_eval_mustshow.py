"""The evaluation's must-show result (slow: renders 200 scenes; `make test-slow`)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_oracle_near_perfect_blind_near_chance(tmp_path):
    pytest.importorskip("open3d")
    import torch

    torch.set_num_threads(1)
    from spatialvlm.eval.mustshow import run, to_markdown

    s = run(200, tmp_path / "mustshow", seed=1000, per_type=50, n_boot=300)
    print(to_markdown(s))
    oracle, blind = s["models"]["oracle"], s["models"]["blind"]
    assert s["n_items"] > 1500
    # the benchmark is answerable from the image: our geometry from depth + masks gets it right
    assert oracle["qualitative"] >= 0.97, s["oracle_types_below_95"]
    assert oracle["success_25"] >= 0.95, s["oracle_types_below_95"]
    assert oracle["has_number"] == 1.0
    # ... and not from priors: answers balanced per type leave a text-only baseline at chance
    lo, hi = blind["binary_ci"]
    assert lo <= 0.5 + 0.03 and hi >= 0.5 - 0.03 and abs(blind["binary_balanced"] - 0.5) < 0.05
