"""The RGB-D folder format: a ``frames.jsonl`` manifest (one frame a line) next to image, depth and mask files.

Reader and writer of the format documented in ``docs/formats.md`` (section "RGB-D folders"). Rendered scenes and
users' data are stored the same way, so one input path serves both.

A line looks like::

    {"image": "rgb/0.jpg", "depth": "depth/0.png", "depth_scale": 1000,
     "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
     "objects": [{"name": "bed", "box": [x0, y0, x1, y1]}, {"name": "lamp", "mask": "masks/0_3.png"}]}

Paths are relative to the manifest's folder (absolute paths are accepted too). Depth PNG value / depth_scale =
metres, 0 = invalid.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from spatialvlm.records import Box3D, Frame, Intrinsics, ItemError, ObjectAnnotation

MANIFEST = "frames.jsonl"
DEPTH_ENCODINGS = ("linear", "sun3d", "kinect_disparity")
_MAX_DEPTH_MM = 65535
# limits checked from the file header before any pixel is decoded (a decompression bomb never reaches memory)
MAX_IMAGE_PIXELS = 100_000_000
MIN_IMAGE_SIDE = 8
# what Pillow / numpy raise for unreadable, truncated or oversized files (UnidentifiedImageError is an OSError)
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class FrameFormatError(ValueError):
    """A manifest line that cannot be turned into a Frame; the message says why."""


# --------------------------------------------------------------------------------------------------------------
# Depth decoding
# --------------------------------------------------------------------------------------------------------------
def decode_depth(raw: np.ndarray, depth_scale: float = 1000.0, encoding: str = "linear") -> np.ndarray:
    """Turn stored depth values into metres (float32, 0 = invalid).

    * ``linear``: metres = raw / depth_scale (mm PNGs: 1000; TUM: 5000; KITTI: 256).
    * ``sun3d``: SUN3D / SUN RGB-D 16-bit values with a 3-bit circular shift: ((raw >> 3) | (raw << 13)) / 1000
      (``depth_scale`` is ignored; the shifted value is millimetres).
    * ``kinect_disparity``: raw Kinect v1 disparity (NYU raw dumps): metres = 351.3 / (1092.5 - raw); raw 2047 (and
      any value giving a non-positive depth) is invalid.
    """
    raw = np.asarray(raw)
    if raw.ndim == 3:
        if raw.shape[2] == 1:
            raw = raw[..., 0]
        else:
            raise FrameFormatError(f"depth must be single-channel, got shape {raw.shape}")
    if raw.ndim != 2:
        raise FrameFormatError(f"depth must be a 2D array, got shape {raw.shape}")
    if encoding == "linear":
        if not (depth_scale > 0 and math.isfinite(depth_scale)):
            raise FrameFormatError(f"depth_scale must be a positive number, got {depth_scale!r}")
        d = raw.astype(np.float64) / float(depth_scale)
    elif encoding == "sun3d":
        r = raw.astype(np.uint16)
        shifted = (r >> np.uint16(3)) | (r << np.uint16(13))
        d = shifted.astype(np.float64) / 1000.0
    elif encoding == "kinect_disparity":
        r = raw.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = 351.3 / (1092.5 - r)
        d[(r >= 2047) | ~np.isfinite(d) | (d <= 0)] = 0.0
    else:
        raise FrameFormatError(f"unknown depth_encoding {encoding!r}; expected one of {DEPTH_ENCODINGS}")
    d[~np.isfinite(d) | (d < 0)] = 0.0
    return d.astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# Image loading
# --------------------------------------------------------------------------------------------------------------
def check_image_size(width: int, height: int, max_pixels: int | None = MAX_IMAGE_PIXELS,
                     min_side: int | None = MIN_IMAGE_SIDE) -> None:
    """Raise FrameFormatError for an image too small to lift or too large to decode safely."""
    if min_side and min(width, height) < min_side:
        raise FrameFormatError(f"image is too small: {width}x{height} pixels (the shorter side must be at least "
                               f"{min_side})")
    if max_pixels and width * height > max_pixels:
        raise FrameFormatError(f"image is too large: {width}x{height} = {width * height} pixels, above the limit of "
                               f"{max_pixels} (possible decompression bomb; downscale it or raise the limit)")


def _open_image(path):
    """``Image.open`` with Pillow's own decompression-bomb refusal turned into our "too large" message (call
    inside ``warnings.catch_warnings()``: the bomb warning is silenced, our limit is checked by the caller)."""
    from PIL import Image

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise FrameFormatError(f"image is too large: {exc} (possible decompression bomb)") from None


def load_rgb(path: Path, *, max_pixels: int | None = MAX_IMAGE_PIXELS,
             min_side: int | None = MIN_IMAGE_SIDE) -> np.ndarray:
    """An image as H x W x 3 uint8 RGB: EXIF orientation applied; grayscale, palette, RGBA (composited on white),
    16-bit and float images converted. Sizes outside ``min_side`` / ``max_pixels`` raise FrameFormatError before
    the pixels are decoded."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings(), _open_image(path) as im:
        # our own pixel limit is checked below; Pillow's bomb warning would only add noise
        check_image_size(im.size[0], im.size[1], max_pixels, min_side)
        im.load()  # decode now, so truncated files fail here with their own message
        im = ImageOps.exif_transpose(im)
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            a = np.asarray(im).astype(np.float64)
            hi = 65535.0 if mode.startswith("I;16") else max(float(a.max()), 1.0)
            if mode == "F":
                hi = 1.0 if a.max() <= 1.0 else float(a.max())
            g = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
            return np.repeat(g[..., None], 3, axis=2)
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(arr)


