"""CLI commands of the core pipeline: ``synth``, ``config``, ``demo`` and ``bench``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def print_summary(summary: dict, out_dir: Path) -> None:
    qa = summary.get("qa_by_type", {})
    width = max([len(t) for t in qa] + [8])
    typer.echo("")
    typer.echo(f"{'question type':<{width}}  count")
    typer.echo(f"{'-' * width}  -----")
    for t, n in sorted(qa.items()):
        typer.echo(f"{t:<{width}}  {n:5d}")
    typer.echo(f"{'total':<{width}}  {summary.get('qa_total', 0):5d}")
    typer.echo("")
    typer.echo(f"images: {summary.get('images_ok', 0)} ok of {summary.get('images_in', 0)}, "
               f"{summary.get('images_canonicalized', 0)} canonicalized; errors recorded: {summary.get('errors', 0)}"
               + (f" {summary.get('images_failed')}" if summary.get("images_failed") else ""))
    if "images_processed" in summary:
        ips = summary.get("images_per_second")
        typer.echo(f"processed now: {summary['images_processed']} images"
                   + (f" ({ips:.2f} img/s, engine {summary.get('engine')})" if ips else "")
                   + (f"; resumed from earlier runs: {summary['images_resumed']} images in "
                      f"{summary.get('shards_resumed', 0)} shards" if summary.get("images_resumed") else ""))
    failures = summary.get("failures", {})
    if failures:
        typer.echo("failed or skipped, by stage and reason (details in errors.parquet):")
        for stage, reasons in failures.items():
            label = "skipped (lifted, but no QA)" if stage == "qa" else "failed"
            for reason, n in list(reasons.items())[:8]:
                typer.echo(f"  {stage:<10} {n:5d}  {label}: {reason}")
            if len(reasons) > 8:
                typer.echo(f"  {stage:<10}   ...  and {len(reasons) - 8} more kinds of reason")
    stages = summary.get("seconds_by_stage", {})
    if stages:
        typer.echo("seconds by stage: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    typer.echo("")
    typer.echo(f"dataset written to {out_dir}/")
    for name, what in [("qa.parquet", "one row per question/answer"),
                       ("hf/", "Hugging Face dataset (images + messages + prompt/completion)"),
                       ("llava.json", "LLaVA-style conversations"),
                       ("objects.parquet", "per-object 3D boxes"), ("scenes.parquet", "per-image scene facts"),
                       ("errors.parquet", "every input that failed, with the reason"),
                       ("report.html", "visual report: masks, depth, 3D view, QA"),
                       ("config.yaml", "the resolved configuration")]:
        if (out_dir / name.rstrip("/")).exists():
            typer.echo(f"  {out_dir / name}  {what}")


def _load_config(config: Optional[Path], overrides: list[str]):
    from .run import SynthConfig

    try:
        cfg = SynthConfig.load(config, overrides)
        cfg.validate()
    except (ValueError, FileNotFoundError, TypeError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--config / --set") from exc
    return cfg


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth(
        input: str = typer.Option(..., "--input", "-i", help="RGB-D folder with frames.jsonl, photos:DIR or "
                                  "hf:DATASET[:split]"),
        out: Path = typer.Option(..., "--out", "-o", help="output folder (must be empty unless --overwrite or "
                                 "--resume)"),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML config (see `spatialvlm config`)"),
        set_: list[str] = typer.Option([], "--set", help="override a config key, e.g. --set qa.per_image=20"),
        per_image: Optional[int] = typer.Option(None, "--per-image", help="QA pairs per image (default 40)"),
        seed: Optional[int] = typer.Option(None, "--seed", help="random seed of the QA sampler"),
        limit: Optional[int] = typer.Option(None, "--limit", help="process at most this many frames"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace a previous dataset in --out"),
        resume: bool = typer.Option(False, "--resume", help="continue an interrupted run in --out: finished "
                                    "shards are kept, the rest is redone"),
        engine: str = typer.Option("local", "--engine", help="local (in this process) or ray (Ray Data)"),
        ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join (e.g. "
                                                  "ray://host:10001 or auto); default: start a local one"),
        workers: Optional[int] = typer.Option(None, "--workers", help="Ray geometry/QA actors (default: one per "
                                              "CPU); sets ray.workers"),
        shard_size: Optional[int] = typer.Option(None, "--shard-size", help="images per shard (default 64)"),
        keep_shards: bool = typer.Option(False, "--keep-shards", help="keep _shards/ after the merge"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    ) -> None:
        """Synthesize spatial QA from RGB-D frames (or photos, with perception models) into a dataset.

        Exit codes: 0 every input gave QA; 1 dataset written but some inputs failed or gave no QA (see
        errors.parquet and the summary); 2 bad arguments or configuration (nothing was done); 3 no input gave a
        scene; 130 interrupted (finished shards kept: rerun with --resume)."""
        from .run import EXIT_INTERRUPTED, run_synth

        overrides = list(set_)
        if per_image is not None:
            overrides.append(f"qa.per_image={per_image}")
        if seed is not None:
            overrides.append(f"qa.seed={seed}")
        if workers is not None:
            overrides.append(f"ray.workers={workers}")
        if shard_size is not None:
            overrides.append(f"shard_size={shard_size}")
        cfg = _load_config(config, overrides)
        if ray_address and engine != "ray":
            raise typer.BadParameter("--ray-address needs --engine ray", param_hint="--ray-address")
        try:
            summary = run_synth(input, out, cfg, overwrite=overwrite, progress=not quiet, limit=limit,
                                engine=engine, resume=resume, ray_address=ray_address, keep_shards=keep_shards)
        except (ValueError, FileNotFoundError, FileExistsError) as exc:  # found before any work
            raise typer.BadParameter(str(exc)) from exc
        except KeyboardInterrupt:
            typer.echo(f"\ninterrupted: finished shards are kept in {out}/_shards; rerun the same command with "
                       "--resume to continue", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        print_summary(summary, Path(out))
        code = summary.get("exit_code", 0)
        if code == 3:
            typer.echo("no input produced a scene; see errors.parquet", err=True)
        elif code == 1:
            typer.echo(f"{summary.get('errors', 0)} input(s) failed or gave no QA; see errors.parquet "
                       "(exit code 1)", err=True)
        raise typer.Exit(code)

    @app.command("config")
    def show_config() -> None:
        """Print the default synth configuration as YAML (copy it, edit it, pass it with --config)."""
        import yaml

        from .run import SynthConfig

        typer.echo(yaml.safe_dump(SynthConfig().to_dict(), sort_keys=False))

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="where to put scenes and dataset"),
        n: int = typer.Option(24, "-n", help="number of scenes to render"),
        seed: int = typer.Option(0, "--seed"),
        per_image: int = typer.Option(40, "--per-image"),
    ) -> None:
        """Render N built-in scenes and synthesize their spatial QA end to end (the default data)."""
        import shutil

        from ..render import render_scenes
        from .run import SynthConfig, run_synth

        scenes_dir, data_dir = out / "scenes", out / "dataset"
        for d in (scenes_dir, data_dir):
            if d.exists():
                shutil.rmtree(d)
        typer.echo(f"rendering {n} scenes into {scenes_dir} ...")
        render_scenes(n, scenes_dir, seed=seed)
        cfg = SynthConfig.load(None, [f"qa.per_image={per_image}"])
        typer.echo(f"synthesizing QA into {data_dir} ...")
        summary = run_synth(str(scenes_dir), data_dir, cfg)
        print_summary(summary, data_dir)
        typer.echo(f"rendered scenes (RGB-D folder format, with ground truth): {scenes_dir}/frames.jsonl")
        typer.echo(f"open {data_dir / 'report.html'} in a browser, or run: spatialvlm view {data_dir}")

    @app.command("bench")
    def bench_cmd(
        input: Optional[str] = typer.Option(None, "--input", "-i", help="input to measure on (as for synth); "
                                            "default: --scenes rendered scenes"),
        scenes: int = typer.Option(24, "--scenes", help="render this many built-in scenes when no --input"),
        engine: str = typer.Option("local", "--engine", help="local or ray"),
        workers: list[int] = typer.Option([], "--workers", help="Ray actors; repeat to compare (--workers 1 "
                                          "--workers 2)"),
        ray_address: Optional[str] = typer.Option(None, "--ray-address"),
        config: Optional[Path] = typer.Option(None, "--config"),
        set_: list[str] = typer.Option([], "--set"),
        limit: Optional[int] = typer.Option(None, "--limit"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="also write the results as JSON here"),
        cache: Path = typer.Option(Path("out/bench-scenes"), "--cache", help="where rendered scenes are kept"),
    ) -> None:
        """Measure pipeline throughput (images/s, seconds per stage) for a config and engine."""
        import json

        from .bench import bench, render_bench_scenes

        cfg0 = _load_config(config, list(set_))
        if engine not in ("local", "ray"):
            raise typer.BadParameter(f"unknown engine {engine!r}; choose local or ray", param_hint="--engine")
        if input is None:
            input = str(render_bench_scenes(scenes, cache))
        results = []
        for w in (workers or [0]):
            cfg = _load_config(config, list(set_))
            r = bench(input, cfg, engine=engine, workers=w, ray_address=ray_address, limit=limit)
            results.append(r)
            stages = ", ".join(f"{k} {v:.2f}s" for k, v in r["seconds_by_stage"].items())
            typer.echo(f"engine={r['engine']} workers={r['workers']} images={r['images']} "
                       f"processing {r['images_per_second_processing']} img/s, end to end "
                       f"{r['images_per_second_end_to_end']} img/s (wall {r['wall_seconds']} s)")
            typer.echo(f"  seconds by stage: {stages}")
        del cfg0
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(results, indent=2))
