"""Checking written answers against ground truth: for each QA record of a scene, recompute the answer with the same
question function on the ground-truth scene (no gating) and compare."""

from __future__ import annotations

from dataclasses import dataclass

from ..records import QARecord, Scene
from .taxonomy import TYPES
from .types import UNGATED, evaluate


@dataclass
class Check:
    record: QARecord
    truth_gt: object
    value_gt: float
    ok: bool
    rel_error: float | None = None


def check_record(rec: QARecord, gt: Scene, rel_tol: float = 0.03) -> Check:
    info = TYPES[rec.qa_type]
    a = gt.object_by_id(rec.object_ids[0])
    b = gt.object_by_id(rec.object_ids[1]) if info.n_objects == 2 else None
    r = evaluate(rec.qa_type, gt, a, b, UNGATED)
    if r is None:
        return Check(rec, None, float("nan"), False)
    truth, value = r
    if info.family == "quantitative":
        rel = abs(float(rec.truth) - float(truth)) / max(abs(float(truth)), 1e-9)
        return Check(rec, truth, value, rel <= rel_tol, rel)
    return Check(rec, truth, value, truth == rec.truth)


def check_scene(records: list[QARecord], gt: Scene, rel_tol: float = 0.03) -> list[Check]:
    return [check_record(r, gt, rel_tol) for r in records]
