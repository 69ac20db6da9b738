"""Pipeline stages. A stage loads what it needs once (``__init__``) and maps a batch (``__call__``); the same class
runs in-process (the local runner) and inside Ray Data ``map_batches`` at scale. Per-item failures come back as
:class:`~spatialvlm.records.ItemError` in place of the item, never raised for one bad input and never dropped."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

from ..geometry.scene import GeometryConfig, build_scene
from ..qa.synth import QAConfig, synthesize_qa
from ..records import Frame, ItemError, QARecord, Scene


@dataclass
class SceneResult:
    frame: Frame
    scene: Scene
    qas: list[QARecord] = field(default_factory=list)


class GeometryStage:
    """Frame -> Scene (cleaned per-object point clouds, canonical frame, boxes, names)."""

    def __init__(self, cfg: GeometryConfig | None = None):
        self.cfg = cfg or GeometryConfig()

    def __call__(self, items: list) -> list:
        out = []
        for f in items:
            if isinstance(f, ItemError):
                out.append(f)
                continue
            try:
                out.append(SceneResult(f, build_scene(f, self.cfg)))
            except ValueError as exc:  # a frame that cannot be lifted: recorded with its reason
                out.append(ItemError(f.image_id, "geometry", str(exc)))
            except Exception as exc:  # an unexpected bug: still recorded, with the traceback's last line
                out.append(ItemError(f.image_id, "geometry", f"{type(exc).__name__}: {exc} "
                                     f"[{traceback.format_exc(limit=1).strip().splitlines()[-1]}]"))
        return out


class QAStage:
    """Scene -> QA records."""

    def __init__(self, cfg: QAConfig | None = None):
        self.cfg = cfg or QAConfig()

    def __call__(self, items: list) -> list:
        out = []
        for r in items:
            if isinstance(r, ItemError):
                out.append(r)
                continue
            try:
                r.qas = synthesize_qa(r.scene, self.cfg)
            except Exception as exc:
                out.append(ItemError(r.frame.image_id, "qa", f"{type(exc).__name__}: {exc}"))
                continue
            if not r.qas:
                n_ask = sum(o.askable for o in r.scene.objects)
                why = (f"no question could be asked: {n_ask} askable object(s) of {len(r.scene.objects)} lifted"
                       + ("" if r.scene.canonical.ok else f"; not canonicalized ({r.scene.canonical.reason})"))
                out.append(_NoQA(r, why))
                continue
            out.append(r)
        return out


class _NoQA(ItemError):
    """A scene that was lifted but gave no QA: written (objects, scene row) and also listed as an error."""

    def __init__(self, result: SceneResult, reason: str):
        super().__init__(result.frame.image_id, "qa", reason)
        self.result = result
