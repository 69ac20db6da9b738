"""Benchmark the rendered-scene synth pipeline: local engine vs Ray Data with 1 and 2 workers.

    .venv/bin/python scripts/bench_pipeline.py --scenes 48 --cpus 2 --json out/bench_pipeline.json

Renders ``--scenes`` built-in scenes once (cached in ``--cache``), then times ``run_synth`` (no report) for each
engine setting and prints a Markdown table. The Ray cluster (``--cpus`` CPUs) is started once before the Ray runs,
so its start-up is not counted; starting the actors is (it is part of every real run).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=48)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--per-image", type=int, default=40)
    ap.add_argument("--cache", type=Path, default=Path("out/bench-scenes"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="runs per setting, interleaved; the table shows each")
    args = ap.parse_args()

    from spatialvlm.pipeline.bench import bench, render_bench_scenes
    from spatialvlm.pipeline.run import SynthConfig

    scenes = render_bench_scenes(args.scenes, args.cache)
    sets = [f"qa.per_image={args.per_image}"]
    results = []
    import ray

    t = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t
    try:
        for rep in range(args.repeat):  # interleaved, so that a busy spell of a shared machine hits all settings
            if not args.skip_local:
                results.append(bench(str(scenes), SynthConfig.load(None, sets), engine="local"))
                print(json.dumps(results[-1]), flush=True)
            for w in args.workers:
                results.append(bench(str(scenes), SynthConfig.load(None, sets), engine="ray", workers=w))
                print(json.dumps(results[-1]), flush=True)
    finally:
        ray.shutdown()

    print(f"\n{args.scenes} rendered scenes (512x384), {os.cpu_count()} CPUs visible, Ray cluster of {args.cpus} CPUs "
          f"(started once in {ray_start:.1f} s, not counted)\n")
    print(f"load average after: {os.getloadavg()}")
    print("| engine | workers | CPUs/worker | images/s (processing) | images/s (end to end, incl. merge) | "
          "geometry s | qa s | encode s | read s | merge s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        st = r["seconds_by_stage"]
        print(f"| {r['engine']} | {r['workers']} | {r['worker_cpus'] or 1} | {r['images_per_second_processing']} | "
              f"{r['images_per_second_end_to_end']} | {st.get('geometry', 0):.1f} | {st.get('qa', 0):.1f} | "
              f"{st.get('encode', 0):.1f} | {st.get('read', 0):.1f} | {st.get('merge', 0):.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
