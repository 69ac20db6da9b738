"""Benchmark of the foundation pipeline on this machine: scenes rendered per second and, per image, the time to lift
a frame to a Scene (geometry) and to synthesize its QA. Run with `make bench` or:

    python scripts/bench_foundation.py [-n 20] [--per-image 40]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=20, help="number of scenes")
    ap.add_argument("--per-image", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from spatialvlm.geometry.scene import build_scene
    from spatialvlm.qa.synth import QAConfig, synthesize_qa
    from spatialvlm.render import render_scene

    render_scene(args.seed)  # warm-up (imports, first ray-casting scene)
    t_render, t_geom, t_qa, n_qa = [], [], [], 0
    for s in range(args.seed, args.seed + args.n):
        t = time.perf_counter()
        frame = render_scene(s)
        t_render.append(time.perf_counter() - t)
        t = time.perf_counter()
        scene = build_scene(frame)
        t_geom.append(time.perf_counter() - t)
        t = time.perf_counter()
        qas = synthesize_qa(scene, QAConfig(per_image=args.per_image))
        t_qa.append(time.perf_counter() - t)
        n_qa += len(qas)

    def ms(xs: list[float]) -> str:
        return f"{1000 * statistics.mean(xs):7.1f} ms mean, {1000 * statistics.median(xs):7.1f} ms median"

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}")
    print(f"scenes: {args.n} at 512x384, {n_qa} QA ({n_qa / args.n:.1f} per image)")
    print(f"render     : {args.n / sum(t_render):6.2f} scenes/s   ({ms(t_render)})")
    print(f"geometry   : {ms(t_geom)} per image")
    print(f"QA synthesis: {ms(t_qa)} per image")
    total = sum(t_render) + sum(t_geom) + sum(t_qa)
    print(f"end to end : {args.n / total:6.2f} images/s (render + geometry + QA, one process)")


if __name__ == "__main__":
    main()
