"""Running a model on benchmark items, scoring every prediction, and writing the results.

Output folder of :func:`evaluate`::

    predictions.json            every item with the model's raw answer, what was parsed, its scores, any error
    metrics.json                summaries (per type, family, overall, bootstrap CIs) of model and baselines
    baselines/<name>/predictions.json
    report.md                   tables: overall next to the baselines, per type; links to the plots
    plots/*.html                error vs ground-truth distance, per-type accuracy (plotly)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spatialvlm.eval.items import BenchItem
from spatialvlm.eval.metrics import score_item, summarize
from spatialvlm.records import ItemError


def predict(
    model: Any, items: Sequence[BenchItem], batch_size: int = 8, progress: bool = False
) -> list[str | ItemError]:
    """The model's answer for every item (an ItemError where the adapter or image loading failed)."""
    if hasattr(model, "answer_items"):
        return list(model.answer_items(list(items)))
    out: list[str | ItemError] = []
    rng = range(0, len(items), batch_size)
    if progress:
        from tqdm import tqdm

        rng = tqdm(rng, desc=f"eval {getattr(model, 'name', 'model')}", unit="batch")
    for i in rng:
        chunk = list(items[i : i + batch_size])
        images, questions, slots = [], [], []
        answers: list[str | ItemError | None] = [None] * len(chunk)
        for k, it in enumerate(chunk):
            try:
                images.append(it.load_image())
            except (OSError, ValueError) as exc:
                answers[k] = ItemError(it.id, "image", f"{type(exc).__name__}: {exc}")
                continue
            questions.append(it.question)
            slots.append(k)
        if slots:
            got = model.answer(images, questions)
            if len(got) != len(slots):
                raise RuntimeError(
                    f"{getattr(model, 'name', model)} returned {len(got)} answers for {len(slots)} questions"
                )
            for k, a in zip(slots, got):
                answers[k] = a
        out.extend(answers)  # type: ignore[arg-type]
    return out


def score_predictions(items: Sequence[BenchItem], preds: Sequence[str | ItemError]) -> list[dict[str, Any]]:
    rows = []
    for it, p in zip(items, preds):
        err = p.reason if isinstance(p, ItemError) else None
        text = None if isinstance(p, ItemError) else p
        s = score_item(
            it.family,
            it.truth,
            text,
            value_m=it.value_m,
            options=it.options or None,
            relation=it.relation,
            objects=it.objects or None,
        )
        rows.append({**it.to_row(), "prediction": text, "error": err, **s})
    return rows


def _clean_json(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {k: _clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean_json(v) for v in x]
    return x


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean_json(obj), indent=1))


def run_one(
    model: Any,
    items: Sequence[BenchItem],
    out_dir: Path,
    *,
    batch_size: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> tuple[list[dict], dict]:
    t0 = time.time()
    preds = predict(model, items, batch_size=batch_size, progress=progress)
    rows = score_predictions(items, preds)
    summary = summarize(rows, n_boot=n_boot, seed=seed)
    summary["model"] = getattr(model, "name", str(model))
    summary["seconds"] = round(time.time() - t0, 2)
    write_json(out_dir / "predictions.json", rows)
    return rows, summary


def evaluate(
    model: Any,
    items: Sequence[BenchItem],
    out_dir: str | Path,
    *,
    baselines: Sequence[str] = ("blind", "blind-names", "oracle"),
    bench_dir: str | Path | None = None,
    bench_name: str = "",
    batch_size: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``model`` (an adapter, or None for baselines only) and the ``baselines`` on ``items``; write
    predictions, metrics and the report into ``out_dir``. A baseline that cannot run here (the oracle without
    frames) is reported as unavailable with the reason. Returns the metrics.json content."""
    from spatialvlm.eval.adapters import load_model
    from spatialvlm.eval.report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"bench": bench_name, "n_items": len(items), "models": {}, "unavailable": {}}
    all_rows: dict[str, list[dict]] = {}
    if model is not None:
        rows, summ = run_one(
            model, items, out, batch_size=batch_size, n_boot=n_boot, seed=seed, progress=progress
        )
        results["models"][summ["model"]] = summ
        results["main"] = summ["model"]
        all_rows[summ["model"]] = rows
    for b in baselines:
        if model is not None and getattr(model, "name", "") == b:
            continue
        bm = load_model(b, bench_dir=bench_dir, seed=seed)
        if hasattr(bm, "available"):
            why = bm.available()
            if why:
                results["unavailable"][b] = why
                continue
        rows, summ = run_one(
            bm,
            items,
            out / "baselines" / b.replace(":", "_").replace("/", "_"),
            batch_size=batch_size,
            n_boot=n_boot,
            seed=seed,
            progress=progress,
        )
        results["models"][summ["model"]] = summ
        all_rows[summ["model"]] = rows
    write_json(out / "metrics.json", results)
    write_report(results, all_rows, out)
    return results
