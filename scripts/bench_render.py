"""Benchmark the built-in scene generator: scenes generated + rendered per second (and written, optionally).

Wall-clock rates depend on how busy the machine is; the CPU time per scene is the steadier number.

    python scripts/bench_render.py [-n 20] [--width 512 --height 384] [--write]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def bench(n: int = 20, width: int = 512, height: int = 384, seed: int = 0, write: bool = False) -> dict[str, float]:
    """Time layout + camera search, rendering and (optionally) writing for ``n`` scenes. Returns the rates."""
    from spatialvlm.render.raycast import render_frame
    from spatialvlm.render.scene import RenderConfig, generate_scene_spec

    cfg = RenderConfig(width=width, height=height)
    render_frame(generate_scene_spec(seed + n, cfg))  # warm-up: imports, first BVH build
    t_spec = t_render = 0.0
    frames = []
    cpu0 = time.process_time()
    for s in range(seed, seed + n):
        t0 = time.perf_counter()
        spec = generate_scene_spec(s, cfg)
        t1 = time.perf_counter()
        frames.append(render_frame(spec))
        t2 = time.perf_counter()
        t_spec += t1 - t0
        t_render += t2 - t1
    cpu = time.process_time() - cpu0
    out = {"scenes": n, "spec_s_per_scene": t_spec / n, "render_s_per_scene": t_render / n,
           "scenes_per_s": n / (t_spec + t_render), "cpu_s_per_scene": cpu / n}
    if write:
        from spatialvlm.io.frames import write_frames

        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            write_frames(frames, Path(d))
            out["write_s_per_scene"] = (time.perf_counter() - t0) / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="also time write_frames (PNG encoding)")
    a = ap.parse_args()
    r = bench(a.n, a.width, a.height, a.seed, a.write)
    print(f"{r['scenes']} scenes at {a.width}x{a.height}: layout+camera {r['spec_s_per_scene'] * 1000:.0f} ms, "
          f"render {r['render_s_per_scene'] * 1000:.0f} ms per scene"
          + (f", write {r['write_s_per_scene'] * 1000:.0f} ms" if "write_s_per_scene" in r else ""))
    print(f"CPU time per scene (all threads): {r['cpu_s_per_scene'] * 1000:.0f} ms")
    print(f"scenes rendered per second: {r['scenes_per_s']:.2f}")


if __name__ == "__main__":
    main()
