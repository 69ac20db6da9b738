"""Throughput measurement: run the synth pipeline on an input with a given config and engine and report
images/s and seconds per stage. Used by ``spatialvlm bench`` and ``scripts/bench_pipeline.py``."""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
from pathlib import Path

from .run import SynthConfig, run_synth


def render_bench_scenes(n: int, out: Path, seed: int = 0) -> Path:
    """Render ``n`` built-in scenes (RGB-D folder) for benchmarking, unless ``out`` already holds them."""
    from ..render import render_scenes

    manifest = out / "frames.jsonl"
    if manifest.exists() and sum(1 for _ in manifest.open()) >= n:
        return out
    if out.exists():
        shutil.rmtree(out)
    render_scenes(n, out, seed=seed)
    return out


def bench(input_spec: str, cfg: SynthConfig | None = None, *, engine: str = "local", workers: int = 0,
          ray_address: str | None = None, limit: int | None = None, out_dir: Path | None = None,
          progress: bool = False) -> dict:
    """One timed run into ``out_dir`` (a temporary folder, removed afterwards, when None). The report is not
    written (it is not part of the pipeline). Returns throughput numbers and the per-stage seconds."""
    import os

    cfg = cfg or SynthConfig()
    cfg.report_images = 0
    if workers:
        cfg.ray.workers = workers
    tmp = None
    if out_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="spatialvlm-bench-"))
        out_dir = tmp / "out"
    try:
        t = time.perf_counter()
        summary = run_synth(input_spec, out_dir, cfg, overwrite=True, progress=progress, limit=limit,
                            engine=engine, ray_address=ray_address)
        wall = time.perf_counter() - t
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    n = summary.get("images_processed", 0)
    return {
        "engine": engine,
        "workers": summary.get("ray_workers", 1),
        "worker_cpus": summary.get("ray_worker_cpus"),
        "images": n,
        "images_ok": summary.get("images_ok", 0),
        "qa_total": summary.get("qa_total", 0),
        "wall_seconds": round(wall, 3),
        "images_per_second_end_to_end": round(n / wall, 3) if wall > 0 else None,
        "images_per_second_processing": summary.get("images_per_second"),
        "seconds_processing": summary.get("seconds_processing"),
        "seconds_by_stage": summary.get("seconds_by_stage", {}),
        "cpus_visible": os.cpu_count(),
        "python": platform.python_version(),
    }
