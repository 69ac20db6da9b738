"""``spatialvlm train``: supervised fine-tuning of Hugging Face VLMs on synth output with TRL's SFTTrainer.

* prompt/completion rows -> the loss covers answer tokens only (TRL's vision collator with
  ``completion_only_loss=True``; prompt and image tokens get label -100), ``max_length=None`` so image tokens are
  never cut;
* LoRA on the language model's attention and MLP projections (PEFT), or full fine-tuning;
* vision tower frozen or trained (the paper's ablation); with LoRA an unfrozen tower is trained in full and saved
  with the adapter (``modules_to_save``);
* optional mixing with a general VQA dataset, label-noise ablation, blank-image (blind) training;
* checkpoints with the resolved config inside, ``--resume`` from the last one, a held-out QA accuracy hook,
  an optional wall-clock budget with a time-based learning-rate schedule;
* ``model: scratch:<family>`` builds a small model from scratch (tokenizer trained on the training text).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatialvlm.train.config import TrainConfig

log = logging.getLogger(__name__)

VISION_NAMES = ("visual", "vision_model", "vision_tower")
PROJECTOR_NAMES = ("connector", "multi_modal_projector", "mm_projector")
LANGUAGE_LORA_REGEX = (
    r".*(language_model|text_model)\..*layers\.\d+\.(self_attn|mlp)\."
    r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
)


@dataclass
class TrainResult:
    out_dir: Path
    train_rows: int
    heldout_rows: int
    steps: int
    train_loss: float | None
    seconds: float
    eval: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------------------
# model pieces
# ------------------------------------------------------------------------------------------------------------
def find_submodule(model, names: tuple[str, ...]) -> tuple[str, Any] | None:
    """The outermost submodule whose own name is one of ``names`` (e.g. Qwen2-VL's ``model.visual``)."""
    for full, mod in model.named_modules():
        if full and full.split(".")[-1] in names:
            return full, mod
    return None


def set_vision_trainable(model, trainable: bool) -> int:
    """(Un)freeze the vision tower; returns the number of parameters touched (0 if none was found)."""
    found = find_submodule(model, VISION_NAMES)
    if found is None:
        raise ValueError(f"no vision tower (one of {VISION_NAMES}) found in {type(model).__name__}")
    n = 0
    for p in found[1].parameters():
        p.requires_grad_(trainable)
        n += p.numel()
    return n


def lora_config(cfg: TrainConfig, model):
    from peft import LoraConfig

    target: Any = LANGUAGE_LORA_REGEX if cfg.lora_target == "language" else cfg.lora_target
    modules_to_save = None
    if not cfg.freeze_vision:
        modules_to_save = []
        for names in (VISION_NAMES, PROJECTOR_NAMES):
            found = find_submodule(model, names)
            if found is not None:
                modules_to_save.append(found[0].split(".")[-1])
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=target,
        modules_to_save=modules_to_save,
        task_type="CAUSAL_LM",
    )


def _precision(cfg: TrainConfig) -> str:
    import torch

    if cfg.precision != "auto":
        return cfg.precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def set_image_max_pixels(processor, max_pixels: int | None) -> None:
    if not max_pixels:
        return
    ip = getattr(processor, "image_processor", None)
    size = getattr(ip, "size", None)
    if ip is None or size is None or "longest_edge" not in dict(size) or "shortest_edge" not in dict(size):
        raise ValueError(
            f"image_max_pixels applies to Qwen-style processors (size with shortest/longest_edge in pixels); "
            f"{type(ip).__name__} has size={size!r}"
        )
    new = dict(size)
    new["longest_edge"] = int(max_pixels)
    new["shortest_edge"] = min(int(new["shortest_edge"]), int(max_pixels))
    ip.size = new


# ------------------------------------------------------------------------------------------------------------
# collator
# ------------------------------------------------------------------------------------------------------------
class AnswerOnlyCollator:
    """TRL's vision-language collator for prompt/completion rows (prompt tokens masked with -100), optionally
    replacing every image with a blank grey one of the same size (blind baseline)."""

    def __init__(self, processor, blind: bool = False):
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

        self.inner = DataCollatorForVisionLanguageModeling(processor, max_length=None, completion_only_loss=True)
        self.blind = blind

    def __call__(self, examples: list[dict]) -> dict:
        examples = [dict(e) for e in examples]
        for e in examples:
            e.pop("image_id", None)
            e.pop("qa_type", None)
            e.pop("value_m", None)
            if self.blind:
                e["images"] = [blank_like(im) for im in e["images"]]
        return self.inner(examples)


