"""Audit: render scenes, run the pipeline with exact perception (ground-truth depth and masks), and compare every
written answer with the answer computed from the generator's ground truth. Prints a per-type table.

    python scripts/truth_audit.py -n 100 [--seed 0] [--per-image 40]
"""

from __future__ import annotations

import argparse
import collections
import time

from spatialvlm.geometry.scene import build_scene
from spatialvlm.qa.synth import QAConfig, synthesize_qa
from spatialvlm.qa.taxonomy import ALL_TYPES
from spatialvlm.qa.truth import gt_scene
from spatialvlm.qa.verify import check_scene
from spatialvlm.render import render_scene


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-image", type=int, default=60)
    ap.add_argument("--show", type=int, default=10, help="print this many failures")
    args = ap.parse_args()
    n_by, bad_by, worst = collections.Counter(), collections.Counter(), collections.defaultdict(float)
    fails = []
    t0 = time.time()
    for s in range(args.seed, args.seed + args.n):
        frame = render_scene(s)
        scene = build_scene(frame)
        recs = synthesize_qa(scene, QAConfig(per_image=args.per_image))
        gt = gt_scene(frame, names_from=scene)
        for c in check_scene(recs, gt):
            n_by[c.record.qa_type] += 1
            if c.rel_error is not None:
                worst[c.record.qa_type] = max(worst[c.record.qa_type], c.rel_error)
            if not c.ok:
                bad_by[c.record.qa_type] += 1
                fails.append((s, c))
    total, bad = sum(n_by.values()), sum(bad_by.values())
    print(f"{args.n} scenes, {total} QA, {bad} disagree with ground truth ({time.time() - t0:.0f} s)")
    for t in ALL_TYPES:
        print(f"  {t:24s} {n_by[t]:6d}  wrong {bad_by[t]:4d}  max rel err {worst.get(t, 0):.3f}")
    for s, c in fails[: args.show]:
        r = c.record
        print(f"  seed {s} {r.qa_type} {r.objects}: ours {r.truth!r} gt {c.truth_gt!r} (value gt {c.value_gt:.3f})")


if __name__ == "__main__":
    main()