def load_raw(path: Path) -> np.ndarray:
    """A depth / mask image as stored (no scaling). 16-bit PNGs keep their values. Binary little-endian PGMs are
    read as PIL reads them; use ``.npy`` for raw arrays."""
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    with warnings.catch_warnings(), _open_image(path) as im:
        check_image_size(im.size[0], im.size[1], MAX_IMAGE_PIXELS, None)
        arr = np.asarray(im)
    return arr


def _load_kinect_pgm(path: Path) -> np.ndarray:
    """Raw NYU dumps store 16-bit values little-endian despite the PGM header (which implies big-endian)."""
    data = path.read_bytes()
    # parse the header: magic, width, height, maxval separated by whitespace (comments allowed)
    tokens: list[bytes] = []
    i = 0
    while len(tokens) < 4:
        while data[i:i + 1].isspace():
            i += 1
        if data[i:i + 1] == b"#":
            while data[i:i + 1] not in (b"\n", b""):
                i += 1
            continue
        j = i
        while not data[j:j + 1].isspace():
            j += 1
        tokens.append(data[i:j])
        i = j
    i += 1
    if tokens[0] != b"P5":
        raise FrameFormatError(f"{path}: not a binary PGM (magic {tokens[0]!r})")
    w, h, maxval = int(tokens[1]), int(tokens[2]), int(tokens[3])
    if maxval < 256:
        return np.frombuffer(data, dtype=np.uint8, count=w * h, offset=i).reshape(h, w)
    return np.frombuffer(data, dtype="<u2", count=w * h, offset=i).reshape(h, w)


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------
def _manifest_path(dir_or_jsonl: Path) -> Path:
    p = Path(dir_or_jsonl)
    if p.is_dir():
        p = p / MANIFEST
    if not p.is_file():
        raise FileNotFoundError(f"no frames manifest at {p} (expected a folder holding {MANIFEST} or a .jsonl file)")
    return p


