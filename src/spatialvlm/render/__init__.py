"""The built-in scene generator: procedural indoor rooms rendered headless with exact depth, masks and 3D boxes.

Public API (imported lazily so that ``import spatialvlm.render`` stays light)::

    generate_scene_spec(seed, config=None) -> SceneSpec
    render_frame(spec) -> records.Frame
    render_scene(seed, config=None) -> records.Frame
    render_scenes(n, out_dir, seed=0, config=None, progress=True) -> Path   # frames.jsonl
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "RenderConfig": "spatialvlm.render.scene",
    "ObjectSpec": "spatialvlm.render.scene",
    "StuffSpec": "spatialvlm.render.scene",
    "SceneSpec": "spatialvlm.render.scene",
    "generate_scene_spec": "spatialvlm.render.scene",
    "camera_pose": "spatialvlm.render.scene",
    "camera_angles": "spatialvlm.render.scene",
    "render_frame": "spatialvlm.render.raycast",
    "render_scene": "spatialvlm.render.api",
    "render_scenes": "spatialvlm.render.api",
    "iter_rendered_frames": "spatialvlm.render.api",
    "CATEGORIES": "spatialvlm.render.library",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spatialvlm.render' has no attribute {name!r}")
