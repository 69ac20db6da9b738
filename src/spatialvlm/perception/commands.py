"""CLI: ``spatialvlm perceive`` (photos -> RGB-D folder with depth, intrinsics, objects and masks) and
``spatialvlm perception-models`` (list the backends and their default model ids)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import typer


def load_config(config: Path | None, overrides: list[str]):
    from .stage import PerceptionConfig

    cfg = PerceptionConfig.from_yaml(config) if config else PerceptionConfig()
    return cfg.with_overrides(overrides) if overrides else cfg


def iter_source(spec: str, max_side: int | None = None):
    """``photos:DIR``, ``hf:REPO_OR_PATH[:split]`` or an RGB-D folder (frames.jsonl; perception fills what its
    frames lack, e.g. objects for a depth camera's frames)."""
    if spec.startswith(("photos:", "hf:")):
        from ..io.photos import read_image_source

        return read_image_source(spec, max_side=max_side)
    p = Path(spec)
    if (p.is_dir() and (p / "frames.jsonl").exists()) or p.suffix == ".jsonl":
        from ..io.frames import read_frames

        return read_frames(p)
    raise ValueError(f"input {spec!r}: use photos:DIR, hf:REPO_OR_PATH[:split] or an RGB-D folder with frames.jsonl")


def run_perceive(input_spec: str, out: Path, cfg, limit: int | None = None, max_side: int | None = None,
                 progress: bool = True) -> dict:
    """Run the perception stage over an input and write an RGB-D folder (``write_frames``) plus
    ``perception.yaml`` (the resolved config with versions) and ``errors.jsonl`` (every rejected / failed input
    with its reason). Returns a summary."""
    import time

    import yaml

    from ..io.frames import write_frames
    from ..records import Frame, ItemError
    from .stage import PerceptionStage

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stage = PerceptionStage(cfg)
    errors: list[ItemError] = []
    stats = {"images_in": 0, "frames_out": 0, "objects": 0}
    t0 = time.time()

    def batches() -> Iterator[list]:
        batch: list = []
        for n, item in enumerate(iter_source(input_spec, max_side=max_side)):
            if limit is not None and n >= limit:
                break
            stats["images_in"] += 1
            if isinstance(item, ItemError):
                errors.append(item)
                continue
            batch.append(item)
            if len(batch) >= cfg.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def frames() -> Iterator[Frame]:
        for batch in batches():
            for r in stage(batch):
                if isinstance(r, ItemError):
                    errors.append(r)
                else:
                    stats["frames_out"] += 1
                    stats["objects"] += len(r.objects)
                    if progress:
                        typer.echo(f"  {r.image_id}: {len(r.objects)} objects, intrinsics from "
                                   f"{r.meta.get('intrinsics_source', '?')}", err=True)
                    yield r

    write_frames(frames(), out)
    (out / "perception.yaml").write_text(yaml.safe_dump({"input": input_spec, **stage.describe()}, sort_keys=False),
                                         encoding="utf-8")
    with (out / "errors.jsonl").open("w", encoding="utf-8") as fh:
        for e in errors:
            fh.write(json.dumps(e.to_row()) + "\n")
    stats["errors"] = len(errors)
    stats["seconds"] = round(time.time() - t0, 2)
    stats["seconds_by_step"] = {k: round(v, 3) for k, v in stage.timings.items()}
    return stats


def register(app: typer.Typer) -> None:
    @app.command("perceive")
    def perceive(
        input: str = typer.Option(..., "--input", "-i", help="photos:DIR, hf:REPO_OR_PATH[:split] or an RGB-D "
                                  "folder (frames.jsonl) whose frames lack objects / depth"),
        out: Path = typer.Option(..., "--out", "-o", help="output RGB-D folder (frames.jsonl + files)"),
        config: Path | None = typer.Option(None, "--config", help="perception YAML (keys of PerceptionConfig, "
                                              "or a pipeline config with a `perception:` section)"),
        set_: list[str] = typer.Option([], "--set", help="override a config key (value parsed as YAML), e.g. --set "
                                       "detector=grounding-dino:IDEA-Research/grounding-dino-tiny --set "
                                       "detection_threshold=0.25 --set captioner=null"),
        limit: int | None = typer.Option(None, "--limit", help="read at most this many inputs"),
        max_side: int | None = typer.Option(None, "--max-side", help="downscale photos whose longer side "
                                               "exceeds this many pixels"),
        quiet: bool = typer.Option(False, "--quiet", help="no per-image lines"),
    ) -> None:
        """Lift photos to metric RGB-D frames with objects: scene filter, depth + intrinsics, detection, masks."""
        try:
            cfg = load_config(config, list(set_))
        except (ValueError, FileNotFoundError) as exc:
            raise typer.BadParameter(str(exc)) from exc
        stats = run_perceive(input, out, cfg, limit=limit, max_side=max_side, progress=not quiet)
        typer.echo(f"{stats['frames_out']} of {stats['images_in']} images written to {out}/frames.jsonl "
                   f"({stats['objects']} objects); {stats['errors']} errors in {out}/errors.jsonl; "
                   f"{stats['seconds']} s")
        typer.echo("continue with: spatialvlm synth --input " + str(out))
        if stats["frames_out"] == 0:
            raise typer.Exit(2)

    @app.command("perception-models")
    def perception_models() -> None:
        """List the perception backends by kind with their default model ids."""
        from .registry import BACKENDS, DEFAULT_MODELS

        for kind, names in BACKENDS.items():
            typer.echo(f"{kind}:")
            for name in sorted(names):
                typer.echo(f"  {name}:{DEFAULT_MODELS.get(name, '<hf id or folder>')}")
