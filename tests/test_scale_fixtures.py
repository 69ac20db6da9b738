"""Shared helpers for the scale / pipeline / bad-input tests (no tests here): small rendered scenes, cached per
session, and output-folder comparison."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

SMALL = {"width": 256, "height": 192}
_CACHE: dict[tuple[int, int], Path] = {}


def small_scenes(tmp_root: Path, n: int = 6, seed: int = 0) -> Path:
    """An RGB-D folder with ``n`` small rendered scenes (rendered once per process, then copied)."""
    from spatialvlm.render import render_scenes
    from spatialvlm.render.scene import RenderConfig

    key = (n, seed)
    if key not in _CACHE or not (_CACHE[key] / "frames.jsonl").exists():
        import tempfile

        d = Path(tempfile.mkdtemp(prefix="svlm-scenes-")) / "scenes"
        render_scenes(n, d, seed=seed, config=RenderConfig(**SMALL), progress=False)
        _CACHE[key] = d
    dst = tmp_root / f"scenes_{n}_{seed}"
    if not dst.exists():
        shutil.copytree(_CACHE[key], dst)
    return dst


def tree_digest(root: Path, skip: tuple[str, ...] = ("summary.json", "report.html")) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` except ``skip`` names."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and p.name not in skip:
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
