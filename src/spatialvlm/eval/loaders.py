"""Loaders for public spatial benchmarks the user has downloaded (local paths only; nothing is fetched).

Each loader returns ``(items, errors)``: :class:`~spatialvlm.eval.items.BenchItem` s in our schema, and an
:class:`~spatialvlm.records.ItemError` for every record that could not be used (missing image, answer that
does not parse), never silently dropped.

Formats (spec prefix for ``spatialvlm eval --bench``):

* ``qspatial:PATH``: Q-Spatial-Bench parquet (file or folder) with question, answer_value, answer_unit,
  question_type and image (HF image struct) or image_path; quantitative, truth = the answer in metres.
* ``spatialrgpt:FILE``: SpatialRGPT-Bench json / jsonl with id, image_info.file_path, text_q, conversations,
  bbox, qa_info.{type, category}; images under ``image_root``. ``*_predicate`` -> yes/no, ``*_choice`` ->
  choice over "Region [k]", ``*_data`` -> metres, ``direction`` -> clock hour.
* ``cvbench:PATH``: CV-Bench parquet (image struct) or jsonl + images with type, task, question, choices,
  answer "(A)", prompt, filename; choice over ``choices``, 3D subset (Depth, Distance) by default.
* ``blink:DIR``: BLINK parquet folders (``Relative_Depth/``, ``Spatial_Relation/``) with question, image_1,
  choices, answer "(A)", prompt; relative depth -> choice over point letters, spatial relation -> yes/no.
* ``vsr:FILE``: VSR jsonl with image, caption, label, relation and COCO images under ``image_root``; yes/no
  "is this caption true?".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spatialvlm.eval.items import BenchItem
from spatialvlm.eval.parse import parse_choice, parse_clock, parse_distance_detail, parse_yes_no
from spatialvlm.records import ItemError

Loaded = tuple[list[BenchItem], list[ItemError]]


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------
def _parquet_files(path: Path, pattern: str = "*.parquet") -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.rglob(pattern))
    if not files:
        raise FileNotFoundError(f"no parquet files under {path}")
    return files


def _read_parquet(files: list[Path]) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    for f in files:
        for r in pq.read_table(f).to_pylist():
            r["__file__"] = str(f)
            rows.append(r)
    return rows


def _read_json_records(path: Path) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"benchmark file not found: {path}")
    text = path.read_text()
    s = text.lstrip()
    if s.startswith("["):
        return json.loads(text)
    if s.startswith("{") and path.suffix == ".json":
        try:
            obj = json.loads(text)
            if isinstance(obj, dict):
                for k in ("data", "questions", "annotations", "items"):
                    if isinstance(obj.get(k), list):
                        return obj[k]
                return [obj]
        except json.JSONDecodeError:
            pass  # a .json file holding one object per line: read as jsonl below
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _image_ref(value: Any, root: Path | None, base: Path | None) -> Any:
    """An image field (HF struct, bytes or relative path) -> bytes or an existing path, else raise."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value:
        cands = [Path(value)]
        for r in (root, base):
            if r is not None:
                cands.append(r / value)
        for c in cands:
            if c.exists():
                return c
        raise FileNotFoundError(f"image {value!r} not found (looked in {[str(c) for c in cands]})")
    raise FileNotFoundError("record has no image")


def _letter_index(ans: str) -> int | None:
    m = re.match(r"^\W*\(?([A-Za-z])\)?\W*$", str(ans).strip())
    return ord(m.group(1).upper()) - ord("A") if m else None


def _choices_prompt(question: str, choices: list[str]) -> str:
    opts = " ".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(choices))
    return f"{question} Choices: {opts}. Answer with the option's letter."


