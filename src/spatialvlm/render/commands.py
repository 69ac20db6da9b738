"""CLI: ``spatialvlm scenes render`` (procedural rooms -> RGB-D folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    scenes = typer.Typer(help="Built-in procedural indoor scenes with exact ground truth (depth, masks, 3D boxes).",
                         no_args_is_help=True)

    @scenes.command("render")
    def render(
        out: Annotated[Path, typer.Option("--out", help="Output folder; frames.jsonl and rgb/, depth/, masks/, "
                                                        "support/ are written there.")],
        n: Annotated[int, typer.Option("-n", "--num", min=1, help="Number of scenes to render.")] = 24,
        seed: Annotated[int, typer.Option("--seed", min=0, help="First seed; scenes seed .. seed+n-1.")] = 0,
        width: Annotated[int, typer.Option("--width", min=16, help="Image width in pixels.")] = 512,
        height: Annotated[int, typer.Option("--height", min=16, help="Image height in pixels.")] = 384,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    ) -> None:
        """Render N procedural rooms (deterministic by seed) into an RGB-D folder (see docs/formats.md)."""
        from spatialvlm.render.api import render_scenes
        from spatialvlm.render.scene import RenderConfig

        manifest = render_scenes(n, out, seed=seed, config=RenderConfig(width=width, height=height),
                                 progress=progress)
        typer.echo(f"wrote {n} scenes: {manifest}")

    app.add_typer(scenes, name="scenes")
