"""Training rows: read synth output folders, hold out images for evaluation, add label noise, blank images (blind
baseline) and mix with a general VQA dataset.

A training row is a prompt/completion pair in chat form plus its image, the shape TRL's vision collator expects::

    {"images": [PIL.Image], "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", ...}]}],
     "completion": [{"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}], ...}

The ``messages`` column written by ``synth`` is dropped on purpose: with it TRL would train on the whole
conversation instead of the answer only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

KEEP = ("images", "prompt", "completion", "image_id", "qa_type", "value_m")


def hf_data_dir(path: Path | str) -> Path:
    """The parquet folder of a synth output (OUT/hf/data), or ``path`` itself if it already holds parquet files."""
    p = Path(path)
    for cand in (p / "hf" / "data", p / "data", p):
        if cand.is_dir() and any(cand.glob("*.parquet")):
            return cand
    if p.is_file() and p.suffix == ".parquet":
        return p
    raise FileNotFoundError(
        f"no training parquet files under {p} (looked in {p / 'hf' / 'data'}, {p / 'data'} and {p}); "
        "write a dataset with `spatialvlm synth --out DIR` (or `spatialvlm demo`) and pass DIR to --data"
    )


def _ensure_image_feature(ds):
    from datasets import Image, Sequence

    feat = ds.features.get("images")
    if feat is None:
        if "image" in ds.column_names:
            ds = ds.map(lambda r: {"images": [r["image"]]}, remove_columns=["image"])
            feat = ds.features["images"]
        else:
            raise ValueError(f"dataset has no 'images' (or 'image') column; columns: {ds.column_names}")
    inner = getattr(feat, "feature", None)
    if not isinstance(inner, Image):
        ds = ds.cast_column("images", Sequence(Image()))
    return ds


def _split_messages(row: dict) -> dict:
    """prompt = every turn before the last assistant turn, completion = that turn."""
    msgs = row["messages"]
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    return {"prompt": msgs[:last], "completion": [msgs[last]]}


def load_rows(paths: list[str] | str):
    """Concatenate the QA rows of one or more synth outputs into one ``datasets.Dataset``."""
    from datasets import concatenate_datasets, load_dataset

    if isinstance(paths, (str, Path)):
        paths = [str(paths)]
    parts = []
    for p in paths:
        src = hf_data_dir(p)
        files = [str(src)] if src.is_file() else sorted(str(f) for f in src.glob("*.parquet"))
        ds = load_dataset("parquet", data_files=files, split="train")
        ds = _ensure_image_feature(ds)
        if "prompt" not in ds.column_names or "completion" not in ds.column_names:
            if "messages" not in ds.column_names:
                raise ValueError(f"{src}: rows need prompt/completion or messages columns; got {ds.column_names}")
            ds = ds.map(_split_messages)
        drop = [c for c in ds.column_names if c not in KEEP]
        ds = ds.remove_columns(drop)
        for c in ("image_id", "qa_type", "value_m"):
            if c not in ds.column_names:
                ds = ds.add_column(c, [None] * len(ds))
        parts.append(ds)
    if not parts:
        raise ValueError("no training data given")
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def load_general(spec: str):
    """A general VQA dataset: a local folder of parquet files, or a dataset id/path for ``datasets.load_dataset``.
    Rows need images and either prompt/completion or messages."""
    from datasets import load_dataset

    p = Path(spec)
    if p.exists():
        return load_rows([spec])
    ds = load_dataset(spec, split="train")
    ds = _ensure_image_feature(ds)
    if "prompt" not in ds.column_names:
        ds = ds.map(_split_messages)
    keep = [c for c in ds.column_names if c in ("images", "prompt", "completion")]
    ds = ds.select_columns(keep)
    for c in ("image_id", "qa_type", "value_m"):
        ds = ds.add_column(c, [None] * len(ds))
    return ds


def question_text(row: dict) -> str:
    parts = row["prompt"][-1]["content"]
    if isinstance(parts, str):
        return parts
    return " ".join(p.get("text") or "" for p in parts if p.get("type") == "text").strip()


def answer_text(row: dict) -> str:
    parts = row["completion"][-1]["content"]
    if isinstance(parts, str):
        return parts
    return " ".join(p.get("text") or "" for p in parts if p.get("type") == "text").strip()


def _with_answer(text: str) -> list[dict]:
    from spatialvlm.io.writers import chat_turns

    return chat_turns("", text)[1]


def qa_lookup(data_paths: list[str], columns: list[str] | None = None, required: bool = False) -> dict:
    """The rows of the synth outputs' ``qa.parquet`` keyed by (image id, question), the key every join of training
    rows with their truth uses. Folders without the file are skipped, or an error when ``required``."""
    import pandas as pd

    lookup: dict[tuple[str, str], dict] = {}
    for p in data_paths:
        f = Path(p) / "qa.parquet"
        if not f.exists():
            if required:
                raise FileNotFoundError(f"the truth of the questions is read from {f}, which is missing; write it "
                                        "with `spatialvlm synth`")
            continue
        for r in pd.read_parquet(f, columns=columns).to_dict("records"):
            lookup[(str(r["image_id"]), str(r["question"]).strip())] = r
    return lookup


def choose_heldout_ids(image_ids, n_images: int, seed: int) -> set:
    """``n_images`` (at most a fifth, at least one) of the distinct ids, drawn with ``seed`` from their sorted list:
    the held-out images of both trainers. Needs at least two ids."""
    ids = sorted(set(image_ids))
    n = min(n_images, max(1, len(ids) // 5))
    return set(np.random.default_rng(seed).choice(ids, size=n, replace=False).tolist())


def split_heldout(ds, n_images: int, seed: int):
    """(train, heldout) with every row of ``n_images`` randomly chosen images in heldout."""
    if n_images <= 0:
        return ds, None
    ids = sorted({i for i in ds["image_id"] if i is not None})
    if len(ids) < 2:
        raise ValueError(f"need at least 2 distinct images to hold some out for evaluation, found {len(ids)}")
    held = choose_heldout_ids(ids, n_images, seed)
    col = ds["image_id"]
    train_idx = [i for i, v in enumerate(col) if v not in held]
    held_idx = [i for i, v in enumerate(col) if v in held]
    return ds.select(train_idx), ds.select(held_idx)


def map_text(ds, fn, **kw):
    """``ds.map(fn)`` for functions that only read and write text columns. ``map`` writes a full copy of the
    dataset, images included (gigabytes for a few thousand scenes, since every QA row carries its picture); when
    ``ds`` is not a selection of another dataset, the text columns are mapped alone and put back next to the
    untouched image column instead."""
    from datasets import concatenate_datasets

    if getattr(ds, "_indices", None) is not None or "images" not in ds.column_names:
        return ds.map(fn, load_from_cache_file=False, **kw)
    text = ds.remove_columns(["images"]).map(fn, load_from_cache_file=False, **kw)
    return concatenate_datasets([ds.select_columns(["images"]), text], axis=1)


_NUM = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)")


def scale_numbers(text: str, factor: float) -> tuple[str, int]:
    """Multiply every number written with digits in ``text`` by ``factor``, keeping its number of decimals (so
    "3 feet 2 inches" scales as a whole). Returns the new text and how many numbers were changed."""
    count = 0

    def repl(m: re.Match) -> str:
        nonlocal count
        s = m.group(1)
        decimals = len(s.split(".")[1]) if "." in s else 0
        v = float(s) * factor
        count += 1
        out = f"{v:.{decimals}f}"
        if decimals == 0 and out == "0" and float(s) > 0:  # do not round a positive length to zero
            out = "1"
        return out

    return _NUM.sub(repl, text), count


@dataclass
class NoiseReport:
    rows_quantitative: int = 0
    rows_noised: int = 0
    rows_without_digits: int = 0


def add_label_noise(ds, std: float, seed: int):
    """Quantitative rows (value_m set): the answer's numbers are multiplied by ``max(0.05, 1 + N(0, std))``, one
    draw per row, as the paper's noise ablation (Gaussian noise with std a fraction of the value). Rows whose answer
    has no digits (numbers said in words) keep their label and are counted."""
    report = NoiseReport()
    if std <= 0:
        return ds, report
    rng = np.random.default_rng(seed)
    factors = np.maximum(0.05, 1.0 + rng.normal(0.0, std, size=len(ds)))

    def fn(row: dict, idx: int) -> dict:
        if row.get("value_m") is None:
            return {}
        report.rows_quantitative += 1
        new, n = scale_numbers(answer_text(row), float(factors[idx]))
        if n == 0:
            report.rows_without_digits += 1
            return {}
        report.rows_noised += 1
        return {"completion": _with_answer(new)}

    out = map_text(ds, fn, with_indices=True)
    return out, report


GROUNDING_QUESTION = "Where is the {name} in the image?"


def grounding_answer(box2d, width: float, height: float, depth_m: float) -> str:
    """Centre of the object's 2D box in percent of the image width / height, and its distance along the view."""
    x = 100.0 * 0.5 * (float(box2d[0]) + float(box2d[2])) / float(width)
    y = 100.0 * 0.5 * (float(box2d[1]) + float(box2d[3])) / float(height)
    x, y = (round(min(99.0, max(0.0, v))) for v in (x, y))
    return f"x {x}, y {y}, depth {depth_m:.1f} meters."