# ------------------------------------------------------------------------------------------------------------
# Q-Spatial
# ------------------------------------------------------------------------------------------------------------
def load_qspatial(path: str | Path, image_root: str | Path | None = None) -> Loaded:
    """Q-Spatial-Bench (QSpatial_plus / QSpatial_scannet splits as parquet)."""
    path = Path(path)
    root = Path(image_root) if image_root else None
    items, errors = [], []
    for i, r in enumerate(_read_parquet(_parquet_files(path))):
        rid = f"qspatial:{Path(r['__file__']).stem}:{i}"
        try:
            unit = str(r.get("answer_unit") or "").strip()
            det = parse_distance_detail(f"{r['answer_value']} {unit}")
            if det.value_m is None or (unit and det.unit is None):
                raise ValueError(f"cannot read the answer {r.get('answer_value')!r} {unit!r} as a length")
            img = _image_ref(
                r.get("image") if r.get("image") is not None else r.get("image_path"),
                root,
                Path(r["__file__"]).parent,
            )
        except (ValueError, FileNotFoundError, KeyError) as exc:
            errors.append(ItemError(rid, "load", f"{type(exc).__name__}: {exc}"))
            continue
        items.append(
            BenchItem(
                id=rid,
                image_id=str(r.get("image_path") or rid),
                qa_type=str(r.get("question_type") or "distance"),
                family="quantitative",
                question=str(r["question"]),
                truth=repr(det.value_m),
                value_m=det.value_m,
                answer=f"{r['answer_value']} {unit}".strip(),
                source="qspatial",
                image=img,
            )
        )
    return items, errors


# ------------------------------------------------------------------------------------------------------------
# SpatialRGPT-Bench
# ------------------------------------------------------------------------------------------------------------
_SRGPT_QUANT = {
    "distance": "distance",
    "vertical_distance": "vertical_distance",
    "horizontal_distance": "horizontal_distance",
    "width": "width",
    "height": "height",
    "direct_distance": "distance",
}


def _draw_regions(path_or_bytes: Any, boxes: list, fmt: str):
    """A callable that opens the image and outlines each region with its 'Region [k]' label."""

    def load():
        import io

        from PIL import Image, ImageDraw

        im = Image.open(io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes)
        im = im.convert("RGB")
        d = ImageDraw.Draw(im)
        colours = [(255, 0, 0), (0, 90, 255), (0, 200, 0), (255, 160, 0)]
        for k, b in enumerate(boxes):
            x0, y0, a, c = [float(v) for v in b]
            x1, y1 = (x0 + a, y0 + c) if fmt == "xywh" else (a, c)
            col = colours[k % len(colours)]
            d.rectangle([x0, y0, x1, y1], outline=col, width=3)
            d.text((x0 + 3, y0 + 3), f"Region [{k}]", fill=col)
        return im

    return load


def load_spatialrgpt(
    path: str | Path,
    image_root: str | Path | None = None,
    draw_regions: bool = True,
    bbox_format: str = "xyxy",
) -> Loaded:
    """SpatialRGPT-Bench. Questions name regions ("Region [0]"); with ``draw_regions`` the boxes are drawn and
    labelled on the image so that models without region inputs can tell which object is meant."""
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    items, errors = [], []
    for i, r in enumerate(_read_json_records(path)):
        rid = f"spatialrgpt:{r.get('id', i)}"
        try:
            info = r.get("qa_info") or {}
            cat = str(info.get("category") or "")
            conv = r.get("conversations") or []
            answer = str(conv[1]["value"]) if len(conv) > 1 else str(r.get("answer", ""))
            question = str(r.get("text_q") or (conv[0]["value"] if conv else ""))
            question = re.sub(r"<image>\s*|<mask>|<depth>", "", question).strip()
            n_regions = len(r.get("bbox") or []) or 2
            regions = [f"Region [{k}]" for k in range(n_regions)]
            if cat.endswith("_predicate"):
                rel = cat[: -len("_predicate")]
                t = parse_yes_no(answer, rel if rel in _REL else None)
                if t is None:
                    raise ValueError(f"reference answer {answer!r} is not a clear yes/no")
                fam, truth, value, options, qa_type = "predicate", "yes" if t else "no", None, [], cat
            elif cat.endswith("_choice"):
                rel = cat[: -len("_choice")]
                c = parse_choice(answer, regions)
                if c is None:
                    raise ValueError(f"reference answer {answer!r} names no region")
                fam, truth, value, options, qa_type = "choice", c, None, regions, cat
            elif cat == "direction" or "direction" in cat:
                h = parse_clock(answer)
                if h is None:
                    raise ValueError(f"reference answer {answer!r} names no clock direction")
                fam, truth, value, options, qa_type, rel = (
                    "direction",
                    str(h),
                    None,
                    [],
                    "clock_direction",
                    None,
                )
            elif cat.endswith("_data") or info.get("type") == "quantitative":
                det = parse_distance_detail(answer)
                if det.value_m is None:
                    raise ValueError(f"reference answer {answer!r} holds no length")
                base = cat.removesuffix("_data")
                fam, truth, value, options, rel = "quantitative", repr(det.value_m), det.value_m, [], None
                qa_type = _SRGPT_QUANT.get(base, base or "quantitative")
            else:
                raise ValueError(f"unknown SpatialRGPT category {cat!r}")
            file = (r.get("image_info") or {}).get("file_path") or r.get("image")
            img = _image_ref(file, root, path.parent)
            if draw_regions and r.get("bbox"):
                img = _draw_regions(img, r["bbox"], bbox_format)
        except (ValueError, FileNotFoundError, KeyError, IndexError, TypeError) as exc:
            errors.append(ItemError(rid, "load", f"{type(exc).__name__}: {exc}"))
            continue
        items.append(
            BenchItem(
                id=rid,
                image_id=str(file),
                qa_type=qa_type,
                family=fam,
                question=question,
                truth=truth,
                answer=answer,
                value_m=value,
                options=options,
                objects=regions,
                relation=rel if rel in _REL else None,
                source="spatialrgpt",
                image=img,
            )
        )
    return items, errors