def blank_like(image):
    from PIL import Image

    return Image.new("RGB", image.size, (128, 128, 128))


# ------------------------------------------------------------------------------------------------------------
# callbacks
# ------------------------------------------------------------------------------------------------------------
def _time_budget_class():
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        """Stops (and saves) after ``seconds`` of training. ``multiplier()`` is a learning-rate factor that follows
        linear warmup + cosine decay over the time budget (or over the step budget, whichever runs out first), so a
        run cut by the clock still ends with a decayed rate."""

        def __init__(self, seconds: float, warmup: float):
            self.seconds, self.warmup = float(seconds), float(warmup)
            self.t0: float | None = None
            self.step, self.max_steps = 0, 0

        def fraction(self) -> float:
            elapsed = 0.0 if self.t0 is None else time.monotonic() - self.t0
            by_steps = self.step / self.max_steps if self.max_steps > 0 else 0.0
            return min(1.0, max(elapsed / self.seconds, by_steps))

        def multiplier(self) -> float:
            f = self.fraction()
            if f < self.warmup:
                return max(f / max(self.warmup, 1e-8), 0.01)
            p = (f - self.warmup) / max(1e-8, 1.0 - self.warmup)
            return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, p)))

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.monotonic()
            self.max_steps = state.max_steps

        def on_step_end(self, args, state, control, **kw):
            self.step = state.global_step
            if self.t0 is not None and time.monotonic() - self.t0 >= self.seconds:
                log.warning("time budget of %.1f min reached at step %d: stopping", self.seconds / 60,
                            state.global_step)
                control.should_training_stop = True
                control.should_save = True
            return control

    return TimeBudget


def TimeBudget(seconds: float, warmup: float):
    return _time_budget_class()(seconds, warmup)


def heldout_eval(model, processor, items: list[dict], cfg: TrainConfig, out_dir: Path, step: int) -> dict:
    """Answer held-out questions greedily, score them with the evaluation parsers and append the result to
    ``OUT/eval_history.jsonl``. Returns the aggregate (with ``by_type``)."""
    from spatialvlm.train.infer import LoadedVLM, answer
    from spatialvlm.train.scoring import aggregate, score

    was_training = model.training
    model.eval()
    dev = str(next(model.parameters()).device)
    vlm = LoadedVLM(model, processor, "training", dev)
    imgs = [blank_like(it["image"]) if cfg.blind else it["image"] for it in items]
    preds = answer(vlm, imgs, [it["question"] for it in items], max_new_tokens=cfg.eval_max_new_tokens,
                   batch_size=max(1, cfg.per_device_train_batch_size))
    if was_training:
        model.train()
    agg = aggregate([score(it, p) for it, p in zip(items, preds)])
    rec = {"step": step, **{k: v for k, v in agg.items() if k != "by_type"}}
    with open(out_dir / "eval_history.jsonl", "a") as f:
        f.write(json.dumps({**rec, "by_type": agg["by_type"]}) + "\n")
    log.info("held-out eval at step %d: %s", step, rec)
    return agg


def _callbacks(cfg: TrainConfig, out_dir: Path, eval_items: list[dict] | None, processor,
               minutes: float | None = None):
    from transformers import TrainerCallback

    class ConfigIntoCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            ckpt = out_dir / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                cfg.save(ckpt / "train_config.yaml")

    class HeldoutAccuracy(TrainerCallback):
        def run(self, model, step: int) -> dict:
            return heldout_eval(model, processor, eval_items or [], cfg, out_dir, step)

        def on_step_end(self, args, state, control, model=None, **kw):
            if eval_items and cfg.eval_steps and state.global_step % cfg.eval_steps == 0:
                self.run(model, state.global_step)

    cbs: list[Any] = [ConfigIntoCheckpoints()]
    minutes = cfg.max_time_minutes if minutes is None else minutes
    if minutes:
        cbs.append(TimeBudget(minutes * 60.0, cfg.warmup_ratio))
    acc = HeldoutAccuracy()
    cbs.append(acc)
    return cbs, acc


