"""Training a small VLM from nothing (the ``cpu-tiny`` recipe, ``trainer: scratch``).

A model trained from random weights on two CPU cores cannot afford what fine-tuning a pretrained VLM affords: one
question per forward pass, and one word of feedback per question. This trainer makes every CPU cycle count and
gives the model dense targets for the steps it could not discover on its own, all taken from the synth output
itself (``qa.parquet``, ``objects.parquet``, ``scenes.parquet`` and the instance / depth maps: the pipeline's own
output, the same files a user's ``synth`` run writes):

* **Many questions per image in one pass.** A row is the image prompt (``<bos>User:<image>``) followed by several
  question/answer segments. Each segment attends to the image prefix and to itself only (a block attention mask)
  and gets the position ids it would have alone, so every segment is computed exactly as the single question the
  model answers at inference. The vision tower runs once per image for all of its questions.
* **Loss on answers only**, as in the SFT recipe.
* **Auxiliary objectives** (linear heads thrown away after training; weights in ``scratch``):
  ``vision``: per image token, which object labels cover the cell and its median log-depth;
  ``lookup``: at the last token of every object name in a question, some heads of one decoder layer must put their
  attention on that object's image tokens (the lookup a model trained from nothing never found by itself);
  ``object``: the hidden state there must tell the object's position, depth and size;
  ``pair``: at the last prompt token, the hidden state must tell how the two named objects differ in those
  attributes, in the order the record names them;
  ``copy``: for choice answers ("The NAME."), some heads of one decoder layer must attend, from the position that
  writes the name, to that name's first token in the question (so the answer copies a name that was asked about);
  ``position``: every image token must also tell its own cell's place in the image (a left/right comparison needs
  where the named objects are, and nothing else asks the vision tower for it);
  ``gather``: two heads of one decoder layer must attend, from the last prompt token (and, for choice answers, from
  the token before the name the answer writes), one to the last token of name A, one to that of name B, so the
  positions read at the names reach the place where the answer is decided;
  ``decision``: for a two-object question with a two-way answer (yes / no, name A / name B, the first / second
  relation word), the hidden state after one decoder layer short of the last, at the same tokens as ``gather``, must
  already tell which way the answer goes (a linear head, logistic loss), so the last layer only has to write it.
  Off in ``cpu-tiny``: on the CPU experiment it helped the blind twin more than the model that sees the picture
  (docs/training.md, "Decision objective").
  The answer itself still has to come from the language model: nothing of this is used at inference, where the
  saved model is a plain ``Idefics3ForConditionalGeneration``.

Blind training (``blind: true``) replaces every picture by the same grey image and keeps everything else, so the
blind model gets the identical recipe and budget.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatialvlm.train.config import TrainConfig

log = logging.getLogger(__name__)

# per-object attributes the ``object`` and ``pair`` heads predict (standardised over the training objects)
ATTRIBUTES = (
    "x_image", "y_image", "log_depth", "log_width_image", "log_height_image",  # from the picture, always known
    "log_width", "log_height", "log_volume", "z_bottom", "z_center", "forward", "right",  # canonical frame only
)
N_IMAGE_ATTRS = 5
HEADS_FILE = "scratch_heads.pt"  # the auxiliary heads of a finished run (probes only; inference does not read it)
# attributes whose readouts the probe reports
PROBE_ATTRS = ("x_image", "y_image", "log_depth", "z_center", "log_height", "log_volume")


@dataclass
class ScratchSpec:
    """Options of the from-scratch trainer (``TrainConfig.scratch``)."""

    questions_per_row: int = 12  # question/answer segments packed behind one image prefix
    images_per_step: int = 8  # images per optimizer step (all of their questions, in rows)
    max_questions_per_image: int = 0  # 0 = all of an image's questions every epoch
    type_weights: dict[str, float] = field(default_factory=dict)  # qa_type -> weight (others 1.0) when an epoch
    #                          draws ``max_questions_per_image`` of an image's questions: oversamples those types
    vision_weight: float = 1.0
    lookup_weight: float = 1.0
    lookup_layer: int = 1  # decoder layer whose first ``lookup_heads`` heads learn to find a named object
    lookup_heads: int = 2
    object_weight: float = 1.0
    object_layer: int = 2  # hidden state after this many decoder layers, at an object name's last token
    pair_weight: float = 1.0
    pair_layer: int = 3  # hidden state after this many decoder layers, at the last prompt token
    copy_weight: float = 1.0
    copy_layer: int = -1  # decoder layer (-1 = the last) whose first ``copy_heads`` heads point at the chosen name
    copy_heads: int = 1
    copy_key: str = "first"  # "first": copy heads point at the chosen name's first token (what the answer writes
    #                          next); "last": at its last token, where lookup / object put the object's place
    position_weight: float = 0.0  # vision: each image token must also tell its own cell's place (x, y) in the image
    gather_weight: float = 0.0
    gather_layer: int = 2  # decoder layer whose first two heads look, from the last prompt token, at names A and B
    decision_weight: float = 0.0
    decision_layer: int = 3  # hidden state after this many decoder layers tells the two-way answer (see above)
    attr_weights: dict[str, float] = field(default_factory=dict)  # per-attribute weight in the object and pair
    #                          losses (name in ATTRIBUTES -> weight; the others 1.0), e.g. {"x_image": 4.0}
    workers: int = 2  # processes decoding pictures and maps before training

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ScratchSpec:
        d = dict(d or {})
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown scratch option(s) {sorted(unknown)}; known: {sorted(known)}")
        spec = cls(**d)
        if spec.copy_key not in ("first", "last"):
            raise ValueError(f"scratch.copy_key must be 'first' or 'last', got {spec.copy_key!r}")
        bad = sorted(set(spec.attr_weights) - set(ATTRIBUTES))
        if bad:
            raise ValueError(f"scratch.attr_weights names unknown attribute(s) {bad}; known: {list(ATTRIBUTES)}")
        if spec.type_weights and spec.max_questions_per_image <= 0:
            raise ValueError("scratch.type_weights weighs the draw of max_questions_per_image questions per image; "
                             "set max_questions_per_image > 0 too")
        if any(not (float(w) > 0) for w in spec.type_weights.values()):
            raise ValueError(f"scratch.type_weights must be > 0, got {spec.type_weights}")
        if any(not (float(w) >= 0) for w in spec.attr_weights.values()):
            raise ValueError(f"scratch.attr_weights must be >= 0, got {spec.attr_weights}")
        return spec

    def attribute_weights(self) -> np.ndarray:
        """Weight of each of ``ATTRIBUTES`` in the object and pair losses (1.0 unless ``attr_weights`` says)."""
        return np.array([float(self.attr_weights.get(a, 1.0)) for a in ATTRIBUTES], np.float32)


# ------------------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Segment:
    """One question/answer as tokens, with where its object names end and which objects they are."""

    image: int  # index into ScratchData.images
    ids: list[int]
    answer_start: int  # first answer token (the tokens before it are the prompt)
    names: list[tuple[int, int]]  # (token index of a name's last token, object index into ScratchData.objects)
    pair: tuple[int, int] | None  # (object A, object B) of a two-object question
    copy: tuple[int, int] | None = None  # choice answers: (token that predicts the answer's name, that name's first
    #                                       token in the question; its last token with copy_key "last")
    pair_names: tuple[int, int] | None = None  # two-object questions: last token of name A and of name B
    decision: int | None = None  # two-way answers of two-object questions: 1 = yes / name A / first relation word
    qa_type: str = ""


@dataclass
class ScratchData:
    prefix: list[int]  # <bos>User:<image block>
    image_token_id: int
    grid: tuple[int, int]
    labels: list[str]
    pixels: Any  # (N, 3, S, S) float16 tensor, or (1, 3, S, S) for blind training
    presence: np.ndarray  # (N, cells, labels) uint8
    log_depth: np.ndarray  # (N, cells) float32
    depth_valid: np.ndarray  # (N, cells) uint8
    image_ids: list[str]
    objects: list[dict]  # {"image": i, "object_id", "cells": (cells,) bool, "attrs": (A,) float32, "valid": (A,) bool}
    attr_mean: np.ndarray
    attr_std: np.ndarray
    segments: list[Segment]
    by_image: list[list[int]]  # segment indices per image
    info: dict[str, Any] = field(default_factory=dict)


def _answer(row: dict, answer_form: str, noise: float | None) -> str:
    from spatialvlm.train.data import scale_numbers, short_answer

    text = str(row["answer"])
    if answer_form in ("short", "terse"):
        short = short_answer(str(row["family"]), row["truth"], text, numbers=answer_form == "terse")
        if short is not None and str(row["family"]) != "quantitative":
            return short  # qualitative short forms hold no measured number for the label noise
        text = short or text  # a terse length still takes the noise below
    if noise is not None and row.get("value_m") is not None and row["value_m"] == row["value_m"]:
        text, _ = scale_numbers(text, noise)
    return text


def decision_target(family: str, qa_type: str, truth: Any, objects: list[str]) -> int | None:
    """Which way a two-object question's two-way answer goes: 1 for "yes", for name A (the record's first object) or
    for the first relation word of a classify type (``left`` of ``left_right_classify``), 0 for the other option;
    None when the answer is not one of two (quantitative, clock directions) or does not match either option."""
    t = str(truth).strip().lower()
    if family == "predicate":
        return {"true": 1, "false": 0}.get(t)
    if family == "choice" and len(objects) == 2 and objects[0] != objects[1]:
        return 1 if str(truth) == objects[0] else 0 if str(truth) == objects[1] else None
    if family == "classify":
        words = qa_type.split("_")
        if len(words) == 3 and words[2] == "classify":
            return 1 if t == words[0] else 0 if t == words[1] else None
    return None


def _name_end_token(offsets, span: tuple[int, int]) -> int | None:
    """Index of the prompt token that holds a name's last character (``span`` in the question; the prompt text has
    one leading space, hence +1)."""
    end = span[1] + 1
    return next((t for t, (a, b) in enumerate(offsets) if a < end <= b), None)


def _object_attributes(o, width: float, height: float, canonical: bool) -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros(len(ATTRIBUTES), np.float32)
    ok = np.zeros(len(ATTRIBUTES), bool)
    b = np.asarray(o["box2d"], float) if o.get("box2d") is not None else None
    c = np.asarray(o["aabb_cam_center"], float) if o.get("aabb_cam_center") is not None else None
    if b is not None:
        a[0] = 0.5 * (b[0] + b[2]) / width
        a[1] = 0.5 * (b[1] + b[3]) / height
        a[3] = math.log(max(b[2] - b[0], 1.0) / width)
        a[4] = math.log(max(b[3] - b[1], 1.0) / height)
        ok[[0, 1, 3, 4]] = True
    if c is not None and c[2] > 0:
        a[2], ok[2] = math.log(c[2]), True
    cc, cs = o.get("aabb_canon_center"), o.get("aabb_canon_size")
    if canonical and cc is not None and cs is not None:
        cc, cs = np.asarray(cc, float), np.maximum(np.asarray(cs, float), 1e-3)
        a[5], a[6], a[7] = math.log(cs[0]), math.log(cs[2]), float(np.log(cs).sum())
        a[8], a[9], a[10], a[11] = cc[2] - cs[2] / 2, cc[2], cc[1], cc[0]
        ok[5:] = True
    return a, ok


def _image_job(args) -> dict:
    """Worker: the processed picture and the per-cell / per-object targets of one image."""
    image_path, masks_path, depth_path, labels_of, object_ids, grid, proc_dir, blind = args
    from PIL import Image

    from spatialvlm.train.vision_warmup import cell_targets, object_cells

    ip = _image_processor(proc_dir)
    out: dict[str, Any] = {}
    if not blind:
        with Image.open(image_path) as im:
            enc = ip(images=[[im.convert("RGB")]], return_tensors="np")
        if "pixel_attention_mask" in enc and not np.asarray(enc["pixel_attention_mask"]).all():
            raise ValueError(f"{image_path}: the image processor pads this picture; the from-scratch trainer expects "
                             "pictures resized to the full square (Idefics3 processor without image splitting)")
        out["pixels"] = enc["pixel_values"][0, 0].astype(np.float16)
    inst = np.asarray(Image.open(masks_path)).astype(np.int64)
    if inst.ndim == 3:
        inst = inst[..., 0]
    depth = np.asarray(Image.open(depth_path)).astype(np.float32) / 1000.0
    t = cell_targets(inst, depth, labels_of, max(labels_of.values(), default=-1) + 1 if labels_of else 0, *grid)
    out["presence_idx"] = [np.nonzero(t["presence"].reshape(grid[0] * grid[1], -1)[:, k])[0]
                           for k in range(t["presence"].shape[-1])]
    out["log_depth"] = t["log_depth"].reshape(-1)
    out["depth_valid"] = t["depth_valid"].reshape(-1)
    out["cells"] = {}
    for oid in object_ids:
        oc = object_cells(inst, depth, oid, *grid)
        if oc is not None:
            out["cells"][oid] = oc["cells"]
    return out


_IP_CACHE: dict[str, Any] = {}


def _image_processor(proc_dir: str):
    if proc_dir not in _IP_CACHE:
        from transformers import AutoProcessor

        _IP_CACHE[proc_dir] = AutoProcessor.from_pretrained(proc_dir).image_processor
    return _IP_CACHE[proc_dir]


def read_tables(data_paths: list[str]) -> tuple[Any, Any, Any]:
    """qa, objects and scenes tables of one or more synth outputs, with a ``root`` column."""
    import pandas as pd

    qas, objs, scenes = [], [], []
    for p in data_paths:
        root = Path(p)
        need = [root / "qa.parquet", root / "objects.parquet", root / "scenes.parquet"]
        missing = [str(f) for f in need if not f.exists()]
        if missing:
            raise FileNotFoundError(
                f"the from-scratch trainer reads the synth output tables; missing: {', '.join(missing)} (write them "
                "with `spatialvlm synth --out DIR` and pass DIR to --data)"
            )
        for lst, f in zip((qas, objs, scenes), need):
            t = pd.read_parquet(f)
            t["root"] = str(root)
            lst.append(t)
    return pd.concat(qas, ignore_index=True), pd.concat(objs, ignore_index=True), pd.concat(scenes, ignore_index=True)


def training_texts(qa, answer_form: str) -> list[str]:
    """Questions and answers a from-scratch tokenizer is trained on."""
    out = []
    for r in qa.to_dict("records"):
        out.append(str(r["question"]))
        out.append(_answer(r, answer_form, None))
    return out


_WORD = r"(?<![A-Za-z0-9]){}(?![A-Za-z0-9])"


def name_spans(question: str, names: list[str]) -> list[tuple[int, int] | None]:
    """Character span of each name in the question (longest names first, no overlaps), None where absent."""
    taken: list[tuple[int, int]] = []
    spans: list[tuple[int, int] | None] = [None] * len(names)
    for k in sorted(range(len(names)), key=lambda i: -len(names[i])):
        for m in re.finditer(_WORD.format(re.escape(names[k])), question):
            s, e = m.span()
            if all(e <= a or s >= b for a, b in taken):
                spans[k] = (s, e)
                taken.append((s, e))
                break
    return spans


def prepare(cfg: TrainConfig, spec: ScratchSpec, processor, tables, exclude: set[str], base_dir: Path,
            progress: bool = True) -> ScratchData:
    """Tokenise every question/answer behind the image prefix and compute the per-image and per-object targets."""
    import torch
    from PIL import Image

    qa, objs, scenes = tables
    tok = processor.tokenizer
    image_token_id = int(tok.convert_tokens_to_ids("<image>"))
    side = round(math.sqrt(int(processor.image_seq_len)))
    grid = (side, side)
    from spatialvlm.train.infer import build_prompt

    prompt = build_prompt(processor, "")
    head = prompt[: prompt.index("<image>") + len("<image>")]
    enc = processor(text=[head], images=[[Image.new("RGB", (64, 64))]], return_tensors="pt", add_special_tokens=False)
    prefix = enc["input_ids"][0].tolist()
    if sum(1 for t in prefix if t == image_token_id) != side * side:
        raise ValueError("the image prompt does not hold one token per cell of the image grid")

    o = objs[objs["object_id"].notna()].copy()
    o["label"] = o["label"].astype(str)
    labels = sorted(o.loc[o["label"] != "", "label"].unique().tolist())
    lab_index = {lab: i for i, lab in enumerate(labels)}
    scenes = scenes[~scenes["image_id"].astype(str).isin(exclude)]
    scenes = scenes[scenes["masks"].apply(lambda v: isinstance(v, str) and bool(v))
                    & scenes["depth"].apply(lambda v: isinstance(v, str) and bool(v))]
    qa_img = set(zip(qa["root"], qa["image_id"].astype(str)))
    scenes = scenes[[(r, str(i)) in qa_img for r, i in zip(scenes["root"], scenes["image_id"])]]
    keys = [(r, str(i)) for r, i in zip(scenes["root"], scenes["image_id"])]
    index = {k: n for n, k in enumerate(keys)}
    obj_rows: dict[tuple[str, str], list] = {}
    for r in o.to_dict("records"):
        obj_rows.setdefault((r["root"], str(r["image_id"])), []).append(r)

    jobs = []
    blind = bool(cfg.blind)
    for (root, img), s in zip(keys, scenes.to_dict("records")):
        rows = obj_rows.get((root, img), [])
        labels_of = {int(r["object_id"]): lab_index[r["label"]] for r in rows if r["label"] in lab_index}
        jobs.append((str(Path(root) / s["image"]), str(Path(root) / s["masks"]), str(Path(root) / s["depth"]),
                     labels_of, [int(r["object_id"]) for r in rows], grid, str(base_dir), blind))
    t0 = time.time()
    results = _run_jobs(jobs, spec.workers, progress)
    n, cells = len(keys), side * side
    presence = np.zeros((n, cells, len(labels)), np.uint8)
    log_depth = np.zeros((n, cells), np.float32)
    valid = np.zeros((n, cells), np.uint8)
    if blind:
        grey = Image.new("RGB", (int(scenes["width"].iloc[0]), int(scenes["height"].iloc[0])), (128, 128, 128))
        pv = _image_processor(str(base_dir))(images=[[grey]], return_tensors="np")["pixel_values"][0]
        pixels = torch.from_numpy(pv.astype(np.float16))
    else:
        pixels = torch.from_numpy(np.stack([r["pixels"] for r in results]))
    for i, r in enumerate(results):
        for k, idx in enumerate(r["presence_idx"]):
            presence[i, idx, k] = 1
        log_depth[i] = r["log_depth"]
        valid[i] = r["depth_valid"]
    log.info("scratch data: %d pictures and their maps prepared in %.0f s", n, time.time() - t0)

    # objects
    objects: list[dict] = []
    obj_index: dict[tuple[str, str, int], int] = {}
    sc = {k: s for k, s in zip(keys, scenes.to_dict("records"))}
    for (root, img), i in index.items():
        s = sc[(root, img)]
        for r in obj_rows.get((root, img), []):
            oid = int(r["object_id"])
            c = results[i]["cells"].get(oid)
            if c is None:
                continue
            a, ok = _object_attributes(r, float(s["width"]), float(s["height"]), bool(s.get("canonicalized", False)))
            obj_index[(root, img, oid)] = len(objects)
            objects.append({"image": i, "object_id": oid, "cells": np.asarray(c, bool), "attrs": a, "valid": ok})
    A = np.stack([ob["attrs"] for ob in objects]) if objects else np.zeros((0, len(ATTRIBUTES)), np.float32)
    V = np.stack([ob["valid"] for ob in objects]) if objects else np.zeros((0, len(ATTRIBUTES)), bool)
    mean = np.array([A[V[:, k], k].mean() if V[:, k].any() else 0.0 for k in range(A.shape[1])], np.float32)
    std = np.array([A[V[:, k], k].std() + 1e-3 if V[:, k].any() else 1.0 for k in range(A.shape[1])], np.float32)
    for ob in objects:
        ob["attrs"] = ((ob["attrs"] - mean) / std).astype(np.float32)

    # question/answer segments
    rng = np.random.default_rng(cfg.seed)
    noise = None
    if cfg.label_noise_std > 0:
        noise = np.maximum(0.05, 1.0 + rng.normal(0.0, cfg.label_noise_std, size=len(qa)))
    eou = "<end_of_utterance>"
    segments: list[Segment] = []
    by_image: list[list[int]] = [[] for _ in range(n)]
    stats = {"questions": 0, "names_found": 0, "names_missing": 0, "noised": 0, "copy_unaligned": 0}
    records = [(qi, r) for qi, r in enumerate(qa.to_dict("records"))
               if (r["root"], str(r["image_id"])) in index]
    questions = [str(r["question"]).strip() for _, r in records]
    answers = [_answer(r, cfg.answer_form, None if noise is None else float(noise[qi])) for qi, r in records]
    # one batched call each (the fast tokenizer's own threads): per-question calls take minutes at 150k rows
    penc = tok([f" {q}{eou}\nAssistant:" for q in questions], add_special_tokens=False,
               return_offsets_mapping=True)
    aenc = tok([f" {x}{eou}" for x in answers], add_special_tokens=False, return_offsets_mapping=True)
    for k, (qi, r) in enumerate(records):
        i = index[(r["root"], str(r["image_id"]))]
        q = questions[k]
        if noise is not None and r.get("value_m") is not None and r["value_m"] == r["value_m"]:
            stats["noised"] += 1
        pids, offsets = penc["input_ids"][k], penc["offset_mapping"][k]
        names = [str(x) for x in (r["objects"] if r["objects"] is not None else [])]
        oids = [int(x) for x in (r["object_ids"] if r["object_ids"] is not None else [])]
        spans = name_spans(q, names)
        found = []
        for span, oid in zip(spans, oids):
            ob = obj_index.get((r["root"], str(r["image_id"]), oid))
            tpos = None if span is None else _name_end_token(offsets, span)
            if ob is None or tpos is None:
                stats["names_missing"] += 1
                continue
            found.append((tpos, ob))
            stats["names_found"] += 1
        copy = None
        if str(r["family"]) == "choice" and answers[k] == f"The {r['truth']}." and str(r["truth"]) in names:
            span = spans[names.index(str(r["truth"]))]
            src = None if span is None else next((t for t, (a, b) in enumerate(offsets) if a <= span[0] + 1 < b), None)
            # " The NAME.": the answer token where the name starts, and the token that predicts it
            dst = next((t for t, (a, b) in enumerate(aenc["offset_mapping"][k]) if a <= 5 < b), None)
            if src is not None and dst and aenc["input_ids"][k][dst] == pids[src]:
                key = _name_end_token(offsets, span) if spec.copy_key == "last" else None
                copy = (len(pids) + dst - 1, src if key is None else key)
            else:
                stats["copy_unaligned"] += 1
        pair = pair_names = None
        if len(oids) == 2:
            a_ob = obj_index.get((r["root"], str(r["image_id"]), oids[0]))
            b_ob = obj_index.get((r["root"], str(r["image_id"]), oids[1]))
            if a_ob is not None and b_ob is not None and a_ob != b_ob:
                pair = (a_ob, b_ob)
                where = {ob: tp for tp, ob in found}
                if a_ob in where and b_ob in where:
                    pair_names = (where[a_ob], where[b_ob])
        decision = None
        if pair_names is not None:
            decision = decision_target(str(r["family"]), str(r["qa_type"]), r["truth"], names)
        by_image[i].append(len(segments))
        segments.append(Segment(i, list(pids) + list(aenc["input_ids"][k]), len(pids), found, pair, copy,
                                pair_names, decision, str(r["qa_type"])))
        stats["questions"] += 1
    stats["images"] = n
    stats["objects"] = len(objects)
    return ScratchData(prefix, image_token_id, grid, labels, pixels, presence, log_depth, valid,
                       [k[1] for k in keys], objects, mean, std, segments, by_image, stats)


def _run_jobs(jobs: list, workers: int, progress: bool) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="pictures and maps", unit="img", disable=not progress, mininterval=5)
    out: list[dict] = []
    if workers <= 1 or len(jobs) < 64:
        for j in jobs:
            out.append(_image_job(j))
            bar.update()
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for r in pool.imap(_image_job, jobs, chunksize=16):
                out.append(r)
                bar.update()
    bar.close()
    return out


# ------------------------------------------------------------------------------------------------------------
# batches
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Batch:
    images: Any  # (G,) long: indices into data.pixels rows (all 0 when blind)
    image_rows: list[int]  # per image of the batch, its index into ScratchData arrays
    input_ids: Any  # (R, L)
    position_ids: Any  # (R, L)
    mask: Any  # (R, 1, L, L) bool
    row_image: Any  # (R,) index into the batch's images
    label_pos: Any  # (N, 2) (row, position predicting the token)
    label_ids: Any  # (N,)
    name_pos: Any  # (M, 2)
    name_obj: list[int]  # (M,) object indices
    pair_pos: Any  # (P, 2)
    pair_obj: list[tuple[int, int]]
    copy_pos: Any = None  # (C, 3): row, query position, key position
    gather_pos: Any = None  # (Q, 4): row, query position (the last prompt token; for choice answers also the token
    #                          before the name the answer writes), name A's and name B's last tokens
    decision_pos: Any = None  # (D, 2): row, query position (the gather queries of questions with a two-way answer)
    decision_tgt: Any = None  # (D,) float: 1 = yes / name A / first relation word
    decision_seg: list[int] = field(default_factory=list)  # (D,) segment index of each decision query
    n_answers: int = 0


def make_batch(data: ScratchData, image_rows: list[int], seg_lists: list[list[int]], pad_id: int) -> Batch:
    """Rows: for each image of the batch, its segments in chunks; every row starts with the image prefix."""
    import torch

    P = len(data.prefix)
    rows: list[tuple[int, list[int]]] = []
    for g, segs in enumerate(seg_lists):
        for s in segs:
            rows.append((g, s))
    lens = [P + sum(len(data.segments[s].ids) for s in segs) for _, segs in rows]
    R, L = len(rows), max(lens)
    ids = torch.full((R, L), pad_id, dtype=torch.long)
    pos = torch.zeros((R, L), dtype=torch.long)
    seg = torch.full((R, L), -1, dtype=torch.long)
    label_pos, label_ids, name_pos, name_obj, pair_pos, pair_obj, copy_pos = [], [], [], [], [], [], []
    gather_pos, decision_pos, decision_tgt, decision_seg = [], [], [], []
    for r, (g, segs) in enumerate(rows):
        ids[r, :P] = torch.tensor(data.prefix)
        pos[r, :P] = torch.arange(P)
        seg[r, :P] = 0
        t = P
        for k, s in enumerate(segs, start=1):
            sg = data.segments[s]
            n = len(sg.ids)
            ids[r, t:t + n] = torch.tensor(sg.ids)
            pos[r, t:t + n] = torch.arange(P, P + n)
            seg[r, t:t + n] = k
            for j in range(sg.answer_start, n):
                label_pos.append((r, t + j - 1))
                label_ids.append(sg.ids[j])
            for tp, ob in sg.names:
                name_pos.append((r, t + tp))
                name_obj.append(ob)
            if sg.pair is not None:
                pair_pos.append((r, t + sg.answer_start - 1))
                pair_obj.append(sg.pair)
            if sg.pair_names is not None:
                a, b = t + sg.pair_names[0], t + sg.pair_names[1]
                # the deciding tokens: the last prompt token and, for a choice answer, the token before the name
                # it writes
                for qp in [t + sg.answer_start - 1] + ([t + sg.copy[0]] if sg.copy is not None else []):
                    gather_pos.append((r, qp, a, b))
                    if sg.decision is not None:
                        decision_pos.append((r, qp))
                        decision_tgt.append(float(sg.decision))
                        decision_seg.append(s)
            if sg.copy is not None:
                copy_pos.append((r, t + sg.copy[0], t + sg.copy[1]))
            t += n
    same = (seg.unsqueeze(2) == seg.unsqueeze(1)) | (seg.unsqueeze(1) == 0)
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    mask = same & causal.unsqueeze(0) & (seg.unsqueeze(1) >= 0) & (seg.unsqueeze(2) >= 0)
    mask[:, :, 0] |= seg < 0  # padding queries see the first token (an all-masked row gives NaN)
    return Batch(
        images=torch.tensor(image_rows, dtype=torch.long),
        image_rows=list(image_rows),
        input_ids=ids, position_ids=pos, mask=mask.unsqueeze(1),
        row_image=torch.tensor([g for g, _ in rows], dtype=torch.long),
        label_pos=torch.tensor(label_pos, dtype=torch.long).reshape(-1, 2),
        label_ids=torch.tensor(label_ids, dtype=torch.long),
        name_pos=torch.tensor(name_pos, dtype=torch.long).reshape(-1, 2), name_obj=name_obj,
        pair_pos=torch.tensor(pair_pos, dtype=torch.long).reshape(-1, 2), pair_obj=pair_obj,
        copy_pos=torch.tensor(copy_pos, dtype=torch.long).reshape(-1, 3),
        gather_pos=torch.tensor(gather_pos, dtype=torch.long).reshape(-1, 4),
        decision_pos=torch.tensor(decision_pos, dtype=torch.long).reshape(-1, 2),
        decision_tgt=torch.tensor(decision_tgt, dtype=torch.float32), decision_seg=decision_seg,
        n_answers=sum(1 for _, segs in rows for _ in segs),
    )


def epoch_batches(data: ScratchData, spec: ScratchSpec, rng: np.random.Generator, images: list[int] | None = None):
    """(image rows, segment chunks per image) for one pass over the images, shuffled."""
    order = rng.permutation(len(data.by_image)) if images is None else np.asarray(images)
    order = [int(i) for i in order if data.by_image[int(i)]]
    for b in range(0, len(order), spec.images_per_step):
        imgs = order[b:b + spec.images_per_step]
        chunks = []
        for i in imgs:
            cap = spec.max_questions_per_image
            if cap and spec.type_weights and len(data.by_image[i]) > cap:  # a weighted draw without replacement
                w = np.array([float(spec.type_weights.get(data.segments[s].qa_type, 1.0)) for s in data.by_image[i]])
                segs = list(rng.choice(data.by_image[i], size=cap, replace=False, p=w / w.sum()))
            else:
                segs = list(rng.permutation(data.by_image[i]))
                if cap:
                    segs = segs[:cap]
            k = max(1, spec.questions_per_row)
            chunks.append([[int(s) for s in segs[c:c + k]] for c in range(0, len(segs), k)])
        yield imgs, chunks


# ------------------------------------------------------------------------------------------------------------
# model pieces
# ------------------------------------------------------------------------------------------------------------
def _text_model(model):
    inner = getattr(model, "model", model)
    text = getattr(inner, "text_model", None)
    if text is None or not hasattr(inner, "connector"):
        raise ValueError(f"the from-scratch trainer handles Idefics3-family models (model.text_model, "
                         f"model.connector); got {type(model).__name__}")
    return inner, text


class AuxHeads:
    """The thrown-away linear heads of the auxiliary objectives."""

    def __init__(self, hidden: int, n_labels: int):
        import torch

        self.presence = torch.nn.Linear(hidden, max(1, n_labels))
        self.depth = torch.nn.Linear(hidden, 1)
        self.object = torch.nn.Linear(hidden, len(ATTRIBUTES))
        self.pair = torch.nn.Linear(hidden, len(ATTRIBUTES))
        self.position = torch.nn.Linear(hidden, 2)
        self.decision = torch.nn.Linear(hidden, 1)
        self.modules = torch.nn.ModuleDict({"presence": self.presence, "depth": self.depth, "object": self.object,
                                            "pair": self.pair, "position": self.position,
                                            "decision": self.decision})


def attention_mass(text, layer_idx: int, hidden: list, pos_emb, mask, qpos, target, n_heads: int):
    """Attention of the first ``n_heads`` heads of decoder layer ``layer_idx`` from the query tokens ``qpos``
    ((M, 2): row, position) onto ``target`` ((M, L) weights over the key positions, the same for every head, or
    (M, heads, L), one target per head), recomputed from that layer's input exactly as the layer computes it (rotary
    positions, grouped keys, the block mask). Returns the mass (M, heads) and the keys each query may see (M, L)."""
    import torch
    from transformers.models.llama.modeling_llama import rotate_half  # Idefics3's text model is a Llama

    layer = text.layers[layer_idx]
    attn = layer.self_attn
    x = layer.input_layernorm(hidden[layer_idx])
    hd = attn.head_dim
    nh = min(n_heads, attn.config.num_attention_heads)
    cos, sin = pos_emb
    rows = qpos[:, 0]
    q = attn.q_proj(x[rows, qpos[:, 1]]).view(len(qpos), -1, hd)[:, :nh]  # (M, nh, hd)
    q = q * cos[rows, qpos[:, 1]].unsqueeze(1) + rotate_half(q) * sin[rows, qpos[:, 1]].unsqueeze(1)
    k = attn.k_proj(x).view(x.shape[0], x.shape[1], -1, hd)[:, :, torch.arange(nh) // attn.num_key_value_groups]
    k = k * cos.unsqueeze(2) + rotate_half(k) * sin.unsqueeze(2)  # (R, L, nh, hd): once per row
    parts, order = [], []
    for r in torch.unique(rows).tolist():  # each query against the keys of its own row
        sel = torch.nonzero(rows == r).squeeze(-1)
        parts.append(torch.einsum("mhd,lhd->mhl", q[sel], k[r]))
        order.append(sel)
    scores = torch.cat(parts)[torch.argsort(torch.cat(order))] * attn.scaling  # (M, nh, L)
    allowed = mask[rows, 0, qpos[:, 1]]  # (M, L)
    prob = scores.masked_fill(~allowed.unsqueeze(1), float("-inf")).float().softmax(-1)
    target = target.unsqueeze(1) if target.ndim == 2 else target[:, :nh]
    return (prob * target).sum(-1), allowed


def forward(model, aux: AuxHeads, data: ScratchData, spec: ScratchSpec, batch: Batch, weights: dict[str, float]):
    """Losses of one batch: ``{"answer": ..., "vision": ..., "lookup": ..., "object": ..., "pair": ..., "total": ...}``
    plus detached diagnostics (``lookup_mass``, ``lookup_chance``, ``answer_token_acc``)."""
    import torch
    import torch.nn.functional as F

    inner, text = _text_model(model)
    dtype = next(model.parameters()).dtype
    pix_idx = torch.zeros_like(batch.images) if data.pixels.shape[0] == 1 else batch.images
    pixels = data.pixels[pix_idx].to(dtype).unsqueeze(1)  # (G, 1, 3, S, S)
    feats = inner.get_image_features(pixel_values=pixels, return_dict=True).pooler_output
    feats = torch.stack(list(feats))  # (G, T, D)
    emb = text.get_input_embeddings()(batch.input_ids)
    img_mask = batch.input_ids == data.image_token_id
    row_feats = feats[batch.row_image]  # (R, T, D)
    emb = emb.masked_scatter(img_mask.unsqueeze(-1).expand_as(emb), row_feats.to(emb.dtype))

    pos_emb = text.rotary_emb(emb, batch.position_ids)
    h = emb
    hidden = [h]
    for layer in text.layers:
        h = layer(h, attention_mask=batch.mask, position_ids=batch.position_ids, position_embeddings=pos_emb)
        hidden.append(h)
    final = text.norm(h)

    out: dict[str, Any] = {}
    lp = batch.label_pos
    logits = model.lm_head(final[lp[:, 0], lp[:, 1]])
    out["answer"] = F.cross_entropy(logits.float(), batch.label_ids)
    out["answer_token_acc"] = float((logits.argmax(-1) == batch.label_ids).float().mean())
    total = out["answer"]

    # vision: per-cell label presence and log-depth of the batch's pictures
    if weights.get("vision", 0) > 0:
        rows = batch.image_rows
        pres = torch.from_numpy(data.presence[rows]).float()  # (G, T, labels)
        ld = torch.from_numpy(data.log_depth[rows])
        ok = torch.from_numpy(data.depth_valid[rows]).float()
        f = feats.float()
        pl = F.binary_cross_entropy_with_logits(aux.presence(f), pres, pos_weight=torch.tensor(10.0))
        dl = ((aux.depth(f).squeeze(-1) - ld).abs() * ok).sum() / ok.sum().clamp_min(1.0)
        out["vision"] = pl * 10.0 + dl
        total = total + weights["vision"] * out["vision"]
    if weights.get("position", 0) > 0:
        # every image token: its own cell's centre, standardised (uniform on [0, 1] has std 1/sqrt(12))
        gh, gw = data.grid
        cy, cx = np.meshgrid((np.arange(gh) + 0.5) / gh, (np.arange(gw) + 0.5) / gw, indexing="ij")
        tgt = torch.from_numpy(((np.stack([cx, cy], -1).reshape(-1, 2) - 0.5) * math.sqrt(12)).astype(np.float32))
        pred = aux.position(feats.float())  # (G, T, 2)
        out["position"] = ((pred - tgt) ** 2).mean()
        total = total + weights["position"] * out["position"]

    npos = batch.name_pos
    if len(batch.name_obj) and weights.get("lookup", 0) > 0:
        img_positions = torch.nonzero(batch.input_ids[0] == data.image_token_id).squeeze(-1)
        cells = torch.from_numpy(np.stack([data.objects[o]["cells"] for o in batch.name_obj])).float()
        target = torch.zeros(len(npos), batch.input_ids.shape[1])
        target[:, img_positions] = cells
        mass, allowed = attention_mass(text, spec.lookup_layer, hidden, pos_emb, batch.mask, npos, target,
                                       spec.lookup_heads)
        out["lookup"] = -torch.log(mass.clamp_min(1e-6)).mean()
        out["lookup_mass"] = float(mass.detach().mean())
        out["lookup_chance"] = float((cells.sum(1) / allowed.sum(1).float()).mean())
        total = total + weights["lookup"] * out["lookup"]

    cp = batch.copy_pos
    if cp is not None and len(cp) and weights.get("copy", 0) > 0:
        target = torch.zeros(len(cp), batch.input_ids.shape[1])
        target[torch.arange(len(cp)), cp[:, 2]] = 1.0
        layer = spec.copy_layer % len(text.layers)
        mass, _ = attention_mass(text, layer, hidden, pos_emb, batch.mask, cp[:, :2], target, spec.copy_heads)
        out["copy"] = -torch.log(mass.clamp_min(1e-6)).mean()
        out["copy_mass"] = float(mass.detach().mean())
        total = total + weights["copy"] * out["copy"]

    gp = batch.gather_pos
    if gp is not None and len(gp) and weights.get("gather", 0) > 0:
        target = torch.zeros(len(gp), 2, batch.input_ids.shape[1])
        ar = torch.arange(len(gp))
        target[ar, 0, gp[:, 2]] = 1.0
        target[ar, 1, gp[:, 3]] = 1.0
        mass, _ = attention_mass(text, spec.gather_layer % len(text.layers), hidden, pos_emb, batch.mask,
                                 gp[:, :2], target, 2)
        out["gather"] = -torch.log(mass.clamp_min(1e-6)).mean()
        out["gather_mass"] = float(mass.detach().mean())
        total = total + weights["gather"] * out["gather"]

    attr_w = torch.from_numpy(spec.attribute_weights())

    def attr_loss(pred, tgt, ok):  # mean squared error over the known attributes, each times its weight
        return (((pred - tgt) ** 2) * ok * attr_w).sum() / ok.sum().clamp_min(1.0)

    if len(batch.name_obj) and weights.get("object", 0) > 0:
        hs = hidden[spec.object_layer][npos[:, 0], npos[:, 1]].float()
        tgt = torch.from_numpy(np.stack([data.objects[o]["attrs"] for o in batch.name_obj]))
        ok = torch.from_numpy(np.stack([data.objects[o]["valid"] for o in batch.name_obj])).float()
        pred = aux.object(hs)
        out["object"] = attr_loss(pred, tgt, ok)
        out["_object"] = (pred.detach(), tgt, ok)  # for probes; keys with "_" are not logged
        total = total + weights["object"] * out["object"]

    if len(batch.pair_obj) and weights.get("pair", 0) > 0:
        pp = batch.pair_pos
        hs = hidden[spec.pair_layer][pp[:, 0], pp[:, 1]].float()
        a = np.stack([data.objects[x]["attrs"] for x, _ in batch.pair_obj])
        b = np.stack([data.objects[y]["attrs"] for _, y in batch.pair_obj])
        ok = np.stack([data.objects[x]["valid"] & data.objects[y]["valid"] for x, y in batch.pair_obj])
        pred, tgt, ok = aux.pair(hs), torch.from_numpy(a - b), torch.from_numpy(ok).float()
        out["pair"] = attr_loss(pred, tgt, ok)
        out["_pair"] = (pred.detach(), tgt, ok)
        total = total + weights["pair"] * out["pair"]

    dp = batch.decision_pos
    if dp is not None and len(dp) and weights.get("decision", 0) > 0:
        logit = aux.decision(hidden[spec.decision_layer][dp[:, 0], dp[:, 1]].float()).squeeze(-1)
        out["decision"] = F.binary_cross_entropy_with_logits(logit, batch.decision_tgt)
        out["decision_acc"] = float(((logit.detach() > 0).float() == batch.decision_tgt).float().mean())
        out["_decision"] = (logit.detach(), batch.decision_tgt)
        total = total + weights["decision"] * out["decision"]

    out["total"] = total
    return out


# ------------------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------------------
@dataclass
class ScratchState:
    step: int = 0
    seconds: float = 0.0  # training seconds before this process (resume)
    epoch: int = 0
    losses: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def lr_multiplier(fraction: float, warmup: float) -> float:
    """Linear warm-up, then cosine decay to 2 % over the (time) budget."""
    if fraction < warmup:
        return max(fraction / max(warmup, 1e-8), 0.01)
    p = (fraction - warmup) / max(1e-8, 1.0 - warmup)
    return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, p)))


def heldout_items(tables, held: set[str], n: int, seed: int, answer_form: str) -> list[dict]:
    """Scoring items (the evaluation's fields) for ``n`` random questions of the held-out images."""
    from PIL import Image

    qa, _, scenes = tables
    if not held or n <= 0:
        return []
    sub = qa[qa["image_id"].astype(str).isin(held)]
    if len(sub) > n:
        sub = sub.sample(n=n, random_state=seed)
    paths = {(r, str(i)): str(Path(r) / p) for r, i, p in zip(scenes["root"], scenes["image_id"], scenes["image"])}
    items = []
    for r in sub.to_dict("records"):
        with Image.open(paths[(r["root"], str(r["image_id"]))]) as im:
            image = im.convert("RGB")
        items.append({"image": image, "question": str(r["question"]), "answer": _answer(r, answer_form, None),
                      "qa_type": r["qa_type"], "value_m": r["value_m"], "image_id": str(r["image_id"]),
                      "family": r["family"], "truth": r["truth"], "objects": list(r["objects"])})
    return items


def train_scratch(cfg: TrainConfig):
    """Train ``cfg.model`` (``scratch:idefics3``) with this module's recipe; same outputs as ``trainer.train``."""
    import torch

    from spatialvlm.train.data import choose_heldout_ids
    from spatialvlm.train.trainer import (
        TrainResult,
        _has_model_files,
        heldout_eval,
        load_model_and_processor,
        set_vision_trainable,
    )

    t_start = time.monotonic()
    spec = ScratchSpec.from_dict(cfg.scratch)
    if cfg.torch_threads:
        torch.set_num_threads(int(cfg.torch_threads))
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.out)
    ckpts = sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])) if out_dir.is_dir() else []
    if cfg.resume and not ckpts:
        raise FileNotFoundError(f"--resume given but no checkpoint-* folder in {out_dir}")
    if not cfg.resume and out_dir.is_dir() and _has_model_files(out_dir):
        raise FileExistsError(f"{out_dir} already holds a model or checkpoints: pass --resume or choose a new --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.resume:
        (out_dir / "eval_history.jsonl").unlink(missing_ok=True)

    tables = read_tables(cfg.data)
    qa = tables[0]
    ids = set(qa["image_id"].astype(str))
    held = choose_heldout_ids(ids, cfg.eval_images, cfg.seed) if cfg.eval_images > 0 and len(ids) >= 2 else set()
    train_qa = qa[~qa["image_id"].astype(str).isin(held)]
    if not len(train_qa):
        raise ValueError("no training questions left after holding out evaluation images")
    model, processor, base_src = load_model_and_processor(
        cfg, texts=training_texts(train_qa, cfg.answer_form), out_dir=out_dir)
    if ckpts and cfg.resume:
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(str(ckpts[-1]), dtype=torch.float32)
    _text_model(model)
    set_vision_trainable(model, not cfg.freeze_vision)
    base_dir = out_dir / "base" if cfg.model.startswith("scratch:") else Path(base_src)
    if not (base_dir / "preprocessor_config.json").exists() and not (base_dir / "processor_config.json").exists():
        processor.save_pretrained(out_dir / "processor")
        base_dir = out_dir / "processor"
    data = prepare(cfg, spec, processor, tables, held, base_dir)
    info: dict[str, Any] = {"base_model": base_src, "trainer": "scratch", "scratch": asdict(spec), **data.info,
                            "rows_total": len(qa), "train_rows": len(data.segments),
                            "heldout_images": sorted(held), "heldout_rows": int(qa["image_id"].astype(str).isin(held).sum()),
                            "labels": data.labels, "attributes": list(ATTRIBUTES)}
    eval_items = heldout_items(tables, held, cfg.eval_samples, cfg.seed, cfg.answer_form)

    tcfg = model.config.text_config
    aux = AuxHeads(int(tcfg.hidden_size), len(data.labels))
    params = [p for p in model.parameters() if p.requires_grad] + list(aux.modules.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate, betas=(0.9, 0.98))
    state = ScratchState()
    if ckpts and cfg.resume:
        saved = torch.load(ckpts[-1] / "scratch_state.pt", weights_only=False)
        opt.load_state_dict(saved["optimizer"])
        aux.modules.load_state_dict(saved["aux"])
        state = ScratchState(**saved["state"])
        log.info("resumed from %s at step %d (%.1f min trained)", ckpts[-1], state.step, state.seconds / 60)
    cfg.save(out_dir / "train_config.yaml")

    weights = {"vision": spec.vision_weight, "lookup": spec.lookup_weight, "object": spec.object_weight,
               "pair": spec.pair_weight, "copy": spec.copy_weight, "position": spec.position_weight,
               "gather": spec.gather_weight, "decision": spec.decision_weight}
    budget = (cfg.max_time_minutes or 0.0) * 60.0
    prep_seconds = time.monotonic() - t_start
    if budget:
        budget = max(budget - prep_seconds, 60.0)  # the budget covers data preparation too
    steps_per_epoch = math.ceil(sum(1 for s in data.by_image if s) / spec.images_per_step)
    max_steps = cfg.max_steps if cfg.max_steps and cfg.max_steps > 0 else int(cfg.num_train_epochs * steps_per_epoch)
    pad_id = processor.tokenizer.pad_token_id or 0
    model.train()
    t0 = time.monotonic() - state.seconds
    log.info("scratch training: %d images, %d questions, %d objects; %d steps per epoch, budget %s",
             len(data.by_image), len(data.segments), len(data.objects), steps_per_epoch,
             f"{budget / 60:.1f} min" if budget else f"{max_steps} steps")
    running: dict[str, list[float]] = {}
    done = False
    while not done:
        rng = np.random.default_rng(cfg.seed + state.epoch)
        batches = list(epoch_batches(data, spec, rng))
        skip = state.step - state.epoch * steps_per_epoch
        for imgs, chunks in batches[max(0, skip):]:
            elapsed = time.monotonic() - t0
            frac = max(elapsed / budget if budget else 0.0, state.step / max(1, max_steps))
            if frac >= 1.0:
                done = True
                break
            for g in opt.param_groups:
                g["lr"] = cfg.learning_rate * lr_multiplier(frac, cfg.warmup_ratio)
            batch = make_batch(data, imgs, chunks, pad_id)
            losses = forward(model, aux, data, spec, batch, weights)
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            state.step += 1
            for k, v in losses.items():
                if k.startswith("_"):
                    continue
                running.setdefault(k, []).append(float(v.detach()) if hasattr(v, "detach") else float(v))
            if state.step % max(1, cfg.logging_steps) == 0:
                rec = {"step": state.step, "epoch": round(state.step / steps_per_epoch, 3),
                       "minutes": round((time.monotonic() - t0) / 60, 2), "lr": opt.param_groups[0]["lr"],
                       **{k: round(float(np.mean(v)), 4) for k, v in running.items()}}
                state.losses.append(rec)
                running = {}
                with open(out_dir / "train_log.jsonl", "a") as f:  # live progress, one line per logged step
                    f.write(json.dumps(rec) + "\n")
                log.info("step %d: %s", state.step, {k: v for k, v in rec.items() if k != "step"})
            if cfg.save_steps and state.step % cfg.save_steps == 0:
                state.seconds = time.monotonic() - t0
                _checkpoint(model, processor, aux, opt, state, cfg, out_dir)
            if eval_items and cfg.eval_steps and state.step % cfg.eval_steps == 0:
                heldout_eval(model, processor, eval_items, cfg, out_dir, state.step)  # appends eval_history.jsonl
        else:
            state.epoch += 1
            continue
    state.seconds = time.monotonic() - t0
    model.eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    cfg.save(out_dir / "train_config.yaml")
    torch.save({"aux": aux.modules.state_dict(), "attr_mean": data.attr_mean, "attr_std": data.attr_std,
                "attributes": list(ATTRIBUTES), "labels": data.labels}, out_dir / HEADS_FILE)
    final_eval = heldout_eval(model, processor, eval_items, cfg, out_dir, state.step) if eval_items else None
    seconds = time.monotonic() - t_start
    losses = [r.get("answer") for r in state.losses]
    summary = {"steps": state.step, "train_loss": losses[-1] if losses else None,
               "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
               "losses": losses, "log": state.losses, "seconds": seconds, "train_seconds": state.seconds,
               "prep_seconds": prep_seconds, "epochs": round(state.step / max(1, steps_per_epoch), 3),
               "info": info, "eval": final_eval}
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return TrainResult(out_dir=out_dir, train_rows=len(data.segments), heldout_rows=info["heldout_rows"],
                       steps=state.step, train_loss=summary["train_loss"], seconds=seconds, eval=final_eval, info=info)


def _checkpoint(model, processor, aux: AuxHeads, opt, state: ScratchState, cfg: TrainConfig, out_dir: Path) -> None:
    import shutil

    import torch

    ck = out_dir / f"checkpoint-{state.step}"
    model.save_pretrained(ck)
    processor.save_pretrained(ck)
    cfg.save(ck / "train_config.yaml")
    torch.save({"optimizer": opt.state_dict(), "aux": aux.modules.state_dict(), "state": state.to_dict()},
               ck / "scratch_state.pt")
    old = sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for d in old[: max(0, len(old) - max(1, cfg.save_total_limit))]:
        shutil.rmtree(d)


def lookup_probe(model_dir: str | Path, data_paths: list[str], max_images: int = 200, blind: bool = False,
                 images: list[str] | None = None) -> dict:
    """What a model trained with this recipe reads off other pictures (e.g. held-out scenes), stage by stage:

    * ``mass``: the share of attention its lookup heads put, from the last token of each object name in the
      questions, on that object's image tokens, next to ``chance``, the share those tokens are of what the heads can
      see (the value for uniform attention);
    * ``object_r`` (when the run saved its auxiliary heads, ``scratch_heads.pt``): Pearson r between the object
      head's readout at each name and the object's true attribute (x / y in the image, depth, height, size);
    * ``pair_sign``: how often the pair head, at the last prompt token of a two-object question, gets the sign of
      the difference between the two objects right, per attribute (pairs whose true difference is under 0.1
      standard deviation are left out); 0.5 is chance;
    * ``decision_by_type`` (runs with the decision objective): per question type, [right, asked] of the decision
      head's two-way call (after ``decision_layer`` decoder layers at the deciding tokens), and ``decision_acc``.

    ``blind`` shows every question the grey picture instead. ``images`` picks the image ids to probe (default: the
    first ``max_images`` in id order)."""
    import dataclasses

    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir = Path(model_dir)
    cfg = TrainConfig.load(model_dir / "train_config.yaml")
    # the probe reads every question of its pictures, whatever share of them an epoch drew in training
    spec = dataclasses.replace(ScratchSpec.from_dict(cfg.scratch), workers=1, max_questions_per_image=0,
                               type_weights={})
    cfg = dataclasses.replace(cfg, data=[str(p) for p in data_paths], label_noise_std=0.0, blind=blind)
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(str(model_dir))
    qa, objs, scenes = read_tables(cfg.data)
    keep = sorted(set(images)) if images is not None else sorted(set(scenes["image_id"].astype(str)))[:max_images]
    tables = (qa[qa["image_id"].astype(str).isin(keep)], objs, scenes[scenes["image_id"].astype(str).isin(keep)])
    data = prepare(cfg, spec, processor, tables, set(), model_dir, progress=False)
    heads = model_dir / HEADS_FILE
    aux = AuxHeads(int(model.config.text_config.hidden_size), len(data.labels))
    weights = {"lookup": 1.0}
    if heads.exists():
        saved = torch.load(heads, weights_only=False)
        for name in ("object", "pair", "decision"):  # the label head's size follows the data: not loaded
            part = {k.split(".", 1)[1]: v for k, v in saved["aux"].items() if k.startswith(name + ".")}
            # only heads the run trained (runs from before the decision objective have no decision head)
            if part and getattr(spec, f"{name}_weight") > 0:
                getattr(aux, name).load_state_dict(part)
                weights[name] = 1.0
    masses, chances, n = [], [], 0
    obj, pair, dec = [], [], {}
    with torch.no_grad():
        for imgs, chunks in epoch_batches(data, spec, np.random.default_rng(0), images=list(range(len(data.by_image)))):
            b = make_batch(data, imgs, chunks, processor.tokenizer.pad_token_id or 0)
            if not len(b.name_obj):
                continue
            out = forward(model, aux, data, spec, b, weights)
            k = len(b.name_obj)
            masses.append(out["lookup_mass"] * k)
            chances.append(out["lookup_chance"] * k)
            n += k
            if "_object" in out:
                obj.append(out["_object"])
            if "_pair" in out:
                pair.append(out["_pair"])
            if "_decision" in out:
                logit, tgt = out["_decision"]
                for s_, ok in zip(b.decision_seg, ((logit > 0).float() == tgt).tolist()):
                    dec.setdefault(data.segments[s_].qa_type, []).append(bool(ok))
    res = {"names": n, "images": len(data.by_image), "mass": sum(masses) / max(1, n),
           "chance": sum(chances) / max(1, n), "layer": spec.lookup_layer, "heads": spec.lookup_heads,
           "object_layer": spec.object_layer, "pair_layer": spec.pair_layer}
    if obj:
        pred, tgt, ok = (torch.cat(x).numpy() for x in zip(*obj))
        res["object_r"] = {}
        for name in PROBE_ATTRS:
            j = ATTRIBUTES.index(name)
            v = ok[:, j] > 0
            if v.sum() >= 3 and tgt[v, j].std() > 0 and pred[v, j].std() > 0:
                res["object_r"][name] = float(np.corrcoef(pred[v, j], tgt[v, j])[0, 1])
    if pair:
        pred, tgt, ok = (torch.cat(x).numpy() for x in zip(*pair))
        res["pairs"] = int(len(pred))
        res["pair_sign"] = {}
        for name in PROBE_ATTRS:
            j = ATTRIBUTES.index(name)
            v = (ok[:, j] > 0) & (np.abs(tgt[:, j]) > 0.1)
            if v.any():
                res["pair_sign"][name] = float(np.mean(np.sign(pred[v, j]) == np.sign(tgt[v, j])))
    if dec:
        res["decision_layer"] = spec.decision_layer
        res["decision_by_type"] = {t: [int(sum(v)), len(v)] for t, v in sorted(dec.items())}  # [right, asked]
        res["decision_acc"] = sum(sum(v) for v in dec.values()) / sum(len(v) for v in dec.values())
    return res
