"""Running the pipeline: read -> (perception) -> geometry -> QA -> encode, shard by shard, then one merge.

Two engines run the same stage classes on the same shards: ``local`` (in this process, no Ray needed) and ``ray``
(Ray Data ``map_batches`` with actor pools, see :mod:`spatialvlm.pipeline.ray_runner`). Every shard is committed
atomically with a completion marker (:mod:`spatialvlm.pipeline.shards`), so ``resume=True`` skips finished
shards after a crash or Ctrl-C; at the end all shards are merged, in input order, into the usual dataset files.
Given the same input, configuration and seed, both engines write byte-identical datasets (only ``summary.json``,
which holds timings, and ``report.html``, which shows them, differ).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..config import apply_overrides, from_dict, load_yaml, to_dict, versions
from ..geometry.scene import GeometryConfig
from ..qa.synth import QAConfig
from ..records import Frame, ItemError
from .stages import EncodeStage, GeometryStage, QAStage, ReadStage, SceneResult, _NoQA  # noqa: F401

ENGINES = ("local", "ray")

# exit codes of `spatialvlm synth` (documented in docs/scale.md)
EXIT_OK = 0  # every input produced its QA
EXIT_ITEM_ERRORS = 1  # the dataset was written, but some inputs failed or gave no QA (see errors.parquet)
EXIT_USAGE = 2  # bad configuration or arguments, found before any work (click's usage-error code)
EXIT_NOTHING = 3  # no input produced a scene
EXIT_INTERRUPTED = 130  # interrupted; finished shards are kept, rerun with --resume


@dataclass
class RayConfig:
    """How the ``ray`` engine places work. 0 means "choose from the cluster's resources"."""

    workers: int = 0  # geometry/QA actors; 0 = one per CPU of the cluster
    worker_cpus: float = 0.0  # CPUs per geometry actor; 0 = share the CPUs left after the read headroom
    read_cpus: float = 0.25  # CPUs per read task (fractional: leaves room for reading / writing beside the actors)
    perception_workers: int = 1  # perception actors (one model copy each)
    perception_gpus: float = 1.0  # GPUs per perception actor (0 on a CPU-only cluster)
    perception_cpus: float = 1.0  # CPUs per perception actor (pre- / post-processing)
    perception_batch_size: int = 4


@dataclass
class SynthConfig:
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    qa: QAConfig = field(default_factory=QAConfig)
    batch_size: int = 8
    shard_size: int = 64  # items per shard: the unit of atomic output and of --resume
    report_images: int = 12
    max_image_pixels: int = 40_000_000  # larger images are refused from their header (decompression bombs)
    min_image_side: int = 16  # smaller images are refused (nothing can be lifted from them)
    perception: dict = field(default_factory=dict)  # PerceptionConfig fields, used for photos / frames without objects
    ray: RayConfig = field(default_factory=RayConfig)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> SynthConfig:
        return from_dict(cls, apply_overrides(load_yaml(path), overrides or []))

    def to_dict(self) -> dict:
        return to_dict(self)

    def validate(self) -> None:
        """Raise ValueError listing every problem (so a bad config fails before any work, saying what to fix)."""
        problems = []

        def need(ok: bool, msg: str) -> None:
            if not ok:
                problems.append(msg)

        def positive_int(v, name: str, minimum: int = 1) -> None:
            need(isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
                 f"{name} must be an integer >= {minimum}, got {v!r}")

        def number(v, name: str, lo: float, hi: float | None = None) -> None:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
            need(ok, f"{name} must be a number in [{lo}, {hi if hi is not None else 'inf'}], got {v!r}")

        positive_int(self.batch_size, "batch_size")
        positive_int(self.shard_size, "shard_size")
        positive_int(self.report_images, "report_images", 0)
        positive_int(self.max_image_pixels, "max_image_pixels")
        positive_int(self.min_image_side, "min_image_side")
        positive_int(self.qa.per_image, "qa.per_image")
        number(self.qa.imperial_prob, "qa.imperial_prob", 0.0, 1.0)
        number(self.qa.hedge_prob, "qa.hedge_prob", 0.0, 1.0)
        positive_int(self.qa.seed, "qa.seed", 0)
        if not isinstance(self.qa.types, dict):
            problems.append(f"qa.types must be a mapping of question type -> weight, got {self.qa.types!r}")
        else:
            try:
                if not self.qa.weights():
                    problems.append("qa.types gives every question type weight 0: nothing could be asked")
            except (ValueError, TypeError) as exc:
                problems.append(f"qa.types: {exc}")
        need(self.geometry.canonical_source in ("estimate", "pose"),
             f"geometry.canonical_source must be 'estimate' or 'pose', got {self.geometry.canonical_source!r}")
        positive_int(self.geometry.mask_erosion, "geometry.mask_erosion", 0)
        need(isinstance(self.perception, dict), f"perception must be a mapping, got {self.perception!r}")
        r = self.ray
        positive_int(r.workers, "ray.workers", 0)
        number(r.worker_cpus, "ray.worker_cpus", 0.0)
        number(r.read_cpus, "ray.read_cpus", 0.0)
        positive_int(r.perception_workers, "ray.perception_workers")
        number(r.perception_gpus, "ray.perception_gpus", 0.0)
        number(r.perception_cpus, "ray.perception_cpus", 0.0)
        positive_int(r.perception_batch_size, "ray.perception_batch_size")
        if problems:
            raise ValueError("invalid configuration:\n  - " + "\n  - ".join(problems))

    def fingerprint(self) -> dict:
        """The settings that shape the dataset (engine placement, batching and the report do not)."""
        d = self.to_dict()
        for k in ("batch_size", "report_images", "ray"):
            d.pop(k, None)
        return d


# --------------------------------------------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------------------------------------------
def resolve_input(spec: str) -> tuple[str, str]:
    """``DIR`` / ``frames.jsonl`` (RGB-D folder), ``photos:DIR`` or ``hf:REPO_OR_PATH[:split]``."""
    for kind in ("photos", "hf"):
        if spec.startswith(kind + ":"):
            target = spec[len(kind) + 1:]
            if kind == "photos" and not Path(target).expanduser().is_dir():
                raise FileNotFoundError(f"photo folder {target!r} does not exist")
            return kind, target
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"input {spec!r} does not exist (expected an RGB-D folder with frames.jsonl, "
                                f"photos:DIR or hf:DATASET)")
    if p.is_dir() and not (p / "frames.jsonl").exists():
        raise FileNotFoundError(f"{p} has no frames.jsonl; for a folder of plain photos use --input photos:{p}")
    return "frames", spec


def _read_target(kind: str, target: str) -> str:
    """The folder the read stage resolves paths against (the manifest's folder for RGB-D inputs)."""
    if kind == "frames":
        p = Path(target)
        return str(p.parent if p.is_file() else p)
    return str(Path(target).expanduser()) if kind == "photos" else target


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


class PerceptionGate:
    """Runs the perception stage on frames that miss depth, intrinsics or objects; loads it only when one does.
    If it cannot be loaded, each such frame becomes an ItemError saying why (the run goes on), and loading is not
    retried. ``eager=True`` loads it now, so a run of photos fails before any work when models are missing."""

    def __init__(self, cfg: dict, eager: bool = False):
        self.cfg = cfg
        self.stage = None
        self.unavailable = ""
        if eager:
            self._load()

    def _load(self) -> None:
        from ..perception.stage import PerceptionConfig, PerceptionStage

        self.stage = PerceptionStage(from_dict(PerceptionConfig, self.cfg) if self.cfg else PerceptionConfig())

    def __call__(self, batch: list) -> list:
        need = [i for i, f in enumerate(batch) if _needs_perception(f)]
        if not need:
            return batch
        if self.stage is None and not self.unavailable:
            try:
                self._load()
            except Exception as exc:  # noqa: BLE001 - becomes the reason of every frame that needed it
                self.unavailable = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        out = list(batch)
        if self.stage is None:
            for i in need:
                f = batch[i]
                what = ", ".join(w for w, miss in (("depth", f.depth is None), ("intrinsics", f.intrinsics is None),
                                                   ("objects", not f.objects)) if miss)
                out[i] = ItemError(f.image_id, "perception",
                                   f"frame has no {what}, and the perception stage is unavailable: {self.unavailable}")
            return out
        done = self.stage([batch[i] for i in need])
        for i, r in zip(need, done):
            out[i] = r
        return out


def _has_perception() -> bool:
    try:
        import spatialvlm.perception.embed  # noqa: F401
    except ImportError:
        return False
    return True


def _safe_similar(similar):
    """The embedder groups names only for perceived frames; if its weights cannot be loaded the exact-name rule
    still applies, and the reason is logged once (not a silent change: the scene's names say which rule ran)."""
    if similar is None:
        return None
    state = {"failed": None}

    def wrapped(names):
        if state["failed"] is not None:
            return []
        try:
            return similar(names)
        except Exception as exc:  # missing weights, no network: fall back to exact matching, loudly
            import logging

            state["failed"] = str(exc)
            logging.getLogger("spatialvlm.pipeline").warning(
                "text embedder for near-duplicate names unavailable (%s); names are matched exactly", exc)
            return []

    return wrapped


class ItemPipeline:
    """Every stage after reading, for one engine worker: (perception gate) -> geometry -> QA -> encode.
    ``__call__`` maps a batch of Frame / ItemError to plain output records and adds seconds to ``times``."""

    def __init__(self, cfg: SynthConfig, *, perception: bool = True, eager_perception: bool = False):
        self.perception = PerceptionGate(cfg.perception, eager=eager_perception) if perception else None
        similar = None
        if perception and cfg.perception.get("embedder", "default") is not None and _has_perception():
            from ..perception.embed import similarity_grouper
            from ..perception.stage import PerceptionConfig

            pc = PerceptionConfig.from_dict(cfg.perception) if cfg.perception else PerceptionConfig()
            similar = _safe_similar(similarity_grouper(pc.embedder, pc.duplicate_threshold, pc.device, pc.dtype))
        self.geometry = GeometryStage(cfg.geometry, similar=similar)
        self.qa, self.encode = QAStage(cfg.qa), EncodeStage()
        self.times: Counter = Counter()

    def __call__(self, batch: list) -> list[dict]:
        steps = [("geometry", self.geometry), ("qa", self.qa), ("encode", self.encode)]
        if self.perception is not None:
            steps.insert(0, ("perception", self.perception))
        for name, stage in steps:
            t = time.perf_counter()
            batch = stage(batch)
            self.times[name] += time.perf_counter() - t
        return batch


# --------------------------------------------------------------------------------------------------------------
# preparing the output folder
# --------------------------------------------------------------------------------------------------------------
@dataclass
class RunPlan:
    input_spec: str
    kind: str
    target: str  # what the read stage gets
    out_dir: Path
    n_items: int
    n_shards: int
    shard_size: int
    limit: int | None
    done: dict  # shard index -> marker, finished before this run started

    @property
    def shards_dir(self) -> Path:
        from .shards import SHARDS_DIR

        return self.out_dir / SHARDS_DIR

    @property
    def plan_file(self) -> Path:
        from .shards import PLAN_FILE

        return self.shards_dir / PLAN_FILE

    def pending(self) -> list[int]:
        return [k for k in range(self.n_shards) if k not in self.done]


def _shard_len(k: int, n_items: int, shard_size: int) -> int:
    return min(shard_size, n_items - k * shard_size)


def prepare_run(input_spec: str, out_dir: str | Path, cfg: SynthConfig, *, overwrite: bool = False,
                resume: bool = False, limit: int | None = None, engine: str = "local") -> RunPlan:
    """Every check that can fail before any work: the config, the engine, the input, the output folder and, with
    ``resume``, that the folder holds an unfinished run of the same input and configuration. Raises ValueError /
    FileNotFoundError / FileExistsError with what to fix. Creates the shard store and returns the plan."""
    from ..io.writers import CONFIG_FILE, OWNED_DIRS, OWNED_FILES, SUMMARY_FILE
    from .shards import (
        PLAN_FILE,
        RUN_FILE,
        SHARDS_DIR,
        clean_partials,
        count_items,
        done_shards,
        plan_items,
        write_plan,
    )

    cfg.validate()
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise ValueError("--engine ray needs Ray Data: pip install 'ray[data]' (the 'scale' extra)") from exc
    if limit is not None and limit < 0:
        raise ValueError(f"--limit must be >= 0, got {limit}")
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other: --resume continues a run, --overwrite "
                         "starts again")
    kind, target = resolve_input(input_spec)
    if kind != "frames" and cfg.perception:
        from ..perception.stage import PerceptionConfig

        from_dict(PerceptionConfig, cfg.perception, "perception.")  # unknown keys fail here
    n_items = count_items(kind, target)
    if limit is not None:
        n_items = min(n_items, limit)

    out = Path(out_dir)
    shards_dir = out / SHARDS_DIR
    run_info = {"input": input_spec, "limit": limit, "n_items": n_items, "shard_size": cfg.shard_size,
                "config": cfg.fingerprint()}
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output path {out} exists and is not a folder")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if resume:
        if not (shards_dir / RUN_FILE).is_file():
            summary = out / SUMMARY_FILE
            if summary.is_file() and json.loads(summary.read_text()).get("complete"):
                raise FileExistsError(f"{out} holds a finished run; nothing to resume (use --overwrite to redo it)")
            raise FileNotFoundError(f"nothing to resume in {out}: no {SHARDS_DIR}/{RUN_FILE} (start without "
                                    "--resume)")
        prev = json.loads((shards_dir / RUN_FILE).read_text())
        diff = _diff(prev, json.loads(json.dumps(run_info)))
        if diff:
            raise ValueError(f"--resume: {out} was started with different settings ({'; '.join(diff[:5])}); resume "
                             "with the same input, --limit and config, or start again with --overwrite")
        clean_partials(shards_dir)
    else:
        others = [n for n in present if n != CONFIG_FILE]
        if others and not overwrite:
            hint = " (an unfinished run: add --resume to continue it)" if SHARDS_DIR in present else ""
            raise FileExistsError(f"output folder {out} is not empty ({len(others)} entries, e.g. {others[:3]}); "
                                  f"choose another folder or pass --overwrite{hint}")
        if overwrite and out.is_dir():
            for name in OWNED_FILES:
                if (out / name).is_file():
                    (out / name).unlink()
            for name in (*OWNED_DIRS, SHARDS_DIR):
                if (out / name).is_dir() and not (out / name).is_symlink():
                    shutil.rmtree(out / name)
        shards_dir.mkdir(parents=True, exist_ok=True)
        planned = write_plan(shards_dir / PLAN_FILE, plan_items(kind, target, limit), cfg.shard_size)
        if planned != n_items:  # the input changed while it was being planned
            raise RuntimeError(f"input {input_spec!r} changed while planning ({n_items} then {planned} items)")
        # written last: a run whose plan is incomplete is not resumable, it is started again
        (shards_dir / RUN_FILE).write_text(json.dumps(run_info, indent=1, sort_keys=True))
    n_shards = -(-n_items // cfg.shard_size) if n_items else 0
    return RunPlan(input_spec, kind, _read_target(kind, target), out, n_items, n_shards, cfg.shard_size, limit,
                   done_shards(shards_dir) if resume else {})


def _diff(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    return [] if a == b else [f"{path}: {a!r} then, {b!r} now"]


# --------------------------------------------------------------------------------------------------------------
# the local engine
# --------------------------------------------------------------------------------------------------------------
def _run_local(plan: RunPlan, cfg: SynthConfig, bar, pipe: ItemPipeline | None = None) -> Counter:
    from .shards import iter_plan, write_shard

    read = ReadStage(plan.kind, plan.target, max_pixels=cfg.max_image_pixels, min_side=cfg.min_image_side)
    pipe = pipe or ItemPipeline(cfg, eager_perception=plan.kind != "frames")
    times: Counter = Counter()
    for k, items in iter_plan(plan.plan_file, skip=plan.done):
        records = []
        shard_times: Counter = Counter()
        before = Counter(pipe.times)
        for batch in _batches(items, cfg.batch_size):
            t = time.perf_counter()
            frames = read(batch)
            shard_times["read"] += time.perf_counter() - t
            outs = pipe(frames)
            records += [(it.pos, r) for it, r in zip(batch, outs)]
            bar.update(len(batch))
        shard_times.update({k2: v - before.get(k2, 0.0) for k2, v in pipe.times.items()})
        t = time.perf_counter()
        write_shard(plan.shards_dir, k, records, {"seconds_by_stage": dict(shard_times)})
        shard_times["write_shard"] += time.perf_counter() - t
        times.update(shard_times)
    return times


# --------------------------------------------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------------------------------------------
_NUM = re.compile(r"\d+(\.\d+)?")
_PATHLIKE = re.compile(r"\S*/\S*")


def reason_class(reason: str) -> str:
    """A reason with numbers and paths blanked, to count failures of the same kind together."""
    return _NUM.sub("N", _PATHLIKE.sub("<path>", reason))[:160]


def failure_table(out_dir: Path) -> dict:
    """{stage: {reason class: count}} from errors.parquet."""
    import pyarrow.parquet as pq

    from ..io.writers import ERRORS_FILE

    t = pq.read_table(out_dir / ERRORS_FILE, columns=["stage", "reason"]).to_pylist()
    out: dict[str, Counter] = {}
    for r in t:
        out.setdefault(r["stage"], Counter())[reason_class(r["reason"] or "")] += 1
    return {st: dict(c.most_common()) for st, c in sorted(out.items())}


def run_synth(input_spec: str, out_dir: str | Path, cfg: SynthConfig | None = None, *, overwrite: bool = False,
              progress: bool = True, limit: int | None = None, engine: str = "local", resume: bool = False,
              ray_address: str | None = None, keep_shards: bool = False) -> dict:
    """Synthesize a spatial QA dataset from ``input_spec`` into ``out_dir``; returns the summary dict (also in
    ``summary.json``). Raises before any work when the configuration, input or output folder is unusable."""
    from tqdm import tqdm

    from ..io.report import write_report
    from ..io.writers import write_config
    from .shards import SHARDS_DIR, done_shards, merge_shards

    cfg = cfg or SynthConfig()
    if ray_address and engine != "ray":
        raise ValueError("--ray-address needs --engine ray")
    session = pipe = None
    if engine == "local" and resolve_input(input_spec)[0] != "frames":
        cfg.validate()  # photos need perception on every image: load the models now, before any output exists
        pipe = ItemPipeline(cfg, eager_perception=True)
    if engine == "ray":  # join / start the cluster first: a placement that cannot run fails before any work
        from .ray_runner import connect

        cfg.validate()
        session = connect(cfg, resolve_input(input_spec)[0] != "frames", ray_address)
    try:
        plan = prepare_run(input_spec, out_dir, cfg, overwrite=overwrite, resume=resume, limit=limit,
                           engine=engine)
    except BaseException:
        if session is not None:
            session.close()
        raise
    out = plan.out_dir
    if not resume:
        write_config(out, {"input": input_spec, "input_kind": plan.kind, **cfg.to_dict(), "versions": versions()})
    t0 = time.time()
    n_resumed = sum(_shard_len(k, plan.n_items, plan.shard_size) for k in plan.done)
    bar = tqdm(total=plan.n_items, initial=n_resumed, unit="img", disable=not progress, desc=f"synth[{engine}]",
               dynamic_ncols=True, smoothing=0.1)
    extra: dict = {}
    try:
        if engine == "ray":
            from .ray_runner import run_ray

            times, extra = run_ray(plan, cfg, bar, session)
        else:
            times = _run_local(plan, cfg, bar, pipe)
    finally:
        bar.close()
    t_process = time.time() - t0
    done = done_shards(plan.shards_dir)
    missing = [k for k in range(plan.n_shards) if k not in done]
    if missing:  # cannot happen unless a runner is broken: never merge an incomplete set silently
        raise RuntimeError(f"shards {missing[:10]} were not written; rerun with --resume")
    t = time.time()
    summary = merge_shards(out, plan.n_shards, progress=progress, total_items=plan.n_items)
    times["merge"] += time.time() - t
    t = time.time()
    if cfg.report_images > 0 and summary.get("images_ok", 0) > 0:
        write_report(out, n_images=cfg.report_images, seed=cfg.qa.seed)
    times["report"] += time.time() - t

    n_processed = plan.n_items - n_resumed
    summary.update({
        "engine": engine,
        **extra,
        "shards": plan.n_shards,
        "shards_resumed": len(plan.done),
        "images_processed": n_processed,
        "images_resumed": n_resumed,
        "failures": failure_table(out),
        "seconds_by_stage": {k: round(v, 3) for k, v in sorted(times.items())},
        "seconds_processing": round(t_process, 3),
        "images_per_second": round(n_processed / t_process, 3) if t_process > 0 else None,
        "seconds_total": round(time.time() - t0, 3),
    })
    summary["images_without_qa"] = sum(summary["failures"].get("qa", {}).values())
    summary["exit_code"] = exit_code(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not keep_shards:
        shutil.rmtree(out / SHARDS_DIR)
    return summary


def exit_code(summary: dict) -> int:
    if summary.get("images_ok", 0) == 0:
        return EXIT_NOTHING
    if summary.get("errors", 0) > 0:
        return EXIT_ITEM_ERRORS
    return EXIT_OK
