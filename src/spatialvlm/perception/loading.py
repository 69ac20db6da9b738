"""Loading models: device and precision selection, offline mode and clear errors when weights are missing."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


class ModelNotFoundError(RuntimeError):
    """Weights for a configured model could not be found (message names the model, where, and how to get it)."""


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> cuda if available, else mps, else cpu. Anything else is passed through (checked)."""
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto`` -> bfloat16 on CUDA GPUs that support it, float16 on other GPUs (CUDA, MPS), float32 on CPU."""
    import torch

    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype in (None, "", "auto"):
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.startswith("mps"):
            return torch.float16
        return torch.float32
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(names)}")
    return names[dtype]


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def looks_like_path(id_or_path: str) -> bool:
    """A local folder (existing, or written like a path) rather than a Hugging Face ``org/name`` id."""
    if Path(id_or_path).expanduser().exists():
        return True
    return id_or_path.startswith(("/", "./", "../", "~", "\\")) or id_or_path.count("/") > 1 or "\\" in id_or_path \
        or (len(id_or_path) > 1 and id_or_path[1] == ":")


def _hub_cache() -> str:
    from huggingface_hub import constants  # always installed with transformers

    return str(constants.HF_HUB_CACHE)


def missing_weights_message(model: str, what: str, detail: str = "") -> str:
    if looks_like_path(model):
        where = f"the local folder {Path(model).expanduser()}"
        how = ("point the spec at a folder holding config.json and the weights (as written by save_pretrained or "
               "`hf download <id> --local-dir <folder>`)")
    else:
        where = f"the Hugging Face cache at {_hub_cache()}" + (" (HF_HUB_OFFLINE=1: no download attempted)"
                                                             if offline() else " and the Hub")
        how = (f"run `hf download {model}` on a machine with network access (and copy the cache), or pass a local "
               f"folder instead of the id" + ("; or unset HF_HUB_OFFLINE to allow the download" if offline() else ""))
    msg = f"cannot load the {what} model {model!r}: not found in {where}. To get it: {how}."
    if detail:
        msg += f" (underlying error: {detail.splitlines()[0][:300]})"
    return msg


def load_pretrained(loader: Any, model: str, what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(model, **kwargs)`` with ``local_files_only`` under HF_HUB_OFFLINE=1, and a
    :class:`ModelNotFoundError` naming the model, where it looked and how to get it when the weights are missing.
    Other failures (a corrupt file, a wrong architecture) propagate unchanged."""
    if looks_like_path(model):
        p = Path(model).expanduser()
        if not p.is_dir():
            raise ModelNotFoundError(missing_weights_message(model, what, "no such directory"))
        if not (p / "config.json").exists():
            raise ModelNotFoundError(missing_weights_message(model, what, f"no config.json in {p}"))
        model = str(p)
    elif offline():
        kwargs.setdefault("local_files_only", True)
    try:
        return loader.from_pretrained(model, **kwargs)
    except OSError as exc:  # transformers reports missing files / repos / offline cache misses as OSError
        raise ModelNotFoundError(missing_weights_message(model, what, str(exc))) from exc


def quiet_transformers() -> None:
    """Silence the per-load report tables and progress bars transformers prints (warnings stay visible)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class TorchBackend:
    """Common state for transformers-based backends: the spec, device, dtype and a batch size."""

    kind = ""

    def __init__(self, spec: str, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 4):
        self.spec = spec
        self.model_id = model
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = max(1, int(batch_size))

    def _to_device(self, batch: dict) -> dict:
        """Move tensors to the device; floating tensors (pixels, box prompts) also to the model dtype."""
        import torch

        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device)
                if v.is_floating_point():
                    v = v.to(self.dtype)
            out[k] = v
        return out

    def describe(self) -> dict[str, str]:
        return {"spec": self.spec, "model": self.model_id, "device": self.device, "dtype": str(self.dtype)}


def chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def groups_by_size(images: list) -> list[list[int]]:
    """Indices of images that share a shape (processors that keep the aspect ratio can only batch those)."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, im in enumerate(images):
        groups[im.shape[:2]].append(i)
    return list(groups.values())


def check_images(images: list) -> None:
    for im in images:
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise ValueError(f"images must be H x W x 3 uint8 RGB, got shape {im.shape} dtype {im.dtype}")
