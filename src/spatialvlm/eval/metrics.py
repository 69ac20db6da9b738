"""Scoring: one free-text prediction against its ground truth, then summaries per type and overall with seeded
bootstrap confidence intervals.

Per item (``score_item``):

* qualitative (predicate / choice / classify): ``correct`` (an unparsable answer is wrong) and ``answered``;
* direction (clock face): ``correct`` (exact hour) and ``within_1h`` (circular distance <= 1 hour);
* quantitative: ``has_number``; ``within_50_200`` / ``within_67_150`` / ``within_90_110`` (pred / truth in
  [0.5, 2], [2/3, 1.5], [0.9, 1.1]); ``success_25`` (|pred - truth| / truth <= 0.25, SpatialRGPT-Bench);
  ``delta_2`` / ``delta_125`` (max(pred/truth, truth/pred) <= 2 / <= 1.25, Q-Spatial); ``mra`` (mean over
  thresholds 0.50, 0.55, ..., 0.95 of [|pred - truth| / truth < 1 - threshold], VSI-Bench); ``abs_rel_err``
  and ``sq_err_m2`` (only for answers with a number).

Answers without a number count as failures in every "within"/success/delta/MRA rate (the denominator is all
quantitative questions, as in the paper's table), and are left out of the error means. Truths below
``MIN_TRUTH_M`` are floored to it in ratios so a zero truth cannot divide by zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from spatialvlm.eval.parse import (
    parse_choice,
    parse_classify,
    parse_clock,
    parse_distance_detail,
    parse_yes_no,
)

MIN_TRUTH_M = 0.01
MRA_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

QUALITATIVE = ("predicate", "choice", "classify")
QUANT_KEYS = (
    "has_number",
    "within_50_200",
    "within_67_150",
    "within_90_110",
    "success_25",
    "delta_2",
    "delta_125",
    "mra",
    "abs_rel_err",
    "sq_err_m2",
)
# metrics averaged only over items that produced a number
_ANSWERED_ONLY = {"abs_rel_err", "sq_err_m2"}


def _truth_bool(truth: Any) -> bool:
    if isinstance(truth, bool):
        return truth
    s = str(truth).strip().lower()
    if s in ("true", "yes", "1"):
        return True
    if s in ("false", "no", "0"):
        return False
    raise ValueError(f"predicate truth must be yes/no or true/false, got {truth!r}")


def quantitative_scores(pred_m: float | None, truth_m: float) -> dict[str, float | None]:
    """The quantitative metrics for one prediction (None = no number)."""
    gt = max(float(truth_m), MIN_TRUTH_M)
    if pred_m is None or not math.isfinite(pred_m):
        return {
            "has_number": 0.0,
            "within_50_200": 0.0,
            "within_67_150": 0.0,
            "within_90_110": 0.0,
            "success_25": 0.0,
            "delta_2": 0.0,
            "delta_125": 0.0,
            "mra": 0.0,
            "abs_rel_err": None,
            "sq_err_m2": None,
        }
    p = max(float(pred_m), 0.0)
    ratio = p / gt
    rel = abs(p - gt) / gt
    delta = max(ratio, 1.0 / ratio) if ratio > 0 else math.inf
    return {
        "has_number": 1.0,
        "within_50_200": float(0.5 <= ratio <= 2.0),
        "within_67_150": float(2.0 / 3.0 - 1e-12 <= ratio <= 1.5),
        "within_90_110": float(0.9 - 1e-12 <= ratio <= 1.1 + 1e-12),
        "success_25": float(rel <= 0.25 + 1e-12),
        "delta_2": float(delta <= 2.0),
        "delta_125": float(delta <= 1.25 + 1e-12),
        "mra": float(np.mean([rel < 1.0 - t for t in MRA_THRESHOLDS])),
        "abs_rel_err": rel,
        "sq_err_m2": (p - float(truth_m)) ** 2,
    }


def score_item(
    family: str,
    truth: Any,
    prediction: str | None,
    *,
    value_m: float | None = None,
    options: Sequence[str] | None = None,
    relation: str | None = None,
    objects: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Parse ``prediction`` for a question of ``family`` and score it. Returns ``parsed`` (what was read, as a
    string or number) and the metric fields of that family."""
    if family == "predicate":
        got = parse_yes_no(prediction, relation, objects)
        want = _truth_bool(truth)
        return {
            "parsed": None if got is None else ("yes" if got else "no"),
            "answered": float(got is not None),
            "correct": float(got is not None and got == want),
        }
    if family in ("choice", "classify"):
        if not options:
            raise ValueError(f"a {family} question needs its options")
        got = (
            parse_choice(prediction, options)
            if family == "choice"
            else parse_classify(prediction, options, objects)
        )
        want = str(truth).strip().lower()
        return {
            "parsed": got,
            "answered": float(got is not None),
            "correct": float(got is not None and got.strip().lower() == want),
        }
    if family == "direction":
        got = parse_clock(prediction)
        want = int(float(truth))
        if got is None:
            return {"parsed": None, "answered": 0.0, "correct": 0.0, "within_1h": 0.0}
        d = abs(got - want) % 12
        d = min(d, 12 - d)
        return {"parsed": got, "answered": 1.0, "correct": float(d == 0), "within_1h": float(d <= 1)}
    if family == "quantitative":
        if value_m is None:
            value_m = float(truth)
        det = parse_distance_detail(prediction)
        out: dict[str, Any] = {
            "parsed": det.value_m,
            "no_unit": float(det.value_m is not None and "no_unit" in det.flags),
        }
        out.update(quantitative_scores(det.value_m, float(value_m)))
        return out
    raise ValueError(f"unknown question family {family!r}")


