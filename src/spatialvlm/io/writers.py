"""Dataset writers: turn (Frame, Scene, [QARecord]) triples into the output folder described in docs/outputs.md.

One :class:`DatasetWriter` streams everything: Parquet tables through ``pyarrow.parquet.ParquetWriter`` (rows are
buffered in small batches and flushed as row groups), per-image files (JPEG, depth PNG, instance PNG, points NPZ)
as soon as an image is added, Hugging Face shards of ``hf_shard_rows`` rows, and the LLaVA JSON array written one
entry at a time. Memory stays bounded by the buffer sizes, not by the dataset size.

Layout of ``out_dir`` (all paths inside the tables are relative to ``out_dir``)::

    qa.parquet  scenes.parquet  objects.parquet  errors.parquet  summary.json  llava.json  config.yaml
    images/<stem>.jpg  depth/<stem>.png  masks/<stem>.png  points/<stem>.npz
    hf/README.md  hf/data/train-00000-of-0000N.parquet

``<stem>`` is the image id made file-name safe (see :func:`file_stem`); the tables store the actual paths.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from spatialvlm.records import Box3D, Frame, ItemError, Object3D, QARecord, Scene

# ----------------------------------------------------------------------------------------------------------------
# names of everything this module writes (used for the non-empty check and for ``overwrite``)
# ----------------------------------------------------------------------------------------------------------------
QA_FILE = "qa.parquet"
SCENES_FILE = "scenes.parquet"
OBJECTS_FILE = "objects.parquet"
ERRORS_FILE = "errors.parquet"
SUMMARY_FILE = "summary.json"
LLAVA_FILE = "llava.json"
CONFIG_FILE = "config.yaml"
REPORT_FILE = "report.html"
IMAGES_DIR = "images"
DEPTH_DIR = "depth"
MASKS_DIR = "masks"
POINTS_DIR = "points"
HF_DIR = "hf"

OWNED_FILES = (QA_FILE, SCENES_FILE, OBJECTS_FILE, ERRORS_FILE, SUMMARY_FILE, LLAVA_FILE, CONFIG_FILE, REPORT_FILE)
OWNED_DIRS = (IMAGES_DIR, DEPTH_DIR, MASKS_DIR, POINTS_DIR, HF_DIR)

JPEG_QUALITY = 92
HF_GROUP_ROWS = 100  # rows per row group of the HF shards (each row carries its image's JPEG bytes)
MAX_POINTS_PER_OBJECT = 3000
DEPTH_MAX_MM = 65535  # larger depths cannot be stored in uint16 millimetres and are written as 0 (invalid)

QA_COLUMNS = [
    "image_id", "qa_type", "family", "question", "answer", "value_m", "truth", "objects", "object_ids",
    "canonical", "question_template", "answer_template", "unit", "spoken_value",
]
SCENE_COLUMNS = [
    "image_id", "source", "width", "height", "canonicalized", "canonical_reason", "camera_height", "support", "K",
    "n_objects", "n_askable", "n_qa", "image", "depth", "masks", "canon_from_cam",
]
OBJECT_COLUMNS = [
    "image_id", "object_id", "name", "label", "askable", "box2d", "aabb_cam_center", "aabb_cam_size",
    "aabb_canon_center", "aabb_canon_size", "obb_canon", "num_points", "num_points_raw", "visibility",
    "drop_reason",
]
ERROR_COLUMNS = ["item", "stage", "reason"]


def _schemas():
    import pyarrow as pa

    f64, i64, s, b = pa.float64(), pa.int64(), pa.string(), pa.bool_()
    qa = pa.schema([
        ("image_id", s), ("qa_type", s), ("family", s), ("question", s), ("answer", s), ("value_m", f64),
        ("truth", s), ("objects", pa.list_(s)), ("object_ids", pa.list_(i64)), ("canonical", b),
        ("question_template", i64), ("answer_template", i64), ("unit", s), ("spoken_value", f64),
    ])
    scenes = pa.schema([
        ("image_id", s), ("source", s), ("width", i64), ("height", i64), ("canonicalized", b),
        ("canonical_reason", s), ("camera_height", f64), ("support", s), ("K", pa.list_(pa.list_(f64))),
        ("n_objects", i64), ("n_askable", i64), ("n_qa", i64), ("image", s), ("depth", s), ("masks", s),
        ("canon_from_cam", pa.list_(pa.list_(f64))),
    ])
    objects = pa.schema([
        ("image_id", s), ("object_id", i64), ("name", s), ("label", s), ("askable", b),
        ("box2d", pa.list_(f64)), ("aabb_cam_center", pa.list_(f64)), ("aabb_cam_size", pa.list_(f64)),
        ("aabb_canon_center", pa.list_(f64)), ("aabb_canon_size", pa.list_(f64)), ("obb_canon", s),
        ("num_points", i64), ("num_points_raw", i64), ("visibility", s), ("drop_reason", s),
    ])
    errors = pa.schema([("item", s), ("stage", s), ("reason", s)])
    return qa, scenes, objects, errors


def hf_features():
    """The Hugging Face ``datasets.Features`` of the ``hf/`` export (one row per QA)."""
    from datasets import Features, Image, List, Value

    content = List({"type": Value("string"), "text": Value("string")})
    turn = {"role": Value("string"), "content": content}
    return Features({
        "images": List(Image()),
        "messages": List(turn),
        "prompt": List(turn),
        "completion": List(turn),
        "image_id": Value("string"),
        "qa_type": Value("string"),
        "value_m": Value("float64"),
    })


# ----------------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------------
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(image_id: str) -> str:
    """A file-name-safe stem for ``image_id``: unsafe characters become ``_``; when that changes the id (or the id
    is empty / starts with a dot) a short checksum of the original id is appended, so distinct ids stay distinct."""
    stem = _SAFE.sub("_", image_id).strip("_")
    if stem != image_id or not stem or stem.startswith("."):
        stem = f"{stem.lstrip('.') or 'img'}-{zlib.crc32(image_id.encode('utf-8')):08x}"
    return stem[:200]


def _vec(x: Any) -> list[float] | None:
    if x is None:
        return None
    return [float(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]


def _mat(x: Any) -> list[list[float]] | None:
    if x is None:
        return None
    return [[float(v) for v in row] for row in np.asarray(x, dtype=np.float64)]


def _finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(x: Any) -> Any:
    """Plain Python (for JSON / YAML) from numpy scalars, arrays, paths, sets and dataclass-like dicts."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def encode_depth_png(depth_m: np.ndarray) -> bytes:
    """uint16 PNG in millimetres; NaN, non-positive and beyond-range (> 65.535 m) depths become 0 (invalid)."""
    from PIL import Image

    d = np.asarray(depth_m, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be H x W, got shape {d.shape}")
    mm = np.round(d * 1000.0)
    bad = ~np.isfinite(mm) | (mm <= 0) | (mm > DEPTH_MAX_MM)
    mm = np.where(bad, 0, mm).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(mm).save(buf, format="PNG")
    return buf.getvalue()


def decode_depth_png(path_or_bytes: Path | str | bytes) -> np.ndarray:
    """Inverse of :func:`encode_depth_png`: float32 metres, 0 where invalid."""
    from PIL import Image

    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        a = np.asarray(im)
    return a.astype(np.float32) / 1000.0


def encode_instance_png(instance: np.ndarray) -> bytes:
    from PIL import Image

    a = np.asarray(instance)
    if a.ndim != 2:
        raise ValueError(f"instance map must be H x W, got shape {a.shape}")
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def decode_instance_png(path: Path | str) -> np.ndarray:
    """The instance map as int32: ``object_id + 1`` per pixel, 0 = no object."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im).astype(np.int32)


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    from PIL import Image

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8 RGB, got shape {a.shape} dtype {a.dtype}")
    buf = io.BytesIO()
    Image.fromarray(a, mode="RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def instance_map(objects: Iterable[Object3D], height: int, width: int) -> np.ndarray | None:
    """uint16 map of ``object_id + 1`` from the objects' masks (None when no object has a mask). Where masks
    overlap, the nearer object (smaller median camera z) wins, as it would in the photo."""
    with_mask = [o for o in objects if o.mask is not None]
    if not with_mask:
        return None

    def depth_key(o: Object3D) -> float:
        p = np.asarray(o.points_cam)
        return -float(np.median(p[:, 2])) if p.ndim == 2 and len(p) else -math.inf

    out = np.zeros((height, width), dtype=np.uint16)
    for o in sorted(with_mask, key=depth_key):  # far first, near last (overwrites)
        m = np.asarray(o.mask, dtype=bool)
        if m.shape != (height, width):
            raise ValueError(f"object {o.id} ({o.label!r}): mask shape {m.shape} != image shape {(height, width)}")
        if o.id < 0 or o.id + 1 > 65535:
            raise ValueError(f"object id {o.id} cannot be stored in a uint16 instance map")
        out[m] = o.id + 1
    return out


def subsample_points(points: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    p = np.asarray(points)
    if len(p) <= max_points:
        return p
    idx = np.random.default_rng(seed).choice(len(p), size=max_points, replace=False)
    return p[np.sort(idx)]


def _visibility_json(o: Object3D) -> str:
    from dataclasses import asdict, is_dataclass

    v = o.visibility
    return json.dumps(_jsonable(asdict(v) if is_dataclass(v) else dict(v)))


def chat_turns(question: str, answer: str) -> tuple[list[dict], list[dict]]:
    """The user turn (image placeholder + question) and the assistant turn, in the ``messages`` format."""
    user = {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": question}]}
    assistant = {"role": "assistant", "content": [{"type": "text", "text": answer}]}
    return [user], [assistant]


def write_config(out_dir: Path | str, config: dict) -> Path:
    """Write the resolved run configuration as ``config.yaml`` in ``out_dir`` (numpy values / paths made plain)."""
    import yaml

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CONFIG_FILE
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(_jsonable(dict(config)), fh, sort_keys=False, allow_unicode=True)
    return path


HF_README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
task_categories:
- visual-question-answering
tags:
- spatial-reasoning
- synthetic
---

# Spatial VQA data written by spatialvlm

One row per question/answer pair about one image. Columns:

- `images`: a list with one image (JPEG bytes; decoded to PIL by `datasets`).
- `messages`: the chat, a user turn `[{{"type": "image"}}, {{"type": "text", "text": question}}]` and an assistant
  turn `[{{"type": "text", "text": answer}}]`.
- `prompt` / `completion`: the same two turns split for prompt-completion training (loss on the answer only).
- `image_id`, `qa_type` (one of the spatialvlm question types), `value_m` (the true value in metres for
  quantitative questions, null otherwise).

Rows: {n_rows}. Images: {n_images}. Shards: {n_shards}.

Load with `datasets.load_dataset("<this folder>")` or
`datasets.load_dataset("parquet", data_dir="<this folder>/data")`.
The full per-question metadata (templates, truth, object ids, units) is in `qa.parquet` one folder up.
Answers were computed from 3D geometry estimated or rendered for each image; see the spatialvlm documentation for
how, and for the limitations of the geometry behind them.
"""



# ----------------------------------------------------------------------------------------------------------------
# encoding one image (pure: no writer state, so it can run in a worker process)
# ----------------------------------------------------------------------------------------------------------------
def object_row(image_id: str, o: Object3D) -> dict:
    """The ``objects.parquet`` row of one lifted object."""
    pts = np.asarray(o.points_cam)
    aabb_cam = o.aabb_cam
    if aabb_cam is None and pts.ndim == 2 and len(pts):
        aabb_cam = Box3D.from_points(pts)
    reason = None
    if not o.askable:
        reason = str(o.meta.get("drop_reason") or o.meta.get("name_reason") or "unnamed: not asked about")
    return {
        "image_id": image_id,
        "object_id": int(o.id),
        "name": o.name,
        "label": o.label,
        "askable": o.askable,
        "box2d": _vec(o.box2d),
        "aabb_cam_center": _vec(aabb_cam.center) if aabb_cam is not None else None,
        "aabb_cam_size": _vec(aabb_cam.size) if aabb_cam is not None else None,
        "aabb_canon_center": _vec(o.aabb_canon.center) if o.aabb_canon is not None else None,
        "aabb_canon_size": _vec(o.aabb_canon.size) if o.aabb_canon is not None else None,
        "obb_canon": json.dumps(o.obb_canon.to_dict()) if o.obb_canon is not None else None,
        "num_points": len(pts) if pts.ndim == 2 else 0,
        "num_points_raw": int(o.num_points_raw),
        "visibility": _visibility_json(o),
        "drop_reason": reason,
    }


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed ``.npz`` (readable by ``numpy.load``) whose bytes depend only on the arrays: the zip entries
    carry a fixed timestamp, unlike ``numpy.savez_compressed``, so reruns give identical files."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def encode_points_npz(image_id: str, objects: list[Object3D], max_points: int = MAX_POINTS_PER_OBJECT,
                      points_dtype: str = "float16") -> bytes:
    """``points/<stem>.npz``: one ``obj_<id>`` array per object (seeded subsample of at most ``max_points``)."""
    arrays = {}
    seed = zlib.crc32(image_id.encode("utf-8"))
    for o in objects:
        p = np.asarray(o.points_cam, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"object {o.id} ({o.label!r}): points_cam must be N x 3, got {p.shape}")
        arrays[f"obj_{o.id}"] = subsample_points(p, max_points, seed + o.id).astype(points_dtype)
    return npz_bytes(arrays)


