"""Fuzz-style: a folder of deliberately broken inputs mixed with good ones. The run must complete, every bad input
must appear in errors.parquet with a reason (or, for inputs we repair such as odd image modes, produce QA), and
every good input must produce exactly the QA it produces on its own."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_scale_fixtures import small_scenes

from spatialvlm.pipeline.run import SynthConfig, run_synth

CFG = ["qa.per_image=12", "report_images=0", "shard_size=4", "batch_size=3",
       # perception that cannot load fails per frame (frames that need it), without touching the network
       "perception={depth: 'no-such-backend:x', scene_filter: null, embedder: null}"]


def _png_with_header_size(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels (the data is a 1x1 image): a decompression bomb's calling card."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    b = bytearray(buf.getvalue())
    ihdr = 8  # after the signature: length(4) type(4) data(13) crc(4)
    b[ihdr + 8:ihdr + 12] = struct.pack(">I", w)
    b[ihdr + 12:ihdr + 16] = struct.pack(">I", h)
    b[ihdr + 21:ihdr + 25] = struct.pack(">I", zlib.crc32(bytes(b[ihdr + 4:ihdr + 21])) & 0xFFFFFFFF)
    return bytes(b)


def _build(root: Path, src: Path) -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """Manifest lines for the fuzz folder ``root`` (files copied from the rendered scenes in ``src``).
    Returns (good lines, {bad case: expected error item}, {repaired case: image id that must get QA})."""
    lines = [json.loads(s) for s in (src / "frames.jsonl").read_text().splitlines() if s.strip()]
    good = lines[:4]
    base = lines[0]
    rgb = np.asarray(Image.open(src / base["image"]))
    H, W = rgb.shape[:2]
    (root / "bad").mkdir()

    def variant(image_id: str, **changes) -> dict:
        d = json.loads(json.dumps(base))
        d["image_id"] = image_id
        d.update(changes)
        return d

    def save(name: str, data: bytes) -> str:
        (root / "bad" / name).write_bytes(data)
        return f"bad/{name}"

    png = (src / base["image"]).read_bytes()
    raw_lines: list[str] = [json.dumps(x) for x in good]
    bad: dict[str, str] = {}
    repaired: dict[str, str] = {}

    def add(case: str, obj_or_text, *, expect_error: bool = True):
        raw_lines.append(obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text))
        if expect_error:
            bad[case] = f"frames.jsonl:{len(raw_lines)}"

    add("corrupt image", variant("corrupt", image=save("corrupt.png", bytes(np.random.default_rng(0).integers(
        0, 256, 5000, dtype=np.uint8)))))
    add("truncated image", variant("truncated", image=save("truncated.png", png[: len(png) // 2])))
    add("empty image file", variant("empty", image=save("empty.png", b"")))
    add("tiny image", variant("tiny", image=save("tiny.png", _png(np.zeros((4, 4, 3), np.uint8))),
                              depth=save("tiny_d.png", _png(np.full((4, 4), 1500, np.uint16))), objects=[]))
    add("gigantic image (bomb)", variant("bomb", image=save("bomb.png", _png_with_header_size(60000, 60000))))
    add("depth of the wrong size", variant("depth_size", depth=save("d_small.png", _png(np.full(
        (H // 2, W // 2), 1500, np.uint16)))))
    add("depth all invalid", variant("depth_zero", depth=save("d_zero.png", _png(np.zeros((H, W), np.uint16)))))
    add("missing image file", variant("missing", image="bad/does_not_exist.png"))
    add("missing depth file", variant("missing_depth", depth="bad/no_depth.png"))
    add("malformed JSON", '{"image": "rgb/x.png", ')
    add("JSON that is not an object", "[1, 2, 3]")
    add("line without image", json.dumps({"depth": base["depth"]}))
    add("bad intrinsics", variant("bad_k", K=[[-1, 0, 1], [0, 1, 1], [0, 0, 1]]))
    add("zero objects (needs perception, unavailable)", variant("no_objects", objects=[]))
    # the EXIF orientation turns the image by 90 degrees: its depth no longer matches
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", exif=exif)
    add("EXIF-rotated image vs unrotated depth", variant("exif_rot", image=save("rot.jpg", buf.getvalue())))
    # no object has a valid depth under it: nothing can be lifted
    depth = np.asarray(Image.open(src / base["depth"])).copy()
    for o in base["objects"]:
        x0, y0, x1, y1 = (int(v) for v in o["box"])
        depth[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = 0
    add("zero usable objects", variant("no_usable", depth=save("d_holes.png", _png(depth))))

    # repaired, not errors: odd image modes decode to RGB and give QA like the original
    gray = Image.fromarray(rgb).convert("L")
    add("grayscale", variant("gray", image=save("gray.png", _png_img(gray))), expect_error=False)
    rgba = np.dstack([rgb, np.full((H, W), 255, np.uint8)])
    add("RGBA", variant("rgba", image=save("rgba.png", _png(rgba))), expect_error=False)
    g16 = (np.asarray(gray).astype(np.uint16) * 257)
    add("16-bit", variant("g16", image=save("g16.png", _png(g16))), expect_error=False)
    repaired.update({"grayscale": "gray", "RGBA": "rgba", "16-bit": "g16"})
    # one object only: single-object questions may still be asked; either way it is never dropped silently
    add("one object", variant("one_object", objects=base["objects"][:1]), expect_error=False)
    repaired["one object"] = "one_object"
    # the same image listed twice: the second gets a unique id, both are processed
    add("duplicate line", json.dumps(good[1]), expect_error=False)
    repaired["duplicate line"] = good[1]["image_id"] + "_2"

    text = "\n".join(raw_lines) + "\n"
    data = text.encode("utf-8") + b'{"image": "\xff\xfe broken bytes"}\n'
    bad["non-UTF-8 line"] = f"frames.jsonl:{len(raw_lines) + 1}"
    (root / "frames.jsonl").write_bytes(data)
    import shutil

    for sub in src.iterdir():  # every file folder of the rendered format (rgb, depth, masks, support, ...)
        if sub.is_dir():
            shutil.copytree(sub, root / sub.name)
    return good, bad, repaired


def _png(a: np.ndarray) -> bytes:
    return _png_img(Image.fromarray(a))


def _png_img(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    src = small_scenes(tmp, 6)
    root = tmp / "fuzz_in"
    root.mkdir()
    good, bad, repaired = _build(root, src)
    # reference: the good inputs on their own
    ref_in = tmp / "ref_in"
    ref_in.mkdir()
    (ref_in / "frames.jsonl").write_text("".join(json.dumps(x) + "\n" for x in good))
    for sub in src.iterdir():
        if sub.is_dir():
            (ref_in / sub.name).symlink_to(sub)
    cfg = SynthConfig.load(None, CFG)
    ref = run_synth(str(ref_in), tmp / "ref_out", cfg, progress=False)
    summary = run_synth(str(root), tmp / "out", SynthConfig.load(None, CFG), progress=False)
    return tmp, good, bad, repaired, ref, summary


def test_run_completes_and_every_bad_input_is_an_error_row(fuzz):
    tmp, _, bad, _, _, summary = fuzz
    out = tmp / "out"
    assert summary["complete"] is True
    errors = pd.read_parquet(out / "errors.parquet")
    assert (errors["reason"].str.len() > 5).all(), errors
    by_item = dict(zip(errors["item"], errors["reason"]))
    # bad inputs that are read-stage failures are named by their manifest line; later failures by image id
    for case, item in bad.items():
        line_no = int(item.split(":")[1])
        raw = (tmp / "fuzz_in" / "frames.jsonl").read_bytes().splitlines()[line_no - 1]
        try:
            image_id = json.loads(raw).get("image_id")
        except (ValueError, AttributeError):
            image_id = None
        assert item in by_item or (image_id and image_id in by_item), f"{case}: no error row ({item}, {image_id})"
    reasons = " | ".join(errors["reason"])
    for needle in ("too small", "too large", "no valid pixel", "not found", "malformed JSON", "not valid UTF-8",
                   "EXIF", "perception stage is unavailable", "focal"):
        assert needle in reasons, f"no reason mentions {needle!r}: {reasons}"
    # the summary and exit code say so
    assert summary["errors"] == len(errors) and summary["exit_code"] == 1
    assert sum(summary["images_failed"].values()) >= len(bad) - 1  # "zero usable objects" may be lifted, no QA


def test_every_good_input_keeps_its_qa(fuzz):
    tmp, good, _, repaired, _, _ = fuzz
    qa_ref = pd.read_parquet(tmp / "ref_out" / "qa.parquet")
    qa = pd.read_parquet(tmp / "out" / "qa.parquet")
    with_qa = set(qa_ref["image_id"])
    assert len(with_qa) >= 2, "the reference scenes should give QA"
    for image_id in with_qa:
        a = qa_ref[qa_ref.image_id == image_id].reset_index(drop=True)
        b = qa[qa.image_id == image_id].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
    # repaired inputs (odd modes, duplicate line) are processed like the original image
    scenes = pd.read_parquet(tmp / "out" / "scenes.parquet")
    for case, image_id in repaired.items():
        assert image_id in set(scenes["image_id"]), f"{case}: {image_id} missing from scenes"
    errors = pd.read_parquet(tmp / "out" / "errors.parquet")
    assert "one_object" in set(qa["image_id"]) or "one_object" in set(errors["item"])
    base_id = good[0]["image_id"]
    if base_id in with_qa:
        for image_id in ("gray", "rgba", "g16"):
            assert image_id in set(qa["image_id"]), f"{image_id} gave no QA"
    # nothing is dropped silently: every manifest line is a scene or an error
    errors = pd.read_parquet(tmp / "out" / "errors.parquet")
    n_lines = sum(1 for s in (tmp / "fuzz_in" / "frames.jsonl").read_bytes().splitlines() if s.strip())
    failed_items = set(errors["item"]) - set(scenes["image_id"])
    assert len(scenes) + len(failed_items) == n_lines


def test_photo_reader_bad_files(tmp_path):
    """The photo reader (perception input) refuses broken files per item and repairs modes / EXIF rotation."""
    from spatialvlm.io.photos import load_image, read_photos
    from spatialvlm.pipeline.shards import plan_items
    from spatialvlm.records import ItemError

    d = tmp_path / "photos"
    d.mkdir()
    rgb = np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "ok.png")
    Image.fromarray(rgb).save(d / "ok.jpg")  # same stem: ids must stay unique
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff" + bytes(200))
    (d / "trunc.png").write_bytes((d / "ok.png").read_bytes()[:300])
    Image.fromarray(rgb[:3, :3]).save(d / "tiny.png")
    (d / "bomb.png").write_bytes(_png_with_header_size(70000, 70000))
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(d / "g16.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(d / "rot.jpg", exif=exif)
    out = {(f.image_id if not isinstance(f, ItemError) else f.item): f for f in read_photos(d)}
    errs = {k: v.reason for k, v in out.items() if isinstance(v, ItemError)}
    assert set(errs) == {str(d / n) for n in ("corrupt.jpg", "trunc.png", "tiny.png", "bomb.png")}, errs
    assert "too large" in errs[str(d / "bomb.png")] and "too small" in errs[str(d / "tiny.png")]
    assert out["rot"].image.shape == (60, 40, 3)  # EXIF orientation 6 applied
    assert out["g16"].image.dtype == np.uint8 and out["g16"].image.max() > 200  # scaled, not clipped to 255
    img, _ = load_image(d / "ok.png")
    assert img.shape == (40, 60, 3)
    ids = [it.image_id for it in plan_items("photos", str(d))]
    assert len(ids) == len(set(ids)) and {"ok", "ok_2"} <= set(ids)
