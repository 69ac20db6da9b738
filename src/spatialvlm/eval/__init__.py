"""Evaluation: benchmark building, answer parsing, metrics, model adapters, public-benchmark loaders, reports.

The names below are imported on first use, so importing this package (the CLI does) stays cheap."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "parse_distance": "parse",
    "parse_distance_detail": "parse",
    "parse_yes_no": "parse",
    "parse_choice": "parse",
    "parse_classify": "parse",
    "parse_clock": "parse",
    "score_item": "metrics",
    "summarize": "metrics",
    "bootstrap_ci": "metrics",
    "quantitative_scores": "metrics",
    "BenchItem": "items",
    "VLM": "adapters",
    "HFVLM": "adapters",
    "OpenAIVLM": "adapters",
    "load_model": "adapters",
    "register_adapter": "adapters",
    "BlindBaseline": "baselines",
    "OracleBaseline": "baselines",
    "BenchConfig": "bench",
    "build_bench": "bench",
    "load_bench": "bench",
    "load_any": "loaders",
    "load_qspatial": "loaders",
    "load_spatialrgpt": "loaders",
    "load_cvbench": "loaders",
    "load_blink": "loaders",
    "load_vsr": "loaders",
    "evaluate": "run",
    "predict": "run",
    "score_predictions": "run",
    "write_report": "report",
    "export_lmms": "lmms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"spatialvlm.eval.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'spatialvlm.eval' has no attribute {name!r}")