def _resolve(root: Path, rel: Any, what: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise FrameFormatError(f"{what} must be a non-empty path string, got {rel!r}")
    p = Path(rel)
    p = p if p.is_absolute() else root / p
    if not p.is_file():
        raise FrameFormatError(f"{what} file not found: {p}")
    return p


def _matrix(value: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FrameFormatError(f"{what} must be a {shape[0]}x{shape[1]} array of numbers: {exc}") from None
    if a.shape != shape:
        raise FrameFormatError(f"{what} must be {shape[0]}x{shape[1]}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise FrameFormatError(f"{what} holds non-finite values")
    return a


def _intrinsics(K: Any, width: int, height: int) -> Intrinsics:
    a = _matrix(K, (3, 3), "K")
    if np.abs(a[[0, 1, 2, 2], [1, 0, 0, 1]]).max() > 1e-6 or abs(a[2, 2] - 1.0) > 1e-9:
        raise FrameFormatError(f"K must be [[fx,0,cx],[0,fy,cy],[0,0,1]], got {a.tolist()}")
    if a[0, 0] <= 0 or a[1, 1] <= 0:
        raise FrameFormatError(f"K focal lengths must be positive, got fx={a[0, 0]} fy={a[1, 1]}")
    if not (-width <= a[0, 2] <= 2 * width and -height <= a[1, 2] <= 2 * height):
        raise FrameFormatError(f"K principal point ({a[0, 2]}, {a[1, 2]}) is far outside the {width}x{height} image")
    return Intrinsics.from_K(a, width, height)


def _box3d(d: Any, what: str) -> Box3D:
    if not isinstance(d, dict) or "center" not in d or "size" not in d:
        raise FrameFormatError(f"{what} must be an object with 'center', 'size' and optional 'rotation'")
    c = _matrix([d["center"]], (1, 3), f"{what}.center")[0]
    s = _matrix([d["size"]], (1, 3), f"{what}.size")[0]
    if np.any(s < 0):
        raise FrameFormatError(f"{what}.size must be non-negative, got {s.tolist()}")
    R = _matrix(d.get("rotation", np.eye(3).tolist()), (3, 3), f"{what}.rotation")
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-4):
        raise FrameFormatError(f"{what}.rotation is not a rotation matrix")
    return Box3D(c, s, R)


def _mask(path: Path, width: int, height: int, what: str) -> np.ndarray:
    try:
        m = load_raw(path)
    except _DECODE_ERRORS as exc:
        raise FrameFormatError(f"cannot read {what} {path}: {exc}") from None
    if m.ndim == 3:
        m = m[..., :3].max(axis=2) if m.shape[2] >= 3 else m[..., 0]
    if m.shape != (height, width):
        raise FrameFormatError(f"{what} {path} is {m.shape[1]}x{m.shape[0]}, image is {width}x{height}")
    return m != 0


def parse_line(obj: Any, root: Path, line_no: int = 0, *, max_pixels: int | None = MAX_IMAGE_PIXELS,
               min_side: int | None = MIN_IMAGE_SIDE) -> Frame:
    """One manifest entry (already JSON-decoded) -> Frame. Raises FrameFormatError with the reason."""
    if not isinstance(obj, dict):
        raise FrameFormatError(f"a line must be a JSON object, got {type(obj).__name__}")
    if "image" not in obj:
        raise FrameFormatError("missing required key 'image'")
    img_path = _resolve(root, obj["image"], "image")
    try:
        image = load_rgb(img_path, max_pixels=max_pixels, min_side=min_side)
    except FrameFormatError:
        raise
    except _DECODE_ERRORS as exc:
        raise FrameFormatError(f"cannot read image {img_path}: {exc}") from None
    H, W = image.shape[:2]

    depth = None
    if obj.get("depth") is not None:
        dpath = _resolve(root, obj["depth"], "depth")
        encoding = obj.get("depth_encoding", "linear")
        if encoding not in DEPTH_ENCODINGS:
            raise FrameFormatError(f"unknown depth_encoding {encoding!r}; expected one of {DEPTH_ENCODINGS}")
        scale = obj.get("depth_scale", 1000.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise FrameFormatError(f"depth_scale must be a positive number, got {scale!r}")
        try:
            if encoding == "kinect_disparity" and dpath.suffix.lower() == ".pgm":
                raw = _load_kinect_pgm(dpath)
            else:
                raw = load_raw(dpath)
        except FrameFormatError:
            raise
        except _DECODE_ERRORS as exc:
            raise FrameFormatError(f"cannot read depth {dpath}: {exc}") from None
        if raw.dtype.kind == "f" and encoding != "linear":
            raise FrameFormatError(f"depth {dpath} holds floats; depth_encoding {encoding!r} expects integers")
        depth = decode_depth(raw, float(scale), encoding)
        if depth.shape != (H, W):
            raise FrameFormatError(f"depth {dpath} is {depth.shape[1]}x{depth.shape[0]}, image is {W}x{H}"
                                   + (" (the image was rotated by its EXIF orientation)"
                                      if depth.shape == (W, H) and W != H else ""))
        if not np.any(depth > 0):
            raise FrameFormatError(f"depth {dpath} has no valid pixel (all zero / invalid)")

    intr = None
    if obj.get("K") is not None:
        intr = _intrinsics(obj["K"], W, H)

    wfc = None
    if obj.get("world_from_camera") is not None:
        wfc = _matrix(obj["world_from_camera"], (4, 4), "world_from_camera")
        if not np.allclose(wfc[3], [0, 0, 0, 1]) or not np.allclose(wfc[:3, :3].T @ wfc[:3, :3], np.eye(3),
                                                                       atol=1e-4):
            raise FrameFormatError("world_from_camera must be a rigid 4x4 transform")

    support = None
    if obj.get("support_mask") is not None:
        support = _mask(_resolve(root, obj["support_mask"], "support_mask"), W, H, "support_mask")
    floor = None
    if obj.get("floor_mask") is not None:
        floor = _mask(_resolve(root, obj["floor_mask"], "floor_mask"), W, H, "floor_mask")

    objects: list[ObjectAnnotation] = []
    raw_objs = obj.get("objects", [])
    if not isinstance(raw_objs, list):
        raise FrameFormatError("'objects' must be a list")
    for k, o in enumerate(raw_objs):
        what = f"objects[{k}]"
        if not isinstance(o, dict):
            raise FrameFormatError(f"{what} must be an object")
        name = o.get("name")
        if not isinstance(name, str) or not name.strip():
            raise FrameFormatError(f"{what} needs a non-empty 'name'")
        box = None
        if o.get("box") is not None:
            b = _matrix([o["box"]], (1, 4), f"{what}.box")[0]
            if not (b[2] > b[0] and b[3] > b[1]):
                raise FrameFormatError(f"{what}.box must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0, got "
                                       f"{b.tolist()}")
            box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
        mask = None
        if o.get("mask") is not None:
            mask = _mask(_resolve(root, o["mask"], f"{what}.mask"), W, H, f"{what}.mask")
        if box is None and mask is None:
            raise FrameFormatError(f"{what} ({name!r}) needs a 'box' or a 'mask'")
        score = o.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise FrameFormatError(f"{what}.score must be a number")
        attrs = o.get("attributes", {})
        if not isinstance(attrs, dict):
            raise FrameFormatError(f"{what}.attributes must be an object")
        objects.append(ObjectAnnotation(
            name=name.strip(), box=box, mask=mask, score=None if score is None else float(score),
            box3d_cam=_box3d(o["box3d_cam"], f"{what}.box3d_cam") if o.get("box3d_cam") is not None else None,
            box3d_world=_box3d(o["box3d_world"], f"{what}.box3d_world") if o.get("box3d_world") is not None
            else None,
            attributes=dict(attrs)))

    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise FrameFormatError("'meta' must be an object")
    image_id = obj.get("image_id")
    if image_id is not None and (not isinstance(image_id, str) or not image_id):
        raise FrameFormatError(f"image_id must be a non-empty string, got {image_id!r}")
    return Frame(image_id=image_id or img_path.stem, image=image, depth=depth, intrinsics=intr, objects=objects,
                 world_from_camera=wfc, support_mask=support, floor_mask=floor, source=str(img_path),
                 meta=dict(meta))


def read_frames(dir_or_jsonl: Path) -> Iterator[Frame | ItemError]:
    """Frames of an RGB-D folder, one per manifest line, in order. A line that cannot be read (malformed JSON,
    missing file, depth of the wrong size, bad K, ...) yields an :class:`ItemError` with ``item`` =
    ``"<manifest>:<line no>"`` and the reason, and reading continues. Blank lines and lines starting with ``#``
    are skipped. Image ids default to the image file stem and are made unique (``_2``, ``_3``, ... suffixes)."""
    manifest = _manifest_path(Path(dir_or_jsonl))
    root = manifest.parent
    seen: set[str] = set()
    for line_no, s, err in iter_manifest_lines(manifest):
        item = f"{manifest}:{line_no}"
        if err:
            yield ItemError(item=item, stage="read", reason=err)
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as exc:
            yield ItemError(item=item, stage="read", reason=f"malformed JSON: {exc}")
            continue
        try:
            frame = parse_line(obj, root, line_no)
        except FrameFormatError as exc:
            yield ItemError(item=item, stage="read", reason=str(exc))
            continue
        base, n = frame.image_id, 1
        while frame.image_id in seen:
            n += 1
            frame.image_id = f"{base}_{n}"
        seen.add(frame.image_id)
        frame.meta.setdefault("manifest_line", line_no)
        yield frame


def iter_manifest_lines(manifest: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, stripped text, error) for each frame line of a manifest; blank and ``#`` lines skipped.
    The file is read as bytes, so a line that is not UTF-8 becomes an error ("" text) instead of ending the
    read; so does a NUL byte (a sign of a truncated or binary-damaged file)."""
    with Path(manifest).open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                s = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                yield line_no, "", f"line is not valid UTF-8 text: {exc}"
                continue
            if not s or s.startswith("#"):
                continue
            if "\x00" in s:
                yield line_no, "", "line holds NUL bytes (damaged or binary file)"
                continue
            yield line_no, s, ""


def count_frames(dir_or_jsonl: Path) -> int:
    """Number of frame lines in a manifest (non-blank, non-comment), without reading any image."""
    manifest = _manifest_path(Path(dir_or_jsonl))
    return sum(1 for _ in iter_manifest_lines(manifest))


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------
def _safe_id(image_id: str) -> str:
    """A file stem for ``image_id``: the id itself when it only holds ``A-Z a-z 0-9 . _ -`` (and does not start
    with a dot), else the id with other characters replaced by ``_`` plus a checksum of the original, so that
    distinct ids never share files and no id can write outside the folder."""
    ok = all((c.isascii() and c.isalnum()) or c in "-_." for c in image_id)
    if ok and image_id and not image_id.startswith("."):
        return image_id
    import zlib

    s = "".join(c if ((c.isascii() and c.isalnum()) or c in "-_.") else "_" for c in image_id).lstrip(".")
    return f"{s[:80] or 'frame'}-{zlib.crc32(image_id.encode('utf-8')):08x}"


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def frame_to_line(frame: Frame, out_dir: Path, index: int) -> dict[str, Any]:
    """Write the files of one frame under ``out_dir`` and return its manifest entry (paths relative)."""
    from PIL import Image

    out_dir = Path(out_dir)
    fid = _safe_id(frame.image_id)
    img = np.asarray(frame.image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"frame {frame.image_id}: image must be H x W x 3 uint8, got {img.shape} {img.dtype}")
    H, W = img.shape[:2]
    (out_dir / "rgb").mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(out_dir / "rgb" / f"{fid}.png")
    line: dict[str, Any] = {"image_id": frame.image_id, "image": f"rgb/{fid}.png"}
    clipped = 0
    if frame.depth is not None:
        d = np.asarray(frame.depth, dtype=np.float64)
        if d.shape != (H, W):
            raise ValueError(f"frame {frame.image_id}: depth {d.shape} does not match image {(H, W)}")
        mm = np.where(np.isfinite(d) & (d > 0), np.round(d * 1000.0), 0.0)
        too_far = mm > _MAX_DEPTH_MM
        clipped = int(too_far.sum())
        mm[too_far] = 0
        (out_dir / "depth").mkdir(exist_ok=True)
        Image.fromarray(mm.astype(np.uint16)).save(out_dir / "depth" / f"{fid}.png")
        line["depth"] = f"depth/{fid}.png"
        line["depth_scale"] = 1000
    if frame.intrinsics is not None:
        line["K"] = frame.intrinsics.to_list()
    if frame.world_from_camera is not None:
        line["world_from_camera"] = np.asarray(frame.world_from_camera, dtype=np.float64).tolist()
    if frame.support_mask is not None:
        (out_dir / "support").mkdir(exist_ok=True)
        Image.fromarray(np.asarray(frame.support_mask, dtype=bool).astype(np.uint8) * 255).save(
            out_dir / "support" / f"{fid}.png")
        line["support_mask"] = f"support/{fid}.png"
    if frame.floor_mask is not None:
        (out_dir / "floor").mkdir(exist_ok=True)
        Image.fromarray(np.asarray(frame.floor_mask, dtype=bool).astype(np.uint8) * 255).save(
            out_dir / "floor" / f"{fid}.png")
        line["floor_mask"] = f"floor/{fid}.png"
    objs = []
    for k, o in enumerate(frame.objects):
        e: dict[str, Any] = {"name": o.name}
        b = o.bbox()
        if b is not None:
            e["box"] = [float(x) for x in b]
        if o.mask is not None:
            (out_dir / "masks").mkdir(exist_ok=True)
            Image.fromarray(np.asarray(o.mask, dtype=bool).astype(np.uint8) * 255).save(
                out_dir / "masks" / f"{fid}_{k}.png")
            e["mask"] = f"masks/{fid}_{k}.png"
        if o.score is not None:
            e["score"] = float(o.score)
        if o.box3d_cam is not None:
            e["box3d_cam"] = o.box3d_cam.to_dict()
        if o.box3d_world is not None:
            e["box3d_world"] = o.box3d_world.to_dict()
        if o.attributes:
            e["attributes"] = _jsonable(o.attributes)
        objs.append(e)
    line["objects"] = objs
    meta = dict(frame.meta)
    if clipped:
        meta["depth_clipped_pixels"] = clipped
    if meta:
        line["meta"] = _jsonable(meta)
    line["_clipped"] = clipped
    return line


def write_frames(frames: Iterable[Frame], out_dir: Path) -> Path:
    """Write frames as an RGB-D folder: ``rgb/<id>.png``, ``depth/<id>.png`` (uint16 millimetres, depth_scale
    1000), ``masks/<id>_<k>.png``, ``support/<id>.png`` and ``frames.jsonl``. Depths beyond 65.535 m cannot be
    stored and are written as 0 (invalid); a warning gives the count. Returns the manifest path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / MANIFEST
    tmp = out_dir / (MANIFEST + ".partial")
    clipped_total = 0
    used: set[str] = set()
    with tmp.open("w", encoding="utf-8") as fh:
        for i, frame in enumerate(frames):
            fid = _safe_id(frame.image_id)
            if fid in used:
                raise ValueError(f"duplicate image id {frame.image_id!r}: ids must be unique within a folder")
            used.add(fid)
            line = frame_to_line(frame, out_dir, i)
            clipped_total += line.pop("_clipped")
            fh.write(json.dumps(line, separators=(",", ":")) + "\n")
    tmp.replace(manifest)
    if clipped_total:
        warnings.warn(f"write_frames: {clipped_total} depth pixels beyond 65.535 m were stored as 0 (invalid)",
                      stacklevel=2)
    return manifest
