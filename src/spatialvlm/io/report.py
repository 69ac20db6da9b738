"""``report.html``: one self-contained page that shows a sample of an output folder.

It reads only the output folder written by :class:`spatialvlm.io.writers.DatasetWriter`. For each sampled image:
the photo with instance masks and object names, the colourised depth, an interactive 3D view (plotly: object points,
box wireframes, the floor plane when the image is canonicalized) and its QA table; above them, dataset counts.
plotly.js is inlined once from the copy bundled in the ``plotly`` Python package, so the page works offline.

The drawing helpers here (overlay, depth colours, the 3D figure) are shared with the viewer.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spatialvlm.io import writers as W
from spatialvlm.records import Box3D

REPORT_POINTS_PER_OBJECT = 500

# a colour per object id (qualitative palette, cycled)
PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40),
    (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
]

# perceptually ordered dark-blue -> green -> yellow ramp (anchor points, linearly interpolated)
_DEPTH_ANCHORS = np.array([
    [48, 18, 59], [65, 69, 171], [70, 117, 237], [57, 162, 252], [27, 207, 212], [36, 236, 166],
    [97, 252, 108], [164, 252, 60], [209, 232, 52], [243, 198, 58], [254, 155, 45], [243, 99, 21],
    [217, 56, 6], [177, 25, 1], [122, 4, 3],
], dtype=np.float64)


def object_colour(object_id: int | None) -> tuple[int, int, int]:
    if object_id is None or (isinstance(object_id, float) and math.isnan(object_id)):
        return (128, 128, 128)
    return PALETTE[int(object_id) % len(PALETTE)]


def _hex(c: Sequence[int]) -> str:
    r, g, b = (int(v) for v in c[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def colourise_depth(depth_m: np.ndarray) -> tuple[np.ndarray, float, float]:
    """RGB uint8 rendering of a metric depth map (near = dark blue, far = red; invalid = black), and the range
    (lo, hi) in metres that the colours span (2nd and 98th percentiles of the valid depths)."""
    d = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    out = np.zeros(d.shape + (3,), dtype=np.uint8)
    if not valid.any():
        return out, 0.0, 0.0
    lo, hi = np.percentile(d[valid], [2, 98])
    if hi <= lo:
        hi = lo + 1e-3
    t = np.clip((d[valid] - lo) / (hi - lo), 0.0, 1.0) * (len(_DEPTH_ANCHORS) - 1)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, len(_DEPTH_ANCHORS) - 1)
    f = (t - i0)[:, None]
    out[valid] = np.round(_DEPTH_ANCHORS[i0] * (1 - f) + _DEPTH_ANCHORS[i1] * f).astype(np.uint8)
    return out, float(lo), float(hi)


def resize_for_display(image: np.ndarray, instance: np.ndarray | None, long_side: int = 640
                       ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Image (bilinear) and instance map (nearest) resized so the longer side is ``long_side``; returns the scale."""
    from PIL import Image

    h, w = image.shape[:2]
    s = long_side / max(h, w)
    if abs(s - 1.0) < 1e-6:
        return image, instance, 1.0
    size = (max(1, round(w * s)), max(1, round(h * s)))
    img = np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).resize(size, Image.BILINEAR))
    inst = None
    if instance is not None:
        inst = np.asarray(Image.fromarray(instance.astype(np.int32)).resize(size, Image.NEAREST)).astype(np.int32)
    return img, inst, s


