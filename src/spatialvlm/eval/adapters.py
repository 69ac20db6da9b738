"""Model adapters: anything that answers questions about images, behind one small protocol.

``VLM.answer(images, questions) -> list[str]`` answers a batch (one image per question). Adapters may put a
:class:`~spatialvlm.records.ItemError` in place of a string for an item that failed (an HTTP call that kept
failing): the runner records it with its reason and scores it as unanswered. Baselines that need more than the
image and the question (the blind and oracle baselines) implement ``answer_items(items)`` instead.

Model specs (``load_model``):

* ``hf:<hub id or folder>``: any transformers image-text-to-text model, through its chat template;
* ``spatialvlm:<folder>``: a model written by ``spatialvlm train`` (full model or LoRA adapter folder);
* ``openai:<model>@<base_url>``: any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, Ollama, hosted
  APIs); key from ``$OPENAI_API_KEY`` (or the variable named by ``api_key_env``);
* ``blind`` / ``blind:<qa.parquet>``: text-only baseline (per-type majority answer / mean value);
* ``oracle`` / ``oracle:<frames dir>``: our own 3D pipeline answering from the frame's depth and masks.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from spatialvlm.records import ItemError

DEFAULT_MAX_NEW_TOKENS = 64


@runtime_checkable
class VLM(Protocol):
    name: str

    def answer(self, images: Sequence[Any], questions: Sequence[str]) -> list[str | ItemError]:
        """One answer per (image, question) pair."""
        ...


# ------------------------------------------------------------------------------------------------------------
# Hugging Face transformers
# ------------------------------------------------------------------------------------------------------------
def pick_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _missing_model_error(name: str, exc: Exception) -> FileNotFoundError:
    p = Path(name)
    where = (
        f"the local folder {p.resolve()}"
        if p.exists()
        else f"the local path {p} (absent) and the Hugging Face cache ($HF_HOME)"
    )
    return FileNotFoundError(
        f"could not load model {name!r}: looked in {where}; {type(exc).__name__}: {exc}. "
        "Pass a local model folder (save_pretrained / spatialvlm train output) or a Hub id; fetch Hub "
        f"weights beforehand with `huggingface-cli download {name}` where network access is allowed."
    )


class HFVLM:
    """A transformers VLM (AutoProcessor + AutoModelForImageTextToText), greedy, batched, left-padded.

    The prompt is the processor's chat template applied to one user turn holding the image then the question
    (plus ``prompt_suffix``, and a system turn when ``system_prompt`` is set). ``chat_template`` overrides the
    processor's template (used when a folder has none). LoRA adapter folders (``adapter_config.json``) load
    their base model then the adapter."""

    def __init__(
        self,
        model: str,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str = "auto",
        system_prompt: str | None = None,
        prompt_suffix: str = "",
        chat_template: str | None = None,
        trust_remote_code: bool = False,
        name: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.name = name or f"hf:{model}"
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self.system_prompt = system_prompt
        self.prompt_suffix = prompt_suffix
        self.device = pick_device(device)
        if dtype == "auto":
            torch_dtype: Any = torch.float32 if self.device == "cpu" else "auto"
        else:
            torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        p = Path(model).expanduser()
        looks_local = model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model
        if looks_local and not p.exists():
            raise FileNotFoundError(
                f"model folder not found: {model!r} (looked at {p.resolve()}). Pass a folder written by "
                "save_pretrained / `spatialvlm train`, or a Hugging Face id (fetch it beforehand with "
                "`huggingface-cli download <id>` where network access is allowed)."
            )
        if p.exists():
            model = str(p)
        try:
            if (p / "adapter_config.json").exists():
                from peft import PeftModel

                base = json.loads((p / "adapter_config.json").read_text()).get("base_model_name_or_path")
                if not base:
                    raise ValueError(f"{p / 'adapter_config.json'} names no base model")
                m = AutoModelForImageTextToText.from_pretrained(
                    base, dtype=torch_dtype, trust_remote_code=trust_remote_code
                )
                m = PeftModel.from_pretrained(m, str(p))
                has_proc = (
                    (p / "processor_config.json").exists()
                    or (p / "tokenizer_config.json").exists()
                    or (p / "preprocessor_config.json").exists()
                )
                proc_src = str(p) if has_proc else base
            else:
                m = AutoModelForImageTextToText.from_pretrained(
                    model, dtype=torch_dtype, trust_remote_code=trust_remote_code
                )
                proc_src = model
            self.processor = AutoProcessor.from_pretrained(proc_src, trust_remote_code=trust_remote_code)
        except OSError as exc:
            raise _missing_model_error(model, exc) from exc
        if chat_template is not None:
            self.processor.chat_template = chat_template
        if not getattr(self.processor, "chat_template", None):
            raise ValueError(
                f"model {model!r} has no chat template; pass chat_template=... (a Jinja template)"
            )
        self.model = m.to(self.device).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"  # batched generation continues every prompt from its last token

    def _prompt(self, question: str) -> str:
        msgs: list[dict] = []
        if self.system_prompt:
            msgs.append({"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        text = question + (f" {self.prompt_suffix}" if self.prompt_suffix else "")
        msgs.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]})
        return self.processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)

    def answer(self, images: Sequence[Any], questions: Sequence[str]) -> list[str | ItemError]:
        import torch

        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images for {len(questions)} questions")
        out: list[str | ItemError] = []
        gc = getattr(self.model, "generation_config", None)
        eos = getattr(gc, "eos_token_id", None)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = eos[0] if isinstance(eos, list) else eos
        for i in range(0, len(questions), self.batch_size):
            imgs = [_as_pil(im) for im in images[i : i + self.batch_size]]
            prompts = [self._prompt(q) for q in questions[i : i + self.batch_size]]
            inputs = self.processor(
                images=[[im] for im in imgs],
                text=prompts,
                padding=True,
                return_tensors="pt",
                add_special_tokens=False,
            )
            inputs = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in inputs.items()}
            with torch.inference_mode():
                gen = self.model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    eos_token_id=eos,
                    pad_token_id=pad,
                )
            new = gen[:, inputs["input_ids"].shape[1] :]
            out.extend(s.strip() for s in self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return out


def _as_pil(im: Any):
    from PIL import Image

    if isinstance(im, (str, Path)):
        im = Image.open(im)
    elif isinstance(im, (bytes, bytearray)):
        im = Image.open(io.BytesIO(im))
    return im.convert("RGB")


def _spatialvlm_model(path: str, **kw) -> HFVLM:
    """A model trained by ``spatialvlm train``: an HF folder; when it carries no chat template, the Qwen-style
    template our tiny models are trained with."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"spatialvlm model folder not found: {p} (train one with `spatialvlm train`)")
    if "chat_template" not in kw:
        has_template = (
            any((p / f).exists() for f in ("chat_template.jinja", "chat_template.json"))
            or "chat_template" in _read_json(p / "tokenizer_config.json")
            or "chat_template" in _read_json(p / "processor_config.json")
        )
        if not has_template:
            from spatialvlm.train.tiny import QWEN_CHAT_TEMPLATE

            kw["chat_template"] = QWEN_CHAT_TEMPLATE
    kw.setdefault("name", f"spatialvlm:{path}")
    return HFVLM(str(p), **kw)


