from __future__ import annotations

import math

import pytest

from spatialvlm.eval.metrics import bootstrap_ci, quantitative_scores, score_item, summarize


def test_quantitative_exact_and_bands():
    s = quantitative_scores(1.0, 1.0)
    assert s["has_number"] == 1 and s["within_90_110"] == 1 and s["mra"] == 1.0 and s["abs_rel_err"] == 0
    s = quantitative_scores(1.2, 1.0)  # 120 %
    assert (s["within_50_200"], s["within_67_150"], s["within_90_110"], s["success_25"]) == (1, 1, 0, 1)
    assert s["delta_125"] == 1 and s["delta_2"] == 1
    assert s["abs_rel_err"] == pytest.approx(0.2)
    # |rel| = 0.2 < 1 - t for t in 0.5 .. 0.75 (6 of 10 thresholds)
    assert s["mra"] == pytest.approx(0.6)
    s = quantitative_scores(1.6, 1.0)
    assert (s["within_50_200"], s["within_67_150"], s["success_25"], s["delta_125"]) == (1, 0, 0, 0)
    s = quantitative_scores(0.4, 1.0)  # 40 %: outside [50, 200]; delta 2.5
    assert s["within_50_200"] == 0 and s["delta_2"] == 0 and s["mra"] == 0.0
    s = quantitative_scores(2.0, 1.0)  # inclusive upper bound
    assert s["within_50_200"] == 1 and s["delta_2"] == 1 and s["success_25"] == 0
    s = quantitative_scores(None, 1.0)
    assert s["has_number"] == 0 and s["within_50_200"] == 0 and s["abs_rel_err"] is None
    assert s["sq_err_m2"] is None
    assert quantitative_scores(1.5, 1.0)["sq_err_m2"] == pytest.approx(0.25)


def test_score_item_families():
    assert score_item("predicate", "true", "Yes it is")["correct"] == 1
    assert score_item("predicate", "false", "Yes it is")["correct"] == 0
    r = score_item("predicate", "true", "can't tell")
    assert r["correct"] == 0 and r["answered"] == 0
    assert (
        score_item("choice", "the lamp", "The lamp is taller.", options=["the chair", "the lamp"])["correct"]
        == 1
    )
    assert score_item("classify", "left", "to the right", options=["left", "right"])["correct"] == 0
    r = score_item("direction", 12, "1 o'clock")
    assert r["correct"] == 0 and r["within_1h"] == 1  # 12 and 1 are neighbours on the dial
    r = score_item("quantitative", None, "about 3 feet", value_m=0.9)
    assert r["has_number"] == 1 and r["within_90_110"] == 1
    r = score_item("quantitative", None, "far", value_m=0.9)
    assert r["has_number"] == 0 and r["parsed"] is None
    with pytest.raises(ValueError):
        score_item("choice", "x", "x", options=None)
    with pytest.raises(ValueError):
        score_item("nonsense", "x", "x")


def test_bootstrap_is_seeded_and_brackets_mean():
    vals = [1.0] * 30 + [0.0] * 70
    a = bootstrap_ci(vals, 500, seed=3)
    b = bootstrap_ci(vals, 500, seed=3)
    assert a == b
    assert a[0] < 0.3 < a[1] and a[1] - a[0] < 0.25
    assert all(math.isnan(x) for x in bootstrap_ci([], 10))


def test_summarize_overall_and_types():
    rows = []
    for i in range(20):
        rows.append(
            {"qa_type": "left_predicate", "family": "predicate", **score_item("predicate", i % 2 == 0, "yes")}
        )
    for i in range(10):
        rows.append(
            {
                "qa_type": "distance",
                "family": "quantitative",
                **score_item("quantitative", None, "1 m" if i < 5 else "no idea", value_m=1.0),
            }
        )
    s = summarize(rows, n_boot=200, seed=0)
    assert s["by_type"]["left_predicate"]["correct"]["mean"] == pytest.approx(0.5)
    q = s["overall"]["quantitative"]
    assert q["has_number"]["mean"] == pytest.approx(0.5)
    assert q["within_50_200"]["mean"] == pytest.approx(0.5)  # no-number answers count as misses
    assert q["abs_rel_err"]["n"] == 5  # error means only over answers with a number
    assert s["overall"]["qualitative"]["correct"]["n"] == 20
    assert s["overall"]["qualitative"]["correct"]["lo"] <= 0.5 <= s["overall"]["qualitative"]["correct"]["hi"]
