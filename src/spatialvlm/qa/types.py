"""What every question type means: one registry entry per type, the single source of truth.

Each entry computes a raw value from a Scene (``measure``), says whether that value can be asserted from what the
camera saw (``gate``: both objects measurable along the axes the type needs, and the answer clear by a margin larger
than the measurement uncertainty), and turns the value into the answer (``truth_of``). The same functions write
training answers, check truth in tests against ground-truth scenes, answer as the evaluation oracle and serve the
reasoning tools.

Working frame ("RFU"): x to the viewer's right, y forward (away from the viewer), z up, metres.
* canonicalized scene: the canonical frame itself (gravity-aligned, y = viewing direction on the floor plane);
* otherwise (only types that do not need gravity): camera x, camera z, -camera y.

Definitions (each object is reduced to the axis-aligned box of its points in the working frame):
* left/right compare box-centre x; behind/front compare centre y (distance along the viewing direction);
  above/below compare centre z; tall/short compare height (z extent); wide/thin compare width (x extent, the size
  left to right as seen); big/small compare box volume.
* distance: between box centres; gap: between the two boxes (0 when they touch or overlap); height, width: extents;
  elevation: the box bottom's height above the floor; vertical / horizontal distance: centre offset along z / in the
  x-y plane; above/below_difference: offset of the box bottoms; behind/front_difference: offset of centres along y;
  left/right_difference: offset of centres along x.
* clock_direction: standing at A's centre facing forward (+y), the hour hand pointing at B (12 = straight ahead,
  3 = to the right).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..geometry.boxes import box_distance
from ..records import Box3D, Object3D, Scene
from .taxonomy import RELATIONS, TYPES, TypeInfo


# --------------------------------------------------------------------------------------------------------------
# Gating parameters
# --------------------------------------------------------------------------------------------------------------
@dataclass
class GateConfig:
    """How sure we must be before asserting an answer."""

    rel_tol: float = 0.025  # quantitative answers must be measurable to this relative precision (tests: 3%)
    pixel_sigma: float = 1.5  # uncertainty of a box face, in pixel footprints at the object's depth
    position_margin: float = 0.10  # metres: relations of position need at least this much separation
    size_margin: float = 0.15  # relative: tall/wide need the bigger one this much bigger
    volume_ratio: float = 1.5  # big/small need this volume ratio
    min_value: float = 0.10  # metres: smallest quantitative value asked (differences, gaps, elevations)
    max_occlusion: float = 0.05  # share of the outline hidden behind nearer surfaces (per side: twice this)
    max_extreme_occlusion: float = 0.1  # share of the outermost outline pixels (per side) hidden
    min_top_view_deg: float = 15.0  # the camera must look down on an object's top at least this steeply
    hidden_depth_prior: float = 0.75  # an object's depth is assumed >= this share of min(width, height)
    clock_margin_deg: float = 5.0  # stay this far from the border between two hours
    clock_min_distance: float = 0.5  # horizontal distance needed for a clock direction
    enabled: bool = True  # False: no gating at all (ground-truth checks)


UNGATED = GateConfig(enabled=False)


# --------------------------------------------------------------------------------------------------------------
# Geometry views
# --------------------------------------------------------------------------------------------------------------
def working_box(scene: Scene, o: Object3D, canonical: bool) -> Box3D:
    """The object's axis-aligned box in the working frame (RFU)."""
    if canonical:
        if not scene.canonical.ok or o.aabb_canon is None:
            raise ValueError("canonical frame requested but the scene is not canonicalized")
        return o.aabb_canon
    pts = o.points_cam
    rfu = np.stack([pts[:, 0], pts[:, 2], -pts[:, 1]], axis=1)
    key = "_rfu_cam_box"
    if key not in o.meta:
        o.meta[key] = Box3D.from_points(rfu)
    return o.meta[key]


def footprint(scene: Scene, o: Object3D) -> float:
    """Metres covered by one pixel at the object's median depth."""
    if scene.intrinsics is None:
        return 0.0
    z = float(np.median(o.points_cam[:, 2]))
    return z / min(scene.intrinsics.fx, scene.intrinsics.fy)


