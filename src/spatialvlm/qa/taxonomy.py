"""The question taxonomy: 12 predicates, 12 choices, 6 classify, 13 quantitative (SpatialVLM appendix) plus
clock-face direction. This module only names the types; what each one means and computes lives in
:mod:`spatialvlm.qa.types`, and how each one is said lives in :mod:`spatialvlm.qa.templates`."""

from __future__ import annotations

from dataclasses import dataclass

# relation -> (opposite relation, needs the canonical frame)
RELATIONS: dict[str, tuple[str, bool]] = {
    "left": ("right", False),
    "right": ("left", False),
    "above": ("below", True),
    "below": ("above", True),
    "behind": ("front", False),
    "front": ("behind", False),
    "tall": ("short", True),
    "short": ("tall", True),
    "wide": ("thin", False),
    "thin": ("wide", False),
    "big": ("small", True),
    "small": ("big", True),
}

CLASSIFY_PAIRS = [("left", "right"), ("above", "below"), ("behind", "front"), ("tall", "short"),
                  ("wide", "thin"), ("big", "small")]

# quantitative type -> (number of objects, needs the canonical frame)
QUANTITATIVE: dict[str, tuple[int, bool]] = {
    "distance": (2, False),  # between centres
    "gap": (2, False),  # between closest surfaces
    "height": (1, True),  # vertical extent
    "width": (1, False),  # left-right extent as seen by the viewer
    "elevation": (1, True),  # height of the object's bottom above the floor
    "vertical_distance": (2, True),  # between centres, along gravity
    "horizontal_distance": (2, True),  # between centres, on the floor plane
    "above_difference": (2, True),  # how much higher A's bottom is than B's
    "below_difference": (2, True),  # how much lower A's bottom is than B's
    "behind_difference": (2, False),  # how much farther A's centre is along the viewing direction
    "front_difference": (2, False),  # how much nearer A's centre is along the viewing direction
    "left_difference": (2, False),  # how much farther left A's centre is, from the viewer
    "right_difference": (2, False),  # how much farther right A's centre is, from the viewer
}


@dataclass(frozen=True)
class TypeInfo:
    name: str
    family: str  # predicate | choice | classify | quantitative | direction
    n_objects: int
    needs_canonical: bool
    relation: str | None = None  # predicate / choice: the relation; classify: the first of the pair


def _build() -> dict[str, TypeInfo]:
    out: dict[str, TypeInfo] = {}
    for rel, (_, canon) in RELATIONS.items():
        out[f"{rel}_predicate"] = TypeInfo(f"{rel}_predicate", "predicate", 2, canon, rel)
    for rel, (_, canon) in RELATIONS.items():
        out[f"{rel}_choice"] = TypeInfo(f"{rel}_choice", "choice", 2, canon, rel)
    for a, b in CLASSIFY_PAIRS:
        out[f"{a}_{b}_classify"] = TypeInfo(f"{a}_{b}_classify", "classify", 2, RELATIONS[a][1], a)
    for q, (n, canon) in QUANTITATIVE.items():
        out[q] = TypeInfo(q, "quantitative", n, canon)
    out["clock_direction"] = TypeInfo("clock_direction", "direction", 2, True)
    return out


TYPES: dict[str, TypeInfo] = _build()
ALL_TYPES: list[str] = list(TYPES)
assert len(ALL_TYPES) == 44