def overlay_image(image: np.ndarray, instance: np.ndarray | None, objects: list[dict], alpha: float = 0.45,
                  labels: bool = True, long_side: int | None = 640) -> np.ndarray:
    """The photo with each object's mask tinted in its colour, mask outlines, and (optionally) the object names
    written at the top-left of their 2D boxes. ``objects`` are rows of objects.parquet for this image. With
    ``long_side`` the picture is first resized so names stay legible on small images and pages stay small."""
    from PIL import Image, ImageDraw

    scale = 1.0
    if long_side:
        image, instance, scale = resize_for_display(image, instance, long_side)
    img = np.asarray(image, dtype=np.float64).copy()
    if instance is not None and instance.shape == img.shape[:2]:
        for o in objects:
            oid = o.get("object_id")
            if oid is None or (isinstance(oid, float) and math.isnan(oid)):
                continue
            m = instance == int(oid) + 1
            if not m.any():
                continue
            c = np.array(object_colour(int(oid)), dtype=np.float64)
            a = alpha if o.get("askable") else alpha * 0.5
            img[m] = img[m] * (1 - a) + c * a
            edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
            img[edge] = c
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if labels:
        from PIL import ImageFont

        font = ImageFont.load_default(size=max(11, round(max(pil.size) / 32)))
        draw = ImageDraw.Draw(pil)
        for o in objects:
            box = o.get("box2d")
            if box is None or o.get("object_id") is None:
                continue
            text = o.get("name") or f"({o.get('label', '')})"
            x, y = float(box[0]) * scale, float(box[1]) * scale
            c = object_colour(o.get("object_id"))
            tb = draw.textbbox((x, y), text, font=font)
            draw.rectangle([tb[0] - 1, tb[1] - 1, tb[2] + 1, tb[3] + 1], fill=(0, 0, 0))
            draw.text((x, y), text, font=font, fill=c if o.get("askable") else (200, 200, 200))
    return np.asarray(pil)


def encode_data_uri(rgb: np.ndarray, fmt: str = "JPEG", quality: int = 85) -> str:
    from PIL import Image

    buf = io.BytesIO()
    im = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    if fmt == "JPEG":
        im.save(buf, format="JPEG", quality=quality)
        mime = "image/jpeg"
    else:
        im.save(buf, format="PNG")
        mime = "image/png"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _box_edges(corners: np.ndarray) -> tuple[list, list, list]:
    """Line segments (None-separated) through the 12 edges of a box given by ``Box3D.corners()`` ordering."""
    # corner index = 4*sx + 2*sy + sz with s in {0, 1}; edges join corners that differ in one bit
    xs, ys, zs = [], [], []
    for i in range(8):
        for bit in (1, 2, 4):
            j = i | bit
            if j != i:
                for k in (i, j):
                    xs.append(float(corners[k, 0]))
                    ys.append(float(corners[k, 1]))
                    zs.append(float(corners[k, 2]))
                xs.append(None)
                ys.append(None)
                zs.append(None)
    return xs, ys, zs


def _cam_to_view(p: np.ndarray) -> np.ndarray:
    """Camera frame (x right, y down, z forward) shown as (right, forward, up) so the plot stands upright."""
    return np.stack([p[:, 0], p[:, 2], -p[:, 1]], axis=1)


def load_points(out_dir: Path, scene_row: dict) -> dict[int, np.ndarray]:
    """Camera-frame points per object id from ``points/<stem>.npz`` (the stem is the image file's stem)."""
    stem = Path(scene_row["image"]).stem
    path = Path(out_dir) / W.POINTS_DIR / f"{stem}.npz"
    if not path.is_file():
        return {}
    out = {}
    with np.load(path) as z:
        for key in z.files:
            if key.startswith("obj_"):
                out[int(key[4:])] = np.asarray(z[key], dtype=np.float64)
    return out