def measurable(scene: Scene, o: Object3D, axes: str, g: GateConfig, part: str = "box",
               strict: bool = True) -> bool:
    """Whether the object's box is trustworthy along ``axes`` ("x", "y", "z"). ``part="bottom"`` needs only the
    lower face along z."""
    if not g.enabled:
        return True
    v = o.visibility
    t, occ = v.truncated, v.occluded
    extreme_ok = all(occ.get(f"{s}_extreme", 0.0) <= g.max_extreme_occlusion
                     for s in ("left", "right", "top", "bottom"))
    if not strict:
        # comparisons with a margin: nothing cut by the border, little hidden overall, and the sides that bound
        # the compared axis clear
        sides = {"x": ("left", "right"), "y": ("left", "right", "top", "bottom"), "z": ("top", "bottom")}
        need = {s for a in axes for s in sides[a]}
        if any(t.values()) or occ.get("all", 0.0) > 2 * g.max_occlusion:
            return False
        if any(occ.get(s, 0.0) > 2 * g.max_occlusion or occ.get(f"{s}_extreme", 0.0) > g.max_extreme_occlusion
               for s in need):
            return False
        if "y" in axes and v.top_view_deg is not None and v.top_view_deg < g.min_top_view_deg:
            return False  # along the view, an object seen edge-on may hide its far part behind its near faces
        return not ("y" in axes and v.top_seen is False)
    # cut by the image border on any side: part of the object is unseen, and with it possibly any extent
    if any(t.values()) or not extreme_ok:
        return False
    if occ.get("all", 0.0) > g.max_occlusion or any(
            occ.get(s, 0.0) > 2 * g.max_occlusion for s in ("left", "right", "top", "bottom")):
        return False
    if part == "bottom" and axes == "z":
        return True
    if ("x" in axes or "y" in axes) and v.top_view_deg is not None and v.top_view_deg < g.min_top_view_deg:
        return False  # seen edge-on: its far corners may hide behind its near faces
    if "y" in axes and v.top_seen is False:
        return False  # the far side of an object shows only when the camera looks down on its top
    return True


def hidden_depth(scene: Scene, o: Object3D, canonical: bool, g: GateConfig, face: bool = False) -> float:
    """How far the centre along the viewing direction may be off because the object's back is unseen: half of
    what its observed depth falls short of a prior share of its smaller other dimension (a thin observed depth on a
    wide, tall object suggests a hidden back)."""
    b = working_box(scene, o, canonical)
    if face:  # a face (not the centre) may be off by all of the hidden depth; assume depth >= min(width, height)
        return max(0.0, min(b.size[0], b.size[2]) - b.size[1])
    expected = g.hidden_depth_prior * min(b.size[0], b.size[2])
    return max(0.0, expected - b.size[1]) / 2.0


# --------------------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Ctx:
    scene: Scene
    a: Object3D
    b: Object3D | None
    canonical: bool
    g: GateConfig

    @property
    def A(self) -> Box3D:
        return working_box(self.scene, self.a, self.canonical)

    @property
    def B(self) -> Box3D:
        assert self.b is not None
        return working_box(self.scene, self.b, self.canonical)

    def sigma(self, *objs: Object3D) -> float:
        return sum(self.g.pixel_sigma * footprint(self.scene, o) for o in objs)


@dataclass
class QAType:
    info: TypeInfo
    measure: Callable[[Ctx], float]
    gate: Callable[[Ctx, float], bool]
    truth_of: Callable[[Ctx, float], object]
    doc: str = ""
    axes: str = "xyz"
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.info.name


REGISTRY: dict[str, QAType] = {}

# relation -> (axes it needs, quantity whose larger value means "more <relation>")
_REL_Q: dict[str, tuple[str, Callable[[Box3D], float], str]] = {
    "left": ("x", lambda b: -b.center[0], "position"),
    "right": ("x", lambda b: b.center[0], "position"),
    "above": ("z", lambda b: b.center[2], "position"),
    "below": ("z", lambda b: -b.center[2], "position"),
    "behind": ("y", lambda b: b.center[1], "position"),
    "front": ("y", lambda b: -b.center[1], "position"),
    "tall": ("z", lambda b: b.size[2], "size"),
    "short": ("z", lambda b: -b.size[2], "size"),
    "wide": ("x", lambda b: b.size[0], "size"),
    "thin": ("x", lambda b: -b.size[0], "size"),
    "big": ("xyz", lambda b: b.volume, "volume"),
    "small": ("xyz", lambda b: -b.volume, "volume"),
}


def relation_margin_ok(c: Ctx, rel: str) -> bool:
    """The two objects differ in the relation's quantity by more than the margin and the uncertainty."""
    if not c.g.enabled:
        return True
    axes, q, kind = _REL_Q[rel]
    strict = kind == "volume"
    if not (measurable(c.scene, c.a, axes, c.g, strict=strict) and measurable(c.scene, c.b, axes, c.g, strict=strict)):
        return False
    qa, qb = q(c.A), q(c.B)
    unc = c.sigma(c.a, c.b)
    if "y" in axes:
        unc += sum(hidden_depth(c.scene, o, c.canonical, c.g) for o in (c.a, c.b))
    if kind == "position":
        return abs(qa - qb) >= max(c.g.position_margin, 3 * unc)
    if kind == "size":
        big, small = max(abs(qa), abs(qb)), min(abs(qa), abs(qb))
        return big - small >= max(c.g.size_margin * big, 3 * 2 * unc)
    big, small = max(abs(qa), abs(qb)), min(abs(qa), abs(qb))
    return small > 0 and big / small >= c.g.volume_ratio