def add_grounding_rows(ds, data_paths: list[str], copies: int = 1):
    """Append per-object grounding rows: for every object a QA row names on a training image, "Where is the NAME in
    the image?" answered with the centre of its 2D box (percent of width / height) and its depth in metres, from
    the synth output's own ``objects.parquet`` (the pipeline's perception, not ground truth). Dense localisation
    targets teach a model trained from scratch where named objects are, which the comparisons then build on; this
    is an option of the from-scratch recipe (``grounding_rows``), off by default. Returns (dataset, rows added)."""
    import pandas as pd
    from datasets import concatenate_datasets

    from spatialvlm.io.writers import chat_turns

    if copies <= 0:
        return ds, 0
    targets: dict[tuple[str, int], tuple[str, str]] = {}
    for p in data_paths:
        p = Path(p)
        need = [p / "qa.parquet", p / "objects.parquet", p / "scenes.parquet"]
        missing = [str(f) for f in need if not f.exists()]
        if missing:
            raise FileNotFoundError(f"grounding rows need the synth output tables; missing: {', '.join(missing)}")
        qa = pd.read_parquet(need[0], columns=["image_id", "objects", "object_ids"])
        objs = pd.read_parquet(need[1], columns=["image_id", "object_id", "box2d", "aabb_cam_center"])
        sizes = pd.read_parquet(need[2], columns=["image_id", "width", "height"]).set_index("image_id")
        where = {(str(r.image_id), int(r.object_id)): r for r in objs.itertuples() if r.object_id == r.object_id}
        for r in qa.itertuples():
            if r.objects is None or r.object_ids is None:
                continue
            for name, oid in zip(r.objects, r.object_ids):
                key = (str(r.image_id), int(oid))
                o = where.get(key)
                if o is None or key in targets or o.box2d is None:
                    continue
                w, h = sizes.loc[key[0], "width"], sizes.loc[key[0], "height"]
                targets[key] = (GROUNDING_QUESTION.format(name=name),
                                grounding_answer(o.box2d, w, h, float(o.aabb_cam_center[2])))
    first: dict[str, int] = {}
    for i, v in enumerate(ds["image_id"]):
        if v is not None and v not in first:
            first[v] = i
    picks = [(first[img], q, a) for (img, _), (q, a) in sorted(targets.items()) if img in first] * copies
    if not picks:
        return ds, 0

    def fn(_image_id, idx: int) -> dict:  # only image_id is read, so images are not decoded
        prompt, completion = chat_turns(*picks[idx][1:])
        return {"prompt": prompt, "completion": completion, "qa_type": "grounding", "value_m": None}

    extra = ds.select([i for i, _, _ in picks]).map(fn, with_indices=True, input_columns=["image_id"],
                                                    load_from_cache_file=False)
    return concatenate_datasets([ds, extra.cast(ds.features)]), len(picks)


