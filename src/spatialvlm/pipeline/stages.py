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

    def __init__(self, cfg: GeometryConfig | None = None, similar=None):
        self.cfg = cfg or GeometryConfig()
        self.similar = similar  # names -> groups (text embedder), for names that came from perception models

    def __call__(self, items: list) -> list:
        out = []
        for f in items:
            if isinstance(f, ItemError):
                out.append(f)
                continue
            try:
                perceived = any(o.attributes.get("source") == "perception" for o in f.objects)
                out.append(SceneResult(f, build_scene(f, self.cfg, similar=self.similar if perceived else None)))
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


# --------------------------------------------------------------------------------------------------------------
# Plain data across process boundaries (Ray): frames and errors as dicts of numpy arrays and Python scalars
# --------------------------------------------------------------------------------------------------------------
def frame_to_plain(f: Frame | ItemError) -> dict:
    """A Frame (or ItemError) as a dict of numpy arrays / strings / numbers / plain dicts (every field of Frame
    and ObjectAnnotation, so fields added later travel too), rebuilt by :func:`frame_from_plain`."""
    import dataclasses

    from ..records import Box3D

    if isinstance(f, ItemError):
        return {"error": [f.item, f.stage, f.reason]}
    d = {fl.name: getattr(f, fl.name) for fl in dataclasses.fields(f)}
    intr = f.intrinsics
    d["intrinsics"] = None if intr is None else [intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height]
    objs = []
    for o in f.objects:
        od = {fl.name: getattr(o, fl.name) for fl in dataclasses.fields(o)}
        for k, v in od.items():
            if isinstance(v, Box3D):
                od[k] = {"__box3d__": v.to_dict()}
        objs.append(od)
    d["objects"] = objs
    return d


def frame_from_plain(d: dict) -> Frame | ItemError:
    from ..records import Box3D, Intrinsics, ObjectAnnotation

    if "error" in d:
        return ItemError(*d["error"])
    d = dict(d)
    intr = d.pop("intrinsics")
    objects = []
    for od in d.pop("objects"):
        od = {k: (Box3D.from_dict(v["__box3d__"]) if isinstance(v, dict) and "__box3d__" in v else v)
              for k, v in od.items()}
        objects.append(ObjectAnnotation(**od))
    return Frame(**d, objects=objects,
                 intrinsics=None if intr is None else Intrinsics(*intr[:4], int(intr[4]), int(intr[5])))


# --------------------------------------------------------------------------------------------------------------
# Reading and encoding stages (used by the sharded runners)
# --------------------------------------------------------------------------------------------------------------
def _oneline(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


class ReadStage:
    """Planned work items (see :mod:`spatialvlm.pipeline.shards`) -> Frame, or ItemError(stage="read") with the
    reason. Never raises for one bad input. ``kind`` is "frames", "photos" or "hf"; ``target`` the manifest
    folder, the photo folder or the dataset spec."""

    def __init__(self, kind: str, target: str, *, max_pixels: int | None = None, min_side: int | None = None,
                 max_side: int | None = None):
        self.kind, self.target = kind, target
        self.max_pixels, self.min_side, self.max_side = max_pixels, min_side, max_side
        self._ds = None

    def __call__(self, items: list) -> list:
        return [self.read_one(it) for it in items]

    def read_one(self, it) -> Frame | ItemError:
        if it.error:
            return ItemError(it.item, "read", it.error)
        try:
            if self.kind == "frames":
                return self._read_frame(it)
            if self.kind == "photos":
                return self._read_photo(it)
            return self._read_hf(it)
        except Exception as exc:  # noqa: BLE001 - one bad input is recorded, never fatal
            from ..io.frames import FrameFormatError

            return ItemError(it.item, "read", str(exc) if isinstance(exc, FrameFormatError) else _oneline(exc))

    def _read_frame(self, it) -> Frame:
        import json
        from pathlib import Path

        from ..io.frames import parse_line

        root = Path(self.target)
        frame = parse_line(json.loads(it.ref), root, it.line, max_pixels=self.max_pixels, min_side=self.min_side)
        frame.image_id = it.image_id
        frame.meta.setdefault("manifest_line", it.line)
        try:  # sources are stored relative to the input folder, so datasets carry no machine paths
            frame.source = Path(frame.source).resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            frame.source = Path(frame.source).name
        return frame

    def _read_photo(self, it) -> Frame:
        from pathlib import Path

        from ..io.photos import load_image

        image, meta = load_image(Path(self.target) / it.ref, max_side=self.max_side, max_pixels=self.max_pixels,
                                 min_side=self.min_side)
        meta["file"] = Path(it.ref).name
        return Frame(image_id=it.image_id, image=image, source=it.ref, meta=meta)

    def _read_hf(self, it) -> Frame:
        import io

        from ..io.photos import _open_dataset, image_column, load_image, parse_hf_spec

        if self._ds is None:
            repo, split = parse_hf_spec(self.target)
            ds, _ = _open_dataset(repo, split)
            self._ds = (ds, image_column(ds))
        ds, col = self._ds
        row = int(it.ref)
        value = ds[row][col]
        if isinstance(value, dict):  # undecoded {"bytes", "path"}
            value = io.BytesIO(value["bytes"]) if value.get("bytes") else value.get("path")
        if value is None:
            raise ValueError("empty image cell")
        image, meta = load_image(value, max_side=self.max_side, max_pixels=self.max_pixels, min_side=self.min_side)
        meta["row"] = row
        return Frame(image_id=it.image_id, image=image, source=it.item, meta=meta)


class EncodeStage:
    """SceneResult / _NoQA / ItemError -> one plain output record per item:
    ``{"image_id", "item": encoded item (see io.writers.encode_item) or None, "error": (item, stage, reason) or
    None}``. Encoding (JPEG, PNG, NPZ) happens here, in the worker; the writer only stores bytes."""

    def __init__(self, jpeg_quality: int | None = None, max_points: int | None = None,
                 points_dtype: str = "float16"):
        from ..io import writers

        self.kw = {"jpeg_quality": jpeg_quality or writers.JPEG_QUALITY,
                   "max_points": max_points or writers.MAX_POINTS_PER_OBJECT, "points_dtype": points_dtype}

    def __call__(self, items: list) -> list[dict]:
        from ..io.writers import encode_item

        out = []
        for r in items:
            if isinstance(r, (_NoQA, SceneResult)):
                res = r.result if isinstance(r, _NoQA) else r
                err = (r.item, r.stage, r.reason) if isinstance(r, _NoQA) else None
                try:
                    enc = encode_item(res.frame, res.scene, res.qas, **self.kw)
                except Exception as exc:  # noqa: BLE001 - recorded per item
                    out.append({"image_id": res.frame.image_id, "item": None,
                                "error": (res.frame.image_id, "write", f"cannot encode outputs: {_oneline(exc)}")})
                    continue
                out.append({"image_id": res.frame.image_id, "item": enc, "error": err})
            elif isinstance(r, ItemError):
                out.append({"image_id": "", "item": None, "error": (r.item, r.stage, r.reason)})
            else:
                raise TypeError(f"EncodeStage got {type(r).__name__}")
        return out
