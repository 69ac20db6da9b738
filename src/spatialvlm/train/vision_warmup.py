"""Vision warm-up for models trained from scratch: dense per-cell targets before the question-answer training.

A randomly initialised vision encoder learns very little from a one-word answer per question: after 45 CPU
minutes of spatial QA alone, ``cpu-tiny``'s image tokens did not say where an object is (its answers did not change
when it was shown another scene's image). The synth output already holds far denser supervision for every training
image: the instance map (``masks/``, value ``object_id + 1``), the metric depth map (``depth/``) and each object's
label (``objects.parquet``). The warm-up trains the vision tower and its projector to predict, for every image token
(one cell of the token grid the language model sees),

* which object labels cover the cell (multi-label, binary cross-entropy),
* the cell's median log-depth (L1), and
* the cell's own position in the image (so position survives into the token's features),

with small linear heads that are thrown away afterwards. With ``lookup`` on, each step also asks the language
model's first layer "Where is the LABEL": its attention from the label's last token is pushed onto the image
tokens of that object, and its output there must tell the object's position and depth. The vision side and that
layer's attention projections learn this (token embeddings and later layers stay as initialised), so the QA
training starts from a language model whose first layer already finds a named object in the image (the step it
could not discover on its own in 45 CPU minutes). Measured on cpu-tiny, the QA training then took that lookup
apart and scored worse, so no preset turns it on (docs/training.md).

Nothing here is ground truth the rest of the pipeline lacks: it is the pipeline's own perception output, the same
files a user's synth run writes.

Works for the families ``build_tiny_vlm`` makes (Idefics3: a square grid over the squashed image; Qwen2-VL /
Qwen2.5-VL: the merged-patch grid of the resized image) through the models' own ``get_image_features``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PRESENCE_MIN_FRACTION = 0.05  # a label "covers" a cell when it fills at least this fraction of it
PRESENCE_POS_WEIGHT = 10.0  # a cell holds ~1 of ~30 labels: weigh the rare positives up, or "absent" wins
PRESENCE_LOSS_WEIGHT = 10.0  # label presence is the hard part; depth (L1 in log) and position are easy by comparison


@dataclass
class WarmupReport:
    images: int
    labels: int
    steps: int
    seconds: float
    first_loss: float | None
    last_loss: float | None
    presence_accuracy: float | None  # on the last logged batches: per (cell, label) decision
    presence_recall: float | None  # of the labels present in a cell, the fraction predicted present
    presence_precision: float | None  # of the labels predicted present, the fraction that are
    depth_l1_log: float | None  # mean |log depth error| per cell, last logged batches
    lookup_mass: float | None = None  # lookup on: attention share the named object's cells get (last batches)
    lookup_chance: float | None = None  # ... and the share of the image those cells are (uniform attention)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scene_table(data_paths: list[str], exclude: set[str] | None = None) -> tuple[list[dict], list[str]]:
    """Per image: absolute paths of picture, instance map and depth map, and object_id -> label index."""
    import pandas as pd

    scenes, objs = [], []
    for p in data_paths:
        root = Path(p)
        sp, op = root / "scenes.parquet", root / "objects.parquet"
        if not sp.exists() or not op.exists():
            raise FileNotFoundError(
                f"the vision warm-up needs the synth output's scenes.parquet and objects.parquet; not found in {root}"
            )
        s = pd.read_parquet(sp, columns=["image_id", "image", "depth", "masks"])
        s["root"] = str(root)
        scenes.append(s)
        o = pd.read_parquet(op, columns=["image_id", "object_id", "label"])
        o["root"] = str(root)
        objs.append(o)
    s = pd.concat(scenes, ignore_index=True)
    o = pd.concat(objs, ignore_index=True)
    o = o[o["label"].notna() & (o["label"].astype(str) != "") & o["object_id"].notna()]
    labels = sorted(o["label"].astype(str).unique().tolist())
    index = {lab: i for i, lab in enumerate(labels)}
    by_image: dict[tuple[str, str], dict[int, int]] = {}
    for root, img, oid, lab in zip(o["root"], o["image_id"], o["object_id"], o["label"]):
        by_image.setdefault((root, str(img)), {})[int(oid)] = index[str(lab)]
    rows = []
    for root, img, im, dp, mk in zip(s["root"], s["image_id"], s["image"], s["depth"], s["masks"]):
        if exclude and str(img) in exclude:
            continue
        if not isinstance(mk, str) or not mk or not isinstance(dp, str) or not dp:
            continue
        rows.append({"image_id": str(img), "image": str(Path(root) / im), "depth": str(Path(root) / dp),
                     "masks": str(Path(root) / mk), "labels": by_image.get((root, str(img)), {})})
    return rows, labels


def _cell_edges(H: int, W: int, grid_h: int, grid_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel row / column boundaries of a ``grid_h x grid_w`` partition of an H x W image into equal rectangles."""
    return (np.linspace(0, H, grid_h + 1).round().astype(int), np.linspace(0, W, grid_w + 1).round().astype(int))