def scene_figure(out_dir: Path, scene_row: dict, object_rows: list[dict], max_points: int = REPORT_POINTS_PER_OBJECT,
                 seed: int = 0, height: int = 440) -> dict:
    """A plotly figure (``{"data": [...], "layout": {...}}``, plain JSON types) of one image's objects in 3D: each
    object's points (one trace per object, ``meta`` = object id) and box wireframe, the floor plane and the camera.
    Canonical frame (z up, floor z = 0) when the image is canonicalized; otherwise the camera frame drawn upright."""
    pts = load_points(out_dir, scene_row)
    T = scene_row.get("canon_from_cam")
    canon = bool(scene_row.get("canonicalized")) and T is not None
    T = np.asarray(T, dtype=np.float64) if canon else None
    traces: list[dict] = []
    all_xyz = []
    rng = np.random.default_rng(seed)
    for o in object_rows:
        oid = o.get("object_id")
        if oid is None or (isinstance(oid, float) and math.isnan(oid)):
            continue
        oid = int(oid)
        colour = _hex(object_colour(oid))
        name = o.get("name") or f"({o.get('label', '')})"
        p = pts.get(oid)
        if p is not None and len(p):
            if len(p) > max_points:
                p = p[np.sort(rng.choice(len(p), max_points, replace=False))]
            q = p @ T[:3, :3].T + T[:3, 3] if canon else _cam_to_view(p)
            all_xyz.append(q)
            traces.append({
                "type": "scatter3d", "mode": "markers", "name": f"{oid}: {name}", "legendgroup": str(oid),
                "meta": oid, "x": np.round(q[:, 0], 3).tolist(), "y": np.round(q[:, 1], 3).tolist(),
                "z": np.round(q[:, 2], 3).tolist(),
                "marker": {"size": 2, "color": colour, "opacity": 0.85 if o.get("askable") else 0.35},
                "hoverinfo": "name",
            })
        corners = None
        if canon:
            if o.get("obb_canon"):
                corners = Box3D.from_dict(json.loads(o["obb_canon"])).corners()
            elif o.get("aabb_canon_center") is not None:
                corners = Box3D(o["aabb_canon_center"], o["aabb_canon_size"]).corners()
        elif o.get("aabb_cam_center") is not None:
            corners = _cam_to_view(Box3D(o["aabb_cam_center"], o["aabb_cam_size"]).corners())
        if corners is not None:
            all_xyz.append(corners)
            ex, ey, ez = _box_edges(corners)
            traces.append({
                "type": "scatter3d", "mode": "lines", "name": f"{name} box", "legendgroup": str(oid),
                "showlegend": False, "meta": oid, "x": ex, "y": ey, "z": ez,
                "line": {"color": colour, "width": 4 if o.get("askable") else 2}, "hoverinfo": "skip",
            })
    cam = np.zeros((1, 3))
    cam = cam @ T[:3, :3].T + T[:3, 3] if canon else cam
    all_xyz.append(cam)
    traces.append({"type": "scatter3d", "mode": "markers", "name": "camera", "x": [float(cam[0, 0])],
                   "y": [float(cam[0, 1])], "z": [float(cam[0, 2])],
                   "marker": {"size": 5, "color": "#000000", "symbol": "diamond"}})
    xyz = np.concatenate(all_xyz, axis=0)
    if canon:
        lo, hi = xyz[:, :2].min(axis=0) - 0.3, xyz[:, :2].max(axis=0) + 0.3
        traces.append({"type": "mesh3d", "name": "floor (z = 0)", "x": [lo[0], hi[0], hi[0], lo[0]],
                       "y": [lo[1], lo[1], hi[1], hi[1]], "z": [0, 0, 0, 0], "i": [0, 0], "j": [1, 2],
                       "k": [2, 3], "color": "#b0a080", "opacity": 0.3, "hoverinfo": "name", "showlegend": True})
        axes = ("x: right (m)", "y: forward (m)", "z: up from floor (m)")
    else:
        axes = ("x: right (m)", "z: forward (m)", "-y: up (m)")
    layout = {
        "height": height, "margin": {"l": 0, "r": 0, "t": 28, "b": 0},
        "title": {"text": "canonical frame (z up, floor at 0)" if canon else
                  "camera frame (not canonicalized: " + (scene_row.get("canonical_reason") or "no reason") + ")",
                  "font": {"size": 12}},
        "scene": {"aspectmode": "data", "xaxis": {"title": {"text": axes[0]}},
                  "yaxis": {"title": {"text": axes[1]}}, "zaxis": {"title": {"text": axes[2]}},
                  "camera": {"eye": {"x": -0.6, "y": -1.6, "z": 0.9}}},
        "legend": {"itemsizing": "constant", "font": {"size": 10}},
        "uirevision": "keep",
    }
    return {"data": traces, "layout": layout}


