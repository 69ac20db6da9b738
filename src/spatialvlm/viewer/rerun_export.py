"""Export selected images of an output folder to a rerun recording (``.rrd``), one image per step of the
``image`` timeline.

Entity tree (per image; everything under ``world`` is cleared between images)::

    world                         canonical frame (z up, floor z = 0), or an upright camera frame when the image
                                  is not canonicalized (x right, y forward, z up, camera at the origin)
    world/floor                   the support plane z = 0 (canonicalized images only)
    world/boxes                   3D boxes of the objects (oriented canonical box, else axis-aligned)
    world/camera                  the camera pose (Transform3D, camera -> world)
    world/camera/image            Pinhole + RGB image + metric depth + instance segmentation
    world/camera/points/<name>    each object's points in the camera frame
    qa                            the image's questions and answers (markdown table)
    objects                       the object list (markdown)

Needs ``rerun-sdk`` (``pip install rerun-sdk``; tested with 0.41).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from spatialvlm.io import writers as W
from spatialvlm.records import Box3D

# camera (x right, y down, z forward) shown upright: x right, y forward, z up
UPRIGHT_FROM_CAM = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0]])


def _import_rerun():
    try:
        import rerun as rr
    except ImportError as exc:
        raise ImportError("export-rerun needs the rerun SDK: pip install 'rerun-sdk>=0.41,<0.42'") from exc
    return rr


def _md_escape(s) -> str:
    return str(s if s is not None else "").replace("|", "\\|").replace("\n", " ")


def export_rerun(out_dir: Path | str, rrd_path: Path | str, image_ids: list[str] | None = None, limit: int = 50,
                 max_points: int = 3000) -> Path:
    """Write ``rrd_path`` with the given images (default: the first ``limit`` images of ``scenes.parquet``)."""
    from scipy.spatial.transform import Rotation

    from spatialvlm.io.report import object_colour
    from spatialvlm.viewer.data import OutputFolder

    rr = _import_rerun()
    data = OutputFolder(out_dir)
    if image_ids:
        missing = [i for i in image_ids if i not in data.row_of]
        if missing:
            raise KeyError(f"image ids not in {data.root / W.SCENES_FILE}: {missing[:5]}")
        ids = list(image_ids)
    else:
        ids = data.image_ids[: max(0, int(limit))]
    if not ids:
        raise ValueError(f"no images to export from {data.root}")
    rrd_path = Path(rrd_path)
    rrd_path.parent.mkdir(parents=True, exist_ok=True)

    rec = rr.RecordingStream("spatialvlm")
    rec.save(rrd_path)
    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    from PIL import Image

    from spatialvlm.io.report import load_points

    for step, image_id in enumerate(ids):
        rec.set_time("image", sequence=step)
        rec.log("world", rr.Clear(recursive=True))
        s = data.scene_row(image_id)
        objs = data.object_rows(image_id)
        qas = data.qa_rows(image_id)
        present = [o for o in objs if o.get("object_id") is not None]
        canon = bool(s["canonicalized"]) and s.get("canon_from_cam") is not None
        T = np.asarray(s["canon_from_cam"], dtype=np.float64) if canon else UPRIGHT_FROM_CAM
        rec.log("world/camera", rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]))
        with Image.open(data.safe_path(s["image"])) as im:
            rgb = np.asarray(im.convert("RGB"))
        if s.get("K") is not None:
            rec.log("world/camera/image", rr.Pinhole(image_from_camera=np.asarray(s["K"]), width=s["width"],
                                                     height=s["height"], camera_xyz=rr.ViewCoordinates.RDF))
        rec.log("world/camera/image/rgb", rr.Image(rgb))
        if s.get("depth"):
            depth = W.decode_depth_png(data.safe_path(s["depth"]))
            rec.log("world/camera/image/depth", rr.DepthImage(depth, meter=1.0))
        if s.get("masks"):
            inst = W.decode_instance_png(data.safe_path(s["masks"])).astype(np.uint16)
            infos = [rr.AnnotationInfo(id=int(o["object_id"]) + 1, label=o.get("name") or o.get("label") or "",
                                       color=object_colour(o["object_id"])) for o in present]
            rec.log("world/camera/image/segmentation", rr.AnnotationContext(infos))
            rec.log("world/camera/image/segmentation", rr.SegmentationImage(inst))
        pts = load_points(data.root, s)
        centers, sizes, quats, colours, labels = [], [], [], [], []
        for o in present:
            oid = int(o["object_id"])
            name = o.get("name") or f"({o.get('label', '')})"
            p = pts.get(oid)
            if p is not None and len(p):
                p = p[:max_points]
                rec.log(f"world/camera/points/{rr.escape_entity_path_part(f'{oid}_{name}')}",
                        rr.Points3D(p.astype(np.float32), colors=object_colour(oid), radii=0.005))
            box = None
            if canon and o.get("obb_canon"):
                import json

                box = Box3D.from_dict(json.loads(o["obb_canon"]))
            elif canon and o.get("aabb_canon_center") is not None:
                box = Box3D(o["aabb_canon_center"], o["aabb_canon_size"])
            elif not canon and o.get("aabb_cam_center") is not None:
                box = Box3D(o["aabb_cam_center"], o["aabb_cam_size"]).transformed(UPRIGHT_FROM_CAM)
            if box is not None:
                R = box.rotation
                if np.linalg.det(R) < 0:  # a reflection: flip one axis (the box is symmetric)
                    R = R.copy()
                    R[:, 2] *= -1
                centers.append(box.center)
                sizes.append(box.size)
                quats.append(rr.Quaternion(xyzw=Rotation.from_matrix(R).as_quat()))
                colours.append(object_colour(oid))
                labels.append(name)
        if centers:
            rec.log("world/boxes", rr.Boxes3D(centers=np.array(centers), sizes=np.array(sizes), quaternions=quats,
                                              colors=colours, labels=labels))
        if canon:
            xy = [np.asarray(c)[:2] for c in centers] or [np.zeros(2)]
            lo, hi = np.min(xy, axis=0) - 1.0, np.max(xy, axis=0) + 1.0
            verts = np.array([[lo[0], lo[1], 0], [hi[0], lo[1], 0], [hi[0], hi[1], 0], [lo[0], hi[1], 0]])
            rec.log("world/floor", rr.Mesh3D(vertex_positions=verts, triangle_indices=[[0, 1, 2], [0, 2, 3]],
                                             vertex_colors=[[176, 160, 128]] * 4))
        head = (f"**{image_id}** ({s['width']}x{s['height']}, "
                + ("canonicalized" if canon else f"not canonicalized: {s.get('canonical_reason') or '?'}") + ")\n\n")
        rows = ["| type | question | answer | raw value |", "|---|---|---|---|"]
        for q in qas:
            v = q.get("value_m")
            val = f"{v:.3f} m" if v is not None and math.isfinite(v) else str(q.get("truth"))
            rows.append(f"| {_md_escape(q['qa_type'])} | {_md_escape(q['question'])} | {_md_escape(q['answer'])} "
                        f"| {_md_escape(val)} |")
        rec.log("qa", rr.TextDocument(head + "\n".join(rows), media_type=rr.MediaType.MARKDOWN))
        orows = ["| id | name | label | points | note |", "|---|---|---|---|---|"]
        for o in objs:
            orows.append(f"| {_md_escape(o.get('object_id'))} | {_md_escape(o.get('name'))} | "
                         f"{_md_escape(o.get('label'))} | {_md_escape(o.get('num_points'))} | "
                         f"{_md_escape(o.get('drop_reason'))} |")
        rec.log("objects", rr.TextDocument("\n".join(orows), media_type=rr.MediaType.MARKDOWN))
    rec.flush()
    rec.disconnect()
    return rrd_path
