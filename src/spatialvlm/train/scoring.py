"""Scoring generated answers against held-out QA, for the training-time accuracy hook and the cpu-tiny experiment.

Uses the evaluation package (``spatialvlm.eval.metrics.score_item`` and its parsers) when it is importable and
falls back to a small local parser otherwise, so training never depends on the evaluation code being installed."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from spatialvlm.qa.taxonomy import TYPES

try:  # the evaluation engineer's scorer: the same numbers the `eval` command reports
    from spatialvlm.eval.metrics import score_item as _eval_score_item
except ImportError:  # pragma: no cover - exercised only when the eval package is absent
    _eval_score_item = None


_UNITS = {
    "mm": 0.001, "millimeter": 0.001, "millimeters": 0.001, "millimetre": 0.001, "millimetres": 0.001,
    "cm": 0.01, "centimeter": 0.01, "centimeters": 0.01, "centimetre": 0.01, "centimetres": 0.01,
    "m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0,
    "km": 1000.0, "in": 0.0254, "inch": 0.0254, "inches": 0.0254,
    "ft": 0.3048, "foot": 0.3048, "feet": 0.3048, "yard": 0.9144, "yards": 0.9144,
}
_QTY = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)?")


def fallback_parse_distance(text: str | None) -> float | None:
    """Sum of number+unit pairs in ``text`` in metres (a bare number counts as metres); None without a number."""
    if not text:
        return None
    total, found = 0.0, False
    for num, unit in _QTY.findall(text.lower()):
        found = True
        total += float(num) * _UNITS.get(unit or "m", 1.0)
    return total if found else None


def fallback_parse_yes_no(text: str | None) -> bool | None:
    if not text:
        return None
    t = text.strip().lower()
    if re.match(r"^(no|nope|not)\b", t) or re.search(r"\b(isn't|is not|aren't|are not|not)\b", t):
        return False
    if re.match(r"^(yes|yeah|yep|correct|indeed)\b", t) or re.search(r"\b(is|are)\b", t):
        return True
    return None


def _first_option(text: str | None, options: Sequence[str]) -> str | None:
    if not text:
        return None
    t = text.lower()
    hits = [(t.find(o.lower()), o) for o in options if o and o.lower() in t]
    return min(hits)[1] if hits else None


def _fallback_score(family: str, truth: Any, pred: str | None, value_m: float | None, options, relation):
    if family == "predicate":
        got = fallback_parse_yes_no(pred)
        want = str(truth).strip().lower() in ("true", "yes", "1")
        return {"parsed": got, "answered": float(got is not None), "correct": float(got is not None and got == want)}
    if family in ("choice", "classify"):
        got = _first_option(pred, options or [])
        ok = got is not None and got.lower() == str(truth).strip().lower()
        return {"parsed": got, "answered": float(got is not None), "correct": float(ok)}
    if family == "quantitative":
        gt = max(float(value_m if value_m is not None else truth), 0.01)
        p = fallback_parse_distance(pred)
        if p is None:
            return {"parsed": None, "has_number": 0.0, "within_50_200": 0.0}
        r = max(p, 0.0) / gt
        return {"parsed": p, "has_number": 1.0, "within_50_200": float(0.5 <= r <= 2.0)}
    if family == "direction":
        m = re.search(r"\b(1[0-2]|[1-9])\b", pred or "")
        got = int(m.group(1)) if m else None
        return {"parsed": got, "answered": float(got is not None), "correct": float(got == int(float(truth)))}
    raise ValueError(f"unknown question family {family!r}")


def item_family(item: dict) -> str:
    fam = item.get("family")
    if fam:
        return str(fam)
    t = item.get("qa_type")
    if t in TYPES:
        return TYPES[t].family
    if item.get("value_m") is not None:
        return "quantitative"
    raise ValueError(f"cannot tell the question family of {t!r}")


def item_truth(item: dict) -> Any:
    """The machine-readable truth: from qa.parquet when joined, else recovered from the reference answer."""
    fam = item_family(item)
    if item.get("truth") is not None:
        return item["truth"]
    if fam == "quantitative":
        return item["value_m"]
    if fam == "predicate":
        return fallback_parse_yes_no(item.get("answer"))
    if fam == "classify":
        return _first_option(item.get("answer"), options_for(item))
    raise ValueError(f"no truth for a {fam} question without qa.parquet: {item.get('question')!r}")


def options_for(item: dict) -> list[str] | None:
    fam = item_family(item)
    t = item.get("qa_type")
    if fam == "classify" and t in TYPES:
        a = TYPES[t].relation
        from spatialvlm.qa.taxonomy import RELATIONS

        return [a, RELATIONS[a][0]]
    if fam == "choice":
        return list(item.get("objects") or [])
    return None


def score(item: dict, prediction: str | None) -> dict[str, Any]:
    """Score one prediction; returns the item's qa_type/family plus metric fields."""
    fam = item_family(item)
    truth = item_truth(item)
    t = item.get("qa_type")
    relation = TYPES[t].relation if t in TYPES else None
    options = options_for(item)
    if fam == "choice" and not options:
        raise ValueError(f"choice question without its object names (qa.parquet missing?): {item.get('question')!r}")
    if _eval_score_item is not None:
        objects = item.get("objects")
        out = _eval_score_item(fam, truth, prediction, value_m=item.get("value_m"), options=options,
                               relation=relation, objects=list(objects) if objects is not None else None)
    else:
        out = _fallback_score(fam, truth, prediction, item.get("value_m"), options, relation)
    return {"qa_type": t, "family": fam, "prediction": prediction, **out}


def aggregate(rows: list[dict]) -> dict[str, Any]:
    """Headline numbers: qualitative accuracy, quantitative parsable rate and within-[50, 200]%, overall and per
    type (plain means, no intervals: the evaluation package's ``summarize`` adds those)."""

    def mean(vals):
        vals = [v for v in vals if v is not None]
        return float(sum(vals) / len(vals)) if vals else math.nan

    qual = [r for r in rows if r["family"] in ("predicate", "choice", "classify")]
    quant = [r for r in rows if r["family"] == "quantitative"]
    out: dict[str, Any] = {
        "n": len(rows),
        "qualitative_accuracy": mean(r["correct"] for r in qual),
        "n_qualitative": len(qual),
        "quantitative_has_number": mean(r["has_number"] for r in quant),
        "quantitative_within_50_200": mean(r["within_50_200"] for r in quant),
        # stricter views of the same answers (present when the evaluation package scored them)
        "quantitative_success_25": mean(r.get("success_25") for r in quant),
        "quantitative_mra": mean(r.get("mra") for r in quant),
        "n_quantitative": len(quant),
        "by_type": {},
    }
    for t in sorted({r["qa_type"] for r in rows if r["qa_type"]}):
        rs = [r for r in rows if r["qa_type"] == t]
        fam = rs[0]["family"]
        if fam == "quantitative":
            out["by_type"][t] = {"family": fam, "n": len(rs), "has_number": mean(r["has_number"] for r in rs),
                                 "within_50_200": mean(r["within_50_200"] for r in rs),
                                 "success_25": mean(r.get("success_25") for r in rs),
                                 "mra": mean(r.get("mra") for r in rs)}
        else:
            out["by_type"][t] = {"family": fam, "n": len(rs), "accuracy": mean(r["correct"] for r in rs)}
    return out
