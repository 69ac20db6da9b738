"""Readers for ordinary photos (no depth, no labels): a folder of image files, or a Hugging Face image dataset.

Both yield :class:`~spatialvlm.records.Frame` objects (image only; perception fills the rest) or, for an item
that cannot be read, an :class:`~spatialvlm.records.ItemError` in its place. The EXIF orientation is applied and
the EXIF focal-length fields are kept in ``frame.meta["exif"]`` for the intrinsics fallback."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..records import Frame, ItemError

MAX_IMAGE_PIXELS = 100_000_000  # checked from the file header, before decoding (decompression bombs)
MIN_IMAGE_SIDE = 8
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".jfif")

# EXIF tags (in the Exif sub-IFD 0x8769 unless noted)
_EXIF_IFD = 0x8769
_TAGS = {
    0x920A: "focal_length_mm",
    0xA405: "focal_length_35mm",
    0xA20E: "focal_plane_x_res",
    0xA210: "focal_plane_unit",
    0xA002: "exif_width",
    0xA003: "exif_height",
}
_IFD0 = {0x010F: "make", 0x0110: "model", 0x0112: "orientation"}
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # FocalPlaneResolutionUnit: inch, cm, mm, micrometre


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return f if np.isfinite(f) else None


def exif_fields(img) -> dict[str, Any]:
    """The EXIF fields perception uses (focal lengths, focal-plane resolution, camera make/model), as plain
    JSON-able values. Missing fields are left out."""
    out: dict[str, Any] = {}
    try:
        exif = img.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block only means "no EXIF"; recorded below
        return {"error": "unreadable EXIF block"}
    if not exif:
        return out
    for tag, name in _IFD0.items():
        if tag in exif:
            v = exif[tag]
            out[name] = str(v).strip("\x00 ").strip() if isinstance(v, (str, bytes)) else _num(v)
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:  # noqa: BLE001
        sub = {}
    for tag, name in _TAGS.items():
        if tag in sub:
            v = _num(sub[tag])
            if v is not None:
                out[name] = v
    unit = out.pop("focal_plane_unit", None)
    if unit is not None and int(unit) in _UNIT_MM:
        out["focal_plane_unit_mm"] = _UNIT_MM[int(unit)]
    if "focal_length_35mm" in out and out["focal_length_35mm"] <= 0:
        del out["focal_length_35mm"]
    return out


def load_image(source, max_side: int | None = None, *, max_pixels: int | None = MAX_IMAGE_PIXELS,
               min_side: int | None = MIN_IMAGE_SIDE) -> tuple[np.ndarray, dict[str, Any]]:
    """Open an image (path, file object or PIL image), apply its EXIF orientation, convert to RGB uint8
    (16-bit and float grayscale scaled to 8 bits, transparency composited on white). Images with a side below
    ``min_side`` or more than ``max_pixels`` pixels raise ValueError before their pixels are decoded.
    Returns (H x W x 3 array, meta with "exif" and, when downscaled, "resized_from")."""
    from PIL import Image

    if isinstance(source, Image.Image):
        return _to_rgb(source, max_side, max_pixels, min_side)
    with warnings.catch_warnings():
        # our own pixel limit is checked from the header before decoding; Pillow's warning would only add noise
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(source)
        except Image.DecompressionBombError as exc:
            raise ValueError(f"image is too large: {exc} (possible decompression bomb)") from None
        with img:
            return _to_rgb(img, max_side, max_pixels, min_side)


def _to_rgb(img, max_side, max_pixels, min_side) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image, ImageOps

    w0, h0 = img.size
    if min_side and min(w0, h0) < min_side:
        raise ValueError(f"image is too small: {w0}x{h0} pixels (the shorter side must be at least {min_side})")
    if max_pixels and w0 * h0 > max_pixels:
        raise ValueError(f"image is too large: {w0}x{h0} = {w0 * h0} pixels, above the limit of {max_pixels} "
                         "(possible decompression bomb; downscale it or raise the limit)")
    img.load()  # truncated / corrupt files fail here
    meta: dict[str, Any] = {"exif": exif_fields(img)}
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / float grayscale: scale, do not clip
        a = np.asarray(img).astype(np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(np.nanmax(a)) if a.size else 1.0, 1.0)
        g = np.clip(np.nan_to_num(a) / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(np.repeat(g[..., None], 3, axis=2))
    elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img.convert("RGBA"))
    if img.mode != "RGB":
        img = img.convert("RGB")
    if max_side and max(img.size) > max_side:
        w, h = img.size
        s = max_side / float(max(w, h))
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
        meta["resized_from"] = [w, h]
    arr = np.array(img, dtype=np.uint8)  # a writable copy
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 2:
        raise ValueError(f"not a usable RGB image (shape {arr.shape})")
    return arr, meta


def list_photos(directory: str | Path, recursive: bool = True) -> list[Path]:
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"photo folder {d} does not exist")
    it = d.rglob("*") if recursive else d.glob("*")
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(d).parts))


def read_photos(directory: str | Path, recursive: bool = True, max_side: int | None = None) -> Iterator[Frame | ItemError]:
    """Every image file under ``directory`` (sorted; hidden files skipped) as a Frame whose ``image_id`` is the
    path relative to the folder without extension. Unreadable files -> ItemError(stage="read")."""
    d = Path(directory).expanduser()
    for p in list_photos(d, recursive):
        rel = p.relative_to(d).with_suffix("").as_posix()
        try:
            image, meta = load_image(p, max_side=max_side)
        except Exception as exc:  # noqa: BLE001 - recorded per item
            yield ItemError(str(p), "read", f"cannot read image: {type(exc).__name__}: {exc}")
            continue
        meta["file"] = p.name
        yield Frame(image_id=rel, image=image, source=f"photos:{d}", meta=meta)


# --------------------------------------------------------------------------------------------------------------


def parse_hf_spec(spec: str) -> tuple[str, str | None]:
    """``"REPO_OR_PATH[:split]"`` -> (repo_or_path, split or None). A trailing ``:name`` counts as the split when
    ``name`` has no path separator (so ``C:/data`` or ``./a:b/c`` are not cut)."""
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if head and tail and "/" not in tail and "\\" not in tail and len(head) > 1:
            return head, tail
    return spec, None


def _open_dataset(repo_or_path: str, split: str | None, streaming: bool = False):
    import datasets

    p = Path(repo_or_path).expanduser()
    if p.is_dir() and ((p / "dataset_dict.json").exists() or (p / "state.json").exists()):
        ds = datasets.load_from_disk(str(p))
    else:
        ds = datasets.load_dataset(str(p) if p.exists() else repo_or_path, streaming=streaming)
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict, dict)):
        names = list(ds.keys())
        if split is None:
            split = "train" if "train" in names else names[0]
        if split not in ds:
            raise ValueError(f"dataset {repo_or_path!r} has no split {split!r}; splits: {', '.join(names)}")
        ds = ds[split]
    return ds, split or "train"


def image_column(ds) -> str:
    """The column holding images: the first of type datasets.Image, else one named image / img / picture."""
    import datasets

    feats = getattr(ds, "features", None) or {}
    for name, feat in feats.items():
        if isinstance(feat, datasets.Image):
            return name
    for name in ("image", "img", "picture", "photo", "jpg", "png"):
        if name in feats:
            return name
    raise ValueError(f"no image column found among {list(feats)}; expected a datasets.Image feature")


def read_hf_images(spec: str, max_side: int | None = None, limit: int | None = None,
                   streaming: bool = False) -> Iterator[Frame | ItemError]:
    """Frames from a Hugging Face image dataset ``"REPO_OR_PATH[:split]"`` via ``datasets`` (a local folder of
    images, a local dataset saved with ``save_to_disk`` or a Hub id; offline use works for local paths and the
    cache). The image column is found automatically; ids come from an ``image_id`` / ``id`` / ``file_name`` column
    or the row number. Images are decoded here, row by row, so a corrupt image becomes an ItemError instead of
    stopping the iteration. ``streaming=True`` reads a Hub dataset without downloading it whole."""
    import io

    import datasets

    repo, split = parse_hf_spec(spec)
    ds, split = _open_dataset(repo, split, streaming=streaming)
    col = image_column(ds)
    if isinstance(ds.features[col], datasets.Image):
        ds = ds.cast_column(col, datasets.Image(decode=False))
    names = list(ds.features)
    id_col = next((c for c in ("image_id", "id", "file_name", "filename") if c in names), None)
    base = Path(repo).name or repo
    for i, row in enumerate(ds):
        if limit is not None and i >= int(limit):
            break
        item_id = f"{base}/{split}/{i:06d}"
        try:
            if id_col is not None and row.get(id_col) is not None:
                item_id = str(row[id_col])
            value, file = row[col], None
            if isinstance(value, dict):  # undecoded {"bytes", "path"}
                file = value.get("path")
                value = io.BytesIO(value["bytes"]) if value.get("bytes") else file
            if value is None:
                raise ValueError("empty image cell")
            image, meta = load_image(value, max_side=max_side)
        except Exception as exc:  # noqa: BLE001 - recorded per item
            yield ItemError(item_id, "read", f"cannot read image row {i}: {type(exc).__name__}: {exc}")
            continue
        meta["row"] = i
        if file:
            meta["file"] = Path(str(file)).name
        yield Frame(image_id=item_id, image=image, source=f"hf:{spec}", meta=meta)


def read_image_source(spec: str, max_side: int | None = None) -> Iterator[Frame | ItemError]:
    """``photos:DIR`` or ``hf:REPO_OR_PATH[:split]``."""
    kind, sep, rest = spec.partition(":")
    if sep and kind == "photos":
        return read_photos(rest, max_side=max_side)
    if sep and kind == "hf":
        return read_hf_images(rest, max_side=max_side)
    raise ValueError(f"unknown image source {spec!r}; use photos:DIR or hf:REPO_OR_PATH[:split]")
