"""The evaluation report: a markdown file with the headline numbers of the model next to the baselines,
per-type tables, and plotly HTML plots (quantitative error against ground-truth distance, accuracy per
type)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HEADLINE = [
    ("qualitative", "correct", "Qualitative accuracy"),
    ("quantitative", "has_number", "Answers with a number"),
    ("quantitative", "within_50_200", "Within [50, 200]%"),
    ("quantitative", "within_67_150", "Within [66.7, 150]%"),
    ("quantitative", "within_90_110", "Within [90, 110]%"),
    ("quantitative", "success_25", "Success (+-25%)"),
    ("quantitative", "delta_2", "Q-Spatial delta <= 2"),
    ("quantitative", "delta_125", "Q-Spatial delta <= 1.25"),
    ("quantitative", "mra", "Mean relative accuracy"),
    ("quantitative", "abs_rel_err", "Abs. relative error (answered)"),
    ("quantitative", "sq_err_m2", "Squared error m^2 (answered)"),
    ("direction", "correct", "Clock: exact hour"),
    ("direction", "within_1h", "Clock: within 1 hour"),
]
_PERCENT = {"abs_rel_err": False, "sq_err_m2": False}

DISTANCE_BINS = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, math.inf]


def _fmt(m: dict | None, key: str) -> str:
    if not m:
        return "-"
    pct = _PERCENT.get(key, True)
    if pct:
        return f"{100 * m['mean']:.1f} [{100 * m['lo']:.1f}, {100 * m['hi']:.1f}]"
    return f"{m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]"


def markdown_tables(results: dict[str, Any]) -> str:
    models = list(results["models"])
    lines = [
        f"Benchmark: {results.get('bench') or '-'}; {results['n_items']} questions. Values are percentages "
        "(errors in their own units) with 95% bootstrap intervals.",
        "",
    ]
    lines.append("| Metric | " + " | ".join(models) + " |")
    lines.append("|---|" + "---|" * len(models))
    for group, key, label in HEADLINE:
        cells = []
        for m in models:
            g = results["models"][m]["overall"].get(group)
            cells.append(_fmt(g.get(key) if g else None, key))
        if all(c == "-" for c in cells):
            continue
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        "| Failed items (errors) | "
        + " | ".join(str(results["models"][m]["overall"].get("errors", 0)) for m in models)
        + " |"
    )
    if results.get("unavailable"):
        lines += ["", "Baselines not run:"]
        lines += [f"- `{k}`: {v}" for k, v in results["unavailable"].items()]
    # per type
    types = sorted({t for m in models for t in results["models"][m]["by_type"]})
    lines += [
        "",
        "## Per question type",
        "",
        "Qualitative / clock types: accuracy. Quantitative types: within [50, 200]% (and +-25% success).",
        "",
    ]
    lines.append("| Type | n | " + " | ".join(models) + " |")
    lines.append("|---|---|" + "---|" * len(models))
    for t in types:
        cells, n = [], ""
        for m in models:
            bt = results["models"][m]["by_type"].get(t)
            if not bt:
                cells.append("-")
                continue
            n = str(bt["n"])
            if bt["family"] == "quantitative":
                a, b = bt.get("within_50_200"), bt.get("success_25")
                cells.append(f"{100 * a['mean']:.1f} ({100 * b['mean']:.1f})" if a and b else "-")
            else:
                c = bt.get("correct")
                cells.append(f"{100 * c['mean']:.1f}" if c else "-")
        lines.append(f"| {t} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def error_by_distance(rows: Sequence[dict], bins: Sequence[float] = DISTANCE_BINS) -> list[dict[str, Any]]:
    """Quantitative rows grouped by ground-truth value: n, share with a number, within [50, 200]%, median
    absolute relative error (answered)."""
    out = []
    q = [r for r in rows if r["family"] == "quantitative" and r.get("value_m") is not None]
    for lo, hi in zip(bins[:-1], bins[1:]):
        rs = [r for r in q if lo <= r["value_m"] < hi]
        if not rs:
            continue
        errs = [r["abs_rel_err"] for r in rs if r.get("abs_rel_err") is not None]
        out.append(
            {
                "lo": lo,
                "hi": hi,
                "n": len(rs),
                "has_number": float(np.mean([r["has_number"] for r in rs])),
                "within_50_200": float(np.mean([r["within_50_200"] for r in rs])),
                "median_abs_rel_err": float(np.median(errs)) if errs else None,
            }
        )
    return out


def _bin_label(lo: float, hi: float) -> str:
    return f">= {lo:g} m" if math.isinf(hi) else f"{lo:g}-{hi:g} m"


def write_plots(results: dict[str, Any], all_rows: dict[str, list[dict]], out_dir: Path) -> list[Path]:
    """plots/error_vs_distance.html and plots/per_type_accuracy.html (plotly, one shared plotly.min.js)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pdir = out_dir / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    written = []
    # error vs distance: scatter of predictions and binned medians
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Predicted vs true value (log-log)", "Within [50, 200]% by true value"),
    )
    any_q = False
    for name, rows in all_rows.items():
        q = [
            r
            for r in rows
            if r["family"] == "quantitative" and r.get("parsed") is not None and r.get("value_m") is not None
        ]
        if q:
            any_q = True
            fig.add_trace(
                go.Scatter(
                    x=[r["value_m"] for r in q],
                    y=[max(r["parsed"], 1e-3) for r in q],
                    mode="markers",
                    name=name,
                    opacity=0.5,
                    text=[f"{r['qa_type']}: {r['prediction']}" for r in q],
                ),
                row=1,
                col=1,
            )
        bins = error_by_distance(rows)
        if bins:
            any_q = True
            fig.add_trace(
                go.Bar(
                    x=[_bin_label(b["lo"], b["hi"]) for b in bins],
                    y=[100 * b["within_50_200"] for b in bins],
                    name=f"{name} (binned)",
                    text=[f"n={b['n']}" for b in bins],
                ),
                row=1,
                col=2,
            )
    if any_q:
        fig.add_trace(
            go.Scatter(
                x=[0.01, 100],
                y=[0.01, 100],
                mode="lines",
                name="exact",
                line={"dash": "dash", "color": "gray"},
            ),
            row=1,
            col=1,
        )
        fig.update_xaxes(type="log", title_text="true value (m)", row=1, col=1)
        fig.update_yaxes(type="log", title_text="predicted (m)", row=1, col=1)
        fig.update_yaxes(title_text="% within [50, 200]%", range=[0, 100], row=1, col=2)
        fig.update_layout(title="Quantitative answers against ground truth", barmode="group")
        p = pdir / "error_vs_distance.html"
        fig.write_html(str(p), include_plotlyjs="directory")
        written.append(p)
    # per-type accuracy with CIs
    fig = go.Figure()
    for name in results["models"]:
        bt = results["models"][name]["by_type"]
        types = sorted(bt)
        ys, lo, hi = [], [], []
        for t in types:
            m = bt[t].get("within_50_200") if bt[t]["family"] == "quantitative" else bt[t].get("correct")
            ys.append(100 * m["mean"] if m else None)
            lo.append(100 * (m["mean"] - m["lo"]) if m else 0)
            hi.append(100 * (m["hi"] - m["mean"]) if m else 0)
        fig.add_trace(
            go.Bar(
                x=types,
                y=ys,
                name=name,
                error_y={"type": "data", "array": hi, "arrayminus": lo, "symmetric": False},
            )
        )
    fig.update_layout(
        title="Accuracy per question type (quantitative: within [50, 200]%), 95% bootstrap CI",
        barmode="group",
        yaxis={"range": [0, 105], "title": "%"},
        xaxis={"tickangle": -60},
        height=600,
    )
    p = pdir / "per_type_accuracy.html"
    fig.write_html(str(p), include_plotlyjs="directory")
    written.append(p)
    return written


def write_report(results: dict[str, Any], all_rows: dict[str, list[dict]], out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    plots = write_plots(results, all_rows, out_dir)
    parts = ["# Spatial evaluation report", "", markdown_tables(results)]
    for name, rows in all_rows.items():
        bins = error_by_distance(rows)
        if not bins:
            continue
        parts += [
            f"## Quantitative answers by true value: {name}",
            "",
            "| True value | n | With a number | Within [50, 200]% | Median abs. rel. error |",
            "|---|---|---|---|---|",
        ]
        for b in bins:
            med = "-" if b["median_abs_rel_err"] is None else f"{b['median_abs_rel_err']:.3f}"
            parts.append(
                f"| {_bin_label(b['lo'], b['hi'])} | {b['n']} | {100 * b['has_number']:.1f} | "
                f"{100 * b['within_50_200']:.1f} | {med} |"
            )
        parts.append("")
    parts += ["## Plots", ""] + [f"- [{p.stem}](plots/{p.name})" for p in plots]
    parts += [
        "",
        "Every prediction with its parsed value and scores: `predictions.json` (baselines under "
        "`baselines/`); all summaries: `metrics.json`.",
        "",
    ]
    p = out_dir / "report.md"
    p.write_text("\n".join(parts))
    return p