def plotly_js() -> str:
    """The plotly.js bundle that ships inside the ``plotly`` Python package (no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


# ----------------------------------------------------------------------------------------------------------------
# reading the output folder
# ----------------------------------------------------------------------------------------------------------------
def _rows_for(path: Path, image_ids: list[str], columns: list[str] | None = None) -> list[dict]:
    import pyarrow.dataset as ds

    if not path.is_file() or not image_ids:
        return []
    d = ds.dataset(path, format="parquet")
    t = d.to_table(columns=columns, filter=ds.field("image_id").isin(image_ids))
    return t.to_pylist()


def _value_text(q: dict) -> str:
    if q.get("value_m") is not None and not (isinstance(q["value_m"], float) and math.isnan(q["value_m"])):
        return f"{q['value_m']:.3f} m"
    return str(q.get("truth", ""))


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f4f6;color:#222}
header{background:#1f2937;color:#fff;padding:14px 22px} header h1{margin:0;font-size:20px}
main{padding:14px 22px} .stats{display:flex;flex-wrap:wrap;gap:18px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:12px 14px;margin:0 0 16px}
table{border-collapse:collapse;font-size:13px} td,th{border-bottom:1px solid #e5e7eb;padding:3px 8px;text-align:left;
vertical-align:top} th{background:#f9fafb}
.img-row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.img-row figure{margin:0} .img-row img{max-width:420px;width:100%;border-radius:4px;image-rendering:auto}
figcaption{font-size:12px;color:#555} .plot{flex:1 1 460px;min-width:360px}
.qa{max-height:360px;overflow:auto;margin-top:8px} .muted{color:#777;font-size:12px}
.tag{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;background:#e5e7eb;margin-right:4px}
.ok{background:#d1fae5}.no{background:#fee2e2}
.types{columns:3 210px;column-gap:24px;font-size:13px;margin-top:6px}
.types div{display:flex;justify-content:space-between;gap:10px;border-bottom:1px solid #eee;break-inside:avoid}
"""