def encode_item(frame: Frame, scene: Scene, qas: list[QARecord], *, jpeg_quality: int = JPEG_QUALITY,
                max_points: int = MAX_POINTS_PER_OBJECT, points_dtype: str = "float16") -> dict:
    """Everything :class:`DatasetWriter` writes for one image, as plain data: the encoded files (JPEG, depth PNG,
    instance PNG, points NPZ as bytes) and the table rows (file paths are filled in by the writer). Raises
    ValueError for an inconsistent triple before anything is written anywhere."""
    image_id = scene.image_id
    if frame.image_id != image_id:
        raise ValueError(f"frame id {frame.image_id!r} != scene id {image_id!r}")
    for q in qas:
        if q.image_id != image_id:
            raise ValueError(f"QA for image {q.image_id!r} passed with scene {image_id!r}")
    h, w = frame.height, frame.width
    jpeg = encode_jpeg(frame.image, jpeg_quality)
    depth_png = encode_depth_png(frame.depth) if frame.depth is not None else None
    if depth_png is not None and np.asarray(frame.depth).shape != (h, w):
        raise ValueError(f"depth shape {np.asarray(frame.depth).shape} != image shape {(h, w)}")
    inst = instance_map(scene.objects, h, w)
    mask_png = encode_instance_png(inst) if inst is not None else None
    points = encode_points_npz(image_id, scene.objects, max_points, points_dtype)

    canon = scene.canonical
    intr = scene.intrinsics or frame.intrinsics
    n_askable = sum(1 for o in scene.objects if o.askable)
    scene_row = {
        "image_id": image_id,
        "source": frame.source or "",
        "width": w,
        "height": h,
        "canonicalized": bool(canon.ok),
        "canonical_reason": canon.reason or "",
        "camera_height": _finite_or_none(canon.camera_height),
        "support": canon.support or "",
        "K": intr.to_list() if intr is not None else None,
        "n_objects": len(scene.objects),
        "n_askable": n_askable,
        "n_qa": len(qas),
        "canon_from_cam": _mat(canon.canon_from_cam) if canon.ok else None,
    }
    object_rows = [object_row(image_id, o) for o in scene.objects]
    for dr in scene.dropped:
        object_rows.append({
            "image_id": image_id, "object_id": None, "name": "", "label": dr.label, "askable": False,
            "num_points": 0, "num_points_raw": 0, "visibility": None, "drop_reason": dr.reason or "dropped",
        })
    return {
        "image_id": image_id, "jpeg": jpeg, "depth_png": depth_png, "mask_png": mask_png, "points_npz": points,
        "scene_row": scene_row, "object_rows": object_rows, "qa_rows": [q.to_row() for q in qas],
        "n_dropped": len(scene.dropped),
    }