# ------------------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------------------
def _has_model_files(d: Path) -> bool:
    return any((d / n).exists() for n in ("adapter_config.json", "model.safetensors", "config.json")) or any(
        d.glob("checkpoint-*")
    )


def prepare_data(cfg: TrainConfig):
    """(train dataset, held-out eval items, info) from the config's data, before any model is touched."""
    from spatialvlm.train import data as D

    ds = D.load_rows(cfg.data)
    info: dict[str, Any] = {"rows_total": len(ds)}
    # text-only transforms run before the split, on the loaded dataset, so they do not copy the images
    # (held-out rows are scored against qa.parquet's truth, never against their answer text)
    if cfg.answer_form in ("short", "terse"):
        ds, n = D.shorten_answers(ds, cfg.data, numbers=cfg.answer_form == "terse")
        info["short_answers"] = n
    if cfg.label_noise_std > 0:
        ds, rep = D.add_label_noise(ds, cfg.label_noise_std, cfg.seed)
        info["label_noise"] = rep.__dict__
    train, held = D.split_heldout(ds, cfg.eval_images, cfg.seed)
    if cfg.max_train_samples and len(train) > cfg.max_train_samples:
        train = train.shuffle(seed=cfg.seed).select(range(cfg.max_train_samples))
    if cfg.grounding_rows > 0:
        train, n = D.add_grounding_rows(train, cfg.data, cfg.grounding_rows)
        info["grounding_rows"] = n
    if cfg.mix_general:
        general = D.load_general(cfg.mix_general)
        train, mix = D.mix_general(train, general, cfg.spatial_ratio, cfg.seed)
        info["mix"] = mix
    eval_items = None
    if held is not None and len(held):
        n = min(cfg.eval_samples, len(held))
        held_s = held.shuffle(seed=cfg.seed).select(range(n))
        eval_items = D.attach_truth(held_s, cfg.data)
    info["train_rows"] = len(train)
    info["heldout_rows"] = 0 if held is None else len(held)
    info["heldout_images"] = [] if held is None else sorted({str(i) for i in held["image_id"] if i is not None})
    return train, eval_items, info


def _training_texts(train) -> list[str]:
    from spatialvlm.train.data import answer_text, question_text

    out = []
    for row in train.select_columns(["prompt", "completion"]):  # no image decoding
        out.append(question_text(row))
        out.append(answer_text(row))
    return out


