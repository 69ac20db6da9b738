"""CLI commands of the core pipeline: ``synth`` and ``demo``."""

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


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth(
        input: str = typer.Option(..., "--input", "-i", help="RGB-D folder with frames.jsonl, photos:DIR or "
                                  "hf:DATASET[:split]"),
        out: Path = typer.Option(..., "--out", "-o", help="output folder (must be empty unless --overwrite)"),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML config (see `spatialvlm config`)"),
        set_: list[str] = typer.Option([], "--set", help="override a config key, e.g. --set qa.per_image=20"),
        per_image: Optional[int] = typer.Option(None, "--per-image", help="QA pairs per image (default 40)"),
        seed: Optional[int] = typer.Option(None, "--seed", help="random seed of the QA sampler"),
        limit: Optional[int] = typer.Option(None, "--limit", help="process at most this many frames"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace a previous dataset in --out"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    ) -> None:
        """Synthesize spatial QA from RGB-D frames (or photos, with perception models) into a dataset."""
        from .run import SynthConfig, run_synth

        overrides = list(set_)
        if per_image is not None:
            overrides.append(f"qa.per_image={per_image}")
        if seed is not None:
            overrides.append(f"qa.seed={seed}")
        try:
            cfg = SynthConfig.load(config, overrides)
        except (ValueError, FileNotFoundError) as exc:
            raise typer.BadParameter(str(exc)) from exc
        summary = run_synth(input, out, cfg, overwrite=overwrite, progress=not quiet, limit=limit)
        print_summary(summary, Path(out))
        if summary.get("images_ok", 0) == 0:
            typer.echo("no image produced a scene; see errors.parquet", err=True)
            raise typer.Exit(2)

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
