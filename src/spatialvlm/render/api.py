"""Convenience entry points: render one scene by seed, many scenes to an RGB-D folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from spatialvlm.records import Frame
from spatialvlm.render.scene import RenderConfig, generate_scene_spec


def render_scene(seed: int, config: RenderConfig | None = None) -> Frame:
    """Generate and render the scene of ``seed``."""
    from spatialvlm.render.raycast import render_frame

    return render_frame(generate_scene_spec(seed, config))


def iter_rendered_frames(n: int, seed: int = 0, config: RenderConfig | None = None) -> Iterator[Frame]:
    """Frames of scenes ``seed .. seed + n - 1``, rendered one at a time."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for s in range(seed, seed + n):
        yield render_scene(s, config)


def render_scenes(n: int, out_dir: Path, seed: int = 0, config: RenderConfig | None = None,
                  progress: bool = True) -> Path:
    """Render scenes ``seed .. seed + n - 1`` and write them as an RGB-D folder (see docs/formats.md) with
    :func:`spatialvlm.io.frames.write_frames`. Returns the path of ``frames.jsonl``."""
    from spatialvlm.io.frames import write_frames

    frames: Iterator[Frame] = iter_rendered_frames(n, seed, config)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=n, desc="rendering scenes", unit="scene")
    return write_frames(frames, Path(out_dir))
