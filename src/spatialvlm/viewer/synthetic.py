"""Small hand-built scenes for tests and smoke runs of the writers, the report and the viewer.

Nothing here runs perception or the real QA engine: each image is a level camera looking at a few boxes standing on
a floor, with exact depth, masks, points and boxes, and a handful of QA records whose values are computed directly
from the boxes (distance between centres, width, height). It exists so the output side can be exercised without
the rest of the pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spatialvlm.records import (
    Box3D,
    CanonicalFrame,
    DroppedObject,
    Frame,
    Intrinsics,
    ItemError,
    Object3D,
    QARecord,
    Scene,
    Visibility,
)

NAMES = ["chair", "table", "lamp", "mug", "sofa", "plant", "book", "monitor", "bottle", "bed"]
COLOURS = np.array([[200, 60, 50], [60, 160, 70], [50, 90, 200], [220, 180, 40], [150, 70, 170],
                    [40, 170, 170], [230, 120, 40], [120, 120, 120], [90, 50, 30], [240, 140, 180]], dtype=np.uint8)


def synthetic_item(index: int, width: int = 96, height: int = 72, n_objects: int = 3, camera_height: float = 1.4,
                   canonical: bool = True, seed: int = 0) -> tuple[Frame, Scene, list[QARecord]]:
    """One synthetic image: ``n_objects`` boxes on a floor ``camera_height`` below a level camera (hfov 60 deg)."""
    rng = np.random.default_rng(seed * 100003 + index)
    intr = Intrinsics.from_fov(width, height, 60.0)
    image_id = f"syn_{index:06d}"
    # camera frame: x right, y down, z forward; the floor is the plane y = camera_height
    vs, us = np.mgrid[0:height, 0:width]
    ray_y = (vs - intr.cy) / intr.fy
    with np.errstate(divide="ignore"):
        floor_z = np.where(ray_y > 1e-6, camera_height / np.maximum(ray_y, 1e-6), 0.0)
    depth = np.where((floor_z > 0) & (floor_z < 20.0), floor_z, 0.0).astype(np.float32)
    image = np.full((height, width, 3), 235, dtype=np.uint8)
    image[ray_y > 0] = (170, 150, 120)
    boxes, objs = [], []
    for k in range(n_objects):
        size = rng.uniform([0.3, 0.3, 0.3], [1.0, 1.2, 0.8])
        x = -1.2 + 2.4 * (k + 0.5) / n_objects + rng.uniform(-0.1, 0.1)
        z = rng.uniform(2.5, 5.0)
        center = np.array([x, camera_height - size[1] / 2.0, z])
        boxes.append(Box3D(center, size))
    # draw far to near so nearer boxes cover farther ones (front face at z - size/2)
    order = sorted(range(n_objects), key=lambda i: -boxes[i].center[2])
    masks = {}
    for k in order:
        b = boxes[k]
        zf = b.center[2] - b.size[2] / 2.0
        u0 = intr.fx * (b.min[0] / zf) + intr.cx
        u1 = intr.fx * (b.max[0] / zf) + intr.cx
        v0 = intr.fy * (b.min[1] / zf) + intr.cy
        v1 = intr.fy * (b.max[1] / zf) + intr.cy
        m = (us >= u0) & (us < u1) & (vs >= v0) & (vs < v1)
        for j in list(masks):
            masks[j] &= ~m
        masks[k] = m
        depth[m] = zf
        image[m] = COLOURS[(index + k) % len(COLOURS)]
    for k in range(n_objects):
        m = masks[k]
        ys, xs = np.nonzero(m)
        z = depth[ys, xs].astype(np.float64)
        pts = np.stack([(xs - intr.cx) / intr.fx * z, (ys - intr.cy) / intr.fy * z, z], axis=1)
        if len(pts) == 0:  # fully hidden: keep a token point cloud at the box centre
            pts = boxes[k].center[None, :].copy()
        name = NAMES[(index + k) % len(NAMES)]
        box2d = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)) if len(xs) else None
        objs.append(Object3D(
            id=k, label=name, points_cam=pts, name=name if k < n_objects - 1 or n_objects < 3 else "",
            box2d=box2d, aabb_cam=boxes[k], num_points_raw=len(pts), mask=m,
            visibility=Visibility(truncated={"left": False, "right": False}, top_seen=False),
        ))
    if n_objects >= 3:
        objs[-1].meta["drop_reason"] = "ambiguous name (synthetic example)"
    if canonical:
        T = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, camera_height], [0, 0, 0, 1]], dtype=np.float64)
        canon = CanonicalFrame(True, "", T, np.array([0.0, -1.0, 0.0, camera_height]), camera_height, "floor", 100)
        for o in objs:
            o.points_canon = canon.to_canon(o.points_cam)
            o.aabb_canon = o.aabb_cam.transformed(T) if o.aabb_cam is not None else None
            o.obb_canon = o.aabb_canon
    else:
        canon = CanonicalFrame(False, "support plane too small (synthetic example)")
    frame = Frame(image_id, image, depth, intr, source="synthetic")
    scene = Scene(image_id, objs, canon, intr, (width, height),
                  dropped=[DroppedObject("wall", "background stuff")], frame=frame)
    qas = []
    askable = [o for o in objs if o.askable]
    for i, a in enumerate(askable):
        qas.append(QARecord(image_id, "width", "quantitative", f"How wide is the {a.name}?",
                            f"The {a.name} is about {a.aabb_cam.size[0]:.2f} meters wide.", float(a.aabb_cam.size[0]),
                            float(a.aabb_cam.size[0]), [a.name], [a.id], canon.ok, i % 10, i % 5, "m",
                            round(float(a.aabb_cam.size[0]), 2)))
        if canon.ok:  # a canonical-frame type, only where there is a canonical frame
            hgt = float(a.aabb_canon.size[2])
            qas.append(QARecord(image_id, "height", "quantitative", f"How tall is the {a.name}?",
                                f"It is about {hgt:.2f} m tall.", hgt, hgt, [a.name], [a.id], True, 0, 0, "m",
                                round(hgt, 2)))
        for b in askable[i + 1:]:
            d = float(np.linalg.norm(a.aabb_cam.center - b.aabb_cam.center))
            qas.append(QARecord(image_id, "distance", "quantitative",
                                f"How far is the {a.name} from the {b.name}?", f"Roughly {d:.1f} m.", d, d,
                                [a.name, b.name], [a.id, b.id], canon.ok, 1, 2, "m", round(d, 1)))
            left = bool(a.aabb_cam.center[0] < b.aabb_cam.center[0])
            qas.append(QARecord(image_id, "left_predicate", "predicate",
                                f"Is the {a.name} to the left of the {b.name}?", "Yes." if left else "No.", left,
                                None, [a.name, b.name], [a.id, b.id], canon.ok))
    return frame, scene, qas


def write_synthetic_output(out_dir: Path | str, n_images: int = 6, *, width: int = 96, height: int = 72,
                           n_failed: int = 1, seed: int = 0, overwrite: bool = False,
                           hf_shard_rows: int = 5000) -> dict:
    """Write a complete output folder of ``n_images`` synthetic images (every third one not canonicalized) plus
    ``n_failed`` recorded failures; returns the writer's summary."""
    from spatialvlm.io.writers import DatasetWriter

    with DatasetWriter(out_dir, overwrite=overwrite, hf_shard_rows=hf_shard_rows) as w:
        for i in range(n_images):
            frame, scene, qas = synthetic_item(i, width, height, n_objects=2 + i % 3, canonical=i % 3 != 2,
                                               seed=seed)
            w.add(frame, scene, qas)
        for j in range(n_failed):
            w.add_error(ItemError(f"broken_{j:03d}.jpg", "read", "cannot identify image file (synthetic)"))
    return w.summary  # type: ignore[return-value]
