"""The object library: indoor object categories at real-world sizes, built from simple solids.

Every builder returns a :class:`Model` in the object's *local* frame: x = the object's width (left to right when
looking at its front), y = its depth (its front faces -y, its back +y), z up, the footprint centred on the origin
and the lowest point at z = 0. Sizes are drawn per instance from a realistic range (metres). Every part carries
its own colour; the instance's dominant colour is named (``"red"``, ``"navy"``) so captions can use it.

Meshes are made only of boxes, surfaces of revolution (cylinders, cones, frustums, vases, bottles, bowls; 32
segments or more) and spheres, so the vertex set of a model bounds the geometry exactly: the axis-aligned box of
the vertices in any rotated frame is the box of the surface itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

# --------------------------------------------------------------------------------------------------------------
# Colours
# --------------------------------------------------------------------------------------------------------------
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.78, 0.12, 0.12),
    "dark red": (0.50, 0.08, 0.10),
    "orange": (0.92, 0.50, 0.12),
    "yellow": (0.93, 0.80, 0.20),
    "green": (0.20, 0.62, 0.25),
    "dark green": (0.10, 0.36, 0.16),
    "teal": (0.10, 0.55, 0.55),
    "blue": (0.16, 0.35, 0.80),
    "light blue": (0.55, 0.72, 0.92),
    "navy": (0.10, 0.14, 0.38),
    "purple": (0.45, 0.22, 0.60),
    "pink": (0.92, 0.55, 0.68),
    "white": (0.92, 0.92, 0.90),
    "cream": (0.93, 0.88, 0.74),
    "beige": (0.80, 0.72, 0.58),
    "gray": (0.52, 0.52, 0.54),
    "dark gray": (0.26, 0.26, 0.28),
    "black": (0.08, 0.08, 0.09),
    "brown": (0.45, 0.29, 0.16),
    "light brown": (0.70, 0.52, 0.33),
    "silver": (0.75, 0.76, 0.78),
}

# groups used by categories
_BRIGHT = ["red", "orange", "yellow", "green", "teal", "blue", "light blue", "purple", "pink", "white", "black"]
_FABRIC = ["red", "dark red", "green", "dark green", "teal", "blue", "navy", "gray", "dark gray", "beige", "cream",
           "brown", "purple", "yellow", "orange"]
_WOOD = ["brown", "light brown", "white", "black", "gray"]
_DARK = ["black", "dark gray", "silver", "white"]

Color = tuple[float, float, float]


def rgb(name: str) -> Color:
    return PALETTE[name]


def _shade(c: Color, f: float) -> Color:
    return tuple(float(np.clip(v * f, 0.0, 1.0)) for v in c)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------------------
# Geometry primitives (vertices, triangles, per-part colour)
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Part:
    vertices: np.ndarray  # (V, 3)
    triangles: np.ndarray  # (T, 3) int
    color: Color


@dataclass
class Model:
    """A composite object in its local frame (see the module docstring)."""

    category: str
    color: str  # the dominant colour's name
    parts: list[Part]
    top_z: float | None = None  # height of an upward-facing support surface (table tops), local frame
    top_extent: tuple[float, float] | None = None  # usable (width, depth) of that surface, centred on the origin
    meta: dict = field(default_factory=dict)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All parts merged: vertices (V,3), triangles (T,3), per-triangle colours (T,3)."""
        verts, tris, cols = [], [], []
        off = 0
        for p in self.parts:
            verts.append(p.vertices)
            tris.append(p.triangles + off)
            cols.append(np.tile(np.asarray(p.color, dtype=np.float64), (len(p.triangles), 1)))
            off += len(p.vertices)
        return np.concatenate(verts), np.concatenate(tris).astype(np.int64), np.concatenate(cols)


_BOX_TRIS = np.array(
    [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
     [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]], dtype=np.int64)


def box(sx: float, sy: float, sz: float, cx: float = 0.0, cy: float = 0.0, z0: float = 0.0,
        color: Color = (0.5, 0.5, 0.5)) -> Part:
    """Axis-aligned box of size (sx, sy, sz) centred at (cx, cy) in plan, bottom at z0."""
    x0, x1, y0, y1, z1 = cx - sx / 2, cx + sx / 2, cy - sy / 2, cy + sy / 2, z0 + sz
    v = np.array([[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0],
                  [x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]], dtype=np.float64)
    return Part(v, _BOX_TRIS.copy(), color)


