"""The paper's showcase questions on rendered scenes whose truth is known exactly.

Four composed rooms (:func:`spatialvlm.render.episode.compose_spec`), each with questions whose true answers are
computed from the exact meshes with the question-type registry (ungated), using the same decision rules as the
rule-based planner:

* ``gap``: a sofa and a table 1.3 m apart -- "Can a 1 m wide robot pass between the sofa and the table?" (yes),
  and the same for 1.5 m (no) and 60 cm (yes). Rule: yes when the gap (closest box surfaces) >= the robot width.
* ``triangle``: three objects at the corners of an isosceles triangle (two sides equal, the third 18% shorter);
  ``triangle_scalene``: sides 0.9 / 1.2 / 1.6 m. Rule: isosceles when two centre distances differ by at most
  ``iso_tol`` (10%) of the longer one.
* ``closest``: a chair, a floor lamp, a box and a potted plant -- "Which object is closest to the chair?" and
  "... to the box?". Rule: smallest centre distance.

``write_showcase`` stores the frames as an RGB-D folder plus ``questions.jsonl`` (image id, question, true value,
true measurements), so ``spatialvlm reason --frames DIR --image-id ID "..."`` can be run on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatialvlm.records import Frame

ISO_TOL = 0.10


@dataclass
class ShowcaseQuestion:
    image_id: str
    question: str
    kind: str  # "gap" | "triangle" | "closest"
    truth: Any  # bool or object name
    detail: dict[str, Any] = field(default_factory=dict)  # the true measurements behind it

    def to_dict(self) -> dict[str, Any]:
        return {"image_id": self.image_id, "question": self.question, "kind": self.kind, "truth": self.truth,
                "detail": self.detail}


@dataclass
class ShowcaseScene:
    image_id: str
    spec: Any  # SceneSpec
    frame: Frame
    questions: list[ShowcaseQuestion]


def _place(rng, items, width, height, camera, look, seed, image_id):
    from spatialvlm.render.episode import Placement, compose_spec, local_model, object_spec, render_composed

    objs = []
    locals_ = [local_model(kind, rng) for kind, *_ in items]
    for k, ((kind, pos, yaw), loc) in enumerate(zip(items, locals_), start=1):
        objs.append(object_spec(loc, Placement(kind, pos, yaw=yaw), k))
    spec = compose_spec(objs, camera, look, seed=seed, width=width, height=height, room=(7.0, 6.0, 2.7),
                        hfov_deg=65.0)
    return spec, render_composed(spec, image_id, {"showcase": True})


def _gt(spec, qa_type: str, a: str, b: str) -> float:
    from spatialvlm.render.episode import ground_truth_value

    ids = {o.name: o.instance_id for o in spec.objects}
    return float(ground_truth_value(spec, qa_type, ids[a], ids[b])[1])


def _gap_scene(width: int, height: int) -> ShowcaseScene:
    from spatialvlm.render.episode import local_model

    rng = np.random.default_rng(101)
    sofa = local_model("sofa", rng)
    table = local_model("table", rng)
    gap = 1.3
    xs = 2.0
    xt = xs + sofa.size[0] / 2 + gap + table.size[0] / 2
    y = 3.4
    mid = (xs + xt) / 2
    rng = np.random.default_rng(101)  # rebuild the same models inside _place
    spec, frame = _place(rng, [("sofa", (xs, y + (sofa.size[1] - table.size[1]) / 2), 0.0), ("table", (xt, y), 0.0)],
                         width, height, (mid, 0.4, 1.7), (mid, y, 0.4), 101, "showcase_gap")
    g = _gt(spec, "gap", "sofa", "table")
    qs = []
    for w_text, w in (("1 m", 1.0), ("1.5 m", 1.5), ("60 cm", 0.6)):
        qs.append(ShowcaseQuestion("showcase_gap", f"Can a {w_text} wide robot pass between the sofa and the table?",
                                   "gap", bool(g >= w), {"gap_m": g, "robot_width_m": w}))
    return ShowcaseScene("showcase_gap", spec, frame, qs)


def _triangle_scene(width: int, height: int, scalene: bool) -> ShowcaseScene:
    cx = 3.5
    if scalene:
        pos = {"trash bin": (cx - 0.622, 4.088), "stool": (cx - 0.45, 2.9), "basketball": (cx + 0.45, 2.9)}
        image_id, seed = "showcase_triangle_scalene", 303
    else:
        pos = {"trash bin": (cx, 4.0), "stool": (cx - 0.45, 2.9), "basketball": (cx + 0.45, 2.9)}
        image_id, seed = "showcase_triangle", 202
    rng = np.random.default_rng(seed)
    spec, frame = _place(rng, [(k, p, 0.0) for k, p in pos.items()], width, height, (cx, 0.9, 1.8),
                         (cx, 3.4, 0.2), seed, image_id)
    names = list(pos)
    pairs = [(names[0], names[1]), (names[1], names[2]), (names[0], names[2])]
    sides = [_gt(spec, "distance", a, b) for a, b in pairs]
    best = min(abs(sides[i] - sides[j]) / max(sides[i], sides[j]) for i in range(3) for j in range(i + 1, 3))
    q = f"Do the {names[0]}, the {names[1]} and the {names[2]} form an isosceles triangle?"
    detail = {"sides_m": {f"{a}-{b}": s for (a, b), s in zip(pairs, sides)}, "closest_relative_difference": best,
              "tolerance": ISO_TOL}
    return ShowcaseScene(image_id, spec, frame, [ShowcaseQuestion(image_id, q, "triangle", bool(best <= ISO_TOL),
                                                                  detail)])


def _closest_scene(width: int, height: int) -> ShowcaseScene:
    cx = 3.5
    pos = {"chair": ((cx - 0.3, 3.2), 0.0), "floor lamp": ((cx + 0.6, 3.3), 0.0),
           "box": ((cx - 1.0, 4.5), 0.3), "potted plant": ((cx + 1.4, 4.2), 0.0)}
    rng = np.random.default_rng(404)
    spec, frame = _place(rng, [(k, p, yaw) for k, (p, yaw) in pos.items()], width, height, (cx, 0.6, 1.7),
                         (cx + 0.2, 3.7, 0.4), 404, "showcase_closest")
    qs = []
    for ref in ("chair", "box"):
        d = {o: _gt(spec, "distance", ref, o) for o in pos if o != ref}
        best = min(d, key=d.get)
        qs.append(ShowcaseQuestion("showcase_closest", f"Which object is closest to the {ref}?", "closest", best,
                                   {"distances_m": d}))
    return ShowcaseScene("showcase_closest", spec, frame, qs)


def build_showcase(width: int = 512, height: int = 384) -> list[ShowcaseScene]:
    """Render the showcase scenes and compute their true answers."""
    return [_gap_scene(width, height), _triangle_scene(width, height, False), _triangle_scene(width, height, True),
            _closest_scene(width, height)]


def write_showcase(out_dir: Path, width: int = 512, height: int = 384,
                   scenes: list[ShowcaseScene] | None = None) -> list[ShowcaseScene]:
    """Write the showcase frames (RGB-D folder) and ``questions.jsonl`` to ``out_dir``; returns the scenes."""
    from spatialvlm.io.frames import write_frames

    out_dir = Path(out_dir)
    scenes = scenes if scenes is not None else build_showcase(width, height)
    write_frames([s.frame for s in scenes], out_dir)
    with (out_dir / "questions.jsonl").open("w", encoding="utf-8") as fh:
        for s in scenes:
            for q in s.questions:
                fh.write(json.dumps(q.to_dict()) + "\n")
    return scenes


def answer_matches(kind: str, truth: Any, value: Any) -> bool:
    if kind == "closest":
        return isinstance(value, str) and value == truth
    return isinstance(value, bool) and value == truth


def run_showcase(scenes: list[ShowcaseScene] | None = None, planner_spec: str = "rule", source: str = "pipeline",
                 gate: str = "report", max_steps: int = 12) -> list[dict[str, Any]]:
    """Answer every showcase question; one row per question with the truth, the answer, whether it is right and
    the direct questions asked. ``source``: ``pipeline`` (our geometry on the rendered RGB-D: depth, masks) or
    ``truth`` (the exact meshes)."""
    from spatialvlm.geometry.scene import build_scene
    from spatialvlm.reason.agent import reason
    from spatialvlm.reason.answerers import SceneGraphAnswerer
    from spatialvlm.reason.planners import load_planner
    from spatialvlm.render.episode import spec_ground_truth_scene

    scenes = scenes if scenes is not None else build_showcase()
    rows = []
    for s in scenes:
        scene = build_scene(s.frame) if source == "pipeline" else spec_ground_truth_scene(s.spec, image_id=s.image_id)
        ans = SceneGraphAnswerer(scene, gate=gate)
        for q in s.questions:
            r = reason(q.question, ans, load_planner(planner_spec), max_steps=max_steps)
            rows.append({**q.to_dict(), "status": r.status, "answer": r.answer, "value": r.value,
                         "correct": r.ok and answer_matches(q.kind, q.truth, r.value),
                         "direct_questions": r.direct_questions, "trace": r.format_trace()})
    return rows
