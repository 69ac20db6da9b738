"""Naming objects for questions, with the paper's ambiguity rule.

Objects whose labels mean the same thing form a group. A group of one keeps its label. A group of exactly two gets a
distinguishing clause ("chair on the left" / "chair on the right") when the two are clearly apart left to right in
the picture; otherwise, and for groups of three or more, nobody in the group is asked about (a question about "the
book" when three books show has no single answer). Background stuff (floor, wall, sky, ...) is never asked about.

Labels are compared after normalisation (case, articles, simple plurals). A text-embedding similarity can be plugged
in (``similar``) so that near-identical captions ("black office chair" / "office chair") also group."""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from ..records import Scene

BACKGROUND = {"floor", "wall", "ceiling", "sky", "sun", "ground", "road", "grass", "background", "carpet floor"}
_ARTICLES = re.compile(r"^(the|a|an|some)\s+")


def normalize_label(label: str) -> str:
    s = re.sub(r"\s+", " ", label.strip().lower())
    s = _ARTICLES.sub("", s)
    words = s.split(" ")
    last = words[-1]
    if len(last) > 3 and last.endswith("s") and not last.endswith(("ss", "us", "is")):
        words[-1] = last[:-1]
    return " ".join(words)


def label_groups(labels: list[str], similar: Callable[[list[str]], list[list[int]]] | None = None) -> list[list[int]]:
    """Indices grouped by same meaning: exact normalised match, merged with ``similar``'s groups when given."""
    norm = [normalize_label(x) for x in labels]
    parent = list(range(len(labels)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    first: dict[str, int] = {}
    for i, n in enumerate(norm):
        if n in first:
            union(i, first[n])
        else:
            first[n] = i
    if similar is not None:
        for g in similar(norm):
            for i in g[1:]:
                union(i, g[0])
    groups: dict[int, list[int]] = {}
    for i in range(len(labels)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def assign_names(scene: Scene, similar: Callable[[list[str]], list[list[int]]] | None = None,
                 min_separation: float = 0.5) -> None:
    """Set ``obj.name`` for every object of ``scene`` ("" = not to be asked about) and record why in
    ``obj.meta["name_reason"]``."""
    objs = scene.objects
    for o in objs:
        o.name = ""
    fg = [o for o in objs if normalize_label(o.label) not in BACKGROUND]
    for o in objs:
        if o not in fg:
            o.meta["name_reason"] = "background"
    labels = [normalize_label(o.label) for o in fg]
    for group in label_groups(labels, similar):
        members = [fg[i] for i in group]
        base = labels[group[0]]
        if len(members) == 1:
            members[0].name = base
            members[0].meta["name_reason"] = "unique"
        elif len(members) == 2:
            a, b = members
            ua, wa = _u_centre(a)
            ub, wb = _u_centre(b)
            if abs(ua - ub) >= min_separation * (wa + wb) / 2 and _lateral_agrees(a, b, ua, ub):
                left, right = (a, b) if ua < ub else (b, a)
                left.name, right.name = f"{base} on the left", f"{base} on the right"
                left.meta["name_reason"] = right.meta["name_reason"] = "pair told apart left/right"
            else:
                for m in members:
                    m.meta["name_reason"] = "pair of same-named objects not clearly apart left/right"
        else:
            for m in members:
                m.meta["name_reason"] = f"{len(members)} objects share this name"
    taken: dict[str, int] = {}
    for o in objs:
        if o.name:
            taken[o.name] = taken.get(o.name, 0) + 1
    for o in objs:  # a clause may collide with another label ("lamp on the left" vs a real label): drop both
        if o.name and taken[o.name] > 1:
            o.meta["name_reason"] = "name collides with another object's"
            o.name = ""


def _u_centre(o) -> tuple[float, float]:
    if o.box2d is not None:
        x0, _, x1, _ = o.box2d
        return (x0 + x1) / 2, max(x1 - x0, 1.0)
    return float(np.mean(o.points_cam[:, 0] / o.points_cam[:, 2])), 1e-3


def _lateral_agrees(a, b, ua: float, ub: float) -> bool:
    """The 3D lateral order (viewer's left to right) must agree with the picture's."""
    xa = (a.aabb_canon or a.aabb_cam).center[0]
    xb = (b.aabb_canon or b.aabb_cam).center[0]
    return (ua < ub) == (xa < xb)
