"""The local runner: read frames -> (perception) -> geometry -> QA -> dataset writer, with progress and a summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..config import apply_overrides, from_dict, load_yaml, to_dict, versions
from ..geometry.scene import GeometryConfig
from ..qa.synth import QAConfig
from ..records import Frame, ItemError
from .stages import GeometryStage, QAStage, SceneResult, _NoQA


@dataclass
class SynthConfig:
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    qa: QAConfig = field(default_factory=QAConfig)
    batch_size: int = 8
    report_images: int = 12
    perception: dict = field(default_factory=dict)  # PerceptionConfig fields, used for photos / frames without objects

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> "SynthConfig":
        return from_dict(cls, apply_overrides(load_yaml(path), overrides or []))

    def to_dict(self) -> dict:
        return to_dict(self)


def resolve_input(spec: str) -> tuple[str, str]:
    """``DIR`` / ``frames.jsonl`` (RGB-D folder), ``photos:DIR`` or ``hf:REPO_OR_PATH[:split]``."""
    for kind in ("photos", "hf"):
        if spec.startswith(kind + ":"):
            return kind, spec[len(kind) + 1:]
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"input {spec!r} does not exist (expected an RGB-D folder with frames.jsonl, "
                                f"photos:DIR or hf:DATASET)")
    if p.is_dir() and not (p / "frames.jsonl").exists():
        raise FileNotFoundError(f"{p} has no frames.jsonl; for a folder of plain photos use --input photos:{p}")
    return "frames", spec


def iter_input(spec: str) -> tuple[Iterator[Frame | ItemError], int | None, str]:
    kind, target = resolve_input(spec)
    if kind == "frames":
        from ..io.frames import count_frames, read_frames

        return read_frames(Path(target)), count_frames(Path(target)), kind
    if kind == "photos":
        from ..io.photos import read_photos

        return read_photos(Path(target)), None, kind
    from ..io.photos import read_hf_images

    return read_hf_images(target), None, kind


def _portable(source: str, base: Path) -> str:
    """Sources are stored relative to the input folder, so datasets carry no machine paths."""
    if not source:
        return source
    try:
        return str(Path(source).resolve().relative_to(base.resolve()))
    except (ValueError, OSError):
        return Path(source).name


def _batches(it: Iterable, n: int) -> Iterator[list]:
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def _needs_perception(f) -> bool:
    return isinstance(f, Frame) and (f.depth is None or f.intrinsics is None or not f.objects)


class _PerceptionGate:
    """Runs the perception stage on frames that miss depth or objects; loads it only if one does."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.stage = None

    def __call__(self, batch: list) -> list:
        need = [i for i, f in enumerate(batch) if _needs_perception(f)]
        if not need:
            return batch
        if self.stage is None:
            try:
                from ..perception.stage import PerceptionConfig, PerceptionStage
            except ImportError as exc:
                return [ItemError(f.image_id, "perception", f"frame needs depth/objects but the perception "
                                  f"stage is unavailable: {exc}") if i in need else f for i, f in enumerate(batch)]
            self.stage = PerceptionStage(from_dict(PerceptionConfig, self.cfg) if self.cfg else PerceptionConfig())
        done = self.stage([batch[i] for i in need])
        out = list(batch)
        for i, r in zip(need, done):
            out[i] = r
        return out


def run_synth(input_spec: str, out_dir: str | Path, cfg: SynthConfig | None = None, *, overwrite: bool = False,
              progress: bool = True, limit: int | None = None) -> dict:
    """Synthesize a spatial QA dataset from ``input_spec`` into ``out_dir``; returns the summary dict."""
    from tqdm import tqdm

    from ..io.report import write_report
    from ..io.writers import DatasetWriter, write_config

    cfg = cfg or SynthConfig()
    out_dir = Path(out_dir)
    frames, total, kind = iter_input(input_spec)
    target = Path(resolve_input(input_spec)[1])
    target = target.parent if target.is_file() else target
    geometry, qa, perception = GeometryStage(cfg.geometry), QAStage(cfg.qa), _PerceptionGate(cfg.perception)
    t_stage: Counter = Counter()
    t0 = time.time()
    writer = DatasetWriter(out_dir, overwrite=overwrite)
    write_config(out_dir, {"input": input_spec, "input_kind": kind, **cfg.to_dict(), "versions": versions()})
    n_seen = 0
    completed = False
    bar = tqdm(total=total if limit is None else min(total or limit, limit), unit="img", disable=not progress,
               desc="synth", dynamic_ncols=True)
    try:
        src = frames if limit is None else (f for i, f in zip(range(limit), frames))
        for batch in _batches(src, cfg.batch_size):
            t = time.time()
            batch = perception(batch)
            t_stage["perception"] += time.time() - t
            for f in batch:
                if isinstance(f, Frame):
                    f.source = _portable(f.source, target)
            t = time.time()
            batch = geometry(batch)
            t_stage["geometry"] += time.time() - t
            t = time.time()
            batch = qa(batch)
            t_stage["qa"] += time.time() - t
            t = time.time()
            for r in batch:
                if isinstance(r, _NoQA):
                    writer.add(r.result.frame, r.result.scene, [])
                    writer.add_error(ItemError(r.item, r.stage, r.reason))
                elif isinstance(r, ItemError):
                    writer.add_error(r)
                else:
                    writer.add(r.frame, r.scene, r.qas)
                    r.frame = None  # free the images early
            t_stage["write"] += time.time() - t
            n_seen += len(batch)
            bar.update(len(batch))
        completed = True
    finally:
        bar.close()
        summary = writer.close(complete=completed)
    t = time.time()
    if cfg.report_images > 0 and summary.get("images_ok", 0) > 0:
        write_report(out_dir, n_images=cfg.report_images, seed=cfg.qa.seed)
    t_stage["report"] += time.time() - t
    summary["seconds_by_stage"] = {k: round(v, 3) for k, v in t_stage.items()}
    summary["seconds_total"] = round(time.time() - t0, 3)
    import json

    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