def object_cells(instance: np.ndarray, depth_m: np.ndarray, object_id: int, grid_h: int,
                 grid_w: int) -> dict[str, Any] | None:
    """Where one object lies on the token grid: the cells it fills by at least ``PRESENCE_MIN_FRACTION`` (else the
    cell it fills most), the centre of its pixels as fractions of width / height, and its median log-depth. None
    when the object has no pixel in the instance map."""
    H, W = instance.shape
    m = instance == object_id + 1
    if not m.any():
        return None
    ys, xs = _cell_edges(H, W, grid_h, grid_w)
    frac = np.zeros((grid_h, grid_w), np.float64)
    for i in range(grid_h):
        for j in range(grid_w):
            c = m[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            frac[i, j] = c.mean() if c.size else 0.0
    cells = frac >= PRESENCE_MIN_FRACTION
    if not cells.any():
        cells = frac == frac.max()
    py, px = np.nonzero(m)
    d = depth_m[m]
    d = d[np.isfinite(d) & (d > 0)]
    return {"cells": cells.reshape(-1), "x": float((px.mean() + 0.5) / W), "y": float((py.mean() + 0.5) / H),
            "log_depth": float(np.log(np.median(d))) if d.size else None}


def cell_targets(instance: np.ndarray, depth_m: np.ndarray, labels_of: dict[int, int], n_labels: int,
                 grid_h: int, grid_w: int) -> dict[str, np.ndarray]:
    """Targets for a ``grid_h x grid_w`` partition of the image into equal rectangles.

    ``instance``: (H, W) ints, ``object_id + 1`` (0 = no object); ``depth_m``: (H, W) metres (0 / non-finite =
    invalid). Returns presence (gh, gw, n_labels) in {0, 1}, log_depth (gh, gw) with depth_valid (gh, gw), and
    position (gh, gw, 2): the cell centre's (x, y) as fractions of the image width / height."""
    H, W = instance.shape
    ys, xs = _cell_edges(H, W, grid_h, grid_w)
    presence = np.zeros((grid_h, grid_w, n_labels), np.float32)
    log_depth = np.zeros((grid_h, grid_w), np.float32)
    valid = np.zeros((grid_h, grid_w), np.float32)
    lut = np.full(int(instance.max()) + 1, -1, np.int64)
    for oid, lab in labels_of.items():
        if 0 <= oid + 1 < len(lut):
            lut[oid + 1] = lab
    label_map = lut[instance]
    for i in range(grid_h):
        for j in range(grid_w):
            cell = label_map[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            if cell.size == 0:
                continue
            labs, counts = np.unique(cell[cell >= 0], return_counts=True)
            for lab, c in zip(labs, counts):
                if c >= PRESENCE_MIN_FRACTION * cell.size:
                    presence[i, j, lab] = 1.0
            d = depth_m[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            d = d[np.isfinite(d) & (d > 0)]
            if d.size:
                log_depth[i, j] = float(np.log(np.median(d)))
                valid[i, j] = 1.0
    gx = (np.arange(grid_w) + 0.5) / grid_w
    gy = (np.arange(grid_h) + 0.5) / grid_h
    position = np.stack(np.meshgrid(gx, gy), axis=-1).astype(np.float32)
    return {"presence": presence, "log_depth": log_depth, "depth_valid": valid, "position": position}


class _Family:
    """How one model family turns pictures into processor inputs and features into a token grid."""

    def __init__(self, model, processor):
        self.model = model
        self.processor = processor
        inner = getattr(model, "model", model)
        self.features_fn = getattr(inner, "get_image_features", None) or getattr(model, "get_image_features", None)
        if self.features_fn is None:
            raise ValueError(f"{type(model).__name__} has no get_image_features: the vision warm-up cannot run on it")
        self.qwen = hasattr(getattr(processor, "image_processor", None), "merge_size")

    def encode(self, image) -> dict:
        ip = self.processor.image_processor
        if self.qwen:
            out = ip(images=[image], return_tensors="pt")
            return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}
        out = ip(images=[[image]], return_tensors="pt")
        return {"pixel_values": out["pixel_values"], "pixel_attention_mask": out["pixel_attention_mask"]}

    def grid(self, enc: dict) -> tuple[int, int]:
        if self.qwen:
            m = int(self.processor.image_processor.merge_size)
            _, h, w = (int(v) for v in enc["image_grid_thw"][0])
            return h // m, w // m
        n_tokens = int(self.processor.image_seq_len)
        side = round(math.sqrt(n_tokens))
        if side * side != n_tokens:
            raise ValueError(f"expected a square grid of image tokens, got {n_tokens}")
        return side, side

    def collate(self, encs: list[dict]) -> dict:
        import torch

        dtype = next(self.model.parameters()).dtype
        out = {k: torch.cat([e[k] for e in encs], dim=0) for k in encs[0]}
        return {k: v.to(dtype) if v.is_floating_point() else v for k, v in out.items()}

    def features(self, batch: dict) -> list:
        out = self.features_fn(**batch, return_dict=True)
        feats = out.pooler_output if hasattr(out, "pooler_output") else out
        return list(feats)


class _Lookup:
    """The "Where is the LABEL" objective through the language model's first decoder layer (see the module doc).

    Inside ``with lookup:`` the language model is cut to its first layer, runs eager attention (so the attention
    weights exist) and is frozen except for that layer's attention projections; on exit all three are restored. Families whose text positions are not plain
    sequence positions (Qwen2-VL's 3D rotary positions) are not supported."""

    def __init__(self, model, processor, labels: list[str]):
        import torch

        inner = getattr(model, "model", model)
        if hasattr(inner, "get_rope_index"):
            raise ValueError(f"the lookup warm-up does not handle {type(model).__name__}'s 3D rotary positions; "
                             "use it with an Idefics3-family model or set vision_warmup_lookup: false")
        self.text = getattr(inner, "text_model", None) or getattr(inner, "language_model", None)
        if self.text is None or not hasattr(self.text, "layers"):
            raise ValueError(f"no language model with decoder layers found in {type(model).__name__}")
        tcfg = getattr(model.config, "text_config", model.config)
        self.model, self.processor, self.labels = model, processor, labels
        self.heads = max(1, int(tcfg.num_attention_heads) // 2)  # half the first layer's heads learn the lookup
        tid = getattr(model.config, "image_token_id", None)
        self.image_token_id = int(tid if tid is not None else model.config.image_token_index)
        self.head = torch.nn.Linear(int(tcfg.hidden_size), 3)  # x, y, log-depth of the named object
        self._ids: dict[tuple[str, tuple[int, int]], Any] = {}

    def ids(self, label: str, size: tuple[int, int]):
        """Token ids of the chat prompt cut right after "Where is the LABEL" (a causal model's first layer sees
        nothing later), for a picture of ``size``."""
        key = (label, size)
        if key not in self._ids:
            from PIL import Image

            from spatialvlm.train.data import GROUNDING_QUESTION
            from spatialvlm.train.infer import build_prompt

            text = build_prompt(self.processor, GROUNDING_QUESTION.format(name=label))
            end = text.rindex(f"the {label} in the image") + len(f"the {label}")
            enc = self.processor(text=[text[:end]], images=[[Image.new("RGB", size)]], return_tensors="pt",
                                 add_special_tokens=False)
            self._ids[key] = enc["input_ids"][0]
        return self._ids[key]

    def __enter__(self):
        import torch

        self._layers = self.text.layers
        self.text.layers = torch.nn.ModuleList(list(self._layers)[:1])
        self._impl = getattr(self.model.config, "_attn_implementation", None)
        self.model.set_attn_implementation("eager")
        self._flags = [(p, p.requires_grad) for p in self.text.parameters()]
        mine = {id(p) for p in self.attention_parameters()}
        for p, _ in self._flags:
            p.requires_grad_(id(p) in mine)
        return self

    def attention_parameters(self) -> list:
        """The first layer's attention projections: they learn the lookup along with the vision side (a randomly
        initialised layer's attention logits span about +-1, too flat to single out an object's few cells). The
        same module inside ``with`` (the cut model keeps it) and outside."""
        return list(self.text.layers[0].self_attn.parameters())

    def __exit__(self, *exc):
        self.text.layers = self._layers
        if self._impl:
            self.model.set_attn_implementation(self._impl)
        for p, flag in self._flags:
            p.requires_grad_(flag)
        return False

    def loss(self, feats: list, picks: list[tuple[int, dict, tuple[int, int]]]):
        """``feats``: per image its (tokens, hidden) projector output; ``picks``: per image (label index, the
        object's ``object_cells``, picture size). Returns (loss, mean attention mass on the object's cells, mean
        share of the image those cells are)."""
        import torch

        seqs = [self.ids(self.labels[lab], size) for lab, _, size in picks]
        n = max(len(q) for q in seqs)
        input_ids = torch.zeros(len(seqs), n, dtype=torch.long)
        mask = torch.zeros(len(seqs), n, dtype=torch.long)
        for b, q in enumerate(seqs):
            input_ids[b, : len(q)] = q
            mask[b, : len(q)] = 1
        img = (input_ids == self.image_token_id) & mask.bool()
        counts = img.sum(1).tolist()
        if any(c != f.shape[0] for c, f in zip(counts, feats)):
            raise ValueError(f"image tokens in the prompt ({counts}) do not match the image features "
                             f"({[int(f.shape[0]) for f in feats]})")
        emb = self.text.get_input_embeddings()(input_ids)
        emb = emb.masked_scatter(img.unsqueeze(-1).expand_as(emb), torch.cat(feats).to(emb.dtype))
        out = self.text(inputs_embeds=emb, attention_mask=mask, output_attentions=True, use_cache=False)
        att = out.attentions[0]
        last = mask.sum(1) - 1
        rows = torch.arange(len(seqs))
        loss_att, masses, shares = 0.0, [], []
        for b, (_, obj, _) in enumerate(picks):
            cells = torch.from_numpy(obj["cells"]).to(att.dtype)
            a = att[b, : self.heads, last[b]][:, img[b]]  # (heads, image tokens)
            m = (a * cells).sum(-1)
            loss_att = loss_att - torch.log(m.clamp_min(1e-6)).mean()
            masses.append(float(m.detach().mean()))
            shares.append(float(cells.mean()))
        pred = self.head(out.last_hidden_state[rows, last].float())
        xy = torch.tensor([[o["x"], o["y"]] for _, o, _ in picks], dtype=torch.float32)
        ld = torch.tensor([o["log_depth"] if o["log_depth"] is not None else 0.0 for _, o, _ in picks])
        ok = torch.tensor([o["log_depth"] is not None for _, o, _ in picks], dtype=torch.float32)
        loss_reg = torch.nn.functional.mse_loss(pred[:, :2], xy) * 10.0 + \
            ((pred[:, 2] - ld).abs() * ok).sum() / ok.sum().clamp(min=1)
        return loss_att / len(picks) + loss_reg, float(np.mean(masses)), float(np.mean(shares))


def _open(row: dict):
    from PIL import Image

    from spatialvlm.io.writers import decode_depth_png, decode_instance_png

    with Image.open(row["image"]) as im:
        image = im.convert("RGB")
    return image, decode_instance_png(row["masks"]), decode_depth_png(row["depth"])


def warmup_vision(model, processor, data_paths: list[str], minutes: float, *, learning_rate: float = 1e-3,
                  batch_size: int = 32, seed: int = 0, exclude_images: set[str] | None = None,
                  max_steps: int | None = None, log_every: int = 25, out_file: Path | None = None,
                  max_cached: int = 20000, lookup: bool = False) -> WarmupReport:
    """Train ``model``'s vision tower and projector on per-cell targets for ``minutes`` (or ``max_steps``).

    The heads are discarded; the language model is not touched (with ``lookup``: only its first layer's attention
    projections). Images listed in ``exclude_images`` (held-out
    evaluation images) are skipped. Progress is logged every ``log_every`` steps (and appended to ``out_file`` as
    JSON lines when given). The first ``max_cached`` images seen keep their processed pixels and targets in memory
    (about 0.2 MB each at 192 x 192), later ones are read again at every visit. ``lookup`` adds the
    "Where is the LABEL" objective through the language model's first layer (Idefics3-family models)."""
    import json

    import torch

    rows, labels = _scene_table(data_paths, exclude_images)
    if not rows:
        raise ValueError(f"no image with an instance map and a depth map in {data_paths}: nothing to warm up on")
    fam = _Family(model, processor)
    hidden = int(getattr(model.config, "text_config", model.config).hidden_size)
    torch.manual_seed(seed)
    heads = torch.nn.Linear(hidden, len(labels) + 3)
    vision_params = [p for mod in _vision_modules(model) for p in mod.parameters()]
    for p in vision_params:
        p.requires_grad_(True)
    look = _Lookup(model, processor, labels) if lookup else None
    params = vision_params + list(heads.parameters()) + \
        (list(look.head.parameters()) + look.attention_parameters() if look else [])
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
    budget = max(1.0, minutes * 60.0)
    rng = np.random.default_rng(seed)
    pos_weight = torch.tensor(PRESENCE_POS_WEIGHT)
    cache: dict[int, tuple[dict, dict]] = {}

    def item(k: int) -> tuple[dict, dict]:
        # processed pixels (half precision) and targets are cached: later epochs read no file
        if k in cache:
            return cache[k]
        image, inst, depth = _open(rows[k])
        enc = fam.encode(image)
        gh, gw = fam.grid(enc)
        tgt = {key: torch.from_numpy(v) for key, v in
               cell_targets(inst, depth, rows[k]["labels"], len(labels), gh, gw).items()}
        if look is not None:  # objects whose label is unique in the picture: "the LABEL" names one thing
            labs = list(rows[k]["labels"].values())
            objs = [(lab, object_cells(inst, depth, oid, gh, gw)) for oid, lab in rows[k]["labels"].items()
                    if labs.count(lab) == 1]
            tgt["objects"] = [(lab, o) for lab, o in objs if o is not None]
            tgt["size"] = image.size
        enc = {key: v.half() if v.is_floating_point() else v for key, v in enc.items()}
        if len(cache) < max_cached:
            cache[k] = (enc, tgt)
        return enc, tgt

    model.train()
    t0 = time.monotonic()
    step, first, last, window, look_window = 0, None, None, [], []
    order = rng.permutation(len(rows))
    pos = 0
    log.info("vision warm-up: %d images, %d labels, %.1f min budget", len(rows), len(labels), minutes)
    while True:
        elapsed = time.monotonic() - t0
        if elapsed >= budget or (max_steps is not None and step >= max_steps):
            break
        frac = min(1.0, elapsed / budget)
        if max_steps:
            frac = max(frac, step / max_steps)
        lr = learning_rate * (min(1.0, frac / 0.05) if frac < 0.05 else 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = max(lr, learning_rate * 0.02)
        idx = []
        for _ in range(min(batch_size, len(rows))):
            if pos >= len(order):
                order, pos = rng.permutation(len(rows)), 0
            idx.append(int(order[pos]))
            pos += 1
        encs, tgts = [], []
        for k in idx:
            enc, tgt = item(k)
            encs.append(enc)
            tgts.append(tgt)
        feats = fam.features(fam.collate(encs))
        loss_look = 0.0
        if look is not None:
            picks, pf = [], []
            for t, f in zip(tgts, feats):
                if t["objects"]:
                    lab, o = t["objects"][int(rng.integers(len(t["objects"])))]
                    picks.append((lab, o, t["size"]))
                    pf.append(f)
            if picks:
                with look:
                    loss_look, mass, share = look.loss(pf, picks)
                look_window.append((mass, share))
                look_window = look_window[-4:]
        loss_p, loss_d, loss_x, stats = 0.0, 0.0, 0.0, []
        for enc, t, f in zip(encs, tgts, feats):
            gh, gw = t["log_depth"].shape
            out = heads(f.reshape(gh, gw, -1).float())
            logit = out[..., : len(labels)]
            pres = t["presence"]
            loss_p = loss_p + torch.nn.functional.binary_cross_entropy_with_logits(logit, pres, pos_weight=pos_weight)
            v = t["depth_valid"]
            dl1 = ((out[..., len(labels)] - t["log_depth"]).abs() * v).sum() / v.sum().clamp(min=1)
            loss_d = loss_d + dl1
            loss_x = loss_x + torch.nn.functional.mse_loss(out[..., len(labels) + 1:], t["position"])
            with torch.no_grad():
                pred = logit > 0
                stats.append(((pred == (pres > 0.5)).float().mean().item(), (pred & (pres > 0.5)).sum().item(),
                              (pres > 0.5).sum().item(), pred.sum().item(), dl1.item()))
        n = len(idx)
        loss = (loss_p * PRESENCE_LOSS_WEIGHT + loss_d + loss_x) / n + loss_look
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        value = float(loss.item())
        first = value if first is None else first
        last = value
        window.extend(stats)
        window = window[-4 * batch_size:]
        if step % log_every == 0:
            rec = _summary(window)
            rec.update({"step": step, "loss": round(value, 4), "minutes": round((time.monotonic() - t0) / 60, 2)})
            rec.update(_lookup_summary(look_window))
            log.info("vision warm-up %s", rec)
            if out_file is not None:
                with open(out_file, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
    s = _summary(window)
    rep = WarmupReport(images=len(rows), labels=len(labels), steps=step, seconds=round(time.monotonic() - t0, 1),
                       first_loss=first, last_loss=last, presence_accuracy=s.get("presence_accuracy"),
                       presence_recall=s.get("presence_recall"),
                       presence_precision=s.get("presence_precision"), depth_l1_log=s.get("depth_l1_log"),
                       **_lookup_summary(look_window))
    log.info("vision warm-up done: %s", rep.to_dict())
    return rep


def _summary(window: list[tuple]) -> dict:
    if not window:
        return {}
    acc = float(np.mean([w[0] for w in window]))
    hit = sum(w[1] for w in window)
    tot = sum(w[2] for w in window)
    said = sum(w[3] for w in window)
    return {"presence_accuracy": round(acc, 4), "presence_recall": round(hit / tot, 4) if tot else None,
            "presence_precision": round(hit / said, 4) if said else None,
            "depth_l1_log": round(float(np.mean([w[4] for w in window])), 4)}


def _lookup_summary(window: list[tuple[float, float]]) -> dict:
    """Mean attention mass on the named objects' cells and their mean share of the image, last batches ({} if none)."""
    if not window:
        return {}
    return {"lookup_mass": round(float(np.mean([w[0] for w in window])), 4),
            "lookup_chance": round(float(np.mean([w[1] for w in window])), 4)}


def _vision_modules(model) -> list:
    from spatialvlm.train.trainer import PROJECTOR_NAMES, VISION_NAMES, find_submodule

    mods = []
    for names in (VISION_NAMES, PROJECTOR_NAMES):
        found = find_submodule(model, names)
        if found is not None:
            mods.append(found[1])
    if not mods:
        raise ValueError(f"no vision tower found in {type(model).__name__}")
    return mods
