#!/usr/bin/env python
"""Does our synthetic spatial QA teach a VLM spatial reasoning? A two-core CPU experiment.

1. render training scenes and held-out scenes (disjoint seeds) with the built-in generator;
2. synthesize QA for both with `spatialvlm synth`;
3. train the `cpu-tiny` model (a small Idefics3-architecture VLM built from scratch) on the training QA;
4. train the same architecture on the same QA with every image blanked (blind text-only baseline), and compute a
   per-type majority / median baseline from the training answers;
5. evaluate all of them on the held-out scenes: qualitative accuracy, parsable-number rate and within-[50, 200]%
   per question type, next to the paper's Table 1/2 figures;
6. noise ablation: retrain with quantitative labels perturbed by Gaussian noise of std 0.1 / 0.2 / 0.3 of the value.

Results go to WORK/results.json and WORK/results.md. Every stage is skipped when its output already exists, so an
interrupted run continues where it stopped (delete WORK, or pass --fresh, to start over).

    python scripts/cpu_tiny_experiment.py --quick            # smoke test, a few minutes
    python scripts/cpu_tiny_experiment.py --work out/cpu_tiny  # the full experiment (~1 h 50 min on 2 cores)

Models train side by side (--parallel 2, one thread each) within their --minutes budget; --set passes training
options to every model (the preset's answer form and grounding rows apply to the blind model as well).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

log = logging.getLogger("cpu_tiny_experiment")

# The paper's figures (SpatialVLM, Chen et al. 2024), for context only: different model, data and benchmark.
PAPER = {
    "qualitative_accuracy": {"SpatialVLM": 0.752, "GPT-4V": 0.680, "LLaVA-1.5": 0.713},
    "quantitative_has_number": {"SpatialVLM": 0.990, "GPT-4V": 0.010},
    "quantitative_within_50_200": {"SpatialVLM": 0.372, "GPT-4V": 0.000},
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("out/cpu_tiny_experiment"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes and budgets: a smoke test in a few minutes")
    ap.add_argument("--fresh", action="store_true", help="delete WORK first")
    ap.add_argument("--train-scenes", type=int, default=4000)
    ap.add_argument("--test-scenes", type=int, default=200)
    ap.add_argument("--per-image", type=int, default=60, help="QA requested per image (the gate keeps ~37)")
    ap.add_argument("--minutes", type=float, default=44.0, help="training budget of the main and blind models")
    ap.add_argument("--ablation-minutes", type=float, default=12.0,
                    help="training budget per noise-ablation model (its exact-label row is trained with the same budget)")
    ap.add_argument("--noise", type=str, default="0.1,0.2,0.3", help="comma list; empty string = no ablation")
    ap.add_argument("--no-blind-model", action="store_true", help="skip training the blind model")
    ap.add_argument("--preset", default="cpu-tiny")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="training key=value override")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training / evaluation process")
    ap.add_argument("--parallel", type=int, default=2,
                    help="models trained at once, each in its own process (e.g. --parallel 2 --threads 1)")
    ap.add_argument("--synth-workers", type=int, default=2,
                    help="QA synthesis processes (more than 1 runs `synth --engine ray`)")
    ap.add_argument("--eval-batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-test-questions", type=int, default=3000,
                    help="score a seeded random sample of this many held-out questions (0 = all)")
    ap.add_argument("--seen-questions", type=int, default=1000,
                    help="also score cpu-tiny on this many questions about its training scenes (0 = skip)")
    ap.add_argument("--eval-threads", type=int, default=2, help="torch threads for evaluation (after training)")
    ap.add_argument("--data-only", action="store_true", help="render and synthesize, then stop")
    a = ap.parse_args(argv)
    if a.quick:
        a.train_scenes, a.test_scenes, a.per_image = 24, 8, 20
        a.minutes = 0.5
        a.ablation_minutes = 0.3
        a.noise = "0.2"
        a.seen_questions = min(a.seen_questions, 40)
        if a.work == Path("out/cpu_tiny_experiment"):
            a.work = Path("out/cpu_tiny_quick")
    a.noise_levels = [float(x) for x in a.noise.split(",") if x.strip()]
    return a


# ------------------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------------------
def render(n: int, out: Path, seed: int) -> Path:
    from spatialvlm.io.frames import count_frames
    from spatialvlm.render import render_scenes

    if (out / "frames.jsonl").exists() and count_frames(out) == n:
        log.info("scenes in %s already rendered", out)
        return out
    if out.exists():
        shutil.rmtree(out)
    t = time.time()
    render_scenes(n, out, seed=seed, progress=False)
    log.info("rendered %d scenes into %s in %.0f s", n, out, time.time() - t)
    return out


def synth(frames: Path, out: Path, per_image: int, seed: int, workers: int = 1) -> Path:
    if (out / "summary.json").exists() and (out / "hf" / "data").is_dir():
        log.info("QA in %s already synthesized", out)
        return out
    cmd = [sys.executable, "-m", "spatialvlm.cli", "synth", "--input", str(frames), "--out", str(out),
           "--per-image", str(per_image), "--seed", str(seed), "--quiet", "--overwrite"]
    if workers > 1:
        cmd += ["--engine", "ray", "--workers", str(workers)]
    t = time.time()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    summary = out / "summary.json"
    # exit code 1 = the dataset was written but some inputs failed (recorded in errors.parquet)
    if proc.returncode not in (0, 1) or not summary.exists():
        raise RuntimeError(f"synth failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    s = json.loads(summary.read_text())
    if not s.get("images_ok"):
        raise RuntimeError(f"synth produced no usable image; see {out / 'errors.parquet'}")
    log.info("synthesized QA into %s in %.0f s: %s images ok of %s, %s questions (failures are listed in "
             "errors.parquet)", out, time.time() - t, s.get("images_ok"), s.get("images_in"), s.get("qa_total"))
    return out


def test_items(data: Path) -> list[dict]:
    """Every held-out QA with its image, truth and options (from hf/data joined with qa.parquet)."""
    from spatialvlm.train.data import attach_truth, load_rows

    items = attach_truth(load_rows([str(data)]), [str(data)])
    missing = [it for it in items if "family" not in it]
    if missing:
        raise RuntimeError(f"{len(missing)} held-out rows could not be joined with qa.parquet")
    return items


# ------------------------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------------------------
def _train_overrides(name: str, a, data: Path, minutes: float, extra: dict) -> dict:
    over = {"data": [str(data)], "out": str(a.work / "models" / name), "max_time_minutes": minutes,
            "seed": a.seed, "torch_threads": a.threads, "eval_images": 8 if a.quick else 16, "eval_samples": 48,
            "save_steps": 100000, **extra}
    from spatialvlm.train.config import parse_set, resolve_config

    preset = resolve_config(a.preset, {"data": [str(data)], "out": "unused"})
    if preset.vision_warmup_minutes and preset.max_time_minutes:
        # the vision warm-up keeps its share of the preset's budget (10 of 44 minutes for cpu-tiny) at any budget
        over["vision_warmup_minutes"] = round(minutes * preset.vision_warmup_minutes / preset.max_time_minutes, 2)
    if a.quick:
        over["eval_steps"] = 0
    over.update(parse_set(a.overrides))
    return over


def _trained(out: Path) -> bool:
    return (out / "train_summary.json").exists()


def train_models(jobs: list[tuple[str, float, dict]], a, data: Path) -> None:
    """Train every (name, minutes, extra overrides) job whose model is not there yet, ``a.parallel`` at a time
    (each in its own `spatialvlm train` process with ``a.threads`` threads) or in this process when parallel is 1."""
    from spatialvlm.train.config import resolve_config
    from spatialvlm.train.trainer import train

    todo = []
    for name, minutes, extra in jobs:
        out = a.work / "models" / name
        if _trained(out):
            log.info("model %s already trained", name)
            continue
        if out.exists():
            shutil.rmtree(out)
        todo.append((name, _train_overrides(name, a, data, minutes, extra)))
    if a.parallel <= 1:
        for name, over in todo:
            t = time.time()
            res = train(resolve_config(a.preset, over))
            log.info("trained %s: %d steps in %.1f min, final loss %s", name, res.steps, (time.time() - t) / 60,
                     res.train_loss)
        return
    running: list[tuple[str, subprocess.Popen, float]] = []
    failed = []
    while todo or running:
        while todo and len(running) < a.parallel:
            name, over = todo.pop(0)
            out = Path(over.pop("out"))
            out.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "spatialvlm.cli", "train", "--preset", a.preset, "--out", str(out)]
            for d in over.pop("data"):
                cmd += ["--data", d]
            for k, v in over.items():
                cmd += ["--set", f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}"]
            logf = open(out.parent / f"{name}.train.log", "w")
            log.info("training %s (log: %s)", name, logf.name)
            running.append((name, subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT), time.time()))
        time.sleep(5)
        for item in list(running):
            name, proc, t = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode != 0 or not _trained(a.work / "models" / name):
                    failed.append(name)
                    log.error("training %s failed (exit %s); see its log", name, proc.returncode)
                else:
                    log.info("trained %s in %.1f min", name, (time.time() - t) / 60)
    if failed:
        raise RuntimeError(f"training failed for {failed}; logs are in {a.work / 'models'}")


def swapped_images(items: list[dict], seed: int) -> list:
    """Each question paired with the picture of another held-out scene (a fixed derangement of the scenes): a model
    that reads the image should drop to chance on position questions, one that answers from priors should not."""
    ids = sorted({it["image_id"] for it in items})
    if len(ids) < 2:
        raise ValueError("need at least two held-out scenes to swap images")
    perm = np.random.default_rng(seed).permutation(len(ids))
    other = {ids[perm[k]]: ids[perm[(k + 1) % len(ids)]] for k in range(len(ids))}
    first = {}
    for it in items:
        first.setdefault(it["image_id"], it["image"])
    return [first[other[it["image_id"]]] for it in items]


def predict(model_dir: Path, items: list[dict], blind: bool, batch: int, images: list | None = None) -> list[str]:
    from spatialvlm.train.infer import answer, load_vlm
    from spatialvlm.train.trainer import blank_like

    vlm = load_vlm(str(model_dir), device="cpu")
    if images is None:
        images = [blank_like(it["image"]) if blind else it["image"] for it in items]
    return answer(vlm, images, [it["question"] for it in items], max_new_tokens=24, batch_size=batch)


def grounding_probe(model_dir: Path, data: Path, batch: int, limit: int = 400) -> dict | None:
    """Does the vision encoder find named objects? Asks "Where is the NAME in the image?" about held-out objects
    and correlates the stated x / y (percent of the image) and depth with the truth. None when the model was not
    trained with grounding rows."""
    import re

    from spatialvlm.train.config import TrainConfig
    from spatialvlm.train.data import add_grounding_rows, answer_text, load_rows, question_text
    from spatialvlm.train.infer import answer, load_vlm

    if not TrainConfig.load(model_dir / "train_config.yaml").grounding_rows:
        return None
    ds = load_rows([str(data)])
    n0 = len(ds)
    ds, n = add_grounding_rows(ds, [str(data)], 1)
    rows = [ds[i] for i in range(n0, n0 + min(n, limit))]
    pat = re.compile(r"x (\d+), y (\d+), depth ([\d.]+)")
    truth = [tuple(float(v) for v in pat.search(answer_text(r)).groups()) for r in rows]
    vlm = load_vlm(str(model_dir), device="cpu")
    preds = answer(vlm, [r["images"][0] for r in rows], [question_text(r) for r in rows], max_new_tokens=24,
                   batch_size=batch)
    got = [pat.search(p or "") for p in preds]
    ok = [(t, tuple(float(v) for v in g.groups())) for t, g in zip(truth, got) if g]
    out = {"n": len(rows), "parsed": len(ok) / max(1, len(rows))}
    if len(ok) >= 3:
        t, p = np.array([a for a, _ in ok]), np.array([b for _, b in ok])
        for k, name in enumerate(("x", "y", "depth")):
            out[f"r_{name}"] = float(np.corrcoef(t[:, k], p[:, k])[0, 1])
            out[f"mae_{name}"] = float(np.mean(np.abs(t[:, k] - p[:, k])))
    return out


def lookup_probes(models: Path, data: Path, a, train_data: Path | None = None) -> dict | None:
    """For models trained with the from-scratch recipe, what each stage reads off the picture
    (``spatialvlm.train.scratch.lookup_probe``: lookup attention on a named object's cells, the object head's
    readout at the name, the pair head's sign at the end of the question): cpu-tiny on held-out scenes, on scenes
    it trained on (``train_data``, to tell learning from memorising) and the blind model with its grey picture.
    None for the SFT recipe."""
    from spatialvlm.train.config import TrainConfig
    from spatialvlm.train.scratch import lookup_probe

    if TrainConfig.load(models / "cpu-tiny" / "train_config.yaml").trainer != "scratch":
        return None
    n = 40 if a.quick else 200
    out = {"cpu-tiny": lookup_probe(models / "cpu-tiny", [str(data)], max_images=n)}
    if train_data is not None:
        seen = _seen_image_ids(models / "cpu-tiny", train_data, n, a.seed)
        out["cpu-tiny, training scenes"] = lookup_probe(models / "cpu-tiny", [str(train_data)], images=seen)
    if not a.no_blind_model:
        out["blind"] = lookup_probe(models / "blind", [str(data)], max_images=n, blind=True)
    return out


def _heldout_of(model_dir: Path) -> set[str]:
    """The training images a model held out for its own in-training check (from its train_summary.json)."""
    return set(json.loads((model_dir / "train_summary.json").read_text()).get("info", {}).get("heldout_images") or [])


def _seen_image_ids(model_dir: Path, train_data: Path, n: int, seed: int) -> list[str]:
    """``n`` random training images the model trained on (not among those it held out for its own evaluation)."""
    import pandas as pd

    held = _heldout_of(model_dir)
    ids = sorted(set(pd.read_parquet(train_data / "qa.parquet", columns=["image_id"])["image_id"].astype(str)) - held)
    pick = np.random.default_rng(seed).choice(len(ids), size=min(n, len(ids)), replace=False)
    return [ids[i] for i in sorted(pick)]


def seen_items(model_dir: Path, train_data: Path, n: int, seed: int) -> list[dict]:
    """``n`` random questions about training images the model trained on, as evaluation items."""
    from spatialvlm.train.data import attach_truth, load_rows

    held = _heldout_of(model_dir)
    ds = load_rows([str(train_data)])
    ids = [str(x) for x in ds["image_id"]]
    ok = [i for i, x in enumerate(ids) if x not in held]
    pick = sorted(np.random.default_rng(seed).choice(len(ok), size=min(n, len(ok)), replace=False))
    return attach_truth(ds.select([ok[i] for i in pick]), [str(train_data)])


def majority_answers(train_data: Path, items: list[dict]) -> list[str]:
    """Per question type: the most frequent yes/no, option position, relation word or hour in the training QA,
    and the median metres for quantitative types."""
    import pandas as pd

    qa = pd.read_parquet(train_data / "qa.parquet")
    stats: dict[str, object] = {}
    for t, g in qa.groupby("qa_type"):
        fam = g["family"].iloc[0]
        if fam == "quantitative":
            stats[t] = float(np.median(g["value_m"].astype(float)))
        elif fam == "choice":
            first = sum(str(tr) == str(objs[0]) for tr, objs in zip(g["truth"], g["objects"]))
            stats[t] = 0 if first >= len(g) - first else 1
        else:
            stats[t] = Counter(str(x) for x in g["truth"]).most_common(1)[0][0]
    out = []
    for it in items:
        t, fam = it["qa_type"], it["family"]
        s = stats.get(t)
        if s is None:
            out.append("")
        elif fam == "quantitative":
            out.append(f"{s:.2f} meters")
        elif fam == "predicate":
            out.append("Yes." if s == "true" else "No.")
        elif fam == "choice":
            out.append(f"The {it['objects'][int(s)]}.")
        elif fam == "direction":
            out.append(f"At {s} o'clock.")
        else:
            out.append(f"{s}.")
    return out


# ------------------------------------------------------------------------------------------------------------
# scoring and tables
# ------------------------------------------------------------------------------------------------------------
def evaluate(items: list[dict], preds: list[str]) -> dict:
    from spatialvlm.train.scoring import aggregate, score

    rows = [score(it, p) for it, p in zip(items, preds)]
    return aggregate(rows)


# qualitative types grouped by what they compare: positions need the image, sizes are largely category priors
GROUPS = {
    "left / right": ("left_", "right_"),
    "above / below": ("above_", "below_"),
    "in front / behind": ("front_", "behind_"),
    "sizes (tall, short, wide, thin, big, small)": ("tall_", "short_", "wide_", "thin_", "big_", "small_"),
}


def pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}"


def tables(res: dict, a) -> str:
    models = list(res["models"])
    lines = ["## Held-out scenes: headline", "",
             "| model | qualitative accuracy % | quantitative: parsable number % | within [50, 200]% | "
             "within +-25% | MRA % |", "|---|---|---|---|---|---|"]
    for m in models:
        r = res["models"][m]
        lines.append(f"| {m} | {pct(r['qualitative_accuracy'])} | {pct(r['quantitative_has_number'])} | "
                     f"{pct(r['quantitative_within_50_200'])} | {pct(r.get('quantitative_success_25'))} | "
                     f"{pct(r.get('quantitative_mra'))} |")
    for name, k in (("paper: SpatialVLM", "SpatialVLM"), ("paper: GPT-4V", "GPT-4V"), ("paper: LLaVA-1.5", "LLaVA-1.5")):
        lines.append(f"| {name} (context, other benchmark) | {pct(PAPER['qualitative_accuracy'].get(k))} | "
                     f"{pct(PAPER['quantitative_has_number'].get(k))} | "
                     f"{pct(PAPER['quantitative_within_50_200'].get(k))} | - | - |")
    d = res.get("margins", {})
    if d:
        lines += ["", f"cpu-tiny minus the best blind baseline: qualitative {d['qualitative']:+.1f} points, "
                  f"within [50, 200]% {d['within_50_200']:+.1f} points, within +-25% {d['success_25']:+.1f} points, "
                  f"MRA {d['mra']:+.1f} points; parsable numbers "
                  f"{pct(res['models']['cpu-tiny']['quantitative_has_number'])}%."]
    p = res.get("picture_margins", {})
    if p:
        lines += ["", f"cpu-tiny minus cpu-tiny given another scene's image (what depends on the picture): qualitative "
                  f"{p['qualitative']:+.1f} points, within [50, 200]% {p['within_50_200']:+.1f} points, within +-25% "
                  f"{p['success_25']:+.1f} points, MRA {p['mra']:+.1f} points."]
    scratch = {m: t for m, t in (res.get("training") or {}).items() if t.get("trainer") == "scratch"}
    if scratch:
        lines += ["", "## Training (from-scratch trainer)", "",
                  "Last logged step of each run: answer loss and answer-token accuracy on its training batches, "
                  "and the attention the lookup heads put on a named object's cells (chance in brackets) and the "
                  "copy heads on the chosen name, the gather heads (last prompt token) on the two names, and the "
                  "image tokens' error on their own cell's position (standardised, mean square), and how often the "
                  "decision head calls the two-way answer right one layer before the last.", "",
                  "| model | steps | epochs | minutes (all) | answer loss | answer-token acc. % | lookup attention % "
                  "| copy attention % | gather attention % | position error | decision % | questions |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for m, t in scratch.items():
            g = t["last_log"]
            lines.append(f"| {m} | {t['steps']} | {t['epochs']} | {t['minutes']} | {g.get('answer', '-')} | "
                         f"{pct(g.get('answer_token_acc'))} | {pct(g.get('lookup_mass'))} "
                         f"({pct(g.get('lookup_chance'))}) | {pct(g.get('copy_mass'))} | {pct(g.get('gather_mass'))} "
                         f"| {g.get('position', '-')} | {pct(g.get('decision_acc'))} | {t['train_rows']} |")
    sft = {m: t for m, t in (res.get("training") or {}).items() if t.get("trainer") != "scratch"}
    if sft:
        lines += ["", "## Training", "", "| model | vision warm-up | QA steps | minutes (all) | last loss | "
                  "training rows | of which grounding |", "|---|---|---|---|---|---|---|"]
        for m, t in sft.items():
            loss = "-" if t["loss_last"] is None else f"{t['loss_last']:.3f}"
            w = t.get("vision_warmup")
            wu = "-" if not w else (f"{w['steps']} steps, {w['seconds'] / 60:.1f} min, label recall "
                                    f"{pct(w.get('presence_recall'))}%, depth error {w.get('depth_l1_log')} (log)")
            lines.append(f"| {m} | {wu} | {t['steps']} | {t['minutes']} | {loss} | {t['train_rows']} | "
                         f"{t['grounding_rows'] or 0} |")
    lines += ["", "## Qualitative accuracy by what the question compares (held-out)", "",
              "| group | n | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for g, prefixes in GROUPS.items():
        n, cells = _pooled(res, models, lambda t, r: t.startswith(prefixes))
        lines.append(f"| {g} | {n} | " + " | ".join(cells) + " |")
    if res.get("seen"):
        both = {"models": {"held-out scenes": res["models"]["cpu-tiny"], "training scenes": res["seen"]}}
        lines += ["", "## cpu-tiny on scenes it trained on (seen) and on held-out scenes", "",
                  "Learning shows as the same accuracy on both, memorising as a gap.", "",
                  "| group | held-out n | held-out % | seen n | seen % |", "|---|---|---|---|---|"]
        for g, prefixes in list(GROUPS.items()) + [("all qualitative", None)]:
            row = []
            for m in both["models"]:
                n, cells = _pooled(both, [m], lambda t, r: "accuracy" in r and (prefixes is None or t.startswith(prefixes)))
                row += [str(n), cells[0]]
            lines.append(f"| {g} | " + " | ".join(row) + " |")
        h = res["seen"]
        lines.append(f"| quantitative: parsable / within [50, 200]% / +-25% | | | | "
                     f"{pct(h['quantitative_has_number'])} / {pct(h['quantitative_within_50_200'])} / "
                     f"{pct(h.get('quantitative_success_25'))} |")
    lines += ["", "## Qualitative accuracy by answer form (held-out)", "",
              "Choice questions (\"which is taller, A or B?\") can be answered from category priors whatever the "
              "order of the names; predicates (\"is A taller than B?\") and classify questions (\"is A taller or "
              "shorter than B?\") also need the order.", "", "| form | n | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for fam in ("choice", "predicate", "classify", "direction"):
        n, cells = _pooled(res, models, lambda t, r: r.get("family") == fam)
        if n:
            lines.append(f"| {fam} | {n} | " + " | ".join(cells) + " |")
    g = res.get("grounding_probe")
    if g:
        lines += ["", "## Grounding probe (held-out objects)", "",
                  f"\"Where is the NAME in the image?\" on {g['n']} held-out objects: {pct(g['parsed'])}% answered "
                  "in the trained form; Pearson r between stated and true values: "
                  + ", ".join(f"{k} {g[f'r_{k}']:.2f} (mean abs. error {g[f'mae_{k}']:.1f})"
                              for k in ("x", "y", "depth") if f"r_{k}" in g) + "."]
    lp = res.get("lookup_probe")
    if lp:
        m0 = next(iter(lp.values()))
        lines += ["", "## Lookup probe (held-out scenes)", "",
                  f"Attention that the {m0['heads']} lookup heads of decoder layer {m0['layer']} put, from the last "
                  "token of each object name in the questions, on that object's image tokens; chance is the share "
                  "those tokens are of what the heads see (uniform attention).", "",
                  "| model | names | attention on the named object % | chance % |", "|---|---|---|---|"]
        for m, r in lp.items():
            lines.append(f"| {m} | {r['names']} | {pct(r['mass'])} | {pct(r['chance'])} |")
        heads = {m: r for m, r in lp.items() if r.get("object_r") or r.get("pair_sign")}
        if heads:
            attrs = list(next(iter(heads.values())).get("object_r") or next(iter(heads.values()))["pair_sign"])
            lines += ["", f"What the thrown-away heads read: Pearson r of the object head (after decoder layer "
                      f"{m0['object_layer']}, at each name) with the object's true attribute, and how often the "
                      f"pair head (after layer {m0['pair_layer']}, at the last prompt token) gets the sign of the "
                      "difference between the two named objects right (chance 50 %).", "",
                      "| model | " + " | ".join(f"{x}: r / sign %" for x in attrs) + " |",
                      "|---|" + "---|" * len(attrs)]
            for m, r in heads.items():
                cells = [f"{(r.get('object_r') or {}).get(x, float('nan')):.2f} / "
                         f"{pct((r.get('pair_sign') or {}).get(x))}" for x in attrs]
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
        dec = {m: r for m, r in lp.items() if r.get("decision_by_type")}
        if dec:
            lines += ["", f"The decision head (after decoder layer {m0.get('decision_layer')}, at the deciding "
                      "tokens) against the answers of the same questions: how often its two-way call is right, by "
                      "what the question compares (chance about 50 %).", "",
                      "| model | " + " | ".join(list(GROUPS) + ["all two-way"]) + " |",
                      "|---|" + "---|" * (len(GROUPS) + 1)]
            for m, r in dec.items():
                cells = []
                for prefixes in list(GROUPS.values()) + [None]:
                    hits = [v for t, v in r["decision_by_type"].items() if prefixes is None or t.startswith(prefixes)]
                    cells.append(pct(sum(h for h, _ in hits) / sum(n for _, n in hits)) if hits else "-")
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "## Per question type (held-out)", "",
              "| type | family | n | " + " | ".join(models) + " |", "|---|---|---|" + "---|" * len(models)]
    types = sorted(res["models"][models[0]]["by_type"])
    for t in types:
        row0 = res["models"][models[0]]["by_type"][t]
        cells = []
        for m in models:
            r = res["models"][m]["by_type"].get(t, {})
            if row0["family"] == "quantitative":
                cells.append(f"{pct(r.get('within_50_200'))} / {pct(r.get('success_25'))} ({pct(r.get('has_number'))})")
            else:
                cells.append(pct(r.get("accuracy")))
        lines.append(f"| {t} | {row0['family']} | {row0['n']} | " + " | ".join(cells) + " |")
    lines += ["", "Qualitative types: accuracy %. Quantitative types: within [50, 200]% / within +-25% "
              "(parsable number %)."]
    if res.get("ablation"):
        lines += ["", "## Label-noise ablation (held-out)", "",
                  "| quantitative label noise (std / value) | minutes | qualitative % | parsable % | "
                  "within [50, 200]% | within +-25% | MRA % |", "|---|---|---|---|---|---|---|"]
        for k, r in res["ablation"].items():
            lines.append(f"| {k} | {r['minutes']} | {pct(r['qualitative_accuracy'])} | "
                         f"{pct(r['quantitative_has_number'])} | {pct(r['quantitative_within_50_200'])} | "
                         f"{pct(r.get('quantitative_success_25'))} | {pct(r.get('quantitative_mra'))} |")
        lines += ["", "Paper: noisy quantitative labels (std up to 0.3 of the value) barely hurt."]
    lines += ["", "## Setup", "", "```", json.dumps(res["setup"], indent=2), "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("SPATIALVLM_TQDM", "0")
    import torch

    torch.set_num_threads(a.threads)
    if a.fresh and a.work.exists():
        shutil.rmtree(a.work)
    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    frames_train = render(a.train_scenes, a.work / "scenes_train", seed=a.seed)
    frames_test = render(a.test_scenes, a.work / "scenes_test", seed=a.seed + 1_000_000)
    data_train = synth(frames_train, a.work / "data_train", a.per_image, a.seed, a.synth_workers)
    data_test = synth(frames_test, a.work / "data_test", a.per_image, a.seed + 1, a.synth_workers)
    if a.data_only:
        log.info("data ready in %s and %s", data_train, data_test)
        return {}
    items = test_items(data_test)
    if a.max_test_questions and len(items) > a.max_test_questions:
        keep = np.random.default_rng(a.seed).choice(len(items), size=a.max_test_questions, replace=False)
        items = [items[i] for i in sorted(keep)]
    log.info("held-out QA: %d questions on %d scenes", len(items), len({it["image_id"] for it in items}))

    res: dict = {"models": {}, "ablation": {}, "setup": {
        "train_scenes": a.train_scenes, "test_scenes": a.test_scenes, "per_image": a.per_image,
        "minutes": a.minutes, "ablation_minutes": a.ablation_minutes, "preset": a.preset,
        "overrides": a.overrides, "threads": a.threads, "parallel": a.parallel, "seed": a.seed, "quick": a.quick,
        "test_questions": len(items), "max_test_questions": a.max_test_questions,
        "train_questions": json.loads((data_train / "summary.json").read_text()).get("qa_total"),
    }}
    preds: dict[str, list[str]] = {}

    jobs = [("cpu-tiny", a.minutes, {})]
    if not a.no_blind_model:
        jobs.append(("blind", a.minutes, {"blind": True}))
    ablation = {}
    if a.noise_levels:
        exact = "cpu-tiny" if a.ablation_minutes == a.minutes else f"noise-0.0-{a.ablation_minutes}m"
        ablation["0 (exact)"] = exact
        if exact != "cpu-tiny":
            jobs.append((exact, a.ablation_minutes, {}))
        for std in a.noise_levels:
            name = f"noise-{std}-{a.ablation_minutes}m"
            ablation[str(std)] = name
            jobs.append((name, a.ablation_minutes, {"label_noise_std": std}))
    train_models(jobs, a, data_train)
    torch.set_num_threads(a.eval_threads)

    models = a.work / "models"
    preds["cpu-tiny"] = predict(models / "cpu-tiny", items, False, a.eval_batch)
    res["models"]["cpu-tiny"] = evaluate(items, preds["cpu-tiny"])
    res["grounding_probe"] = grounding_probe(models / "cpu-tiny", data_test, a.eval_batch)
    res["lookup_probe"] = lookup_probes(models, data_test, a, data_train)
    if a.seen_questions:
        seen = seen_items(models / "cpu-tiny", data_train, a.seen_questions, a.seed)
        res["seen"] = evaluate(seen, predict(models / "cpu-tiny", seen, False, a.eval_batch))
    m = "cpu-tiny, another scene's image (diagnostic)"
    preds[m] = predict(models / "cpu-tiny", items, False, a.eval_batch, images=swapped_images(items, a.seed))
    res["models"][m] = evaluate(items, preds[m])
    if not a.no_blind_model:
        m = "blind (same model, blank images)"
        preds[m] = predict(models / "blind", items, True, a.eval_batch)
        res["models"][m] = evaluate(items, preds[m])
    preds["blind (per-type majority / median)"] = majority_answers(data_train, items)
    res["models"]["blind (per-type majority / median)"] = evaluate(items, preds["blind (per-type majority / median)"])
    res["training"] = {name: _train_info(models / name) for name, _, _ in jobs}

    blinds = [m for m in res["models"] if m.startswith("blind")]
    main_r = res["models"]["cpu-tiny"]
    metric = {"qualitative": "qualitative_accuracy", "within_50_200": "quantitative_within_50_200",
              "success_25": "quantitative_success_25", "mra": "quantitative_mra"}
    res["margins"] = {k: 100 * (main_r[m] - max(res["models"][b][m] for b in blinds)) for k, m in metric.items()}
    # how much of cpu-tiny's score needs *its own* picture: a margin over a grey-image twin that trained worse is
    # not the picture at work, this is
    swapped = res["models"]["cpu-tiny, another scene's image (diagnostic)"]
    res["picture_margins"] = {k: 100 * (main_r[m] - swapped[m]) for k, m in metric.items()}

    for label, name in ablation.items():
        r = main_r if name == "cpu-tiny" else evaluate(items, predict(models / name, items, False, a.eval_batch))
        res["ablation"][label] = {**_headline(r), "minutes": a.minutes if name == "cpu-tiny" else a.ablation_minutes}

    res["setup"]["seconds_total"] = round(time.time() - t0)
    (a.work / "results.json").write_text(json.dumps(res, indent=2))
    with open(a.work / "predictions.jsonl", "w") as f:
        f.writelines(json.dumps({"image_id": it["image_id"], "qa_type": it["qa_type"], "question": it["question"],
                                "reference": it["answer"], **{m: p[i] for m, p in preds.items()}}) + "\n" for i, it in enumerate(items))
    md = tables(res, a)
    (a.work / "results.md").write_text(md)
    print(md)
    return res


HEADLINE = ("qualitative_accuracy", "quantitative_has_number", "quantitative_within_50_200",
            "quantitative_success_25", "quantitative_mra")


def _pooled(res: dict, models: list[str], keep) -> tuple[int, list[str]]:
    """Qualitative accuracy pooled over the question types ``keep(type, record)`` selects: (questions, per-model
    accuracy % or "-")."""
    cells, n = [], 0
    for m in models:
        rs = [(r["accuracy"], r["n"]) for t, r in res["models"][m]["by_type"].items() if "accuracy" in r and keep(t, r)]
        n = sum(k for _, k in rs)
        cells.append(pct(sum(a * k for a, k in rs) / n) if n else "-")
    return n, cells


def _headline(r: dict) -> dict:
    return {k: r.get(k) for k in HEADLINE}


def _train_info(out: Path) -> dict:
    s = json.loads((out / "train_summary.json").read_text())
    info = s.get("info", {})
    last = (s.get("log") or [{}])[-1]  # the from-scratch trainer's last logged step (auxiliary losses included)
    return {"steps": s.get("steps"), "minutes": round(s.get("seconds", 0) / 60, 1), "loss_last": s.get("loss_last"),
            "train_rows": info.get("train_rows"), "grounding_rows": info.get("grounding_rows"),
            "vision_warmup": info.get("vision_warmup"), "trainer": info.get("trainer", "sft"),
            "epochs": s.get("epochs"), "last_log": last}


if __name__ == "__main__":
    main()
