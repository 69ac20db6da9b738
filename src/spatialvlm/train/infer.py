"""Loading a trained (or any Hugging Face) VLM and answering questions about images with it.

``load_vlm`` accepts a Hub id, a full model folder, or a LoRA adapter folder written by ``spatialvlm train`` (it
reads the base model named in ``adapter_config.json`` and applies the adapter). ``answer`` runs greedy, batched
generation through the processor's chat template."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class LoadedVLM:
    model: Any
    processor: Any
    source: str
    device: str


def pick_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _missing(name: str, where: str, exc: Exception) -> FileNotFoundError:
    return FileNotFoundError(
        f"could not load model {name!r} (looked in {where}): {exc}. Pass a local folder written by "
        "`spatialvlm train` / `save_pretrained`, or a Hugging Face id; download Hub models beforehand with "
        "`huggingface-cli download ID` (or let transformers fetch them where network access is allowed)."
    )


def load_vlm(path_or_id: str, device: str | None = None, dtype: str = "auto") -> LoadedVLM:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dev = pick_device(device)
    p = Path(path_or_id)
    torch_dtype: Any = "auto"
    if dtype == "fp32" or dev == "cpu":
        torch_dtype = torch.float32
    elif dtype == "bf16":
        torch_dtype = torch.bfloat16
    adapter_cfg = p / "adapter_config.json"
    try:
        if adapter_cfg.exists():
            from peft import PeftModel

            base = json.loads(adapter_cfg.read_text()).get("base_model_name_or_path")
            if not base:
                raise ValueError(f"{adapter_cfg} names no base model (base_model_name_or_path)")
            model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch_dtype)
            model = PeftModel.from_pretrained(model, str(p))
            proc_src = str(p) if (p / "processor_config.json").exists() or (p / "tokenizer_config.json").exists() \
                else base
        else:
            model = AutoModelForImageTextToText.from_pretrained(path_or_id, dtype=torch_dtype)
            proc_src = path_or_id
        processor = AutoProcessor.from_pretrained(proc_src)
    except OSError as exc:
        where = str(p.resolve()) if p.exists() else f"the local folder {p} (absent) and the Hugging Face cache"
        raise _missing(path_or_id, where, exc) from exc
    model.to(dev)
    model.eval()
    return LoadedVLM(model, processor, path_or_id, dev)


def _stop_ids(vlm: LoadedVLM) -> list[int] | None:
    gc = getattr(vlm.model, "generation_config", None)
    eos = getattr(gc, "eos_token_id", None)
    if eos is None:
        return None
    return eos if isinstance(eos, list) else [eos]


def build_prompt(processor, question: str, with_image: bool = True) -> str:
    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": question}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def answer(
    vlm: LoadedVLM,
    images: Sequence[Any],
    questions: Sequence[str],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 8,
) -> list[str]:
    """Greedy answers, one per (image, question). Images are PIL images or paths."""
    import torch
    from PIL import Image

    if len(images) != len(questions):
        raise ValueError(f"{len(images)} images for {len(questions)} questions")
    proc = vlm.processor
    tok = getattr(proc, "tokenizer", proc)
    out: list[str] = []
    for i in range(0, len(questions), batch_size):
        imgs = []
        for im in images[i : i + batch_size]:
            if isinstance(im, (str, Path)):
                im = Image.open(im)
            imgs.append(im.convert("RGB"))
        prompts = [build_prompt(proc, q) for q in questions[i : i + batch_size]]
        inputs = proc(
            images=[[im] for im in imgs], text=prompts, padding=True, padding_side="left", return_tensors="pt",
            add_special_tokens=False,
        )
        inputs = {k: (v.to(vlm.device) if hasattr(v, "to") else v) for k, v in inputs.items()}
        with torch.inference_mode():
            gen = vlm.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=_stop_ids(vlm),
                pad_token_id=tok.pad_token_id,
            )
        new = gen[:, inputs["input_ids"].shape[1] :]
        out.extend(s.strip() for s in tok.batch_decode(new, skip_special_tokens=True))
    return out


def ask(model: str, image: str | Path, question: str, *, max_new_tokens: int = 64, device: str | None = None) -> str:
    """Answer one question about one image with the model at ``model`` (HF id, folder or adapter folder)."""
    if not Path(image).exists():
        raise FileNotFoundError(f"image not found: {image}")
    vlm = load_vlm(model, device=device)
    return answer(vlm, [image], [question], max_new_tokens=max_new_tokens, batch_size=1)[0]


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Fold a LoRA adapter into its base model and save a plain model folder (+ processor) at ``out_dir``."""
    vlm = load_vlm(str(adapter_dir), device="cpu")
    model = vlm.model
    if not hasattr(model, "merge_and_unload"):
        raise ValueError(f"{adapter_dir} is not a LoRA adapter folder (no adapter_config.json)")
    merged = model.merge_and_unload()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    vlm.processor.save_pretrained(out)
    return out
