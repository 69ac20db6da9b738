"""Frame -> Scene: lift each object to a cleaned metric point cloud, find the canonical frame, box everything."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..records import CanonicalFrame, DroppedObject, Frame, Object3D, Scene, Visibility
from .backproject import backproject, valid_depth
from .boxes import aabb, gravity_obb
from .canonical import CanonicalConfig, canonical_from_pose, estimate_canonical
from .clean import CleanConfig, clean_points
from .visibility import occlusion, truncation


@dataclass
class GeometryConfig:
    clean: CleanConfig = field(default_factory=CleanConfig)
    canonical: CanonicalConfig = field(default_factory=CanonicalConfig)
    canonical_source: str = "estimate"  # "estimate" (from depth) or "pose" (trust frame.world_from_camera)
    mask_erosion: int = 0  # pixels to erode predicted masks by (0 for exact masks)
    contact_gap: float = 0.06  # a visible bottom this close above the surface just below it rests on that surface
    trust_given_masks: bool = True  # masks given with the input are annotations: keep every part of the object
    top_margin: float = 0.05  # the camera must be this far above an object's top to see its full depth
    seed: int = 0


def _box_mask(box, h: int, w: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    m = np.zeros((h, w), dtype=bool)
    m[max(0, int(np.floor(y0))):min(h, int(np.ceil(y1))), max(0, int(np.floor(x0))):min(w, int(np.ceil(x1)))] = True
    return m


def build_scene(frame: Frame, cfg: GeometryConfig | None = None, *, name_objects: bool = True,
                similar=None) -> Scene:
    """Lift a frame with metric depth, intrinsics and 2D objects to a Scene. Raises ValueError when the frame
    cannot be lifted at all (no depth, no intrinsics, no valid depth); objects that fail are listed in
    ``scene.dropped`` with the reason. ``similar`` (names -> groups of indices, e.g. from a text embedder) lets
    near-identical captions count as the same name for the ambiguity rule."""
    from scipy import ndimage

    cfg = cfg or GeometryConfig()
    if frame.depth is None:
        raise ValueError("frame has no depth map (run a depth model first or provide sensor depth)")
    if frame.intrinsics is None:
        raise ValueError("frame has no camera intrinsics")
    depth = np.asarray(frame.depth, dtype=np.float32)
    h, w = depth.shape
    if (frame.width, frame.height) != (w, h):
        raise ValueError(f"depth is {w}x{h} but the image is {frame.width}x{frame.height}")
    intr = frame.intrinsics
    if (intr.width, intr.height) != (w, h):
        intr = intr.scaled(w, h)
    valid = valid_depth(depth)
    if not valid.any():
        raise ValueError("depth map has no valid pixel")

    if cfg.canonical_source == "pose" and frame.world_from_camera is not None:
        canonical = canonical_from_pose(frame.world_from_camera)
    else:
        canonical = estimate_canonical(depth, intr, frame.support_mask, cfg.canonical, seed=cfg.seed,
                                       floor_mask=frame.floor_mask)

    support_height = None
    if canonical.ok:
        pts_all, pix = backproject(depth, intr)
        support_height = np.full((h, w), np.nan, dtype=np.float32)
        support_height[pix[:, 1], pix[:, 0]] = pts_all @ canonical.plane_cam[:3] + canonical.plane_cam[3]

    objects: list[Object3D] = []
    dropped: list[DroppedObject] = []
    for k, ann in enumerate(frame.objects):
        label = (ann.name or "").strip()
        if not label:
            dropped.append(DroppedObject(f"object {k}", "object has no name"))
            continue
        # a perception "mask" that is only the detector's box is a box
        from_box = ann.mask is None or ann.attributes.get("mask_source") == "box"
        if from_box:
            if ann.box is None:
                dropped.append(DroppedObject(label, "object has neither mask nor box"))
                continue
            mask = _box_mask(ann.box, h, w)
        else:
            mask = np.asarray(ann.mask, dtype=bool)
            if mask.shape != (h, w):
                dropped.append(DroppedObject(label, f"mask is {mask.shape[::-1]} but the image is {w}x{h}"))
                continue
            if cfg.mask_erosion > 0:
                mask = ndimage.binary_erosion(mask, iterations=cfg.mask_erosion)
        sel = mask & valid
        if from_box and support_height is not None:
            sel &= ~(np.abs(np.nan_to_num(support_height, nan=1e9)) < 0.03)  # drop the floor / table under it
        pts, pix = backproject(depth, intr, sel)
        predicted = (ann.attributes.get("source") == "perception"
                     or ann.attributes.get("mask_source") in ("segmenter", "predicted"))
        trusted = not from_box and not predicted
        prefer = "nearest" if from_box else ("all" if trusted and cfg.trust_given_masks else "largest")
        res = clean_points(pts, cfg.clean, prefer=prefer, seed=cfg.seed + k)
        if not res.ok:
            dropped.append(DroppedObject(label, res.reason))
            continue
        kept, kept_pix = pts[res.keep], pix[res.keep]
        obj_mask = mask if not from_box else np.zeros((h, w), dtype=bool)
        if from_box:
            obj_mask[kept_pix[:, 1], kept_pix[:, 0]] = True
        trunc = truncation(None if from_box else mask, ann.box if from_box else None, w, h)
        occ = occlusion(obj_mask, depth, support_height)
        o = make_object(k, label, kept, canonical, ann.bbox(), cfg.top_margin,
                        meta={"source": "box" if from_box else "mask", "score": ann.score, **ann.attributes})
        o.num_points_raw = int(len(pts))
        o.mask = obj_mask
        o.gt_box3d_cam = ann.box3d_cam
        o.visibility.truncated, o.visibility.occluded = trunc, occ
        if canonical.ok and support_height is not None:
            sup = np.abs(np.nan_to_num(support_height, nan=1e9)) < 0.02
            if frame.support_mask is not None:
                sup |= np.asarray(frame.support_mask, dtype=bool)
            snap_to_contact(o, obj_mask, support_height, sup, cfg.contact_gap)
        objects.append(o)

    scene = Scene(frame.image_id, objects, canonical, intr, (w, h), dropped, frame,
                  meta={"source": frame.source})
    if name_objects:
        from ..qa.naming import assign_names

        assign_names(scene, similar)
    return scene


def snap_to_contact(o: Object3D, mask: np.ndarray, height: np.ndarray, support: np.ndarray, max_gap: float) -> None:
    """Resting contact: the lowest part of a round or overhanging object (a ball, a bowl, a sofa's skirt) is hidden
    from a camera above, so its lowest visible point floats a little above the surface it stands on. When the
    pixels just below the lowest part of the object's silhouette are a support surface (the floor plane, or
    floor / table-top pixels of the support mask) slightly lower than that point, the object's box is extended
    down to it. A picture on a wall has wall below it, not a support, and is left alone."""

    h, w = mask.shape
    cols = np.flatnonzero(mask.any(axis=0))
    if not len(cols):
        return
    lowest = h - 1 - np.argmax(mask[::-1, cols], axis=0)  # last mask row per column
    bottom = lowest >= lowest.max() - 3  # only under the silhouette's lowest part (not beside its flanks)
    cols, lowest = cols[bottom], lowest[bottom]
    below, on_support = [], []
    for dy in (2, 3, 4):
        rows = lowest + dy
        ok = rows < h
        vals = height[rows[ok], cols[ok]]
        fin = np.isfinite(vals)
        below.append(vals[fin])
        on_support.append(support[rows[ok], cols[ok]][fin])
    below = np.concatenate(below) if below else np.array([])
    if len(below) < 3 or np.mean(np.concatenate(on_support)) < 0.8:
        return
    zmin = float(o.aabb_canon.min[2])
    surface = float(np.median(below))
    gap = zmin - surface
    if 0.0 < gap <= max_gap:
        for box in (o.aabb_canon, o.obb_canon):  # both are gravity-aligned: z is their third axis
            if box is not None:
                _lower_bottom(box, surface)
        o.meta["contact_snap_m"] = round(gap, 4)


def _lower_bottom(box, z: float) -> None:
    """Extend a gravity-aligned box down to height ``z``, keeping its top."""
    c, s = box.center.copy(), box.size.copy()
    top = c[2] + s[2] / 2
    s[2], c[2] = top - z, (top + z) / 2
    box.center, box.size = c, s


def make_object(oid: int, label: str, points_cam: np.ndarray, canonical: CanonicalFrame,
                box2d=None, top_margin: float = 0.05, meta: dict | None = None) -> Object3D:
    """An Object3D from its (already cleaned) camera-frame points: boxes in both frames and whether its top shows."""
    points_cam = np.asarray(points_cam, dtype=np.float64)
    o = Object3D(id=oid, label=label, points_cam=points_cam.astype(np.float32), box2d=box2d,
                 aabb_cam=aabb(points_cam), num_points_raw=len(points_cam), meta=dict(meta or {}))
    top_seen = None
    if canonical.ok:
        pc = canonical.to_canon(points_cam)
        o.points_canon = pc.astype(np.float32)
        o.aabb_canon = aabb(pc)
        o.obb_canon = gravity_obb(pc)
        top_seen = bool(canonical.camera_height - o.aabb_canon.max[2] > top_margin)
        # how steeply the camera looks down on the object's top, seen from its farthest point: at grazing angles
        # the top is a sliver and the object's far corners hide behind its own near faces
        far = float(np.max(np.hypot(pc[:, 0], pc[:, 1])))
        top_view = float(np.degrees(np.arctan2(canonical.camera_height - o.aabb_canon.max[2], max(far, 1e-6))))
    o.visibility = Visibility(top_seen=top_seen, top_view_deg=top_view if canonical.ok else None)
    return o
