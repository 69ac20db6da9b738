"""Ground-truth scenes: the same Scene type as the pipeline builds, but from what the generator (or an annotator)
knows exactly, so the very same question functions give the true answers.

* Rendered frames (``frame.meta["generator"] == "spatialvlm.render"``): the scene is regenerated from its seed and
  each object is represented by its mesh vertices (the box of a polyhedron in any frame is the box of its vertices);
  the canonical frame comes from the true camera pose and the true floor.
* Other frames with 3D boxes (``ObjectAnnotation.box3d_cam``): each object is its box (8 corners and a dense grid
  on its faces); the canonical frame from ``frame.world_from_camera`` (world z up, floor at z = 0) when known."""

from __future__ import annotations

import numpy as np

from ..geometry.canonical import canonical_from_pose
from ..geometry.scene import make_object
from ..records import Box3D, CanonicalFrame, Frame, Scene


def _box_points(box: Box3D, n: int = 6) -> np.ndarray:
    g = np.linspace(-0.5, 0.5, n)
    pts = []
    for axis in range(3):
        o = [i for i in range(3) if i != axis]
        a, b = np.meshgrid(g, g)
        for s in (-0.5, 0.5):
            p = np.zeros((a.size, 3))
            p[:, o[0]], p[:, o[1]], p[:, axis] = a.ravel(), b.ravel(), s
            pts.append(p)
    local = np.concatenate(pts) * box.size
    return box.center + local @ box.rotation.T


def render_spec_for(frame: Frame):
    """Regenerate the generator's SceneSpec of a rendered frame."""
    from ..render import RenderConfig, generate_scene_spec

    meta = frame.meta or {}
    if meta.get("generator") != "spatialvlm.render" or "seed" not in meta:
        raise ValueError(f"frame {frame.image_id!r} was not made by spatialvlm.render (no generator seed)")
    cfg_dict = meta.get("render_config")
    cfg = None
    if cfg_dict:
        cfg = RenderConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_dict.items()})
    return generate_scene_spec(int(meta["seed"]), cfg)


def gt_scene(frame: Frame, names_from: Scene | None = None) -> Scene:
    """The ground-truth Scene of ``frame``. Object ids are the indices into ``frame.objects`` (as in the pipeline's
    scene); names are copied from ``names_from`` (the pipeline's scene) when given, else the labels are used."""
    meta = frame.meta or {}
    if meta.get("generator") == "spatialvlm.render":
        spec = render_spec_for(frame)
        T = spec.world_from_camera
        canonical = canonical_from_pose(T, spec.floor_z)
        cam_from_world = np.linalg.inv(T)
        by_iid = {o.instance_id: o for o in spec.objects}
        geo = {}
        for k, ann in enumerate(frame.objects):
            iid = ann.attributes.get("instance_id")
            if iid not in by_iid:
                raise ValueError(f"object {k} of {frame.image_id} has no generator instance id")
            v = by_iid[iid].vertices_world()
            geo[k] = v @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
    else:
        canonical = (canonical_from_pose(frame.world_from_camera) if frame.world_from_camera is not None
                     else CanonicalFrame(False, "no ground-truth camera pose"))
        geo = {}
        for k, ann in enumerate(frame.objects):
            if ann.box3d_cam is None:
                raise ValueError(f"object {k} ({ann.name}) of {frame.image_id} has no ground-truth 3D box")
            geo[k] = _box_points(ann.box3d_cam)
    objects = [make_object(k, frame.objects[k].name, pts, canonical, frame.objects[k].bbox(),
                           meta={"ground_truth": True}) for k, pts in geo.items()]
    names = {o.id: o.name for o in names_from.objects} if names_from is not None else {}
    for o in objects:
        o.name = names.get(o.id, o.label) if names_from is not None else o.label
    return Scene(frame.image_id, objects, canonical, frame.intrinsics,
                 (frame.width, frame.height), [], frame, meta={"ground_truth": True})
