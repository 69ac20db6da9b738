"""Perception: the vision models that turn ordinary photos into metric RGB-D frames with objects.

Light to import: models and torch load only when a backend or the stage is created.

* :class:`~spatialvlm.perception.stage.PerceptionStage` / :class:`~spatialvlm.perception.stage.PerceptionConfig`:
  Frame -> Frame (scene filter, depth + intrinsics, detection, NMS, masks, captions, support mask).
* :func:`~spatialvlm.perception.registry.get_backend`: one backend by kind and ``"<backend>:<hf id or folder>"``.
* :func:`~spatialvlm.perception.embed.near_duplicate_groups`: near-identical names for the ambiguity rule.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModelNotFoundError", "PerceptionConfig", "PerceptionStage", "get_backend", "near_duplicate_groups"]


def __getattr__(name: str) -> Any:
    if name in ("PerceptionConfig", "PerceptionStage"):
        from . import stage

        return getattr(stage, name)
    if name == "get_backend":
        from .registry import get_backend

        return get_backend
    if name == "near_duplicate_groups":
        from .embed import near_duplicate_groups

        return near_duplicate_groups
    if name == "ModelNotFoundError":
        from .loading import ModelNotFoundError

        return ModelNotFoundError
    raise AttributeError(name)