# ------------------------------------------------------------------------------------------------------------
# Summaries
# ------------------------------------------------------------------------------------------------------------
def bootstrap_ci(
    values: Sequence[float], n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (NaN-free), seeded."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if len(x) == 0:
        return (math.nan, math.nan)
    if len(x) == 1 or n_boot <= 0:
        return (float(x.mean()), float(x.mean()))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    means = x[idx].mean(axis=1)
    return (float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2)))


def _metric_names(family: str) -> tuple[str, ...]:
    if family in QUALITATIVE:
        return ("correct", "answered")
    if family == "direction":
        return ("correct", "within_1h", "answered")
    return QUANT_KEYS + ("no_unit",)


def _summ(rows: list[dict], names: Iterable[str], n_boot: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for k in names:
        vals = [r[k] for r in rows if r.get(k) is not None]
        if not vals:
            out[k] = None
            continue
        lo, hi = bootstrap_ci(vals, n_boot, seed)
        out[k] = {"mean": float(np.mean(vals)), "lo": lo, "hi": hi, "n": len(vals)}
    return out


def summarize(rows: Sequence[dict], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Summaries of scored rows (each with ``qa_type``, ``family`` and the fields from :func:`score_item`):
    ``by_type`` (every type), ``by_family`` and ``overall`` = {"qualitative": accuracy over predicate + choice
    + classify, "quantitative": the quantitative metrics over all quantitative questions, "direction": ...},
    each metric as {mean, lo, hi, n} with a 95% percentile bootstrap interval."""
    rows = [r for r in rows]
    by_type: dict[str, Any] = {}
    for t in sorted({r["qa_type"] for r in rows}):
        rs = [r for r in rows if r["qa_type"] == t]
        fam = rs[0]["family"]
        by_type[t] = {"family": fam, **_summ(rs, _metric_names(fam), n_boot, seed)}
    by_family = {}
    for fam in sorted({r["family"] for r in rows}):
        rs = [r for r in rows if r["family"] == fam]
        by_family[fam] = _summ(rs, _metric_names(fam), n_boot, seed)
    overall: dict[str, Any] = {"n": len(rows)}
    qual = [r for r in rows if r["family"] in QUALITATIVE]
    if qual:
        overall["qualitative"] = _summ(qual, ("correct", "answered"), n_boot, seed)
    quant = [r for r in rows if r["family"] == "quantitative"]
    if quant:
        overall["quantitative"] = _summ(quant, _metric_names("quantitative"), n_boot, seed)
    dirs = [r for r in rows if r["family"] == "direction"]
    if dirs:
        overall["direction"] = _summ(dirs, _metric_names("direction"), n_boot, seed)
    errors = [r for r in rows if r.get("error")]
    overall["errors"] = len(errors)
    return {
        "overall": overall,
        "by_family": by_family,
        "by_type": by_type,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "interval": "95% percentile"},
    }