def terse_length(answer: str) -> str | None:
    """The length said in a quantitative answer, alone: "85 centimeters." under a metre, "1.4 meters." from one
    metre up (one unit scheme for every answer); None when the answer holds no length."""
    from spatialvlm.eval.parse import parse_distance
    from spatialvlm.qa.phrasing import unit_text

    v = parse_distance(answer)
    if v is None or v <= 0:
        return None
    if v < 1.0:
        return unit_text(max(1, round(v * 100)), "cm") + "."
    return unit_text(round(v, 1), "m") + "."


def short_answer(family: str, truth: str, answer: str | None = None, numbers: bool = False) -> str | None:
    """The shortest answer that states the same fact: "Yes." / "No.", "The NAME.", the relation word, "At H
    o'clock."; for quantitative questions the length alone (``terse_length`` of ``answer``) when ``numbers`` is
    set, else None (their natural answer, a number with its unit in a sentence, is kept)."""
    if family == "quantitative":
        return terse_length(answer) if numbers and answer is not None else None
    if family == "predicate":
        return "Yes." if str(truth).lower() == "true" else "No."
    if family == "choice":
        return f"The {truth}."
    if family == "classify":
        return f"{str(truth).capitalize()}."
    if family == "direction":
        return f"At {truth} o'clock."
    return None