def write_report(out_dir: Path | str, n_images: int = 12, seed: int = 0, *, filename: str = W.REPORT_FILE,
                 max_points: int = REPORT_POINTS_PER_OBJECT) -> Path:
    """Write ``out_dir/report.html`` from the files in ``out_dir`` alone; returns its path."""
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    scenes_path = out_dir / W.SCENES_FILE
    if not scenes_path.is_file():
        raise FileNotFoundError(f"{scenes_path} not found: write_report needs an output folder made by DatasetWriter")
    idx_table = pq.read_table(scenes_path, columns=["image_id", "n_qa", "canonicalized"])
    ids = idx_table.column("image_id").to_pylist()
    n_qa = np.asarray(idx_table.column("n_qa").to_pylist(), dtype=np.int64)
    canon = np.asarray(idx_table.column("canonicalized").to_pylist(), dtype=bool)

    # header statistics
    summary = {}
    if (out_dir / W.SUMMARY_FILE).is_file():
        summary = json.loads((out_dir / W.SUMMARY_FILE).read_text(encoding="utf-8"))
    qa_path = out_dir / W.QA_FILE
    qa_counts: Counter[str] = Counter()
    if qa_path.is_file():
        qa_counts = Counter(pq.read_table(qa_path, columns=["qa_type"]).column("qa_type").to_pylist())
    err_rows: list[dict] = []
    if (out_dir / W.ERRORS_FILE).is_file():
        err_rows = pq.read_table(out_dir / W.ERRORS_FILE).to_pylist()
    err_by_stage = Counter(r["stage"] for r in err_rows)

    # the sample: images with QA first, chosen at random (seeded), shown in dataset order
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(n_qa > 0) if (n_qa > 0).any() else np.arange(len(ids))
    k = min(int(n_images), len(pool))
    chosen = sorted(rng.choice(pool, size=k, replace=False).tolist()) if k else []
    chosen_ids = [ids[i] for i in chosen]
    scene_rows = {r["image_id"]: r for r in _rows_for(scenes_path, chosen_ids)}
    obj_rows: dict[str, list[dict]] = {}
    for r in _rows_for(out_dir / W.OBJECTS_FILE, chosen_ids):
        obj_rows.setdefault(r["image_id"], []).append(r)
    qa_rows: dict[str, list[dict]] = {}
    for r in _rows_for(qa_path, chosen_ids):
        qa_rows.setdefault(r["image_id"], []).append(r)

    parts: list[str] = []
    parts.append("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>")
    parts.append("<meta name='viewport' content='width=device-width, initial-scale=1'>")
    parts.append(f"<title>spatialvlm report: {_esc(out_dir.name)}</title><style>{CSS}</style>")
    parts.append("<script type='text/javascript'>" + plotly_js().replace("</script", "<\\/script") + "</script>")
    parts.append("</head><body>")
    parts.append(f"<header><h1>spatialvlm dataset report</h1><div class='muted' style='color:#cbd5e1'>"
                 f"{_esc(out_dir.name)}: {len(chosen_ids)} of {len(ids)} images shown (seed {seed})</div></header>")
    parts.append("<main>")
    # stats cards
    n_img = len(ids)
    share = (canon.sum() / n_img) if n_img else 0.0
    parts.append("<div class='stats'>")
    parts.append("<div class='card'><table>")
    for label, val in [
        ("images written", n_img),
        ("images in", summary.get("images_in", "?")),
        ("QA pairs", int(sum(qa_counts.values()))),
        ("canonicalized", f"{int(canon.sum())} ({100 * share:.1f}%)"),
        ("objects", summary.get("objects", "?")),
        ("askable objects", summary.get("objects_askable", "?")),
        ("errors", len(err_rows)),
        ("run time (s)", summary.get("time", "?")),
    ]:
        parts.append(f"<tr><th>{_esc(label)}</th><td>{_esc(val)}</td></tr>")
    parts.append("</table></div>")
    parts.append(f"<div class='card' style='flex:1 1 480px'><b>QA per type</b> <span class='muted'>({len(qa_counts)} types)</span>"
                 "<div class='types'>")
    for t, c in sorted(qa_counts.items()):
        parts.append(f"<div><span>{_esc(t)}</span><span>{c}</span></div>")
    parts.append("</div></div>")
    parts.append("<div class='card'><b>Errors by stage</b><table><tr><th>stage</th><th>count</th></tr>")
    for st, c in sorted(err_by_stage.items()):
        parts.append(f"<tr><td>{_esc(st)}</td><td>{c}</td></tr>")
    parts.append("</table>")
    if err_rows:
        parts.append("<div class='muted' style='margin-top:6px'>first errors:</div><table>")
        for r in err_rows[:10]:
            parts.append(f"<tr><td>{_esc(r['item'])}</td><td>{_esc(r['stage'])}</td><td>{_esc(r['reason'])}</td></tr>")
        parts.append("</table>")
    parts.append("</div></div>")

    figures: list[tuple[str, dict]] = []
    for n, image_id in enumerate(chosen_ids):
        s = scene_rows[image_id]
        objs = obj_rows.get(image_id, [])
        present = [o for o in objs if o.get("object_id") is not None]
        rgb = _read_rgb(out_dir / s["image"])
        inst = W.decode_instance_png(out_dir / s["masks"]) if s.get("masks") else None
        over = overlay_image(rgb, inst, present)
        parts.append(f"<section class='card' id='img-{n}'><h3 style='margin:0 0 6px'>{_esc(image_id)} "
                     f"<span class='tag {'ok' if s['canonicalized'] else 'no'}'>"
                     f"{'canonicalized' if s['canonicalized'] else 'not canonicalized'}</span>"
                     f"<span class='tag'>{_esc(Path(s.get('source') or '').name)}</span>"
                     f"<span class='tag'>{s['width']}x{s['height']}</span></h3>")
        if not s["canonicalized"] and s.get("canonical_reason"):
            parts.append(f"<div class='muted'>not canonicalized: {_esc(s['canonical_reason'])}</div>")
        elif s.get("camera_height") is not None:
            parts.append(f"<div class='muted'>camera {s['camera_height']:.2f} m above the {_esc(s['support'])}"
                         "</div>")
        parts.append("<div class='img-row'>")
        parts.append(f"<figure><img alt='image with masks' src='{encode_data_uri(over)}'>"
                     f"<figcaption>image, masks and names (grey = not asked about)</figcaption></figure>")
        if s.get("depth"):
            dcol, lo, hi = colourise_depth(W.decode_depth_png(out_dir / s["depth"]))
            dcol = resize_for_display(dcol, None)[0]
            parts.append(f"<figure><img alt='depth' src='{encode_data_uri(dcol)}'>"
                         f"<figcaption>depth {lo:.2f} m (blue) to {hi:.2f} m (red); black = invalid"
                         f"</figcaption></figure>")
        div_id = f"plot-{n}"
        parts.append(f"<div class='plot'><div id='{div_id}' class='plotly-3d'></div></div>")
        figures.append((div_id, scene_figure(out_dir, s, present, max_points=max_points, seed=seed)))
        parts.append("</div>")
        parts.append(_objects_table(objs))
        parts.append(_qa_table(qa_rows.get(image_id, [])))
        parts.append("</section>")
    parts.append("</main><script>")
    for div_id, fig in figures:
        parts.append(f"Plotly.newPlot({json.dumps(div_id)}, {_json(fig['data'])}, {_json(fig['layout'])}, "
                     "{responsive: true, displaylogo: false});")
    parts.append("</script></body></html>")
    path = out_dir / filename
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _json(x: Any) -> str:
    return json.dumps(x, separators=(",", ":")).replace("</", "<\\/")


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _objects_table(objs: list[dict]) -> str:
    rows = ["<details><summary class='muted'>objects (" + str(len(objs)) + ")</summary><table><tr><th>id</th>"
            "<th>name</th><th>label</th><th>size (m)</th><th>points</th><th>note</th></tr>"]
    for o in objs:
        size = o.get("aabb_canon_size") or o.get("aabb_cam_size")
        size_txt = " x ".join(f"{v:.2f}" for v in size) if size else ""
        oid = o.get("object_id")
        sw = (f"<span style='color:{_hex(object_colour(oid))}'>&#9632;</span> " if oid is not None else "")
        rows.append(f"<tr><td>{sw}{_esc(oid if oid is not None else '-')}</td><td>{_esc(o.get('name'))}</td>"
                    f"<td>{_esc(o.get('label'))}</td><td>{size_txt}</td><td>{_esc(o.get('num_points'))}</td>"
                    f"<td>{_esc(o.get('drop_reason') or '')}</td></tr>")
    rows.append("</table></details>")
    return "".join(rows)


def _qa_table(qas: list[dict]) -> str:
    rows = ["<div class='qa'><table><tr><th>type</th><th>question</th><th>answer</th><th>raw value</th></tr>"]
    for q in qas:
        rows.append(f"<tr><td>{_esc(q['qa_type'])}</td><td>{_esc(q['question'])}</td><td>{_esc(q['answer'])}</td>"
                    f"<td>{_esc(_value_text(q))}</td></tr>")
    if not qas:
        rows.append("<tr><td colspan='4' class='muted'>no QA for this image</td></tr>")
    rows.append("</table></div>")
    return "".join(rows)