def load_model_and_processor(cfg: TrainConfig, train_rows=None, out_dir: Path | None = None,
                             texts: list[str] | None = None):
    """The model and processor ``cfg.model`` names; ``scratch:<family>`` builds one under ``OUT/base`` first, its
    tokenizer trained on ``texts`` (or on the questions and answers of ``train_rows``)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    src = cfg.model
    if src.startswith("scratch:"):
        from spatialvlm.train.tiny import TinyVLMSpec, build_tiny_vlm

        base = (out_dir or Path(cfg.out)) / "base"
        if not (base / "config.json").exists():
            spec = TinyVLMSpec(**{**cfg.tiny, "family": src.split(":", 1)[1] or cfg.tiny.get("family", "qwen2_vl"),
                                  "seed": cfg.seed})
            if texts is None and train_rows is None:
                raise ValueError("building a model from scratch needs the training text (for its tokenizer)")
            build_tiny_vlm(base, texts if texts is not None else _training_texts(train_rows), spec)
        src = str(base)
    prec = _precision(cfg)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(prec, torch.float32)
    try:
        model = AutoModelForImageTextToText.from_pretrained(src, dtype=dtype)
        processor = AutoProcessor.from_pretrained(src)
    except OSError as exc:
        from spatialvlm.train.infer import _missing

        raise _missing(src, str(Path(src).resolve()) if Path(src).exists() else "the Hugging Face cache", exc) from exc
    set_image_max_pixels(processor, cfg.image_max_pixels)
    tok = getattr(processor, "tokenizer", None)
    if tok is not None and tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, processor, src


def train(cfg: TrainConfig) -> TrainResult:
    if cfg.trainer == "scratch":
        from spatialvlm.train.scratch import train_scratch

        return train_scratch(cfg)
    import torch
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig, SFTTrainer

    t0 = time.time()
    if cfg.torch_threads:
        torch.set_num_threads(int(cfg.torch_threads))
    out_dir = Path(cfg.out)
    resume_from = None
    if cfg.resume:
        resume_from = get_last_checkpoint(str(out_dir)) if out_dir.is_dir() else None
        if resume_from is None:
            raise FileNotFoundError(f"--resume given but no checkpoint-* folder in {out_dir}")
    elif out_dir.is_dir() and _has_model_files(out_dir):
        raise FileExistsError(f"{out_dir} already holds a model or checkpoints: pass --resume or choose a new --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.resume:
        (out_dir / "eval_history.jsonl").unlink(missing_ok=True)

    train_ds, eval_items, info = prepare_data(cfg)
    if len(train_ds) == 0:
        raise ValueError("no training rows left after holding out evaluation images")
    model, processor, base_src = load_model_and_processor(cfg, train_ds, out_dir)
    info["base_model"] = base_src

    # the warm-up (if any) runs first: it trains the vision tower and projector itself, and the block below then
    # sets what the QA training may change
    sft_minutes = cfg.max_time_minutes
    if cfg.vision_warmup_minutes and not cfg.resume:
        if cfg.blind:
            log.info("blind training: no vision warm-up (its images are blank), the QA training gets the whole budget")
        else:
            from spatialvlm.train.vision_warmup import warmup_vision

            rep = warmup_vision(model, processor, cfg.data, cfg.vision_warmup_minutes,
                                learning_rate=cfg.vision_warmup_lr, batch_size=cfg.per_device_train_batch_size,
                                seed=cfg.seed, exclude_images=set(info["heldout_images"]),
                                out_file=out_dir / "vision_warmup.jsonl", lookup=cfg.vision_warmup_lookup)
            info["vision_warmup"] = rep.to_dict()
            if sft_minutes:
                sft_minutes = max(sft_minutes - rep.seconds / 60.0, 0.1)

    peft_config = None
    if cfg.lora:
        set_vision_trainable(model, False)
        peft_config = lora_config(cfg, model)
    else:
        set_vision_trainable(model, not cfg.freeze_vision)
    cfg.save(out_dir / "train_config.yaml")

    prec = _precision(cfg)
    use_cpu = not torch.cuda.is_available()
    args = SFTConfig(
        output_dir=str(out_dir),
        max_length=None,
        completion_only_loss=True,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        activation_checkpointing=cfg.gradient_checkpointing,
        max_grad_norm=cfg.max_grad_norm,
        bf16=prec == "bf16",
        fp16=prec == "fp16",
        use_cpu=use_cpu,
        seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        report_to=cfg.report_to,
        dataloader_num_workers=cfg.dataloader_num_workers,
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        disable_tqdm=os.environ.get("SPATIALVLM_TQDM", "1") == "0",
    )
    callbacks, acc = _callbacks(cfg, out_dir, eval_items, processor, sft_minutes)
    budget = next((c for c in callbacks if type(c).__name__ == "TimeBudget"), None)

    class _Trainer(SFTTrainer):
        def create_scheduler(self, num_training_steps: int, optimizer=None):
            if budget is None or self.lr_scheduler is not None:
                return super().create_scheduler(num_training_steps, optimizer)
            from torch.optim.lr_scheduler import LambdaLR

            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lambda _step: budget.multiplier())
            self._created_lr_scheduler = True
            return self.lr_scheduler

    trainer = _Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        processing_class=processor,
        data_collator=AnswerOnlyCollator(processor, blind=cfg.blind),
        peft_config=peft_config,
        callbacks=callbacks,
    )
    out = trainer.train(resume_from_checkpoint=resume_from)
    trainer.save_model(str(out_dir))
    processor.save_pretrained(str(out_dir))
    cfg.save(out_dir / "train_config.yaml")

    final_eval = None
    if eval_items:
        final_eval = acc.run(trainer.model, trainer.state.global_step)
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    result = TrainResult(
        out_dir=out_dir,
        train_rows=info["train_rows"],
        heldout_rows=info["heldout_rows"],
        steps=trainer.state.global_step,
        train_loss=float(out.training_loss) if out.training_loss is not None else None,
        seconds=time.time() - t0,
        eval=final_eval,
        info=info,
    )
    summary = {
        "steps": result.steps,
        "train_loss": result.train_loss,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "losses": losses,
        "seconds": result.seconds,
        "info": info,
        "eval": final_eval,
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return result


def remove_checkpoints(out_dir: Path) -> None:
    for d in Path(out_dir).glob("checkpoint-*"):
        shutil.rmtree(d)
