"""Configuration: nested dataclasses, loadable from YAML, overridable with ``key.sub=value`` strings, and written
next to every output so each dataset records how it was made."""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path
from typing import Any, get_type_hints

import yaml


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def from_dict(cls: type, data: dict | None, path: str = "") -> Any:
    """Build dataclass ``cls`` from a (possibly partial) dict; unknown keys are an error that names the key."""
    data = dict(data or {})
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown config key(s) {sorted(f'{path}{k}' for k in unknown)}; "
                         f"valid keys under '{path or 'top level'}': {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        v = data[f.name]
        t = hints[f.name]
        if dataclasses.is_dataclass(t) and isinstance(v, dict):
            v = from_dict(t, v, f"{path}{f.name}.")
        elif isinstance(v, list) and "tuple" in str(t):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def parse_override(s: str) -> tuple[list[str], Any]:
    if "=" not in s:
        raise ValueError(f"override {s!r} must look like key.sub=value")
    k, v = s.split("=", 1)
    return k.strip().split("."), yaml.safe_load(v)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for s in overrides or []:
        keys, value = parse_override(s)
        d = data
        for k in keys[:-1]:
            d = d.setdefault(k, {})
            if not isinstance(d, dict):
                raise ValueError(f"override {s!r}: {k} is not a section")
        d[keys[-1]] = value
    return data


def load_yaml(path: str | Path | None) -> dict:
    if path is None:
        return {}
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"config file not found: {p}")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a mapping at the top level")
    return data


def versions() -> dict[str, str]:
    """Versions of the libraries that shape the output."""
    out = {"python": platform.python_version()}
    import importlib.metadata as md

    for pkg in ("spatialvlm", "numpy", "scipy", "open3d", "pyarrow", "torch", "transformers"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out
