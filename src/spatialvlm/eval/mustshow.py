"""The evaluation's "must show" experiment: on a benchmark built from rendered scenes, the oracle (our
geometry from the frames' depth and masks) is near perfect and the blind baseline (per-type priors, no image)
is near chance on the balanced binary types: the benchmark is answerable from the image, not from priors.

    python -m spatialvlm.eval.mustshow --n 200 --out out/mustshow

Prints a markdown summary (pasted into docs/eval.md) and writes everything under ``--out``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from spatialvlm.eval.metrics import bootstrap_ci

BINARY = ("predicate", "choice", "classify")


def run(
    n: int = 200, out: str | Path = "out/mustshow", seed: int = 1000, per_type: int = 50, n_boot: int = 1000
) -> dict[str, Any]:
    from spatialvlm.eval.bench import BenchConfig, build_bench, load_bench
    from spatialvlm.eval.run import evaluate
    from spatialvlm.render.api import render_scenes

    out = Path(out)
    t0 = time.time()
    if (
        not (out / "frames" / "frames.jsonl").exists()
        or sum(1 for _ in open(out / "frames" / "frames.jsonl")) != n
    ):
        render_scenes(n, out / "frames", seed=seed, progress=False)
    t_render = time.time() - t0
    t0 = time.time()
    meta = build_bench(out / "frames", out / "bench", BenchConfig(per_type=per_type, seed=seed))
    t_bench = time.time() - t0
    items = load_bench(out / "bench")
    t0 = time.time()
    res = evaluate(
        None,
        items,
        out / "eval",
        baselines=("blind", "blind-names", "oracle"),
        bench_dir=out / "bench",
        bench_name=f"{n} rendered scenes",
        n_boot=n_boot,
        seed=seed,
    )
    t_eval = time.time() - t0
    rows = {
        name: json.loads((out / "eval" / "baselines" / name / "predictions.json").read_text())
        for name in ("blind", "blind-names", "oracle")
    }
    binary = {name: [r["correct"] for r in rs if r["family"] in BINARY] for name, rs in rows.items()}
    summary = {
        "n_scenes": n,
        "seed": seed,
        "n_items": meta["n_items"],
        "n_images_used": meta["n_images_used"],
        "frame_errors": meta["n_errors"],
        "shortfall": meta["shortfall"],
        "seconds": {"render": round(t_render, 1), "bench_build": round(t_bench, 1), "eval": round(t_eval, 1)},
        "models": {},
    }
    for name, s in res["models"].items():
        o = s["overall"]
        lo, hi = bootstrap_ci(binary[name], n_boot, seed)
        summary["models"][name] = {
            "qualitative": o["qualitative"]["correct"]["mean"],
            "binary_balanced": float(np.mean(binary[name])),
            "binary_ci": [lo, hi],
            "has_number": o["quantitative"]["has_number"]["mean"],
            "within_50_200": o["quantitative"]["within_50_200"]["mean"],
            "success_25": o["quantitative"]["success_25"]["mean"],
            "mra": o["quantitative"]["mra"]["mean"],
            "clock_exact": o.get("direction", {}).get("correct", {}).get("mean"),
            "failed_items": o.get("errors", 0),
        }
    worst = []
    for t, bt in res["models"]["oracle"]["by_type"].items():
        m = bt.get("success_25") if bt["family"] == "quantitative" else bt.get("correct")
        if m and m["mean"] < 0.95:
            worst.append((t, round(m["mean"], 3), bt["n"]))
    summary["oracle_types_below_95"] = sorted(worst, key=lambda x: x[1])
    if "blind-names" in res["models"]:
        bt = res["models"]["blind-names"]["by_type"]
        summary["names_types_above_60"] = sorted(
            (
                (t, round(v["correct"]["mean"], 3))
                for t, v in bt.items()
                if v["family"] in BINARY and v.get("correct") and v["correct"]["mean"] >= 0.6
            ),
            key=lambda x: -x[1],
        )
    (out / "mustshow.json").write_text(json.dumps(summary, indent=2))
    return summary


def to_markdown(s: dict[str, Any]) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    cols = [c for c in ("oracle", "blind", "blind-names") if c in s["models"]]
    lines = [
        f"Benchmark: {s['n_items']} questions from {s['n_images_used']} of {s['n_scenes']} rendered scenes "
        f"(seed {s['seed']}); times: render {s['seconds']['render']} s, bench-build "
        f"{s['seconds']['bench_build']} s, baselines {s['seconds']['eval']} s.",
        "",
        "| | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    rows = [
        ("Qualitative accuracy (30 binary types, balanced)", "qualitative"),
        ("Answers with a number", "has_number"),
        ("Within [50, 200]%", "within_50_200"),
        ("Success (+-25%)", "success_25"),
        ("Mean relative accuracy", "mra"),
        ("Clock: exact hour", "clock_exact"),
    ]
    for label, k in rows:
        lines.append(f"| {label} | " + " | ".join(pct(s["models"][c][k]) for c in cols) + " |")
    ci = [f"{pct(s['models'][c]['binary_ci'][0])}-{pct(s['models'][c]['binary_ci'][1])}" for c in cols]
    lines.append("| Qualitative 95% CI | " + " | ".join(ci) + " |")
    lines.append("| Failed items | " + " | ".join(str(s["models"][c]["failed_items"]) for c in cols) + " |")
    if s["oracle_types_below_95"]:
        lines += [
            "",
            "Oracle types below 95%: "
            + ", ".join(f"{t} {100 * v:.1f}% (n={n})" for t, v, n in s["oracle_types_below_95"]),
        ]
    if s.get("names_types_above_60"):
        lines += [
            "",
            "Binary types where object names alone reach 60% (blind-names): "
            + ", ".join(f"{t} {100 * v:.1f}%" for t, v in s["names_types_above_60"]),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", default="out/mustshow")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--per-type", type=int, default=50)
    a = ap.parse_args(argv)
    s = run(a.n, a.out, a.seed, a.per_type)
    print(to_markdown(s))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
