"""Building spatial benchmarks with exact answers, and reading them back.

``build_bench`` reads an RGB-D folder in the foundation format (rendered scenes or any frames with 3D boxes or
masks), and for each frame:

1. lifts it with the pipeline (:func:`spatialvlm.geometry.scene.build_scene`, exact depth and masks) to learn
   what the camera saw: object names after the ambiguity rule, truncation and occlusion;
2. builds the ground-truth scene (:func:`spatialvlm.qa.truth.gt_scene`: the generator's meshes for rendered
   frames, the annotated 3D boxes otherwise) with those names and visibility, so only objects the image shows
   well are asked about;
3. synthesizes candidate questions from the ground-truth scene with the standard gates (answers clear by a
   margin, values measurable).

Frames with neither generator ground truth nor 3D boxes fall back to the scene lifted from their sensor depth
and masks as the truth (``truth_source = "depth+masks"``, recorded per item). Then questions are drawn
balanced over types (``per_type`` each) and, for binary types, over answers (as many yes as no, as many
first-named as second-named choices, both relation words of a classify type).

Output folder::

    data/test-00000-of-00001.parquet   HF dataset (images embedded): id, image, image_id, qa_type, family,
                                       question, answer, truth, value_m, options, objects, object_ids,
                                       relation, source, truth_source
    bench.json                         how it was built, counts per type / answer, the frames folder
    errors.jsonl                       frames that could not be used, with the reason

Load it with ``datasets.load_dataset("parquet", data_files=".../data/*.parquet")`` or :func:`load_bench`.
"""

from __future__ import annotations

import copy
import io
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatialvlm.eval.items import BenchItem, options_for_type, truth_string
from spatialvlm.qa.taxonomy import ALL_TYPES, TYPES
from spatialvlm.records import ItemError

DATA_FILE = "data/test-00000-of-00001.parquet"


@dataclass
class BenchConfig:
    per_type: int = 50
    seed: int = 0
    types: list[str] = field(default_factory=list)  # empty = all 44
    qa_per_image: int = 176  # candidates drawn per image before balancing (4 per type)
    image_format: str = "jpeg"  # jpeg (quality 95) or png
    limit_frames: int | None = None


