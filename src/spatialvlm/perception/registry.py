"""Backends by name: ``get_backend(kind, "<backend>:<hf id or local folder>")``.

Each (kind, spec, device, dtype, options) is built once per process and reused, so a pipeline that calls the
perception stage many times loads every model once."""

from __future__ import annotations

import importlib
import threading
from typing import Any

KINDS = ("depth", "detector", "segmenter", "captioner", "filter", "embedder")

# kind -> backend name -> "module:Class"
BACKENDS: dict[str, dict[str, str]] = {
    "depth": {
        "depth-pro": "spatialvlm.perception.depth:DepthProBackend",
        "depth-anything-v2-metric": "spatialvlm.perception.depth:DepthAnythingMetricBackend",
        "zoedepth": "spatialvlm.perception.depth:ZoeDepthBackend",
    },
    "detector": {
        "owlv2": "spatialvlm.perception.detect:Owlv2Backend",
        "grounding-dino": "spatialvlm.perception.detect:GroundingDinoBackend",
    },
    "segmenter": {
        "sam": "spatialvlm.perception.segment:SamBackend",
        "sam2": "spatialvlm.perception.segment:Sam2Backend",
    },
    "captioner": {
        "florence2": "spatialvlm.perception.caption:Florence2Backend",
    },
    "filter": {
        "clip": "spatialvlm.perception.filter:ClipSceneFilter",
    },
    "embedder": {
        "sentence-transformers": "spatialvlm.perception.embed:SentenceTransformersEmbedder",
        "hf-mean-pool": "spatialvlm.perception.embed:MeanPoolEmbedder",
    },
}

# the model each backend name uses when the spec gives only the backend ("owlv2" == "owlv2:<default id>")
DEFAULT_MODELS: dict[str, str] = {
    "depth-pro": "apple/DepthPro-hf",
    "depth-anything-v2-metric": "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf",
    "zoedepth": "Intel/zoedepth-nyu-kitti",
    "owlv2": "google/owlv2-base-patch16-ensemble",
    "grounding-dino": "IDEA-Research/grounding-dino-tiny",
    "sam": "facebook/sam-vit-base",
    "sam2": "facebook/sam2.1-hiera-tiny",
    "florence2": "florence-community/Florence-2-base",  # transformers-native conversion of microsoft/Florence-2-base
    "clip": "openai/clip-vit-base-patch32",
    "sentence-transformers": "sentence-transformers/all-MiniLM-L6-v2",
    "hf-mean-pool": "sentence-transformers/all-MiniLM-L6-v2",
}

_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def parse_spec(spec: str) -> tuple[str, str]:
    """``"owlv2:google/owlv2-base-patch16-ensemble"`` -> ("owlv2", "google/owlv2-base-patch16-ensemble").
    Only the first colon separates, so local paths may hold colons. A bare backend name takes its default
    model."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty backend spec {spec!r}; expected '<backend>:<hf id or local folder>'")
    name, sep, model = spec.strip().partition(":")
    name = name.strip().lower()
    model = model.strip()
    if not sep or not model:
        if name not in DEFAULT_MODELS:
            raise ValueError(f"backend spec {spec!r} names no model; expected '<backend>:<hf id or local folder>'")
        model = DEFAULT_MODELS[name]
    return name, model


def available(kind: str | None = None) -> dict[str, list[str]]:
    kinds = [kind] if kind else list(BACKENDS)
    return {k: sorted(BACKENDS[k]) for k in kinds}


def backend_class(kind: str, name: str) -> type:
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend kind {kind!r}; kinds: {', '.join(KINDS)}")
    if name not in BACKENDS[kind]:
        raise ValueError(f"unknown {kind} backend {name!r}; available: {', '.join(sorted(BACKENDS[kind]))}")
    mod_name, cls_name = BACKENDS[kind][name].split(":")
    return getattr(importlib.import_module(mod_name), cls_name)


def get_backend(kind: str, spec: str, device: str = "auto", dtype: str = "auto", **options: Any) -> Any:
    """The backend of ``kind`` for ``spec``, loaded once per process (same arguments -> same object)."""
    name, model = parse_spec(spec)
    cls = backend_class(kind, name)
    key = (kind, name, model, device, dtype, tuple(sorted((k, repr(v)) for k, v in options.items())))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = cls(spec=f"{name}:{model}", model=model, device=device, dtype=dtype, **options)
        return _CACHE[key]


def clear_cache() -> None:
    """Forget loaded backends (tests; freeing GPU memory between runs)."""
    with _LOCK:
        _CACHE.clear()
