"""CLI: ``spatialvlm view`` (local web viewer), ``spatialvlm export-rerun`` (.rrd recording) and
``spatialvlm report`` (rewrite report.html of an output folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

OutDir = Annotated[Path, typer.Argument(help="An output folder written by `spatialvlm synth` / `demo`.")]


def register(app: typer.Typer) -> None:
    @app.command("view")
    def view(
        out_dir: OutDir,
        port: Annotated[int, typer.Option(help="TCP port (0 = any free port).")] = 8765,
        host: Annotated[str, typer.Option(help="Address to bind; only loopback addresses unless --allow-remote.")]
        = "127.0.0.1",
        allow_remote: Annotated[bool, typer.Option(
            "--allow-remote", help="Allow binding a non-loopback address (exposes the dataset files).")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", help="Log every request.")] = False,
    ) -> None:
        """Browse a dataset in the browser: filterable image grid, per-image masks, depth, 3D view and QA.

        Read-only; serves nothing outside OUT_DIR. Open the printed http://127.0.0.1:PORT/ address."""
        from spatialvlm.viewer.server import serve

        try:
            serve(out_dir, host, port, allow_remote=allow_remote, quiet=not verbose)
        except (PermissionError, FileNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

    @app.command("export-rerun")
    def export_rerun_cmd(
        out_dir: OutDir,
        out: Annotated[Path, typer.Option("--out", help="The .rrd file to write.")],
        images: Annotated[str | None, typer.Option(
            "--images", help="Comma-separated image ids (default: the first --limit images).")] = None,
        limit: Annotated[int, typer.Option(help="How many images when --images is not given.")] = 50,
    ) -> None:
        """Write a rerun recording (.rrd) of selected images: camera, image, depth, segmentation, point clouds,
        3D boxes, floor and QA text. Open it with `rerun FILE.rrd`. Needs rerun-sdk."""
        from spatialvlm.viewer.rerun_export import export_rerun

        ids = [i.strip() for i in images.split(",") if i.strip()] if images else None
        path = export_rerun(out_dir, out, image_ids=ids, limit=limit)
        typer.echo(f"wrote {path}")

    @app.command("report")
    def report_cmd(
        out_dir: OutDir,
        n_images: Annotated[int, typer.Option("-n", "--n-images", help="How many images to show.")] = 12,
        seed: Annotated[int, typer.Option(help="Seed of the image sample.")] = 0,
    ) -> None:
        """(Re)write OUT_DIR/report.html: a self-contained page with a sample of images, masks, depth, 3D views
        and QA, plus dataset counts. Works offline."""
        from spatialvlm.io.report import write_report

        typer.echo(f"wrote {write_report(out_dir, n_images=n_images, seed=seed)}")