def _encode(image: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    im = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if fmt.lower() in ("jpg", "jpeg"):
        im.save(buf, format="JPEG", quality=95)
    elif fmt.lower() == "png":
        im.save(buf, format="PNG")
    else:
        raise ValueError(f"image_format must be jpeg or png, got {fmt!r}")
    return buf.getvalue()


def answer_key(family: str, truth: Any, objects: Sequence[str]) -> str | None:
    """What the answer balance is over: yes/no, first/second named, the relation word; None = not balanced."""
    if family == "predicate":
        return truth_string(truth)
    if family == "choice":
        return "first" if truth == objects[0] else "second"
    if family == "classify":
        return str(truth)
    return None


def truth_scene(frame):
    """(scene with ground-truth geometry, pipeline scene, truth source) for one frame."""
    from spatialvlm.geometry.scene import build_scene
    from spatialvlm.qa.truth import gt_scene

    seen = build_scene(frame)
    has_gt = (frame.meta or {}).get("generator") == "spatialvlm.render" or (
        frame.objects and all(o.box3d_cam is not None for o in frame.objects)
    )
    if not has_gt:
        return seen, seen, "depth+masks"
    gt = gt_scene(frame, names_from=seen)
    seen_by_id = {o.id: o for o in seen.objects}
    for o in gt.objects:
        s = seen_by_id.get(o.id)
        if s is None:  # dropped by the pipeline (too few points): the image does not show it well
            o.name = ""
            continue
        # what the camera saw (truncation, occlusion, top view) is judged from the image, as for any scene
        o.visibility = copy.deepcopy(s.visibility)
        o.mask = s.mask
    return gt, seen, "generator" if (frame.meta or {}).get("generator") == "spatialvlm.render" else "3d-boxes"


def build_bench(
    frames_dir: str | Path, out_dir: str | Path, cfg: BenchConfig | None = None, progress: bool = False
) -> dict[str, Any]:
    """Build a balanced benchmark (see the module docstring). Returns the bench.json content."""
    from spatialvlm.io.frames import read_frames
    from spatialvlm.qa.synth import QAConfig, synthesize_qa

    cfg = cfg or BenchConfig()
    types = list(cfg.types) or list(ALL_TYPES)
    unknown = sorted(set(types) - set(ALL_TYPES))
    if unknown:
        raise ValueError(f"unknown question types {unknown}; known: {ALL_TYPES}")
    frames_dir = Path(frames_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    qcfg = QAConfig(per_image=cfg.qa_per_image, types={t: 1.0 for t in types}, seed=cfg.seed)

    errors: list[ItemError] = []
    images: dict[str, bytes] = {}
    pools: dict[tuple[str, str | None], list[tuple[Any, str]]] = defaultdict(list)
    it = read_frames(frames_dir)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="bench-build", unit="frame")
    n_frames = 0
    for fr in it:
        if isinstance(fr, ItemError):
            errors.append(fr)
            continue
        if cfg.limit_frames is not None and n_frames >= cfg.limit_frames:
            break
        n_frames += 1
        try:
            scene, _, source = truth_scene(fr)
            recs = synthesize_qa(scene, qcfg, seed=cfg.seed)
        except ValueError as exc:
            errors.append(ItemError(fr.image_id, "bench", f"{type(exc).__name__}: {exc}"))
            continue
        if not recs:
            errors.append(
                ItemError(
                    fr.image_id,
                    "bench",
                    "no askable question (objects hidden, dropped or all answers within the margins)",
                )
            )
            continue
        images[fr.image_id] = _encode(fr.image, cfg.image_format)
        for r in recs:
            pools[(r.qa_type, answer_key(r.family, r.truth, r.objects))].append((r, source))

    rng = np.random.default_rng(cfg.seed)
    chosen: list[tuple[Any, str]] = []
    shortfall: dict[str, int] = {}
    for t in types:
        keys = sorted((k for (tt, k) in pools if tt == t), key=str)
        if not keys:
            shortfall[t] = cfg.per_type
            continue
        fam = TYPES[t].family
        if fam in ("predicate", "choice", "classify"):
            # exact balance over the two answers
            per_key = min([cfg.per_type // 2] + [len(pools[(t, k)]) for k in keys]) if len(keys) == 2 else 0
            picks = []
            for k in keys if per_key else []:
                pool = pools[(t, k)]
                picks += [pool[i] for i in rng.choice(len(pool), per_key, replace=False)]
        else:
            pool = pools[(t, None)]
            picks = [pool[i] for i in rng.choice(len(pool), min(cfg.per_type, len(pool)), replace=False)]
        if len(picks) < cfg.per_type:
            shortfall[t] = cfg.per_type - len(picks)
        chosen += picks

    rows: dict[str, list] = defaultdict(list)
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for r, source in chosen:
        key = answer_key(r.family, r.truth, r.objects)
        counts[r.qa_type][str(key)] = counts[r.qa_type].get(str(key), 0) + 1
        oid = "-".join(str(i) for i in r.object_ids)
        item_id = f"{r.image_id}:{r.qa_type}:{oid}"
        rows["id"].append(item_id)
        rows["image"].append({"bytes": images[r.image_id], "path": None})
        rows["image_id"].append(r.image_id)
        rows["qa_type"].append(r.qa_type)
        rows["family"].append(r.family)
        rows["question"].append(r.question)
        rows["answer"].append(r.answer)
        rows["truth"].append(truth_string(r.truth))
        rows["value_m"].append(None if r.value_m is None else float(r.value_m))
        rows["options"].append(options_for_type(r.qa_type, list(r.objects)))
        rows["objects"].append(list(r.objects))
        rows["object_ids"].append([int(i) for i in r.object_ids])
        rows["relation"].append(TYPES[r.qa_type].relation)
        rows["source"].append("spatialvlm")
        rows["truth_source"].append(source)
    _write_dataset(rows, out / DATA_FILE)
    with open(out / "errors.jsonl", "w") as f:
        f.writelines(json.dumps(e.to_row()) + "\n" for e in errors)
    meta = {
        "format": "spatialvlm-bench/1",
        "frames_dir": str(frames_dir.resolve()),
        "config": {
            "per_type": cfg.per_type,
            "seed": cfg.seed,
            "types": types,
            "qa_per_image": cfg.qa_per_image,
            "image_format": cfg.image_format,
            "limit_frames": cfg.limit_frames,
        },
        "n_frames": n_frames,
        "n_images_used": len({r.image_id for r, _ in chosen}),
        "n_items": len(chosen),
        "n_errors": len(errors),
        "counts": {t: counts[t] for t in types if t in counts},
        "shortfall": shortfall,
        "truth_sources": dict(Counter(s for _, s in chosen)),
    }
    (out / "bench.json").write_text(json.dumps(meta, indent=2))
    return meta


def _write_dataset(rows: dict[str, list], path: Path) -> None:
    import datasets

    feats = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "image_id": datasets.Value("string"),
            "qa_type": datasets.Value("string"),
            "family": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "truth": datasets.Value("string"),
            "value_m": datasets.Value("float64"),
            "options": datasets.Sequence(datasets.Value("string")),
            "objects": datasets.Sequence(datasets.Value("string")),
            "object_ids": datasets.Sequence(datasets.Value("int64")),
            "relation": datasets.Value("string"),
            "source": datasets.Value("string"),
            "truth_source": datasets.Value("string"),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        rows = {k: [] for k in feats}
    ds = datasets.Dataset.from_dict(dict(rows), features=feats)
    ds.to_parquet(str(path))


def bench_files(bench: str | Path) -> list[Path]:
    p = Path(bench)
    if p.is_file():
        return [p]
    files = sorted((p / "data").glob("*.parquet")) or sorted(p.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"no benchmark parquet under {p} (expected {p / DATA_FILE}); build one with "
            "`spatialvlm bench-build`"
        )
    return files


def subsample(items: list, limit: int | None, seed: int = 0) -> list:
    """A seeded random subset of ``limit`` items in their original order (all of them when limit is None)."""
    if limit is None or limit >= len(items):
        return items
    keep = sorted(np.random.default_rng(seed).choice(len(items), int(limit), replace=False))
    return [items[i] for i in keep]


def load_bench(bench: str | Path, limit: int | None = None, seed: int = 0) -> list[BenchItem]:
    """Items of a benchmark written by :func:`build_bench` (a folder or one parquet file); ``limit`` keeps a
    seeded random subset (so that every type stays represented)."""
    import pyarrow.parquet as pq

    items: list[BenchItem] = []
    for f in bench_files(bench):
        table = pq.read_table(f)
        for r in table.to_pylist():
            img = r.get("image")
            items.append(
                BenchItem(
                    id=str(r["id"]),
                    image_id=str(r["image_id"]),
                    qa_type=r["qa_type"],
                    family=r["family"],
                    question=r["question"],
                    truth=str(r["truth"]),
                    answer=r.get("answer") or "",
                    value_m=r.get("value_m"),
                    options=list(r.get("options") or []),
                    objects=list(r.get("objects") or []),
                    object_ids=[int(i) for i in (r.get("object_ids") or [])],
                    relation=r.get("relation"),
                    source=r.get("source") or "",
                    image=img.get("bytes") if isinstance(img, dict) else img,
                    meta={"truth_source": r.get("truth_source")},
                )
            )
    return subsample(items, limit, seed)