def relation_value(c: Ctx, rel: str) -> float:
    """Positive when A is more <rel> than B."""
    q = _REL_Q[rel][1]
    return float(q(c.A) - q(c.B))


def _register(t: QAType) -> None:
    REGISTRY[t.name] = t


for _rel in RELATIONS:
    _axes = _REL_Q[_rel][0]
    _register(QAType(
        TYPES[f"{_rel}_predicate"],
        measure=lambda c, r=_rel: relation_value(c, r),
        gate=lambda c, v, r=_rel: relation_margin_ok(c, r),
        truth_of=lambda c, v: bool(v > 0),
        doc=f"Is A {_rel} of/than B? yes when A is more {_rel} than B.",
        axes=_axes,
    ))
    _register(QAType(
        TYPES[f"{_rel}_choice"],
        measure=lambda c, r=_rel: relation_value(c, r),
        gate=lambda c, v, r=_rel: relation_margin_ok(c, r),
        truth_of=lambda c, v: c.a.name if v > 0 else c.b.name,
        doc=f"Which is more {_rel}, A or B? the name of the one that is.",
        axes=_axes,
    ))

from .taxonomy import CLASSIFY_PAIRS  # noqa: E402

for _r1, _r2 in CLASSIFY_PAIRS:
    _register(QAType(
        TYPES[f"{_r1}_{_r2}_classify"],
        measure=lambda c, r=_r1: relation_value(c, r),
        gate=lambda c, v, r=_r1: relation_margin_ok(c, r),
        truth_of=lambda c, v, r1=_r1, r2=_r2: r1 if v > 0 else r2,
        doc=f"Is A {_r1} or {_r2} (of/than) B? the relation word that holds.",
        axes=_REL_Q[_r1][0],
    ))


# ---- quantitative ---------------------------------------------------------------------------------------------
def _quant_gate(c: Ctx, v: float, axes_a: str, axes_b: str | None, n_faces: float, min_value: float | None = None,
                part: str = "box") -> bool:
    if not c.g.enabled:
        return np.isfinite(v)
    if not np.isfinite(v):
        return False
    if not measurable(c.scene, c.a, axes_a, c.g, part):
        return False
    objs = [c.a]
    if c.b is not None:
        if not measurable(c.scene, c.b, axes_b or axes_a, c.g, part):
            return False
        objs.append(c.b)
    mv = c.g.min_value if min_value is None else min_value
    if v < mv:
        return False
    unc = n_faces * c.sigma(*objs) / len(objs)
    if "y" in axes_a:
        unc += sum(hidden_depth(c.scene, o, c.canonical, c.g) for o in objs)
    return v * c.g.rel_tol >= unc


def _identity(c: Ctx, v: float) -> float:
    return float(v)


def _q(name: str, measure: Callable[[Ctx], float], axes: str, n_faces: float, doc: str, part: str = "box",
       min_value: float | None = None, also: Callable[[Ctx, float], bool] | None = None) -> None:
    """Register a quantitative type; ``also`` is a further condition of that type (checked only when gating)."""
    _register(QAType(
        TYPES[name],
        measure=measure,
        gate=lambda c, v: _quant_gate(c, v, axes, axes, n_faces, min_value, part)
        and (also is None or not c.g.enabled or also(c, v)),
        truth_of=_identity,
        doc=doc,
        axes=axes,
    ))


_q("distance", lambda c: float(np.linalg.norm(c.A.center - c.B.center)), "xyz", 2.0,
   "Distance between the centres of A and B.")
_q("gap", lambda c: box_distance(c.A, c.B), "xyz", 2.0, "Distance between A's and B's boxes (closest surfaces).",
   # a gap is set by faces, which may be off by all of an object's hidden depth
   also=lambda c, v: v * c.g.rel_tol >= sum(hidden_depth(c.scene, o, c.canonical, c.g, face=True)
                                             for o in (c.a, c.b)))
_q("height", lambda c: float(c.A.size[2]), "z", 2.0, "Height of A (vertical extent).", min_value=0.0)
_q("width", lambda c: float(c.A.size[0]), "x", 2.0, "Width of A (left-right extent as seen).", min_value=0.0)
_q("elevation", lambda c: float(c.A.min[2]), "z", 2.0, "Height of A's bottom above the floor.", part="bottom",
   # about the floor: only when z = 0 is known to be the floor
   also=lambda c, v: c.scene.canonical.support in ("floor", "geometric", "ground_truth"))