def _read_json(p: Path) -> dict:
    try:
        return json.loads(p.read_text()) if p.exists() else {}
    except json.JSONDecodeError:
        return {}


# ------------------------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP
# ------------------------------------------------------------------------------------------------------------
class OpenAIVLM:
    """Chat completions over HTTP: POST ``{base_url}/chat/completions`` with the image as a base64 data URL.

    Greedy (temperature 0). Each request is retried ``retries`` times with exponential backoff on connection
    errors, 429 and 5xx; an item still failing becomes an :class:`ItemError` with the server's reason.
    Requests run ``workers`` at a time. The API key comes from the environment variable ``api_key_env`` (no
    key is sent when it is unset, as local servers need none)."""

    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        *,
        api_key_env: str = "OPENAI_API_KEY",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        workers: int = 4,
        system_prompt: str | None = None,
        prompt_suffix: str = "",
        image_format: str = "PNG",
        name: str | None = None,
    ) -> None:
        if not model:
            raise ValueError("openai adapter needs a model name: openai:<model>@<base_url>")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = os.environ.get(api_key_env) or None
        self.max_new_tokens = int(max_new_tokens)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.workers = max(1, int(workers))
        self.system_prompt = system_prompt
        self.prompt_suffix = prompt_suffix
        self.image_format = image_format.upper()
        self.name = name or f"openai:{model}@{self.base_url}"

    def _payload(self, image: Any, question: str) -> dict:
        im = _as_pil(image)
        buf = io.BytesIO()
        im.save(buf, format=self.image_format)
        mime = "image/png" if self.image_format == "PNG" else "image/jpeg"
        url = f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
        text = question + (f" {self.prompt_suffix}" if self.prompt_suffix else "")
        msgs: list[dict] = []
        if self.system_prompt:
            msgs.append({"role": "system", "content": self.system_prompt})
        msgs.append(
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
            }
        )
        return {"model": self.model, "messages": msgs, "temperature": 0, "max_tokens": self.max_new_tokens}

    def _one(self, image: Any, question: str) -> str | ItemError:
        body = json.dumps(self._payload(image, question)).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(
                f"{self.base_url}/chat/completions", data=body, headers=headers, method="POST"
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    data = json.loads(resp.read().decode("utf-8"))
                content = data["choices"][0]["message"]["content"]
                if isinstance(content, list):  # some servers return content parts
                    content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
                return (content or "").strip()
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:300]
                last = f"HTTP {exc.code}: {detail}"
                if exc.code != 429 and exc.code < 500:
                    break  # a client error does not get better by retrying
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            except (KeyError, IndexError, json.JSONDecodeError, TypeError) as exc:
                last = f"malformed response: {type(exc).__name__}: {exc}"
                break
            if attempt < self.retries:
                time.sleep(self.backoff * (2**attempt))
        return ItemError(item=question[:80], stage="model", reason=f"{self.name}: {last}")

    def answer(self, images: Sequence[Any], questions: Sequence[str]) -> list[str | ItemError]:
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images for {len(questions)} questions")
        with ThreadPoolExecutor(max_workers=self.workers) as ex:
            return list(ex.map(self._one, images, questions))


