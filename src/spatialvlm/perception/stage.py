"""The perception stage: Frame -> Frame, filling in what a frame lacks (metric depth, intrinsics, objects with
masks, a support-surface mask), so the geometry and QA stages run unchanged on ordinary photos.

Order per batch: scene filter -> depth + intrinsics -> open-vocabulary detection -> NMS -> box-prompted masks ->
optional region captions -> support mask. Rejected or failed frames come back as :class:`ItemError` in place."""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..records import Frame, Intrinsics, ItemError, ObjectAnnotation
from .adapters import (
    box_area,
    box_mask,
    clip_depth,
    focal_from_exif,
    intrinsics_from_focal,
    intrinsics_from_fov_prior,
    nms,
    rescale_intrinsics,
)
from .vocabulary import DEFAULT_SUPPORT_PROMPTS, DEFAULT_VOCABULARY, load_vocabulary

# score thresholds that suit each detector's calibration when ``detection_threshold`` is left at None
DEFAULT_DETECTION_THRESHOLDS = {"owlv2": 0.1, "grounding-dino": 0.3}


@dataclass
class PerceptionConfig:
    """Everything that decides how photos become frames. ``None`` for a model spec switches that step off
    (no depth model: frames without depth fail; no segmenter: box-shaped masks; no filter: keep all)."""

    depth: str | None = "depth-pro:apple/DepthPro-hf"
    detector: str | None = "owlv2:google/owlv2-base-patch16-ensemble"
    segmenter: str | None = "sam:facebook/sam-vit-base"
    captioner: str | None = None
    scene_filter: str | None = "clip:openai/clip-vit-base-patch32"
    embedder: str | None = "hf-mean-pool:sentence-transformers/all-MiniLM-L6-v2"
    vocabulary: list[str] = field(default_factory=lambda: list(DEFAULT_VOCABULARY))
    vocabulary_file: str | None = None  # replaces ``vocabulary`` when set
    support_prompts: list[str] = field(default_factory=lambda: list(DEFAULT_SUPPORT_PROMPTS))
    # thresholds
    filter_threshold: float = 0.5  # keep when the positive prompts hold at least this probability
    filter_rgbd: bool = False  # also filter frames that arrive with sensor depth
    detection_threshold: float | None = None  # None: per detector (owlv2 0.1, grounding-dino 0.3)
    support_threshold: float | None = None  # None: same as detection_threshold
    nms_iou: float = 0.5
    class_agnostic_nms: bool = True  # one box per object even when two vocabulary entries fire on it
    max_objects: int = 30
    min_box_area_frac: float = 0.0005  # drop boxes smaller than this fraction of the image
    max_box_area_frac: float = 0.9  # drop boxes that cover (nearly) the whole image
    min_mask_pixels: int = 50
    clip_masks_to_box: bool = True  # a box-prompted mask may not leak beyond its box (+ margin)
    mask_box_margin: float = 0.05  # margin as a fraction of the box size
    duplicate_threshold: float = 0.85  # cosine similarity from which two names count as the same (ambiguity)
    caption_max_words: int = 6
    min_depth_m: float = 0.05
    max_depth_m: float = 65.0  # predicted depth beyond this (sky) is invalid; RGB-D folders store <= 65.535 m
    # camera
    fov_prior_deg: float = 65.0  # horizontal-ish FoV of the longer image side when nothing better is known
    intrinsics: list[float] | None = None  # override [fx, fy, cx, cy] (always wins)
    intrinsics_size: list[int] | None = None  # [width, height] the override refers to (rescaled per image)
    fov_deg: float | None = None  # override by field of view across the longer side (always wins)
    # runtime
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.vocabulary_file:
            self.vocabulary = load_vocabulary(self.vocabulary_file)
        self.vocabulary = [str(v).strip() for v in self.vocabulary if str(v).strip()]
        if self.detector and not self.vocabulary:
            raise ValueError("the detection vocabulary is empty")
        if self.intrinsics is not None and len(self.intrinsics) != 4:
            raise ValueError(f"intrinsics override must be [fx, fy, cx, cy], got {self.intrinsics}")
        if self.intrinsics_size is not None and len(self.intrinsics_size) != 2:
            raise ValueError(f"intrinsics_size must be [width, height], got {self.intrinsics_size}")
        if not 0.0 <= self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in [0, 1], got {self.nms_iou}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")

    # ---- (de)serialisation ----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PerceptionConfig:
        data = dict(data or {})
        data.pop("versions", None)
        data.pop("resolved", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown perception config keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> PerceptionConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of config keys")
        if "perception" in data and isinstance(data["perception"], dict):  # a whole-pipeline config
            data = data["perception"]
        return cls.from_dict(data)

    def with_overrides(self, overrides: Iterable[str]) -> PerceptionConfig:
        """Apply ``key=value`` strings (values parsed as YAML: ``detector=null``, ``vocabulary=[cup, chair]``)."""
        overrides = list(overrides)
        import yaml

        data = asdict(self)
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not key=value")
            key, value = item.split("=", 1)
            key = key.strip()
            key = key.removeprefix("perception.")
            if key not in data:
                raise ValueError(f"unknown perception config key {key!r}")
            data[key] = yaml.safe_load(value)
        keys = [o.split("=", 1)[0].strip() for o in overrides]
        if any(k.endswith("vocabulary") for k in keys) and not any(k.endswith("vocabulary_file") for k in keys):
            data["vocabulary_file"] = None  # an explicit list replaces a file given in the YAML
        return PerceptionConfig.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to say how a dataset was made: the settings, the model specs, library versions."""
        d = asdict(self)
        d["versions"] = library_versions()
        return d

    def to_yaml(self, path: str | Path) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("spatialvlm", "numpy", "torch", "transformers", "sentence-transformers", "pillow", "datasets"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


# --------------------------------------------------------------------------------------------------------------


def override_intrinsics(cfg: PerceptionConfig, width: int, height: int) -> Intrinsics | None:
    if cfg.intrinsics is not None:
        fx, fy, cx, cy = (float(v) for v in cfg.intrinsics)
        if cfg.intrinsics_size is not None:
            w0, h0 = (int(v) for v in cfg.intrinsics_size)
            return rescale_intrinsics(Intrinsics(fx, fy, cx, cy, w0, h0), width, height)
        return Intrinsics(fx, fy, cx, cy, width, height)
    if cfg.fov_deg is not None:
        return intrinsics_from_fov_prior(width, height, float(cfg.fov_deg))
    return None


def _clip_mask_to_box(mask: np.ndarray, box, margin: float) -> np.ndarray:
    x0, y0, x1, y1 = box
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    h, w = mask.shape
    return mask & box_mask((x0 - mx, y0 - my, x1 + mx, y1 + my), h, w)


class PerceptionStage:
    """Loads each configured model once (through the registry cache) and maps batches of frames."""

    def __init__(self, cfg: PerceptionConfig | None = None):
        import torch

        from .registry import get_backend, parse_spec

        self.cfg = cfg = cfg or PerceptionConfig()
        torch.manual_seed(cfg.seed)
        kw = {"device": cfg.device, "dtype": cfg.dtype}
        bs = {"batch_size": cfg.batch_size}
        self.scene_filter = (get_backend("filter", cfg.scene_filter, threshold=cfg.filter_threshold, **kw, **bs)
                             if cfg.scene_filter else None)
        self.depth = get_backend("depth", cfg.depth, **kw, **bs) if cfg.depth else None
        self.detector = get_backend("detector", cfg.detector, **kw, **bs) if cfg.detector else None
        self.segmenter = get_backend("segmenter", cfg.segmenter, **kw, **bs) if cfg.segmenter else None
        self.captioner = (get_backend("captioner", cfg.captioner, max_words=cfg.caption_max_words, **kw)
                          if cfg.captioner else None)
        self._embedder = None
        det_name = parse_spec(cfg.detector)[0] if cfg.detector else ""
        self.detection_threshold = (cfg.detection_threshold if cfg.detection_threshold is not None
                                    else DEFAULT_DETECTION_THRESHOLDS.get(det_name, 0.2))
        self.support_threshold = (cfg.support_threshold if cfg.support_threshold is not None
                                  else self.detection_threshold)
        self.timings: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    @property
    def embedder(self):
        """The text embedder for the ambiguity rule (loaded on first use)."""
        if self._embedder is None and self.cfg.embedder:
            from .registry import get_backend

            self._embedder = get_backend("embedder", self.cfg.embedder, device=self.cfg.device, dtype=self.cfg.dtype)
        return self._embedder

    @property
    def similar(self):
        """``similar(names) -> groups`` for the ambiguity rule (:func:`spatialvlm.qa.naming.assign_names`), using
        the configured embedder and ``duplicate_threshold``; None when no embedder is configured."""
        from .embed import similarity_grouper

        return similarity_grouper(self.cfg.embedder, self.cfg.duplicate_threshold, self.cfg.device, self.cfg.dtype)

    def describe(self) -> dict[str, Any]:
        out = self.cfg.to_dict()
        out["resolved"] = {
            name: b.describe() for name, b in (("scene_filter", self.scene_filter), ("depth", self.depth),
                                               ("detector", self.detector), ("segmenter", self.segmenter),
                                               ("captioner", self.captioner)) if b is not None}
        out["resolved"]["detection_threshold"] = self.detection_threshold
        return out

    # ------------------------------------------------------------------------------------------------------------
    def _timed(self, name: str, n: int, fn, *args):
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t
            self.counts[name] = self.counts.get(name, 0) + n

    def _run_step(self, name: str, items: list[int], fn, results: list, stage: str = "perception") -> dict[int, Any]:
        """Run ``fn(items)`` as one batch; if the batch fails, retry item by item so that one bad frame becomes an
        ItemError and does not sink the others. Returns {index: output}."""
        if not items:
            return {}
        try:
            outs = self._timed(name, len(items), fn, items)
            return dict(zip(items, outs))
        except Exception as exc:  # noqa: BLE001 - recorded per item below, after a per-item retry
            if len(items) == 1:
                results[items[0]] = ItemError(self._item_id(items[0]), stage, f"{name}: {type(exc).__name__}: {exc}")
                return {}
        out: dict[int, Any] = {}
        for i in items:
            try:
                out[i] = self._timed(name, 1, fn, [i])[0]
            except Exception as exc:  # noqa: BLE001 - recorded, not swallowed
                results[i] = ItemError(self._item_id(i), stage, f"{name}: {type(exc).__name__}: {exc}")
        return out

    def _item_id(self, i: int) -> str:
        return self._frames[i].image_id

    def __call__(self, frames: list[Frame]) -> list[Frame | ItemError]:
        cfg = self.cfg
        self._frames = frames = [dataclasses.replace(f, meta=dict(f.meta), objects=list(f.objects)) for f in frames]
        results: list[Frame | ItemError | None] = [None] * len(frames)
        for i, f in enumerate(frames):
            img = f.image
            if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8):
                results[i] = ItemError(f.image_id, "perception",
                                       f"image must be H x W x 3 uint8 RGB, got {getattr(img, 'shape', None)} "
                                       f"{getattr(img, 'dtype', type(img).__name__)}")
        alive = lambda: [i for i in range(len(frames)) if results[i] is None]

        # 1. scene filter
        if self.scene_filter is not None:
            idx = [i for i in alive() if cfg.filter_rgbd or frames[i].depth is None]
            decisions = self._run_step("filter", idx, lambda ii: self.scene_filter.decide(
                [frames[i].image for i in ii]), results, stage="filter")
            for i, d in decisions.items():
                frames[i].meta["filter"] = {"keep": bool(d.keep), "score": round(float(d.score), 4),
                                            "best_prompt": d.best_prompt}
                if not d.keep:
                    results[i] = ItemError(frames[i].image_id, "filter",
                                           f"rejected by scene filter: score={d.score:.3f} "
                                           f"best negative prompt={d.best_negative!r}")

        # 2. depth + intrinsics
        for i in alive():
            f = frames[i]
            ov = override_intrinsics(cfg, f.width, f.height)
            if ov is not None:
                f.intrinsics, f.meta["intrinsics_source"] = ov, "override"
            elif f.intrinsics is not None:
                f.meta.setdefault("intrinsics_source", "frame")
        need = [i for i in alive() if frames[i].depth is None]
        if need and self.depth is None:
            for i in need:
                results[i] = ItemError(frames[i].image_id, "perception", "frame has no depth and no depth model is "
                                                                         "configured (set `depth`)")
            need = []

        def fallback_focal(f: Frame) -> tuple[float, str]:
            fe = focal_from_exif(f.meta.get("exif"), f.width, f.height)
            if fe is not None:
                return fe, "exif"
            return intrinsics_from_fov_prior(f.width, f.height, cfg.fov_prior_deg).fx, "prior"

        def run_depth(ii: list[int]):
            known = [frames[i].intrinsics.fx if frames[i].intrinsics is not None else None for i in ii]
            fb = [fallback_focal(frames[i])[0] for i in ii]
            return self.depth.predict([frames[i].image for i in ii], focal_px=known, fallback_focal_px=fb)

        for i, pred in self._run_step("depth", need, run_depth, results).items():
            f = frames[i]
            if pred.depth.shape != (f.height, f.width):
                results[i] = ItemError(f.image_id, "perception",
                                       f"depth model returned {pred.depth.shape} for a {f.width}x{f.height} image")
                continue
            f.depth = clip_depth(pred.depth, cfg.min_depth_m, cfg.max_depth_m)
            f.meta["depth_source"] = self.depth.spec
            if f.intrinsics is None and pred.focal_px:
                f.intrinsics = intrinsics_from_focal(pred.focal_px, f.width, f.height)
                f.meta["intrinsics_source"] = "model"
            if not np.any(f.depth > 0):
                results[i] = ItemError(f.image_id, "perception", "depth model produced no valid depth in "
                                       f"[{cfg.min_depth_m}, {cfg.max_depth_m}] m")
        for i in alive():
            f = frames[i]
            if f.intrinsics is None:
                focal, src = fallback_focal(f)
                f.intrinsics = intrinsics_from_focal(focal, f.width, f.height)
                f.meta["intrinsics_source"] = src

        # 3. detection -> NMS -> masks -> captions -> support mask
        need = [i for i in alive() if not frames[i].objects]
        if need and self.detector is not None:
            self._detect_and_segment(frames, need, results)
        for i in alive():
            frames[i].meta.setdefault("perception", {})["spec"] = {
                "depth": cfg.depth, "detector": cfg.detector, "segmenter": cfg.segmenter, "captioner": cfg.captioner}
            results[i] = frames[i]
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------------------------------
    def _detect_and_segment(self, frames: list[Frame], need: list[int], results: list) -> None:
        cfg = self.cfg
        support = [p for p in cfg.support_prompts if p not in cfg.vocabulary]
        queries = list(cfg.vocabulary) + support
        thr = min(self.detection_threshold, self.support_threshold) if support else self.detection_threshold
        dets = self._run_step("detect", need, lambda ii: self.detector.detect(
            [frames[i].image for i in ii], queries, thr), results)

        chosen: dict[int, tuple[list, list]] = {}
        for i, ds in dets.items():
            f = frames[i]
            area_img = float(f.width * f.height)
            dropped = f.meta.setdefault("perception_dropped", [])
            objs, sups = [], []
            for d in ds:
                a = float(box_area(np.array(d.box))[0]) / area_img
                if d.label in support:
                    if d.score >= self.support_threshold:
                        sups.append(d)
                    continue
                if d.score < self.detection_threshold:
                    continue
                if a < cfg.min_box_area_frac:
                    dropped.append({"label": d.label, "score": round(d.score, 4), "reason": "box too small"})
                elif a > cfg.max_box_area_frac:
                    dropped.append({"label": d.label, "score": round(d.score, 4), "reason": "box covers the image"})
                else:
                    objs.append(d)
            if objs:
                keep = nms(np.array([d.box for d in objs]), np.array([d.score for d in objs]), cfg.nms_iou,
                           None if cfg.class_agnostic_nms else [d.label for d in objs])
                n_sup = len(objs) - len(keep)
                objs = [objs[k] for k in keep]
                if len(objs) > cfg.max_objects:
                    for d in objs[cfg.max_objects:]:
                        dropped.append({"label": d.label, "score": round(d.score, 4),
                                        "reason": f"beyond max_objects={cfg.max_objects}"})
                    objs = objs[:cfg.max_objects]
                f.meta["perception_nms_suppressed"] = n_sup
            chosen[i] = (objs, sups)

        ids = [i for i in chosen if results[i] is None]
        masks: dict[int, list] = {}
        if self.segmenter is not None:
            masks = self._run_step("segment", ids, lambda ii: self.segmenter.segment(
                [frames[i].image for i in ii], [[d.box for d in chosen[i][0] + chosen[i][1]] for i in ii]), results)
        captions: dict[int, list[str]] = {}
        if self.captioner is not None:
            cap_ids = [i for i in ids if results[i] is None and chosen[i][0]]
            captions = self._run_step("caption", cap_ids, lambda ii: self.captioner.caption(
                [frames[i].image for i in ii], [[d.box for d in chosen[i][0]] for i in ii]), results)

        for i in ids:
            if results[i] is not None:
                continue
            f = frames[i]
            objs, sups = chosen[i]
            mlist = masks.get(i)
            dropped = f.meta.setdefault("perception_dropped", [])
            caps = captions.get(i, [""] * len(objs))
            annotations = []
            for k, d in enumerate(objs):
                if mlist is not None:
                    m, mscore, msrc = mlist[k].mask, mlist[k].score, "segmenter"
                    if cfg.clip_masks_to_box:
                        m = _clip_mask_to_box(m, d.box, cfg.mask_box_margin)
                else:
                    m, mscore, msrc = box_mask(d.box, f.height, f.width), None, "box"
                if int(m.sum()) < cfg.min_mask_pixels:
                    dropped.append({"label": d.label, "score": round(d.score, 4),
                                    "reason": f"mask has {int(m.sum())} < {cfg.min_mask_pixels} pixels"})
                    continue
                cap = caps[k] if k < len(caps) else ""
                attrs = {"class": d.label, "source": "perception", "mask_source": msrc}
                if mscore is not None:
                    attrs["mask_score"] = round(float(mscore), 4)
                if cap:
                    attrs["caption"] = cap
                annotations.append(ObjectAnnotation(name=cap or d.label, box=tuple(float(v) for v in d.box),
                                                    mask=m, score=float(d.score), attributes=attrs))
            f.objects = annotations
            if f.support_mask is None and sups and mlist is not None:
                sm = np.zeros((f.height, f.width), dtype=bool)
                labels = []
                for k, d in enumerate(sups):
                    m = mlist[len(objs) + k].mask
                    if cfg.clip_masks_to_box:
                        m = _clip_mask_to_box(m, d.box, cfg.mask_box_margin)
                    sm |= m
                    labels.append(d.label)
                if sm.sum() >= cfg.min_mask_pixels:
                    f.support_mask = sm
                    f.meta["support_source"] = sorted(set(labels))
