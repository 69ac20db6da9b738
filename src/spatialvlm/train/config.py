"""Training configuration: a dataclass, presets from ``presets.yaml`` and ``key=value`` overrides.

The resolved configuration (preset + flags + overrides) is written as ``train_config.yaml`` next to the final
model and into every checkpoint, so a run can be read back and repeated."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRESETS_FILE = Path(__file__).with_name("presets.yaml")
# keys of a preset that document it and are not TrainConfig fields
DOC_KEYS = ("notes", "memory", "speed")
ANSWER_FORMS = ("natural", "short", "terse")
TRAINERS = ("sft", "scratch")


@dataclass
class TrainConfig:
    # what and where
    model: str = ""  # HF id, local folder, or "scratch:<family>" (build a tiny model, see `tiny`)
    data: list[str] = field(default_factory=list)  # synth output folders (OUT with hf/data), or parquet folders
    out: str = ""
    preset: str = ""
    # method
    trainer: str = "sft"  # "sft": TRL SFTTrainer (any HF VLM); "scratch": the from-scratch recipe (train/scratch.py)
    lora: bool = True  # False = full fine-tuning
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target: str | list[str] = "language"  # "language": attention + MLP projections of the LLM; or PEFT names
    freeze_vision: bool = True
    # optimisation
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    num_train_epochs: float = 1.0
    max_steps: int = -1
    max_time_minutes: float | None = None  # stop cleanly (and save) after this much training time
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    gradient_checkpointing: bool = False
    max_grad_norm: float = 1.0
    precision: str = "auto"  # auto | bf16 | fp16 | fp32
    seed: int = 0
    # data
    eval_images: int = 32  # images held out from training for the accuracy hook (0 = none)
    eval_samples: int = 128  # QA rows of those images scored at each evaluation
    eval_steps: int = 500  # 0 = evaluate only at the end
    eval_max_new_tokens: int = 24
    max_train_samples: int | None = None
    mix_general: str | None = None  # a general VQA dataset (folder or HF id) with images + prompt/completion
    spatial_ratio: float = 0.05  # share of spatial rows in the mix when mix_general is set
    label_noise_std: float = 0.0  # relative Gaussian noise on quantitative answers (paper ablation: 0.1-0.3)
    # "short": qualitative answers become "Yes." / "The NAME." / "Left." (from the truth); "terse": that, and
    # quantitative answers become their length alone ("1.4 meters.")
    answer_form: str = "natural"
    grounding_rows: int = 0  # copies of a per-object "where is NAME" row per training image (0 = none)
    vision_warmup_minutes: float = 0.0  # from-scratch models: per-cell label/depth/position targets first (0 = off)
    vision_warmup_lr: float = 1e-3
    vision_warmup_lookup: bool = False  # warm-up also teaches the LM's first layer to find "the LABEL" (Idefics3)
    blind: bool = False  # replace every image by a blank one (text-only baseline with the same architecture)
    image_max_pixels: int | None = None  # Qwen-style processors: cap on resized image area
    # bookkeeping
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int = 2
    resume: bool = False
    torch_threads: int | None = None
    dataloader_num_workers: int = 0
    report_to: str = "none"
    tiny: dict[str, Any] = field(default_factory=dict)  # TinyVLMSpec fields for model "scratch:<family>"
    scratch: dict[str, Any] = field(default_factory=dict)  # ScratchSpec fields for trainer "scratch"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls(**_checked(data, str(path)))


def _field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)}


def _checked(d: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = set(d) - _field_names()
    if unknown:
        raise ValueError(f"unknown training option(s) {sorted(unknown)} in {where}; known: {sorted(_field_names())}")
    return d


def load_presets() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(PRESETS_FILE.read_text())


def preset_names() -> list[str]:
    return list(load_presets())


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``["lr=1e-4", "tiny.hidden_size=128"]`` -> nested dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else None
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads "2e-3" (no dot) as a string
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts merge key by key; an empty dict clears the preset's (``--set 'scratch.type_weights={}'``)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and v and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_config(preset: str | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Preset values, then ``overrides`` (flags and --set, None values ignored) on top."""
    values: dict[str, Any] = {}
    if preset:
        presets = load_presets()
        if preset not in presets:
            raise ValueError(f"unknown preset {preset!r}; available: {', '.join(presets)}")
        values = {k: v for k, v in presets[preset].items() if k not in DOC_KEYS}
        values["preset"] = preset
    clean = {k: v for k, v in (overrides or {}).items() if v is not None}
    values = _merge(values, clean)
    if isinstance(values.get("data"), str):
        values["data"] = [values["data"]]
    cfg = TrainConfig(**_checked(values, f"preset {preset!r} + overrides"))
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    if not cfg.model:
        raise ValueError("no model given: pass --model (HF id or local folder) or a --preset that names one")
    if not cfg.out:
        raise ValueError("no output folder given (--out)")
    if not cfg.data:
        raise ValueError("no training data given (--data OUT_DIR, repeatable)")
    if not 0.0 < cfg.spatial_ratio <= 1.0:
        raise ValueError(f"spatial_ratio must be in (0, 1], got {cfg.spatial_ratio}")
    if cfg.model.startswith("scratch:") and cfg.lora:
        raise ValueError("a model built from scratch has random weights: train it fully (--full), not with LoRA")
    if cfg.trainer not in TRAINERS:
        raise ValueError(f"trainer must be one of {TRAINERS}, got {cfg.trainer!r}")
    if cfg.scratch and cfg.trainer != "scratch":
        raise ValueError(f"scratch options {sorted(cfg.scratch)} are for trainer 'scratch' (set trainer: scratch, "
                         f"or drop them), not {cfg.trainer!r}")
    if cfg.trainer == "scratch":
        from spatialvlm.train.scratch import ScratchSpec

        ScratchSpec.from_dict(cfg.scratch)
        unsupported = [k for k in ("mix_general", "vision_warmup_minutes", "grounding_rows", "max_train_samples")
                       if getattr(cfg, k)]
        if cfg.lora:
            unsupported.append("lora")
        if cfg.model.startswith("scratch:") and cfg.freeze_vision:
            raise ValueError("a vision tower built from nothing has random weights: set freeze_vision: false")
        if unsupported:
            raise ValueError(f"trainer 'scratch' does not support {unsupported}: use trainer 'sft' for those")
    if cfg.answer_form not in ANSWER_FORMS:
        raise ValueError(f"answer_form must be one of {ANSWER_FORMS}, got {cfg.answer_form!r}")
    if cfg.vision_warmup_minutes < 0:
        raise ValueError(f"vision_warmup_minutes must be >= 0, got {cfg.vision_warmup_minutes}")
    if cfg.vision_warmup_minutes and cfg.max_time_minutes and cfg.vision_warmup_minutes >= cfg.max_time_minutes:
        raise ValueError(f"vision_warmup_minutes ({cfg.vision_warmup_minutes}) must leave time for the QA training "
                         f"within max_time_minutes ({cfg.max_time_minutes})")
    if cfg.label_noise_std < 0:
        raise ValueError(f"label_noise_std must be >= 0, got {cfg.label_noise_std}")
    if cfg.precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {cfg.precision!r}")