def shorten_answers(ds, data_paths: list[str], numbers: bool = False):
    """Replace every qualitative answer (and with ``numbers`` every quantitative one) by its short form
    (``short_answer``), using the truth recorded in the synth output's ``qa.parquet`` (joined on image id +
    question). A from-scratch model then spends its capacity on the
    decision rather than on reproducing long sentences with the object names copied right. Returns (dataset,
    number of rows changed); rows that cannot be joined keep their answer and are counted in the log."""
    lookup = qa_lookup(data_paths, ["image_id", "question", "family", "truth"], required=True)
    stats = {"changed": 0, "unjoined": 0}

    def fn(image_id, prompt, completion) -> dict:
        row = {"prompt": prompt, "completion": completion}
        hit = lookup.get((str(image_id), question_text(row)))
        if hit is None:
            stats["unjoined"] += 1
            return {}
        new = short_answer(hit["family"], hit["truth"], answer_text(row), numbers=numbers)
        if new is None:
            return {}
        stats["changed"] += 1
        return {"completion": _with_answer(new)}

    out = map_text(ds, fn, input_columns=["image_id", "prompt", "completion"])
    if stats["unjoined"]:
        log.warning("short answers: %d rows not found in qa.parquet kept their answers", stats["unjoined"])
    return out, stats["changed"]


def mix_general(spatial, general, ratio: float, seed: int):
    """Mix so that spatial rows make ``ratio`` of the result (counted in rows, not tokens). If the general set is
    too small for that, spatial rows are subsampled. Returns (dataset, info dict)."""
    from datasets import concatenate_datasets

    rng = np.random.default_rng(seed)
    n_s, n_g = len(spatial), len(general)
    want_g = int(round(n_s * (1 - ratio) / ratio))
    if want_g <= n_g:
        g = general.select(sorted(rng.choice(n_g, size=want_g, replace=False).tolist()))
        s = spatial
    else:
        keep_s = int(np.floor(n_g * ratio / (1 - ratio))) if ratio < 1 else n_s
        if keep_s < 1:
            raise ValueError(
                f"general dataset has {n_g} rows: too few to mix at spatial_ratio={ratio} with any spatial row"
            )
        log.warning("general dataset too small for the requested ratio: using %d of %d spatial rows", keep_s, n_s)
        s = spatial.select(sorted(rng.choice(n_s, size=keep_s, replace=False).tolist()))
        g = general
    mixed = concatenate_datasets([s, g]).shuffle(seed=seed)
    info = {"spatial_rows": len(s), "general_rows": len(g), "spatial_ratio_actual": len(s) / max(1, len(s) + len(g))}
    return mixed, info


def attach_truth(ds, data_paths: list[str]) -> list[dict[str, Any]]:
    """Evaluation items for held-out rows: question, image, expected answer, qa_type, and when the synth output's
    qa.parquet is present, family / truth / object names (joined on image_id + question)."""
    lookup = qa_lookup(data_paths)
    items = []
    for i in range(len(ds)):
        row = ds[i]
        q = question_text(row)
        item = {
            "image": row["images"][0] if row["images"] else None,
            "question": q,
            "answer": answer_text(row),
            "qa_type": row.get("qa_type"),
            "value_m": row.get("value_m"),
            "image_id": row.get("image_id"),
        }
        extra = lookup.get((str(row.get("image_id")), q))
        if extra is not None:
            item["family"] = extra.get("family")
            item["truth"] = extra.get("truth")
            objs = extra.get("objects")
            item["objects"] = list(objs) if objs is not None else []
        items.append(item)
    return items
