"""Scene -> QA records: pick question types and object pairs, compute answers, phrase them.

Sampling is balanced over types: each round visits the enabled types in a shuffled order and draws one askable
(type, A, B) for each, until ``per_image`` records are written or nothing askable is left. Quantitative questions
(and clock directions) get their own share of the budget (``quantitative_share``, half by default, as in the
paper) as far as the scene allows; the rest goes to qualitative ones, and whatever one side cannot use goes to the
other. Everything is seeded by (config seed, image id), so the same scene always gets the same questions."""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..records import QARecord, Scene
from .taxonomy import ALL_TYPES, TYPES
from .types import GateConfig, evaluate, uses_canonical


@dataclass
class QAConfig:
    per_image: int = 40
    types: dict[str, float] = field(default_factory=dict)  # weights by type name; empty = all types, equal weight
    quantitative_share: float = 0.5  # target share of quantitative + direction questions per image
    imperial_prob: float = 0.2
    hedge_prob: float = 0.15
    seed: int = 0
    gate: GateConfig = field(default_factory=GateConfig)

    def weights(self) -> dict[str, float]:
        if not self.types:
            return {t: 1.0 for t in ALL_TYPES}
        unknown = set(self.types) - set(ALL_TYPES)
        if unknown:
            raise ValueError(f"unknown question types {sorted(unknown)}; known: {ALL_TYPES}")
        return {t: float(w) for t, w in self.types.items() if w > 0}


def scene_rng(seed: int, image_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(image_id.encode("utf-8"))])


def candidates(scene: Scene, qa_type: str, gate: GateConfig) -> list[tuple]:
    """All askable (A, B) for a type in a scene, with their (truth, value)."""
    if uses_canonical(qa_type, scene) is None:
        return []
    objs = [o for o in scene.objects if o.askable]
    out = []
    if TYPES[qa_type].n_objects == 1:
        for a in objs:
            r = evaluate(qa_type, scene, a, None, gate)
            if r is not None:
                out.append((a, None, r))
    else:
        for a, b in itertools.permutations(objs, 2):
            r = evaluate(qa_type, scene, a, b, gate)
            if r is not None:
                out.append((a, b, r))
    return out


def make_record(scene: Scene, qa_type: str, a, b, truth, value: float, rng: np.random.Generator,
                cfg: QAConfig) -> QARecord:
    from .phrasing import speak_clock, speak_distance
    from .templates import render_qa

    info = TYPES[qa_type]
    names = [a.name] if b is None else [a.name, b.name]
    spoken, unit, number, value_m = None, None, None, None
    if info.family == "quantitative":
        s = speak_distance(float(truth), rng, imperial_prob=cfg.imperial_prob, hedge_prob=cfg.hedge_prob)
        spoken, unit, number, value_m = s.text, s.unit, float(s.number), float(truth)
    elif info.family == "direction":
        spoken = speak_clock(int(truth), rng)
    q, ans, qi, ai = render_qa(qa_type, truth, names, rng, spoken)
    return QARecord(
        image_id=scene.image_id,
        qa_type=qa_type,
        family=info.family,
        question=q,
        answer=ans,
        truth=truth if not isinstance(truth, np.generic) else truth.item(),
        value_m=value_m,
        objects=names,
        object_ids=[a.id] if b is None else [a.id, b.id],
        canonical=bool(uses_canonical(qa_type, scene)),
        question_template=qi,
        answer_template=ai,
        unit=unit,
        spoken_value=number,
    )


def synthesize_qa(scene: Scene, cfg: QAConfig | None = None, seed: int | None = None) -> list[QARecord]:
    cfg = cfg or QAConfig()
    rng = scene_rng(cfg.seed if seed is None else seed, scene.image_id)
    weights = cfg.weights()
    pools: dict[str, list] = {}
    for t in weights:
        c = candidates(scene, t, cfg.gate)
        if c:
            order = rng.permutation(len(c))
            pools[t] = [c[i] for i in order]
    if not 0.0 <= cfg.quantitative_share <= 1.0:
        raise ValueError(f"quantitative_share must be in [0, 1], got {cfg.quantitative_share}")
    metric = {t: p for t, p in pools.items() if TYPES[t].family in ("quantitative", "direction")}
    other = {t: p for t, p in pools.items() if t not in metric}
    n_metric = sum(len(p) for p in metric.values())
    n_other = sum(len(p) for p in other.values())
    want_metric = int(round(cfg.per_image * cfg.quantitative_share))
    take_metric = min(n_metric, max(want_metric, cfg.per_image - n_other))
    take_other = min(n_other, cfg.per_image - take_metric)
    picked = _round_robin(metric, weights, take_metric, rng) + _round_robin(other, weights, take_other, rng)
    order = rng.permutation(len(picked))  # interleave the two families
    return [make_record(scene, t, a, b, truth, value, rng, cfg)
            for t, (a, b, (truth, value)) in (picked[i] for i in order)]


def _round_robin(pools: dict[str, list], weights: dict[str, float], n: int, rng: np.random.Generator) -> list:
    """Up to ``n`` (type, candidate) picks, one type per turn in weighted-shuffled rounds."""
    pools = {t: list(p) for t, p in pools.items() if p}
    out: list = []
    while pools and len(out) < n:
        types = list(pools)
        w = np.array([weights[t] for t in types])
        keys = rng.random(len(types)) ** (1.0 / w)  # a weighted shuffle: heavier types earlier in the round
        for t in [types[i] for i in np.argsort(-keys)]:
            if len(out) >= n:
                break
            out.append((t, pools[t].pop()))
            if not pools[t]:
                del pools[t]
    return out