# ------------------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------------------
ADAPTERS: dict[str, Callable[..., Any]] = {}


def register_adapter(prefix: str, factory: Callable[..., Any]) -> None:
    """Add a model kind: ``factory(arg, **options)`` serves specs ``<prefix>:<arg>`` (arg may be empty)."""
    ADAPTERS[prefix] = factory


_GENERATION_OPTIONS = ("max_new_tokens", "system_prompt", "prompt_suffix")
_LOCAL_OPTIONS = _GENERATION_OPTIONS + ("batch_size", "device", "dtype", "chat_template")


def _options(kw: dict, names: tuple[str, ...]) -> dict:
    """The options an adapter takes, out of everything ``load_model`` was given."""
    return {k: v for k, v in kw.items() if k in names}


def _openai_factory(arg: str, **kw):
    model, _, base = arg.partition("@")
    kw = _options(kw, _GENERATION_OPTIONS + ("timeout", "retries", "workers", "api_key_env", "backoff"))
    return OpenAIVLM(model, base or "https://api.openai.com/v1", **kw)


def _hf_factory(arg: str, **kw):
    if not arg:
        raise ValueError("hf adapter needs a model: hf:<hub id or folder>")
    return HFVLM(arg, **_options(kw, _LOCAL_OPTIONS + ("trust_remote_code",)))


def _svlm_factory(arg: str, **kw):
    return _spatialvlm_model(arg, **_options(kw, _LOCAL_OPTIONS))


def _blind_factory(arg: str, **kw):
    from spatialvlm.eval.baselines import BlindBaseline

    return BlindBaseline.from_spec(arg, seed=kw.get("seed", 0))


def _blind_names_factory(arg: str, **kw):
    from spatialvlm.eval.baselines import BlindBaseline

    return BlindBaseline.from_spec(arg, seed=kw.get("seed", 0), by_names=True)


def _oracle_factory(arg: str, **kw):
    from spatialvlm.eval.baselines import OracleBaseline

    return OracleBaseline(frames_dir=arg or None, bench_dir=kw.get("bench_dir"))


register_adapter("hf", _hf_factory)
register_adapter("spatialvlm", _svlm_factory)
register_adapter("openai", _openai_factory)
register_adapter("blind", _blind_factory)
register_adapter("blind-names", _blind_names_factory)
register_adapter("oracle", _oracle_factory)


def load_model(spec: str, **options) -> Any:
    """The adapter for a model spec (see the module docstring). ``options`` are passed to the adapter when it
    takes them (max_new_tokens, batch_size, device, dtype, system_prompt, prompt_suffix, ...)."""
    prefix, sep, arg = spec.partition(":")
    if prefix not in ADAPTERS:
        known = ", ".join(f"{k}:..." for k in ADAPTERS)
        raise ValueError(
            f"unknown model spec {spec!r}; use one of: {known} (blind and oracle need no argument)"
        )
    return ADAPTERS[prefix](arg, **options)