_q("vertical_distance", lambda c: float(abs(c.A.center[2] - c.B.center[2])), "z", 2.0,
   "Vertical offset between the centres of A and B.")
_q("horizontal_distance", lambda c: float(np.linalg.norm(c.A.center[:2] - c.B.center[:2])), "xy", 2.0,
   "Offset between the centres of A and B on the floor plane.")
_q("above_difference", lambda c: float(c.A.min[2] - c.B.min[2]), "z", 2.0,
   "How much higher A's bottom is than B's.", part="bottom")
_q("below_difference", lambda c: float(c.B.min[2] - c.A.min[2]), "z", 2.0,
   "How much lower A's bottom is than B's.", part="bottom")
_q("behind_difference", lambda c: float(c.A.center[1] - c.B.center[1]), "y", 2.0,
   "How much farther A's centre is than B's along the viewing direction.")
_q("front_difference", lambda c: float(c.B.center[1] - c.A.center[1]), "y", 2.0,
   "How much nearer A's centre is than B's along the viewing direction.")
_q("left_difference", lambda c: float(c.B.center[0] - c.A.center[0]), "x", 2.0,
   "How much farther left A's centre is than B's, from the viewer.")
_q("right_difference", lambda c: float(c.A.center[0] - c.B.center[0]), "x", 2.0,
   "How much farther right A's centre is than B's, from the viewer.")

# ---- clock-face direction -------------------------------------------------------------------------------------
def clock_angle(c: Ctx) -> float:
    """Degrees clockwise from straight ahead (+y) of the direction from A's centre to B's centre."""
    d = c.B.center[:2] - c.A.center[:2]
    return float(np.degrees(np.arctan2(d[0], d[1])) % 360.0)


def hour_of(angle_deg: float) -> int:
    h = int(np.floor((angle_deg + 15.0) / 30.0)) % 12
    return 12 if h == 0 else h


def _clock_gate(c: Ctx, ang: float) -> bool:
    if not c.g.enabled:
        return True
    if not (measurable(c.scene, c.a, "xy", c.g) and measurable(c.scene, c.b, "xy", c.g)):
        return False
    dist = float(np.linalg.norm(c.B.center[:2] - c.A.center[:2]))
    if dist < max(c.g.clock_min_distance, 1e-9):
        return False
    off = abs(((ang + 15.0) % 30.0) - 15.0)  # degrees from the hour's centre
    border = 15.0 - off
    unc = 2 * c.sigma(c.a, c.b) + sum(hidden_depth(c.scene, o, c.canonical, c.g) for o in (c.a, c.b))
    unc_deg = np.degrees(unc / dist)
    return border >= max(c.g.clock_margin_deg, 3 * unc_deg)


_register(QAType(TYPES["clock_direction"], measure=clock_angle, gate=_clock_gate,
                 truth_of=lambda c, ang: hour_of(ang),
                 doc="Standing at A facing forward, the o'clock direction of B.", axes="xy"))

assert set(REGISTRY) == set(TYPES), set(TYPES) ^ set(REGISTRY)


# --------------------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------------------
def uses_canonical(qa_type: str, scene: Scene) -> bool | None:
    """Which frame a type is computed in for this scene; None when it cannot be computed (needs gravity, none)."""
    info = TYPES[qa_type]
    if scene.canonical.ok:
        return True
    return None if info.needs_canonical else False


def evaluate(qa_type: str, scene: Scene, a: Object3D, b: Object3D | None = None,
             gate: GateConfig | None = None) -> tuple[object, float] | None:
    """(truth, raw value) of ``qa_type`` about A (and B), or None when it must not be asked: it needs gravity and
    the scene has none, an object is not measurable along the axes it needs, or the answer is within the margin."""
    t = REGISTRY[qa_type]
    canonical = uses_canonical(qa_type, scene)
    if canonical is None:
        return None
    if (t.info.n_objects == 2) != (b is not None):
        raise ValueError(f"{qa_type} takes {t.info.n_objects} object(s)")
    if b is not None and a.id == b.id:
        raise ValueError("A and B must be different objects")
    c = Ctx(scene, a, b, canonical, gate or GateConfig())
    v = t.measure(c)
    if not t.gate(c, v):
        return None
    return t.truth_of(c, v), v


def compute_truth(qa_type: str, scene: Scene, a: Object3D, b: Object3D | None = None,
                  gate: GateConfig | None = None):
    """The answer of ``qa_type`` about A (and B) in ``scene``, or None when it must not be asked."""
    r = evaluate(qa_type, scene, a, b, gate)
    return None if r is None else r[0]
