"""The Ray Data engine: the same stage classes as the local engine, run as ``map_batches`` operators.

Plan (one streaming Ray Dataset; with ``preserve_order`` the shards complete in order, so the driver holds
about one shard of results at a time)::

    from_arrow(positions)                        item positions, in many small in-memory blocks
      .map_batches(keep pending shards)          (--resume only)
      .map_batches(read, tasks, num_cpus=ray.read_cpus)   work items from plan.parquet by position
                                                  -> blob = pickled plain frame dict
      .map_batches(PerceptionActor, actors, num_gpus=ray.perception_gpus)   (photos / HF inputs only)
      .map_batches(GeometryActor, actors=ray.workers, num_cpus=ray.worker_cpus)
                                                  -> blob = pickled plain record (encoded files + table rows)
    driver: iter_batches -> group rows by shard -> write_shard (atomic, with marker) once a shard is whole

Rows crossing process boundaries hold plain data only: ints, strings and one ``blob`` column of pickled dicts of
numpy arrays / bytes / Python scalars (no project classes). Workers rebuild Frames with
:func:`~spatialvlm.pipeline.stages.frame_from_plain`. Each row also carries the seconds its item spent in each
stage (``times``); the summary adds them up (worker-seconds, not wall time).

Shards are written by the driver from rows sorted by input position, and merged like the local engine's, so the
dataset is byte-identical to a local run whatever the scheduling.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import pickle
import time
from collections import Counter
from dataclasses import dataclass

from .run import ItemPipeline, RunPlan, SynthConfig, _shard_len
from .stages import ReadStage, frame_from_plain, frame_to_plain

_PICKLE = pickle.HIGHEST_PROTOCOL


def _out_table(shard, pos, blobs, times):
    import pyarrow as pa

    return pa.table({"shard": pa.array(shard, pa.int64()), "pos": pa.array(pos, pa.int64()),
                     "blob": pa.array(blobs, pa.large_binary()), "times": pa.array(times, pa.string())})


def _read_batch(batch, plan_file: str, kind: str, target: str, max_pixels: int, min_side: int):
    """Ray task: item positions (``id``) -> rows of pickled plain frames (or errors)."""
    from pathlib import Path

    from .shards import WorkItem, plan_rows

    rows = plan_rows(Path(plan_file), batch["id"].to_pylist())
    t = time.perf_counter()
    stage = ReadStage(kind, target, max_pixels=max_pixels, min_side=min_side)
    frames = stage([WorkItem(**{k: r[k] for k in ("pos", "item", "image_id", "ref", "line", "error")})
                    for r in rows])
    per = (time.perf_counter() - t) / max(1, len(rows))
    return _out_table([r["shard"] for r in rows], [r["pos"] for r in rows],
                      [pickle.dumps(frame_to_plain(f), protocol=_PICKLE) for f in frames],
                      [json.dumps({"read": per})] * len(rows))


def _add_times(times: list[str], name: str, seconds: float, n: int) -> list[str]:
    per = seconds / max(1, n)
    out = []
    for s in times:
        d = json.loads(s)
        d[name] = d.get(name, 0.0) + per
        out.append(json.dumps(d))
    return out


class PerceptionActor:
    """Ray actor: loads the perception models once; plain frames -> plain frames (or errors)."""

    def __init__(self, cfg: dict):
        from .run import PerceptionGate

        self.gate = PerceptionGate(cfg, eager=True)

    def __call__(self, batch):
        rows = batch.to_pylist()
        frames = [frame_from_plain(pickle.loads(r["blob"])) for r in rows]
        t = time.perf_counter()
        frames = self.gate(frames)
        dt = time.perf_counter() - t
        return _out_table([r["shard"] for r in rows], [r["pos"] for r in rows],
                          [pickle.dumps(frame_to_plain(f), protocol=_PICKLE) for f in frames],
                          _add_times([r["times"] for r in rows], "perception", dt, len(rows)))


class GeometryActor:
    """Ray actor: (perception gate for RGB-D frames missing objects) -> geometry -> QA -> encode."""

    def __init__(self, cfg: dict, perception: bool):
        from ..config import from_dict

        self.pipe = ItemPipeline(from_dict(SynthConfig, cfg), perception=perception)

    def __call__(self, batch):
        rows = batch.to_pylist()
        frames = [frame_from_plain(pickle.loads(r["blob"])) for r in rows]
        before = Counter(self.pipe.times)
        outs = self.pipe(frames)
        times = [r["times"] for r in rows]
        for name, v in self.pipe.times.items():
            times = _add_times(times, name, v - before.get(name, 0.0), len(rows))
        return _out_table([r["shard"] for r in rows], [r["pos"] for r in rows],
                          [pickle.dumps(o, protocol=_PICKLE) for o in outs], times)


def resources(cfg: SynthConfig, total_cpus: float, photos: bool = False, total_gpus: float = 0.0) -> tuple[int, float]:
    """(geometry actors, CPUs per actor). By default one actor per CPU, sharing what the read tasks and the
    perception actors leave. Raises ValueError (before any work) when the placement cannot run: every actor holds
    its CPUs for the whole run, so if nothing is left for a read task the pipeline would wait forever."""
    r = cfg.ray
    reserved = r.read_cpus + (r.perception_workers * r.perception_cpus if photos else 0.0)
    left = total_cpus - reserved
    if photos and r.perception_gpus > 0 and r.perception_workers * r.perception_gpus > total_gpus:
        raise ValueError(f"ray.perception_workers={r.perception_workers} x ray.perception_gpus={r.perception_gpus} "
                         f"needs more GPUs than the cluster has ({total_gpus:g}); set ray.perception_gpus=0 on a "
                         "CPU-only cluster, or fewer perception workers")
    workers = r.workers or max(1, int(left + 1e-9))
    cpus = r.worker_cpus or min(1.0, left / workers)
    if cpus <= 0.01 or workers * cpus > left + 1e-6:
        raise ValueError(f"Ray placement does not fit the cluster's {total_cpus:g} CPUs: {workers} geometry actors x "
                         f"{cpus:g} CPUs + read tasks ({r.read_cpus:g})"
                         + (f" + {r.perception_workers} perception actors x {r.perception_cpus:g}" if photos else "")
                         + "; lower ray.workers / ray.worker_cpus / ray.perception_cpus (or leave them at 0 = auto)")
    return workers, round(cpus, 3)


def _dataset(ray, plan: RunPlan, cfg: SynthConfig, expected: dict, workers: int, worker_cpus: float,
             photos: bool, ActorPoolStrategy):
    """The Ray Dataset of the pending work: plan.parquet -> read -> (perception) -> geometry/QA/encode."""
    # item positions, in many small blocks so that every actor gets work; the read tasks fetch the work items
    # from plan.parquet by position (nothing is materialized on the driver, however many items)
    # (in-memory blocks of int64 positions, 8 bytes per item: no read tasks, which would each claim a whole CPU
    # and could starve beside actors that hold the rest)
    import numpy as np
    import pyarrow as pa

    n_blocks = max(1, min(math.ceil(plan.n_items / cfg.batch_size), 64 * max(1, workers)))
    bounds = np.linspace(0, plan.n_items, n_blocks + 1).astype(np.int64)
    ds = ray.data.from_arrow([pa.table({"id": np.arange(a, b, dtype=np.int64)})
                              for a, b in itertools.pairwise(bounds) if b > a])
    if len(expected) < plan.n_shards:  # resuming: only the shards not done yet
        ds = ds.map_batches(_keep_shards, fn_kwargs={"shards": sorted(expected), "shard_size": plan.shard_size},
                            batch_format="pyarrow", batch_size=None, num_cpus=cfg.ray.read_cpus)
    ds = ds.map_batches(_read_batch, fn_kwargs={"plan_file": str(plan.plan_file), "kind": plan.kind,
                                                "target": plan.target,
                                                "max_pixels": cfg.max_image_pixels,
                                                "min_side": cfg.min_image_side},
                        batch_size=cfg.batch_size, batch_format="pyarrow", num_cpus=cfg.ray.read_cpus)
    if photos:
        ds = ds.map_batches(PerceptionActor, fn_constructor_kwargs={"cfg": cfg.perception},
                            compute=ActorPoolStrategy(size=cfg.ray.perception_workers),
                            num_gpus=cfg.ray.perception_gpus, num_cpus=cfg.ray.perception_cpus, batch_size=cfg.ray.perception_batch_size,
                            batch_format="pyarrow")
    return ds.map_batches(GeometryActor, fn_constructor_kwargs={"cfg": cfg.to_dict(), "perception": not photos},
                          compute=ActorPoolStrategy(size=workers), num_cpus=worker_cpus,
                          batch_size=cfg.batch_size, batch_format="pyarrow")


def _keep_shards(batch, shards: list[int], shard_size: int):
    import pyarrow as pa
    import pyarrow.compute as pc

    shard = pc.divide(batch["id"], pa.scalar(shard_size, batch["id"].type))  # integer division
    return batch.filter(pc.is_in(shard, value_set=pa.array(shards, batch["id"].type)))


@dataclass
class RaySession:
    """A connected Ray session and the placement computed for it (see :func:`connect`)."""

    started: bool
    workers: int
    worker_cpus: float
    total_cpus: float

    def close(self) -> None:
        import ray

        if self.started and ray.is_initialized():
            ray.shutdown()


def connect(cfg: SynthConfig, photos: bool, address: str | None = None) -> RaySession:
    """Join the running Ray session, or ``ray.init(address)`` (None: start a local cluster), and check that the
    placement fits the cluster (ValueError saying what to change, before any work)."""
    try:
        import ray
    except ImportError as exc:
        raise ValueError("--engine ray needs Ray Data: pip install 'ray[data]' (the 'scale' extra)") from exc

    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                     logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ValueError(f"cannot start or join a Ray cluster (--ray-address {address!r}): {exc}") from exc
        started = True
    res = ray.cluster_resources()
    total_cpus = float(res.get("CPU", 1.0))
    try:
        workers, cpus = resources(cfg, total_cpus, photos, float(res.get("GPU", 0.0)))
    except ValueError:
        if started:
            ray.shutdown()
        raise
    return RaySession(started, workers, cpus, total_cpus)


def run_ray(plan: RunPlan, cfg: SynthConfig, bar, session: RaySession) -> tuple[Counter, dict]:
    """Process every pending shard of ``plan`` on the connected Ray ``session``; returns (seconds by stage, facts
    for the summary). Shuts down the cluster if ``connect`` started it."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    from .shards import write_shard

    ctx = DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.execution_options.preserve_order)
    data_log = logging.getLogger("ray.data")
    saved_level = data_log.level
    data_log.setLevel(logging.ERROR)  # per-dataset INFO lines would break the progress bar; errors still show
    ctx.enable_progress_bars = False  # our own bar counts images; Ray's per-operator bars would interleave
    ctx.execution_options.preserve_order = True  # shards complete in order: the driver holds about one at a time
    photos = plan.kind != "frames"
    workers, worker_cpus, total_cpus = session.workers, session.worker_cpus, session.total_cpus
    times: Counter = Counter()
    expected = {k: _shard_len(k, plan.n_items, plan.shard_size) for k in plan.pending()}
    try:
        if expected:
            ds = _dataset(ray, plan, cfg, expected, workers, worker_cpus, photos, ActorPoolStrategy)
            buffers: dict[int, list] = {}
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                for r in batch.to_pylist():
                    k = r["shard"]
                    buffers.setdefault(k, []).append((r["pos"], pickle.loads(r["blob"])))
                    times.update(json.loads(r["times"]))
                    bar.update(1)
                    if len(buffers[k]) == expected[k]:
                        t = time.perf_counter()
                        write_shard(plan.shards_dir, k, buffers.pop(k), {"engine": "ray"})
                        times["write_shard"] += time.perf_counter() - t
            if buffers:
                raise RuntimeError(f"Ray returned incomplete shards {sorted(buffers)[:5]} "
                                   f"({sum(len(v) for v in buffers.values())} of "
                                   f"{sum(expected[k] for k in buffers)} rows)")
    finally:
        ctx.enable_progress_bars, ctx.execution_options.preserve_order = saved
        data_log.setLevel(saved_level)
        session.close()
    return times, {"ray_workers": workers, "ray_worker_cpus": worker_cpus, "ray_cluster_cpus": total_cpus}