_REL = {"left", "right", "above", "below", "behind", "front", "tall", "short", "wide", "thin", "big", "small"}


# ------------------------------------------------------------------------------------------------------------
# CV-Bench
# ------------------------------------------------------------------------------------------------------------
def load_cvbench(path: str | Path, image_root: str | Path | None = None, subset: str | None = "3D") -> Loaded:
    """CV-Bench; ``subset`` "3D" keeps the Depth and Distance tasks ("2D" the others, None everything)."""
    path = Path(path)
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        rows = _read_json_records(path)
        base = path.parent
    else:
        rows = _read_parquet(_parquet_files(path))
        base = path if path.is_dir() else path.parent
    root = Path(image_root) if image_root else base
    items, errors = [], []
    for i, r in enumerate(rows):
        if subset and str(r.get("type", "")).upper() != subset.upper():
            continue
        rid = f"cvbench:{r.get('idx', i)}"
        try:
            choices = [str(c) for c in r["choices"]]
            k = _letter_index(r["answer"])
            if k is None or not 0 <= k < len(choices):
                raise ValueError(f"answer {r['answer']!r} is not a choice letter of {choices}")
            img = _image_ref(r.get("image") if r.get("image") is not None else r.get("filename"), root, base)
        except (ValueError, FileNotFoundError, KeyError, TypeError) as exc:
            errors.append(ItemError(rid, "load", f"{type(exc).__name__}: {exc}"))
            continue
        q = str(r.get("prompt") or _choices_prompt(str(r["question"]), choices))
        task = str(r.get("task", "")).lower() or "task"
        items.append(
            BenchItem(
                id=rid,
                image_id=str(r.get("filename") or rid),
                qa_type=f"cvbench_{task}",
                family="choice",
                question=q,
                truth=choices[k],
                answer=str(r["answer"]),
                options=choices,
                source="cvbench",
                image=img,
            )
        )
    return items, errors


# ------------------------------------------------------------------------------------------------------------
# BLINK
# ------------------------------------------------------------------------------------------------------------
BLINK_TASKS = ("Relative_Depth", "Spatial_Relation")