def lathe(profile: list[tuple[float, float]], cx: float = 0.0, cy: float = 0.0, z0: float = 0.0,
          color: Color = (0.5, 0.5, 0.5), segments: int = 40) -> Part:
    """Surface of revolution about the vertical axis through (cx, cy). ``profile`` lists (radius, z) from bottom
    to top; a radius of 0 closes the surface at that end (use it at both ends for a closed solid)."""
    ang = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    ca, sa = np.cos(ang), np.sin(ang)
    verts: list[np.ndarray] = []
    rings: list[list[int]] = []
    n = 0
    for r, z in profile:
        if r <= 0.0:
            verts.append(np.array([[cx, cy, z0 + z]]))
            rings.append([n] * segments)
            n += 1
        else:
            ring = np.stack([cx + r * ca, cy + r * sa, np.full(segments, z0 + z)], axis=1)
            verts.append(ring)
            rings.append(list(range(n, n + segments)))
            n += segments
    tris = []
    for a, b in pairwise(rings):
        for i in range(segments):
            j = (i + 1) % segments
            if a[i] != a[j]:
                tris.append([a[i], a[j], b[i]])
            if b[i] != b[j]:
                tris.append([a[j], b[j], b[i]])
    return Part(np.concatenate(verts), np.asarray(tris, dtype=np.int64), color)


def cylinder(r: float, h: float, cx: float = 0.0, cy: float = 0.0, z0: float = 0.0,
             color: Color = (0.5, 0.5, 0.5), segments: int = 40) -> Part:
    return lathe([(0.0, 0.0), (r, 0.0), (r, h), (0.0, h)], cx, cy, z0, color, segments)


def frustum(r0: float, r1: float, h: float, cx: float = 0.0, cy: float = 0.0, z0: float = 0.0,
            color: Color = (0.5, 0.5, 0.5), segments: int = 40) -> Part:
    return lathe([(0.0, 0.0), (r0, 0.0), (r1, h), (0.0, h)], cx, cy, z0, color, segments)


def sphere(r: float, cx: float = 0.0, cy: float = 0.0, cz: float = 0.0, color: Color = (0.5, 0.5, 0.5),
           rings: int = 16, segments: int = 32) -> Part:
    th = np.linspace(0.0, np.pi, rings + 1)
    prof = [(r * float(np.sin(t)), r - r * float(np.cos(t))) for t in th]
    prof[0] = (0.0, 0.0)
    prof[-1] = (0.0, 2 * r)
    return lathe(prof, cx, cy, cz - r, color, segments)


def transform_part(p: Part, R: np.ndarray, t: np.ndarray | tuple = (0.0, 0.0, 0.0)) -> Part:
    return Part(p.vertices @ np.asarray(R).T + np.asarray(t, dtype=np.float64), p.triangles, p.color)


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


# --------------------------------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------------------------------
Rng = np.random.Generator