class _QARow:
    """The fields of a QA row the HF / LLaVA exports need, read from a ``QARecord.to_row()`` dict."""

    __slots__ = ("answer", "image_id", "qa_type", "question", "value_m")

    def __init__(self, row: dict) -> None:
        self.image_id, self.qa_type = row["image_id"], row["qa_type"]
        self.question, self.answer, self.value_m = row["question"], row["answer"], row["value_m"]


# ----------------------------------------------------------------------------------------------------------------
# the writer
# ----------------------------------------------------------------------------------------------------------------
class _TableStream:
    """Rows buffered in memory, flushed to a ParquetWriter as one row group every ``flush_rows`` rows."""

    def __init__(self, path: Path, schema, flush_rows: int) -> None:
        self.path, self.schema, self.flush_rows = path, schema, flush_rows
        self.rows: list[dict] = []
        self.writer = None
        self.count = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        if self.rows:
            cols = {name: [r.get(name) for r in self.rows] for name in self.schema.names}
            self.writer.write_table(pa.table(cols, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()  # also creates an empty file with the schema when nothing was added
        self.writer.close()


class DatasetWriter:
    """Streams a dataset into ``out_dir``. Use as a context manager or call :meth:`close` yourself.

    ``out_dir`` must be missing or empty (a ``config.yaml`` alone is allowed, so the config can be written first)
    unless ``overwrite``; with ``overwrite`` only the files and folders this writer owns are removed, nothing else.
    """

    def __init__(
        self,
        out_dir: Path | str,
        *,
        overwrite: bool = False,
        hf_shard_rows: int = 5000,
        flush_rows: int = 2000,
        points_dtype: str = "float16",
        max_points: int = MAX_POINTS_PER_OBJECT,
        jpeg_quality: int = JPEG_QUALITY,
    ) -> None:
        if hf_shard_rows < 1:
            raise ValueError(f"hf_shard_rows must be >= 1, got {hf_shard_rows}")
        if points_dtype not in ("float16", "float32"):
            raise ValueError(f"points_dtype must be 'float16' or 'float32', got {points_dtype!r}")
        self.out_dir = Path(out_dir)
        self.hf_shard_rows = int(hf_shard_rows)
        self.points_dtype = np.dtype(points_dtype)
        self.max_points = int(max_points)
        self.jpeg_quality = int(jpeg_quality)
        self._prepare_dir(overwrite)

        qa_s, sc_s, ob_s, er_s = _schemas()
        self._qa = _TableStream(self.out_dir / QA_FILE, qa_s, flush_rows)
        self._scenes = _TableStream(self.out_dir / SCENES_FILE, sc_s, max(1, flush_rows // 4))
        self._objects = _TableStream(self.out_dir / OBJECTS_FILE, ob_s, flush_rows)
        self._errors = _TableStream(self.out_dir / ERRORS_FILE, er_s, flush_rows)

        self._hf_features = hf_features()
        self._hf_schema = self._hf_features.arrow_schema
        self._hf_rows: list[dict] = []
        self._hf_shards: list[Path] = []
        self._hf_writer = None
        self._hf_in_shard = 0
        self._hf_total = 0

        self._llava = open(self.out_dir / LLAVA_FILE, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._llava.write("[")
        self._llava_n = 0

        self._stems: set[str] = set()
        self._ids: set[str] = set()
        self._qa_by_type: Counter[str] = Counter()
        self._failed: dict[str, str] = {}  # item -> first stage it failed in
        self._n_errors = 0
        self._n_images = 0
        self._n_canon = 0
        self._n_objects = 0
        self._n_askable = 0
        self._n_dropped = 0
        self._t0 = time.time()
        self._closed = False
        self.summary: dict | None = None

    # -- folder -------------------------------------------------------------------------------------------------
    def _prepare_dir(self, overwrite: bool) -> None:
        d = self.out_dir
        if d.exists() and not d.is_dir():
            raise FileExistsError(f"output path {d} exists and is not a folder")
        if d.exists():
            present = [p.name for p in d.iterdir() if p.name != CONFIG_FILE]
            if present and not overwrite:
                raise FileExistsError(
                    f"output folder {d} is not empty ({len(present)} entries, e.g. {sorted(present)[:3]}); "
                    "choose another folder or pass overwrite=True (--overwrite)"
                )
            if overwrite:
                for name in OWNED_FILES:
                    if name != CONFIG_FILE and (d / name).is_file():
                        (d / name).unlink()
                for name in OWNED_DIRS:
                    if (d / name).is_dir() and not (d / name).is_symlink():
                        shutil.rmtree(d / name)
        for sub in (IMAGES_DIR, DEPTH_DIR, MASKS_DIR, POINTS_DIR, f"{HF_DIR}/data"):
            (d / sub).mkdir(parents=True, exist_ok=True)

    def _stem_for(self, image_id: str) -> str:
        stem = file_stem(image_id)
        base, k = stem, 1
        while stem in self._stems:  # only reachable through truncation of very long ids
            stem = f"{base}~{k}"
            k += 1
        self._stems.add(stem)
        return stem

    # -- adding -------------------------------------------------------------------------------------------------
    def add(self, frame: Frame, scene: Scene, qas: list[QARecord]) -> None:
        """Write one image: its files, its scene / object / QA rows, its HF rows and its LLaVA entry."""
        if self._closed:
            raise RuntimeError("DatasetWriter is closed")
        if scene.image_id in self._ids:
            raise ValueError(f"image id {scene.image_id!r} added twice")
        self.add_encoded(encode_item(frame, scene, qas, jpeg_quality=self.jpeg_quality, max_points=self.max_points,
                                     points_dtype=self.points_dtype.name))

    def add_encoded(self, item: dict) -> None:
        """Write one image already encoded by :func:`encode_item` (plain data: bytes and row dicts, so it can be
        produced in another process and shipped here). ``add(frame, scene, qas)`` is ``add_encoded(encode_item(
        frame, scene, qas))`` with this writer's settings."""
        if self._closed:
            raise RuntimeError("DatasetWriter is closed")
        image_id = item["image_id"]
        if image_id in self._ids:
            raise ValueError(f"image id {image_id!r} added twice")
        stem = self._stem_for(image_id)
        self._ids.add(image_id)
        rel_img = f"{IMAGES_DIR}/{stem}.jpg"
        jpeg = item["jpeg"]
        (self.out_dir / rel_img).write_bytes(jpeg)
        rel_depth = rel_mask = None
        if item.get("depth_png") is not None:
            rel_depth = f"{DEPTH_DIR}/{stem}.png"
            (self.out_dir / rel_depth).write_bytes(item["depth_png"])
        if item.get("mask_png") is not None:
            rel_mask = f"{MASKS_DIR}/{stem}.png"
            (self.out_dir / rel_mask).write_bytes(item["mask_png"])
        (self.out_dir / POINTS_DIR / f"{stem}.npz").write_bytes(item["points_npz"])

        self._scenes.add({**item["scene_row"], "image": rel_img, "depth": rel_depth, "masks": rel_mask})
        for row in item["object_rows"]:
            self._objects.add(row)
        qas = [_QARow(r) for r in item["qa_rows"]]
        for r, q in zip(item["qa_rows"], qas):
            self._qa.add(r)
            self._qa_by_type[q.qa_type] += 1
            self._add_hf_row(q, jpeg, stem)
        self._add_llava(image_id, rel_img, qas)

        self._n_images += 1
        self._n_canon += int(bool(item["scene_row"]["canonicalized"]))
        self._n_objects += int(item["scene_row"]["n_objects"])
        self._n_askable += int(item["scene_row"]["n_askable"])
        self._n_dropped += int(item.get("n_dropped", 0))

    def _add_hf_row(self, q: QARecord, jpeg: bytes, stem: str) -> None:
        prompt, completion = chat_turns(q.question, q.answer)
        self._hf_rows.append({
            "images": [{"bytes": jpeg, "path": f"{stem}.jpg"}],
            "messages": prompt + completion,
            "prompt": prompt,
            "completion": completion,
            "image_id": q.image_id,
            "qa_type": q.qa_type,
            "value_m": None if q.value_m is None else float(q.value_m),
        })
        room = self.hf_shard_rows - self._hf_in_shard
        if len(self._hf_rows) >= min(HF_GROUP_ROWS, room):
            self._flush_hf()

    def _flush_hf(self) -> None:
        """Write the buffered HF rows as one row group of the current shard; start / end shards as needed.
        Only ``HF_GROUP_ROWS`` rows (with their JPEG bytes) are ever held in memory."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._hf_writer is None:
            path = self.out_dir / HF_DIR / "data" / f".train-{len(self._hf_shards):05d}.partial.parquet"
            self._hf_writer = pq.ParquetWriter(path, self._hf_schema, compression="zstd")
            self._hf_shards.append(path)
            self._hf_in_shard = 0
        if self._hf_rows:
            cols = {name: [r[name] for r in self._hf_rows] for name in self._hf_schema.names}
            self._hf_writer.write_table(pa.table(cols, schema=self._hf_schema))
            self._hf_in_shard += len(self._hf_rows)
            self._hf_total += len(self._hf_rows)
            self._hf_rows = []
        if self._hf_in_shard >= self.hf_shard_rows:
            self._hf_writer.close()
            self._hf_writer = None

    def _add_llava(self, image_id: str, rel_img: str, qas: list[QARecord]) -> None:
        if not qas:  # a conversation needs at least one turn; the image is still in scenes.parquet
            return
        conv = []
        for i, q in enumerate(qas):
            conv.append({"from": "human", "value": ("<image>\n" if i == 0 else "") + q.question})
            conv.append({"from": "gpt", "value": q.answer})
        entry = {"id": image_id, "image": rel_img, "conversations": conv}
        self._llava.write(("\n" if self._llava_n == 0 else ",\n") + json.dumps(entry, ensure_ascii=False))
        self._llava_n += 1

    def add_error(self, err: ItemError) -> None:
        """Record a per-item failure (written to errors.parquet and counted in the summary)."""
        if self._closed:
            raise RuntimeError("DatasetWriter is closed")
        self._errors.add(err.to_row())
        self._n_errors += 1
        if err.item not in self._ids and err.item not in self._failed:
            self._failed[err.item] = err.stage

    # -- finishing ----------------------------------------------------------------------------------------------
    def close(self, complete: bool = True) -> dict:
        """Finalise every file and return the summary (also written to summary.json). Idempotent."""
        if self._closed:
            return self.summary  # type: ignore[return-value]
        self._closed = True
        for t in (self._qa, self._scenes, self._objects, self._errors):
            t.close()
        self._llava.write("\n]\n" if self._llava_n else "]\n")
        self._llava.close()
        self._finish_hf()
        # an item that failed and was later added (e.g. a retry) counts as ok
        failed_stages = Counter(st for item, st in self._failed.items() if item not in self._ids)
        self.summary = {
            "images_in": self._n_images + sum(failed_stages.values()),
            "images_ok": self._n_images,
            "images_failed": dict(sorted(failed_stages.items())),
            "images_canonicalized": self._n_canon,
            "errors": self._n_errors,
            "qa_total": int(sum(self._qa_by_type.values())),
            "qa_by_type": dict(sorted(self._qa_by_type.items())),
            "objects": self._n_objects,
            "objects_askable": self._n_askable,
            "objects_dropped": self._n_dropped,
            "hf_shards": len(self._hf_shards),
            "time": round(time.time() - self._t0, 3),
            "complete": bool(complete),
        }
        with open(self.out_dir / SUMMARY_FILE, "w", encoding="utf-8") as fh:
            json.dump(self.summary, fh, indent=2)
        return self.summary

    def _finish_hf(self) -> None:
        if self._hf_rows or not self._hf_shards:  # always at least one shard, possibly empty
            self._flush_hf()
        if self._hf_writer is not None:
            self._hf_writer.close()
            self._hf_writer = None
        n = len(self._hf_shards)
        final = []
        for i, p in enumerate(self._hf_shards):
            dst = p.with_name(f"train-{i:05d}-of-{n:05d}.parquet")
            os.replace(p, dst)
            final.append(dst)
        self._hf_shards = final
        (self.out_dir / HF_DIR / "README.md").write_text(
            HF_README.format(n_rows=self._hf_total, n_images=self._n_images, n_shards=n), encoding="utf-8"
        )

    def __enter__(self) -> DatasetWriter:  # noqa: PYI034
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # finalise even on error so the files are readable; the summary says the run did not complete
        self.close(complete=exc_type is None)

    @property
    def n_images(self) -> int:
        return self._n_images