def load_blink(path: str | Path, tasks: tuple[str, ...] = BLINK_TASKS) -> Loaded:
    """BLINK relative depth and spatial relation (parquet as on the Hub, one folder per task)."""
    path = Path(path)
    files = []
    for f in _parquet_files(path):
        task = next((t for t in tasks if t.lower() in str(f).lower()), None)
        if task is not None or path.is_file():
            files.append((f, task))
    if not files:
        raise FileNotFoundError(f"no BLINK parquet for tasks {tasks} under {path}")
    items, errors = [], []
    for f, task in files:
        for i, r in enumerate(_read_parquet([f])):
            task_r = task or str(r.get("sub_task") or "").replace(" ", "_")
            rid = f"blink:{task_r}:{r.get('idx', i)}"
            try:
                choices = [str(c) for c in r["choices"]]
                k = _letter_index(r["answer"])
                if k is None or not 0 <= k < len(choices):
                    raise ValueError(f"answer {r['answer']!r} is not a choice letter of {choices}")
                img = _image_ref(r.get("image_1"), None, f.parent)
            except (ValueError, FileNotFoundError, KeyError, TypeError) as exc:
                errors.append(ItemError(rid, "load", f"{type(exc).__name__}: {exc}"))
                continue
            truth = choices[k]
            if {c.lower() for c in choices} == {"yes", "no"}:
                fam, truth, options = "predicate", truth.lower(), []
                q = str(r["question"]) + " Answer yes or no."
            else:
                fam, options = "choice", choices
                q = str(r.get("prompt") or _choices_prompt(str(r["question"]), choices))
            items.append(
                BenchItem(
                    id=rid,
                    image_id=rid,
                    qa_type=f"blink_{task_r.lower()}",
                    family=fam,
                    question=q,
                    truth=truth,
                    answer=str(r["answer"]),
                    options=options,
                    source="blink",
                    image=img,
                )
            )
    return items, errors


# ------------------------------------------------------------------------------------------------------------
# VSR
# ------------------------------------------------------------------------------------------------------------
def load_vsr(path: str | Path, image_root: str | Path | None = None) -> Loaded:
    """Visual Spatial Reasoning (jsonl with COCO image names; images under ``image_root``)."""
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    items, errors = [], []
    for i, r in enumerate(_read_json_records(path)):
        rid = f"vsr:{i}"
        try:
            label = r["label"]
            if str(label).lower() not in ("0", "1", "true", "false"):
                raise ValueError(f"label {label!r} is not 0/1")
            truth = "yes" if str(label).lower() in ("1", "true") else "no"
            img = _image_ref(r["image"], root, path.parent)
        except (ValueError, FileNotFoundError, KeyError) as exc:
            errors.append(ItemError(rid, "load", f"{type(exc).__name__}: {exc}"))
            continue
        q = f'Is this statement about the image true: "{r["caption"]}"? Answer yes or no.'
        items.append(
            BenchItem(
                id=rid,
                image_id=str(r["image"]),
                qa_type="vsr",
                family="predicate",
                question=q,
                truth=truth,
                answer=truth,
                source="vsr",
                image=img,
                meta={"relation": r.get("relation")},
            )
        )
    return items, errors


LOADERS: dict[str, Callable[..., Loaded]] = {
    "qspatial": load_qspatial,
    "spatialrgpt": load_spatialrgpt,
    "cvbench": load_cvbench,
    "blink": lambda p, image_root=None: load_blink(p),
    "vsr": load_vsr,
}


def load_any(
    bench: str, image_root: str | None = None, limit: int | None = None, seed: int = 0
) -> tuple[list[BenchItem], list[ItemError], Path | None]:
    """Items of ``bench``: ``<kind>:<path>`` for a public benchmark (kinds: qspatial, spatialrgpt, cvbench,
    blink, vsr), else a folder or parquet written by ``bench-build``. Returns (items, errors, bench_dir) where
    bench_dir is set for our own benchmarks (its frames serve the oracle)."""
    from spatialvlm.eval.bench import load_bench, subsample

    kind, sep, rest = bench.partition(":")
    if sep and kind in LOADERS and not Path(bench).exists():
        root = str(Path(image_root).expanduser()) if image_root else None
        items, errors = LOADERS[kind](str(Path(rest).expanduser()), image_root=root)
        return subsample(items, limit, seed), errors, None
    p = Path(bench).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"benchmark not found: {bench} (a bench-build folder, or one of "
            f"{', '.join(k + ':PATH' for k in LOADERS)})"
        )
    return load_bench(p, limit, seed), [], (p if p.is_dir() else p.parent.parent)