def _u(rng: Rng, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _pick(rng: Rng, names: list[str]) -> str:
    return names[int(rng.integers(len(names)))]


def _legs4(w: float, d: float, h: float, t: float, inset: float, color: Color, round_: bool = False) -> list[Part]:
    out = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx, cy = sx * (w / 2 - inset - t / 2), sy * (d / 2 - inset - t / 2)
            out.append(cylinder(t / 2, h, cx, cy, 0.0, color, 32) if round_ else box(t, t, h, cx, cy, 0.0, color))
    return out


def build_bed(rng: Rng) -> Model:
    w, l = _u(rng, 0.9, 1.8), _u(rng, 1.95, 2.1)
    cname = _pick(rng, ["white", "cream", "beige", "gray", "light blue", "navy", "green", "pink", "red"])
    frame_c = rgb(_pick(rng, _WOOD))
    fh, mh = _u(rng, 0.22, 0.32), _u(rng, 0.18, 0.25)
    hb_h, hb_t = _u(rng, 0.85, 1.15), 0.06
    parts = [
        box(w, l, fh, 0, 0, 0, frame_c),
        box(w - 0.04, l - hb_t - 0.04, mh, 0, -hb_t / 2, fh, rgb(cname)),
        box(w, hb_t, hb_h, 0, l / 2 - hb_t / 2, 0, _shade(frame_c, 0.9)),
        box(min(0.6, w * 0.4), 0.35, 0.12, -w / 4 if w > 1.2 else 0, l / 2 - hb_t - 0.25, fh + mh, rgb("white")),
    ]
    return Model("bed", cname, parts)


def build_chair(rng: Rng) -> Model:
    w, d = _u(rng, 0.40, 0.50), _u(rng, 0.40, 0.50)
    sh, st = _u(rng, 0.42, 0.48), _u(rng, 0.04, 0.06)
    bh, bt, lt = _u(rng, 0.38, 0.50), _u(rng, 0.03, 0.05), _u(rng, 0.03, 0.045)
    cname = _pick(rng, _BRIGHT + ["brown", "light brown", "gray"])
    leg_c = _shade(rgb(cname), 0.7) if rng.random() < 0.5 else rgb(_pick(rng, ["black", "silver", "brown"]))
    parts = _legs4(w, d, sh - st, lt, 0.01, leg_c, round_=bool(rng.random() < 0.4))
    parts.append(box(w, d, st, 0, 0, sh - st, rgb(cname)))
    parts.append(box(w, bt, bh, 0, d / 2 - bt / 2, sh, _shade(rgb(cname), 0.95)))
    return Model("chair", cname, parts)


def _table_like(rng: Rng, category: str, w: tuple, d: tuple, h: tuple, colors: list[str]) -> Model:
    W, D, H = _u(rng, *w), _u(rng, *d), _u(rng, *h)
    tt, lt = _u(rng, 0.03, 0.05), _u(rng, 0.045, 0.07)
    cname = _pick(rng, colors)
    c = rgb(cname)
    parts = _legs4(W, D, H - tt, lt, 0.04, _shade(c, 0.8), round_=bool(rng.random() < 0.3))
    parts.append(box(W, D, tt, 0, 0, H - tt, c))
    return Model(category, cname, parts, top_z=H, top_extent=(W - 0.08, D - 0.08))


def build_table(rng: Rng) -> Model:
    return _table_like(rng, "table", (1.1, 1.8), (0.7, 1.0), (0.72, 0.78), _WOOD)


def build_coffee_table(rng: Rng) -> Model:
    m = _table_like(rng, "coffee table", (0.8, 1.2), (0.45, 0.7), (0.38, 0.48), _WOOD)
    return m


def build_desk(rng: Rng) -> Model:
    W, D, H = _u(rng, 1.0, 1.6), _u(rng, 0.55, 0.75), _u(rng, 0.72, 0.76)
    tt, pt = _u(rng, 0.025, 0.04), _u(rng, 0.02, 0.04)
    cname = _pick(rng, _WOOD)
    c = rgb(cname)
    parts = [box(W, D, tt, 0, 0, H - tt, c),
             box(pt, D, H - tt, -W / 2 + pt / 2, 0, 0, _shade(c, 0.85)),
             box(pt, D, H - tt, W / 2 - pt / 2, 0, 0, _shade(c, 0.85)),
             box(W - 2 * pt, 0.02, 0.3, 0, D / 2 - 0.06, H - tt - 0.3, _shade(c, 0.8))]
    if rng.random() < 0.5:  # drawer unit under one side
        dw = _u(rng, 0.35, 0.45)
        parts.append(box(dw, D - 0.05, H - tt - 0.02, W / 2 - pt - dw / 2, 0, 0, _shade(c, 0.9)))
    return Model("desk", cname, parts, top_z=H, top_extent=(W - 0.08, D - 0.08))


def _upholstered(rng: Rng, category: str, w: tuple, d: tuple) -> Model:
    W, D = _u(rng, *w), _u(rng, *d)
    sh, bh, aw, ah = _u(rng, 0.40, 0.46), _u(rng, 0.75, 0.95), _u(rng, 0.12, 0.24), _u(rng, 0.55, 0.68)
    bt = _u(rng, 0.15, 0.25)
    cname = _pick(rng, _FABRIC)
    c = rgb(cname)
    leg_c = rgb("brown")
    parts = _legs4(W, D, 0.08, 0.05, 0.03, leg_c)
    parts += [box(W, D, sh - 0.08 - 0.12, 0, 0, 0.08, _shade(c, 0.85)),
              box(W - 2 * aw, D - bt, 0.12, 0, -bt / 2, sh - 0.12, c),
              box(W, bt, bh - 0.08, 0, D / 2 - bt / 2, 0.08, _shade(c, 0.92)),
              box(aw, D - bt, ah - 0.08, -W / 2 + aw / 2, -bt / 2, 0.08, _shade(c, 0.95)),
              box(aw, D - bt, ah - 0.08, W / 2 - aw / 2, -bt / 2, 0.08, _shade(c, 0.95))]
    return Model(category, cname, parts)


def build_sofa(rng: Rng) -> Model:
    return _upholstered(rng, "sofa", (1.6, 2.4), (0.8, 0.95))


def build_armchair(rng: Rng) -> Model:
    return _upholstered(rng, "armchair", (0.7, 0.95), (0.75, 0.9))


def build_bookshelf(rng: Rng) -> Model:
    W, D, H = _u(rng, 0.6, 1.0), _u(rng, 0.25, 0.35), _u(rng, 1.2, 2.0)
    t = 0.02
    cname = _pick(rng, _WOOD)
    c = rgb(cname)
    parts = [box(t, D, H, -W / 2 + t / 2, 0, 0, c), box(t, D, H, W / 2 - t / 2, 0, 0, c),
             box(W, 0.01, H, 0, D / 2 - 0.005, 0, _shade(c, 0.8))]
    n = int(rng.integers(3, 6))
    levels = np.linspace(0.0, H - t, n + 1)
    for z in levels:
        parts.append(box(W - 2 * t, D - 0.01, t, 0, -0.005, float(z), c))
    for z0, z1 in pairwise(levels):  # books on each shelf
        x = -W / 2 + t + 0.01
        room = float(z1 - z0 - t)
        while x < W / 2 - t - 0.06 and rng.random() < 0.93:
            bw = _u(rng, 0.02, 0.05)
            bh = min(room - 0.02, _u(rng, 0.16, 0.30))
            if bh > 0.05:
                parts.append(box(bw, D * 0.75, bh, x + bw / 2, -0.01, float(z0) + t,
                                 rgb(_pick(rng, _BRIGHT + ["navy", "dark red", "dark green"]))))
            x += bw + 0.003
    return Model("bookshelf", cname, parts)


def _case(rng: Rng, category: str, w: tuple, d: tuple, h: tuple, n_drawers: int) -> Model:
    W, D, H = _u(rng, *w), _u(rng, *d), _u(rng, *h)
    cname = _pick(rng, _WOOD + ["cream", "navy", "dark green"])
    c = rgb(cname)
    parts = [box(W - 0.04, D - 0.04, 0.06, 0, 0, 0, _shade(c, 0.6)), box(W, D - 0.02, H - 0.06, 0, 0.01, 0.06, c)]
    handle_c = rgb(_pick(rng, ["silver", "black", "brown"]))
    if n_drawers:
        hs = (H - 0.08) / n_drawers
        for i in range(n_drawers):
            z = 0.07 + i * hs
            parts.append(box(W - 0.04, 0.02, hs - 0.02, 0, -D / 2 + 0.01, z, _shade(c, 1.08)))
            parts.append(box(0.14, 0.02, 0.025, 0, -D / 2 - 0.01, z + hs / 2 - 0.0125, handle_c))
    else:
        for sx in (-1, 1):
            parts.append(box(W / 2 - 0.03, 0.02, H - 0.1, sx * W / 4, -D / 2 + 0.01, 0.08, _shade(c, 1.08)))
            parts.append(box(0.025, 0.02, 0.14, sx * 0.04, -D / 2 - 0.01, H * 0.55, handle_c))
    return Model(category, cname, parts)


def build_cabinet(rng: Rng) -> Model:
    return _case(rng, "cabinet", (0.5, 0.9), (0.4, 0.6), (0.8, 1.3), 0)


def build_dresser(rng: Rng) -> Model:
    return _case(rng, "dresser", (0.9, 1.4), (0.45, 0.55), (0.75, 1.0), int(rng.integers(3, 5)))


def build_nightstand(rng: Rng) -> Model:
    return _case(rng, "nightstand", (0.4, 0.55), (0.35, 0.45), (0.45, 0.6), int(rng.integers(1, 3)))


def build_floor_lamp(rng: Rng) -> Model:
    br, ph = _u(rng, 0.12, 0.16), _u(rng, 1.25, 1.55)
    r0, r1, sh = _u(rng, 0.18, 0.24), _u(rng, 0.11, 0.15), _u(rng, 0.25, 0.35)
    cname = _pick(rng, ["white", "cream", "beige", "red", "black", "yellow", "light blue"])
    metal = rgb(_pick(rng, ["black", "silver", "brown"]))
    parts = [cylinder(br, 0.03, 0, 0, 0, metal), cylinder(0.013, ph, 0, 0, 0.03, metal),
             frustum(r0, r1, sh, 0, 0, 0.03 + ph - sh * 0.6, rgb(cname))]
    return Model("floor lamp", cname, parts)


def build_table_lamp(rng: Rng) -> Model:
    br, ph = _u(rng, 0.06, 0.09), _u(rng, 0.22, 0.32)
    r0, r1, sh = _u(rng, 0.10, 0.15), _u(rng, 0.07, 0.10), _u(rng, 0.14, 0.20)
    cname = _pick(rng, ["white", "cream", "beige", "red", "black", "yellow", "green", "blue"])
    metal = rgb(_pick(rng, ["black", "silver", "brown", "white"]))
    parts = [cylinder(br, 0.025, 0, 0, 0, metal), cylinder(0.01, ph, 0, 0, 0.025, metal),
             frustum(r0, r1, sh, 0, 0, 0.025 + ph - sh * 0.5, rgb(cname))]
    return Model("table lamp", cname, parts)


def build_monitor(rng: Rng) -> Model:
    W, H, t = _u(rng, 0.5, 0.7), _u(rng, 0.30, 0.42), _u(rng, 0.02, 0.035)
    lift = _u(rng, 0.08, 0.13)
    cname = _pick(rng, _DARK)
    c = rgb(cname)
    parts = [box(0.22, 0.18, 0.012, 0, 0.02, 0, _shade(c, 0.9)), box(0.04, 0.03, lift + 0.05, 0, 0.05, 0.012, c),
             box(W, t, H, 0, 0.05 - 0.015 - t / 2, lift, c),
             box(W - 0.03, 0.003, H - 0.03, 0, 0.05 - 0.015 - t - 0.0015, lift + 0.015, rgb("dark gray"))]
    return Model("monitor", cname, parts)


def build_laptop(rng: Rng) -> Model:
    W, D, t = _u(rng, 0.30, 0.36), _u(rng, 0.21, 0.25), _u(rng, 0.015, 0.02)
    ang = np.deg2rad(_u(rng, 95.0, 120.0))
    cname = _pick(rng, ["silver", "dark gray", "black", "white"])
    c = rgb(cname)
    base = box(W, D, t, 0, 0, 0, c)
    # the lid hinges on the back edge of the base; closed it would lie along -y from the hinge
    lid = box(W, D, 0.006, 0, -D / 2, 0, _shade(c, 0.9))
    lid = transform_part(lid, rot_x(-ang), (0.0, D / 2, t))
    keys = box(W - 0.04, D * 0.45, 0.002, 0, 0.02, t, rgb("black"))
    return Model("laptop", cname, [base, lid, keys])


def build_mug(rng: Rng) -> Model:
    r, h = _u(rng, 0.038, 0.048), _u(rng, 0.09, 0.11)
    cname = _pick(rng, _BRIGHT)
    c = rgb(cname)
    parts = [lathe([(0, 0), (r * 0.95, 0), (r, 0.01), (r, h), (r - 0.005, h), (r - 0.005, 0.012), (0, 0.012)],
                   color=c),
             box(0.012, 0.03, h * 0.6, r + 0.013, 0, h * 0.2, c), box(0.02, 0.012, 0.012, r + 0.005, 0, h * 0.2, c),
             box(0.02, 0.012, 0.012, r + 0.005, 0, h * 0.8 - 0.012, c)]
    return Model("mug", cname, parts)


def build_bottle(rng: Rng) -> Model:
    r, hb = _u(rng, 0.03, 0.045), _u(rng, 0.15, 0.21)
    rn, hn = _u(rng, 0.011, 0.015), _u(rng, 0.05, 0.08)
    cname = _pick(rng, ["green", "dark green", "blue", "light blue", "brown", "white", "red", "orange", "teal"])
    c = rgb(cname)
    prof = [(0, 0), (r, 0), (r, hb), (r * 0.7, hb + 0.03), (rn, hb + 0.05), (rn, hb + 0.05 + hn), (0, hb + 0.05 + hn)]
    parts = [lathe(prof, color=c),
             cylinder(rn * 1.15, 0.02, 0, 0, hb + 0.05 + hn, rgb(_pick(rng, ["white", "black", "red", "silver"])))]
    return Model("bottle", cname, parts)


def build_book(rng: Rng) -> Model:
    w, d, t = _u(rng, 0.14, 0.21), _u(rng, 0.20, 0.28), _u(rng, 0.015, 0.05)
    cname = _pick(rng, _BRIGHT + ["navy", "dark red", "dark green", "brown"])
    c = rgb(cname)
    parts = [box(w, d, 0.003, 0, 0, 0, c), box(w, d, 0.003, 0, 0, t - 0.003, c),
             box(0.004, d, t - 0.006, -w / 2 + 0.002, 0, 0.003, _shade(c, 0.85)),
             box(w - 0.008, d - 0.008, t - 0.006, 0.002, 0, 0.003, rgb("cream"))]
    return Model("book", cname, parts)


def build_potted_plant(rng: Rng) -> Model:
    r0, r1, ph = _u(rng, 0.09, 0.15), _u(rng, 0.12, 0.2), _u(rng, 0.2, 0.35)
    cname = _pick(rng, ["white", "gray", "black", "orange", "brown", "blue", "yellow", "red"])
    parts = [frustum(r0, r1, ph, color=rgb(cname)), cylinder(r1 * 0.92, 0.012, 0, 0, ph, rgb("brown"))]
    stem = _u(rng, 0.05, 0.4)
    parts.append(cylinder(0.012, stem + 0.05, 0, 0, ph, rgb("dark green")))
    n = int(rng.integers(3, 7))
    fr = _u(rng, 0.12, 0.22)
    for _ in range(n):
        a = rng.uniform(0, 2 * np.pi)
        off = rng.uniform(0, fr * 0.8)
        s = fr * _u(rng, 0.6, 1.0)
        parts.append(sphere(s, off * np.cos(a), off * np.sin(a), ph + stem + s * _u(rng, 0.5, 1.3),
                            _shade(rgb(_pick(rng, ["green", "dark green"])), _u(rng, 0.8, 1.15)), 10, 32))
    return Model("potted plant", cname, parts)


def build_vase(rng: Rng) -> Model:
    r, h = _u(rng, 0.05, 0.09), _u(rng, 0.18, 0.35)
    cname = _pick(rng, _BRIGHT + ["cream", "navy"])
    prof = [(0, 0), (r * 0.6, 0), (r, h * 0.35), (r * 0.9, h * 0.6), (r * 0.45, h * 0.85), (r * 0.55, h),
            (r * 0.45, h), (0, h * 0.5)]
    return Model("vase", cname, [lathe(prof, color=rgb(cname))])


def build_bowl(rng: Rng) -> Model:
    rb, rt, h = _u(rng, 0.035, 0.05), _u(rng, 0.07, 0.11), _u(rng, 0.05, 0.08)
    cname = _pick(rng, _BRIGHT + ["cream"])
    prof = [(0, 0), (rb, 0), (rt, h), (rt - 0.006, h), (rb - 0.004, 0.008), (0, 0.008)]
    return Model("bowl", cname, [lathe(prof, color=rgb(cname))])


def build_box(rng: Rng) -> Model:
    w, d, h = _u(rng, 0.3, 0.6), _u(rng, 0.25, 0.5), _u(rng, 0.2, 0.5)
    cname = _pick(rng, ["brown", "light brown", "white", "red", "blue", "green"])
    c = rgb(cname)
    parts = [box(w, d, h, 0, 0, 0, c), box(w + 0.004, 0.06, 0.002, 0, 0, h, rgb("beige"))]
    return Model("box", cname, parts)


def build_trash_bin(rng: Rng) -> Model:
    r0, r1, h = _u(rng, 0.11, 0.16), _u(rng, 0.13, 0.19), _u(rng, 0.3, 0.5)
    cname = _pick(rng, ["gray", "black", "white", "silver", "blue", "green", "red"])
    prof = [(0, 0), (r0, 0), (r1, h), (r1 - 0.006, h), (r0 - 0.006, 0.01), (0, 0.01)]
    return Model("trash bin", cname, [lathe(prof, color=rgb(cname))])


def build_tv(rng: Rng) -> Model:
    W = _u(rng, 0.9, 1.45)
    H, t = W * _u(rng, 0.56, 0.6), _u(rng, 0.04, 0.07)
    cname = _pick(rng, ["black", "dark gray", "silver"])
    parts = [box(W, t, H, 0, 0, 0, rgb(cname)),
             box(W - 0.04, 0.003, H - 0.04, 0, -t / 2 - 0.0015, 0.02,
                 _shade(rgb(_pick(rng, ["navy", "dark gray", "teal", "purple"])), 0.6))]
    return Model("tv", cname, parts)


def build_picture_frame(rng: Rng) -> Model:
    W, H, t, b = _u(rng, 0.3, 0.9), _u(rng, 0.3, 0.7), _u(rng, 0.02, 0.04), _u(rng, 0.03, 0.06)
    cname = _pick(rng, ["black", "white", "brown", "light brown", "silver", "yellow"])
    c = rgb(cname)
    parts = [box(W, t, b, 0, 0, 0, c), box(W, t, b, 0, 0, H - b, c), box(b, t, H - 2 * b, -W / 2 + b / 2, 0, b, c),
             box(b, t, H - 2 * b, W / 2 - b / 2, 0, b, c),
             box(W - 2 * b, t * 0.5, H - 2 * b, 0, t * 0.25, b, rgb(_pick(rng, _BRIGHT + ["beige", "navy"])))]
    return Model("picture frame", cname, parts)


def build_wall_clock(rng: Rng) -> Model:
    r, t = _u(rng, 0.12, 0.2), _u(rng, 0.03, 0.05)
    cname = _pick(rng, ["white", "black", "red", "silver", "brown", "cream"])
    face = transform_part(cylinder(r, t, color=rgb(cname), segments=48), rot_x(np.pi / 2), (0.0, t / 2, r))
    dial = transform_part(cylinder(r * 0.88, 0.004, color=rgb("white"), segments=48), rot_x(np.pi / 2),
                          (0.0, -t / 2, r))
    hand1 = box(0.008, 0.003, r * 0.6, 0, -t / 2 - 0.0055, r, rgb("black"))
    hand2 = transform_part(box(0.01, 0.003, r * 0.45, 0, 0, 0, rgb("black")), np.array(
        [[np.cos(1.2), 0, np.sin(1.2)], [0, 1, 0], [-np.sin(1.2), 0, np.cos(1.2)]]), (0, -t / 2 - 0.0055, r))
    return Model("wall clock", cname, [face, dial, hand1, hand2])


def build_ottoman(rng: Rng) -> Model:
    h = _u(rng, 0.36, 0.45)
    cname = _pick(rng, _FABRIC)
    if rng.random() < 0.5:
        r = _u(rng, 0.2, 0.3)
        parts = [cylinder(r * 0.96, h - 0.07, 0, 0, 0, _shade(rgb(cname), 0.85), 48),
                 cylinder(r, 0.07, 0, 0, h - 0.07, rgb(cname), 48)]
    else:
        w, d = _u(rng, 0.4, 0.6), _u(rng, 0.4, 0.6)
        parts = [box(w, d, h - 0.05, 0, 0, 0.05, rgb(cname))] + _legs4(w, d, 0.05, 0.04, 0.02, rgb("brown"))
    return Model("ottoman", cname, parts)


def build_stool(rng: Rng) -> Model:
    r, h = _u(rng, 0.15, 0.2), _u(rng, 0.45, 0.75)
    cname = _pick(rng, _BRIGHT + ["brown", "light brown"])
    leg_c = rgb(_pick(rng, ["silver", "black", "brown"]))
    parts = [cylinder(r, 0.04, 0, 0, h - 0.04, rgb(cname))]
    for k in range(4):
        a = k * np.pi / 2 + np.pi / 4
        parts.append(cylinder(0.015, h - 0.04, 0.72 * r * np.cos(a), 0.72 * r * np.sin(a), 0, leg_c, 32))
    return Model("stool", cname, parts)


def build_suitcase(rng: Rng) -> Model:
    w, d, h = _u(rng, 0.38, 0.5), _u(rng, 0.22, 0.3), _u(rng, 0.55, 0.75)
    cname = _pick(rng, _BRIGHT + ["navy", "gray", "dark red"])
    c = rgb(cname)
    parts = [box(w, d, h - 0.05, 0, 0, 0.05, c), box(w + 0.006, d + 0.006, 0.02, 0, 0, 0.05 + (h - 0.05) / 2,
                                                        _shade(c, 0.7))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(cylinder(0.022, 0.05, sx * (w / 2 - 0.04), sy * (d / 2 - 0.04), 0, rgb("black"), 32))
    parts += [box(0.015, 0.015, 0.03, -0.06, 0, h, rgb("black")), box(0.015, 0.015, 0.03, 0.06, 0, h, rgb("black")),
              box(0.135, 0.02, 0.015, 0, 0, h + 0.03, rgb("black"))]
    return Model("suitcase", cname, parts)


def build_basketball(rng: Rng) -> Model:
    r = _u(rng, 0.115, 0.122)
    return Model("basketball", "orange", [sphere(r, 0, 0, r, rgb("orange"), 24, 48)])


@dataclass(frozen=True)
class Category:
    name: str  # the noun people use
    build: Callable[[Rng], Model]
    support: str  # "floor", "table" or "wall"
    weight: float = 1.0  # sampling weight
    wall_prob: float = 0.0  # for floor objects: how often they stand with their back to a wall
    wall_z: tuple[float, float] = (0.0, 0.0)  # wall objects: height of the bottom edge


CATEGORIES: dict[str, Category] = {c.name: c for c in [
    Category("bed", build_bed, "floor", 0.7, 0.9),
    Category("chair", build_chair, "floor", 1.6),
    Category("table", build_table, "floor", 1.0),
    Category("desk", build_desk, "floor", 0.8, 0.8),
    Category("sofa", build_sofa, "floor", 0.9, 0.8),
    Category("armchair", build_armchair, "floor", 0.9, 0.2),
    Category("coffee table", build_coffee_table, "floor", 0.8),
    Category("bookshelf", build_bookshelf, "floor", 0.9, 0.95),
    Category("cabinet", build_cabinet, "floor", 0.8, 0.8),
    Category("dresser", build_dresser, "floor", 0.7, 0.9),
    Category("nightstand", build_nightstand, "floor", 0.6, 0.5),
    Category("floor lamp", build_floor_lamp, "floor", 0.8),
    Category("potted plant", build_potted_plant, "floor", 0.9),
    Category("box", build_box, "floor", 0.7),
    Category("trash bin", build_trash_bin, "floor", 0.7),
    Category("ottoman", build_ottoman, "floor", 0.6),
    Category("stool", build_stool, "floor", 0.7),
    Category("suitcase", build_suitcase, "floor", 0.6),
    Category("basketball", build_basketball, "floor", 0.5),
    Category("table lamp", build_table_lamp, "table", 0.8),
    Category("monitor", build_monitor, "table", 0.8),
    Category("laptop", build_laptop, "table", 0.8),
    Category("mug", build_mug, "table", 1.0),
    Category("bottle", build_bottle, "table", 1.0),
    Category("book", build_book, "table", 1.0),
    Category("vase", build_vase, "table", 0.8),
    Category("bowl", build_bowl, "table", 0.8),
    Category("tv", build_tv, "wall", 0.7, wall_z=(0.9, 1.3)),
    Category("picture frame", build_picture_frame, "wall", 0.9, wall_z=(1.1, 1.6)),
    Category("wall clock", build_wall_clock, "wall", 0.6, wall_z=(1.6, 2.0)),
]}

SUPPORT_CATEGORIES = ("table", "desk", "coffee table")


def build(category: str, rng: Rng) -> Model:
    """Build one instance of ``category`` (a key of :data:`CATEGORIES`) with sizes and colour drawn from ``rng``."""
    try:
        cat = CATEGORIES[category]
    except KeyError:
        raise KeyError(f"unknown category {category!r}; known: {sorted(CATEGORIES)}") from None
    return cat.build(rng)
