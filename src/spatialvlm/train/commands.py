"""CLI commands of the training area: ``train``, ``ask``, ``merge-lora``, ``tiny-build``, ``train-presets``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _show_progress() -> None:
    """Training's own progress lines (data preparation, the from-scratch trainer's logged steps) go to stderr."""
    import logging

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("spatialvlm.train").setLevel(logging.INFO)


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        data: list[Path] = typer.Option(..., "--data", help="synth output folder (OUT with hf/data); repeatable"),
        out: Path = typer.Option(..., "--out", help="where checkpoints, the final model and its config go"),
        model: str | None = typer.Option(None, "--model", help="HF id or local folder (default: the preset's)"),
        preset: str = typer.Option("qwen2.5-vl-3b", "--preset", help="see `spatialvlm train-presets`"),
        lora: bool | None = typer.Option(None, "--lora/--full", help="LoRA adapters or full fine-tuning"),
        mix_general: str | None = typer.Option(None, "--mix-general", help="general VQA dataset to mix in"),
        spatial_ratio: float | None = typer.Option(None, "--spatial-ratio", help="share of spatial rows"),
        freeze_vision: bool | None = typer.Option(None, "--freeze-vision/--unfreeze-vision"),
        resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint in --out"),
        max_steps: int | None = typer.Option(None, "--max-steps"),
        set_: list[str] | None = typer.Option(None, "--set", help="key=value override (repeatable)"),
    ) -> None:
        """Fine-tune a VLM on spatial QA (TRL SFTTrainer; loss on answers only)."""
        from spatialvlm.train.config import parse_set, resolve_config
        from spatialvlm.train.trainer import train

        overrides = {
            "data": [str(d) for d in data],
            "out": str(out),
            "model": model,
            "lora": lora,
            "mix_general": mix_general,
            "spatial_ratio": spatial_ratio,
            "freeze_vision": freeze_vision,
            "resume": resume or None,
            "max_steps": max_steps,
        }
        extra = parse_set(set_)
        clash = sorted(k for k in extra if overrides.get(k) is not None)
        if clash:
            raise typer.BadParameter(f"{clash} given both as a flag and with --set")
        overrides.update(extra)
        cfg = resolve_config(preset, overrides)
        _show_progress()
        res = train(cfg)
        typer.echo(json.dumps({"out": str(res.out_dir), "steps": res.steps, "train_loss": res.train_loss,
                               "train_rows": res.train_rows, "seconds": round(res.seconds, 1),
                               "eval": None if res.eval is None else {k: v for k, v in res.eval.items()
                                                                       if k != "by_type"}}, indent=2))

    @app.command("ask")
    def ask_cmd(
        question: str = typer.Argument(..., help="the question"),
        model: str = typer.Option(..., "--model", help="HF id, model folder or LoRA adapter folder"),
        image: Path = typer.Option(..., "--image", help="image file"),
        max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
        device: str | None = typer.Option(None, "--device", help="cpu, cuda, mps (default: best available)"),
    ) -> None:
        """Answer one question about one image with a VLM."""
        from spatialvlm.train.infer import ask

        typer.echo(ask(model, image, question, max_new_tokens=max_new_tokens, device=device))

    @app.command("merge-lora")
    def merge_cmd(
        adapter: Path = typer.Option(..., "--adapter", help="LoRA adapter folder written by `train`"),
        out: Path = typer.Option(..., "--out", help="folder for the merged model"),
    ) -> None:
        """Fold a LoRA adapter into its base model and save a standalone model."""
        from spatialvlm.train.infer import merge_adapter

        typer.echo(str(merge_adapter(adapter, out)))

    @app.command("train-presets")
    def presets_cmd() -> None:
        """List training presets with their memory / speed notes (estimates unless stated)."""
        from spatialvlm.train.config import load_presets

        for name, p in load_presets().items():
            typer.echo(f"{name}: model={p.get('model')} lora={p.get('lora', True)}")
            for k in ("notes", "memory", "speed"):
                if p.get(k):
                    typer.echo(f"    {k}: {p[k]}")

    @app.command("tiny-build")
    def tiny_cmd(
        out: Path = typer.Option(..., "--out", help="folder for the randomly initialised model"),
        data: list[Path] | None = typer.Option(None, "--data", help="synth outputs whose QA text trains the "
                                                  "tokenizer (default: a few built-in sentences)"),
        family: str = typer.Option("qwen2_vl", "--family", help="qwen2_vl | qwen2_5_vl | idefics3"),
        preset: str = typer.Option("cpu-tiny", "--preset", help="preset whose `tiny` block gives the dimensions"),
    ) -> None:
        """Build a small VLM from scratch (random weights, locally trained tokenizer) and save it."""
        from spatialvlm.train.config import load_presets
        from spatialvlm.train.tiny import TinyVLMSpec, build_tiny_vlm

        dims = dict(load_presets()[preset].get("tiny") or {})
        dims["family"] = family
        texts = None
        if data:
            from spatialvlm.train.data import answer_text, load_rows, question_text

            ds = load_rows([str(d) for d in data]).select_columns(["prompt", "completion"])
            texts = [question_text(r) for r in ds] + [answer_text(r) for r in ds]
        typer.echo(str(build_tiny_vlm(out, texts, TinyVLMSpec(**dims))))
