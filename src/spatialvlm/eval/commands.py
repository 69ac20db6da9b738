"""CLI: ``bench-build``, ``eval``, ``eval-export-lmms``. Heavy imports stay inside the commands."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("bench-build")
    def bench_build(
        frames: Path = typer.Option(
            ...,
            "--frames",
            help="RGB-D folder (frames.jsonl) of rendered scenes or frames with 3D boxes / masks",
        ),
        out: Path = typer.Option(..., "--out", help="output folder for the benchmark"),
        per_type: int = typer.Option(
            50, "--per-type", help="questions per type (binary types: half per answer)"
        ),
        seed: int = typer.Option(0, "--seed"),
        types: str | None = typer.Option(
            None, "--types", help="comma-separated question types (default all)"
        ),
        image_format: str = typer.Option("jpeg", "--image-format", help="jpeg (quality 95) or png"),
        limit_frames: int | None = typer.Option(None, "--limit-frames", help="use only the first N frames"),
    ) -> None:
        """Build a balanced spatial benchmark with exact answers (a Hugging Face parquet dataset)."""
        from spatialvlm.eval.bench import BenchConfig, build_bench

        cfg = BenchConfig(
            per_type=per_type,
            seed=seed,
            types=[t.strip() for t in types.split(",")] if types else [],
            image_format=image_format,
            limit_frames=limit_frames,
        )
        meta = build_bench(frames, out, cfg, progress=True)
        typer.echo(
            f"benchmark: {meta['n_items']} questions over {meta['n_images_used']} images "
            f"({meta['n_frames']} frames read, {meta['n_errors']} unusable, see errors.jsonl) -> {out}"
        )
        if meta["shortfall"]:
            typer.echo(
                "types short of --per-type: " + ", ".join(f"{k} (-{v})" for k, v in meta["shortfall"].items())
            )

    @app.command("eval")
    def eval_cmd(
        model: str | None = typer.Option(
            None,
            "--model",
            help="hf:<id|dir>, spatialvlm:<dir>, "
            "openai:<model>@<base_url>, blind, oracle "
            "(omit to run only the baselines)",
        ),
        bench: str = typer.Option(
            ...,
            "--bench",
            help="bench-build folder, or qspatial:/spatialrgpt:/cvbench:/"
            "blink:/vsr:<path> for a downloaded public benchmark",
        ),
        out: Path = typer.Option(..., "--out", help="output folder (predictions, metrics, report)"),
        limit: int | None = typer.Option(None, "--limit", help="evaluate a seeded random subset of N items"),
        image_root: str | None = typer.Option(None, "--image-root", help="image folder (public benchmarks)"),
        baselines: str = typer.Option(
            "blind,blind-names,oracle", "--baselines", help="comma-separated; '' for none"
        ),
        max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
        batch_size: int = typer.Option(8, "--batch-size"),
        device: str | None = typer.Option(
            None, "--device", help="cuda / mps / cpu (default: best available)"
        ),
        prompt_suffix: str = typer.Option("", "--prompt-suffix", help="text appended to every question"),
        system_prompt: str | None = typer.Option(None, "--system-prompt"),
        api_key_env: str = typer.Option(
            "OPENAI_API_KEY", "--api-key-env", help="env var holding the HTTP key"
        ),
        workers: int = typer.Option(4, "--workers", help="parallel HTTP requests (openai:)"),
        n_boot: int = typer.Option(1000, "--n-boot", help="bootstrap resamples for the confidence intervals"),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Run a VLM (and the blind / oracle baselines) on a benchmark; write predictions, metrics, report."""
        from spatialvlm.eval.adapters import load_model
        from spatialvlm.eval.loaders import load_any
        from spatialvlm.eval.run import evaluate, write_json

        items, errors, bench_dir = load_any(bench, image_root=image_root, limit=limit, seed=seed)
        if not items:
            raise typer.BadParameter(f"no usable item in {bench} ({len(errors)} load errors)")
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "load_errors.json", [e.to_row() for e in errors])
        m = None
        if model:
            m = load_model(
                model,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                device=device,
                prompt_suffix=prompt_suffix,
                system_prompt=system_prompt,
                api_key_env=api_key_env,
                workers=workers,
                bench_dir=bench_dir,
                seed=seed,
            )
        res = evaluate(
            m,
            items,
            out,
            baselines=[b for b in baselines.split(",") if b.strip()],
            bench_dir=bench_dir,
            bench_name=bench,
            batch_size=batch_size,
            n_boot=n_boot,
            seed=seed,
            progress=True,
        )
        for name, s in res["models"].items():
            o = s["overall"]
            parts = [f"{name}:"]
            if "qualitative" in o:
                parts.append(f"qualitative {100 * o['qualitative']['correct']['mean']:.1f}%")
            if "quantitative" in o:
                q = o["quantitative"]
                parts.append(
                    f"number {100 * q['has_number']['mean']:.1f}%, [50,200]% "
                    f"{100 * q['within_50_200']['mean']:.1f}%, +-25% {100 * q['success_25']['mean']:.1f}%"
                )
            if o.get("errors"):
                parts.append(f"{o['errors']} failed items")
            typer.echo("  ".join(parts))
        for b, why in res["unavailable"].items():
            typer.echo(f"{b}: not run ({why})")
        if errors:
            typer.echo(f"{len(errors)} benchmark records could not be loaded: {out / 'load_errors.json'}")
        typer.echo(f"report: {out / 'report.md'}")

    @app.command("eval-export-lmms")
    def export_lmms_cmd(
        bench: Path = typer.Option(..., "--bench", help="bench-build folder"),
        out: Path = typer.Option(..., "--out", help="task folder to write"),
        task: str = typer.Option("spatialvlm_bench", "--task", help="lmms-eval task name"),
        max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    ) -> None:
        """Export a benchmark as an lmms-eval task folder (yaml + utils.py + data)."""
        from spatialvlm.eval.lmms import export_lmms

        y = export_lmms(bench, out, task, max_new_tokens)
        typer.echo(f"lmms-eval task written: {y}")
