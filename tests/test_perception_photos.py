"""Photo readers: a folder of image files (EXIF orientation applied, EXIF focal kept, corrupt files recorded) and a
Hugging Face image dataset from a local path (image column found automatically, splits, ids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spatialvlm.io.photos import parse_hf_spec, read_hf_images, read_image_source, read_photos
from spatialvlm.perception.adapters import focal_from_exif
from spatialvlm.records import Frame, ItemError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _gradient(h: int, w: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    return img


def _jpeg_with_exif(path: Path, img: np.ndarray, orientation: int = 1, f35: int | None = 26,
                    fmm: float | None = 4.2) -> None:
    im = Image.fromarray(img)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestMake"
    sub = {}
    if f35 is not None:
        sub[0xA405] = f35
    if fmm is not None:
        sub[0x920A] = fmm
    if sub:
        exif[0x8769] = sub
    im.save(path, exif=exif.tobytes(), quality=95)


def test_read_photos_orientation_exif_and_errors(tmp_path):
    img = _gradient(30, 40)  # landscape 40 x 30
    _jpeg_with_exif(tmp_path / "a.jpg", img, orientation=6)  # "rotate 90 CW to display" -> portrait 30 x 40
    _jpeg_with_exif(tmp_path / "b.jpg", img, orientation=1, f35=None, fmm=None)
    sub = tmp_path / "sub"
    sub.mkdir()
    Image.fromarray(img).convert("RGBA").save(sub / "c.png")
    Image.fromarray(img[..., 0]).save(sub / "gray.webp")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.jpg").write_bytes(b"")
    items = list(read_photos(tmp_path))
    ids = [i.image_id if isinstance(i, Frame) else i.item for i in items]
    assert ids == ["a", "b", str(tmp_path / "broken.jpg"), "sub/c", "sub/gray"]
    a, b, broken, c, gray = items
    assert a.image.shape == (40, 30, 3) and a.image.dtype == np.uint8  # orientation applied
    # orientation 6: the displayed top-left pixel is the stored bottom-left one
    assert abs(int(a.image[0, 0, 1]) - int(img[-1, 0, 1])) <= 8
    assert a.meta["exif"]["focal_length_35mm"] == 26 and a.meta["exif"]["focal_length_mm"] == pytest.approx(4.2)
    assert a.meta["exif"]["make"] == "TestMake" and a.meta["exif"]["orientation"] == 6
    assert focal_from_exif(a.meta["exif"], 30, 40) == pytest.approx(26 * 50 / 43.2666, rel=1e-3)
    assert "focal_length_35mm" not in b.meta["exif"]
    assert isinstance(broken, ItemError) and broken.stage == "read" and "cannot read image" in broken.reason
    assert c.image.shape == (30, 40, 3) and gray.image.shape == (30, 40, 3)
    assert a.depth is None and a.intrinsics is None and a.objects == []
    assert a.image.flags.writeable


def test_read_photos_max_side_and_missing_folder(tmp_path):
    Image.fromarray(_gradient(300, 400)).save(tmp_path / "big.png")
    (f,) = read_photos(tmp_path, max_side=100)
    assert f.image.shape == (75, 100, 3) and f.meta["resized_from"] == [400, 300]
    with pytest.raises(FileNotFoundError):
        list(read_photos(tmp_path / "nope"))


def test_parse_hf_spec():
    assert parse_hf_spec("user/data") == ("user/data", None)
    assert parse_hf_spec("user/data:validation") == ("user/data", "validation")
    assert parse_hf_spec("/tmp/x:test") == ("/tmp/x", "test")
    assert parse_hf_spec("C:/data/imgs") == ("C:/data/imgs", None)


def test_read_hf_images_from_saved_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    imgs = [Image.fromarray(_gradient(20 + i, 30)) for i in range(3)]
    ds = datasets.Dataset.from_dict({"photo": imgs, "caption": ["x", "y", "z"]},
                                    features=datasets.Features({"photo": datasets.Image(),
                                                                "caption": datasets.Value("string")}))
    dd = datasets.DatasetDict({"train": ds, "test": ds.select([0])})
    dd.save_to_disk(str(tmp_path / "saved"))
    frames = list(read_hf_images(str(tmp_path / "saved")))
    assert [f.image.shape for f in frames] == [(20, 30, 3), (21, 30, 3), (22, 30, 3)]
    assert frames[0].image_id == "saved/train/000000" and frames[2].meta["row"] == 2
    test = list(read_hf_images(f"{tmp_path / 'saved'}:test"))
    assert len(test) == 1 and test[0].image_id == "saved/test/000000"
    with pytest.raises(ValueError, match="no split"):
        list(read_hf_images(f"{tmp_path / 'saved'}:nope"))
    assert len(list(read_hf_images(str(tmp_path / "saved"), limit=2))) == 2


def test_read_hf_images_records_corrupt_rows(tmp_path):
    datasets = pytest.importorskip("datasets")
    import io

    good = io.BytesIO()
    Image.fromarray(_gradient(8, 9)).save(good, format="PNG")
    rows = {"image": [{"bytes": good.getvalue(), "path": None}, {"bytes": b"garbage", "path": None},
                      {"bytes": good.getvalue(), "path": None}], "id": ["a", "b", "c"]}
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features({"image": datasets.Image(),
                                                                      "id": datasets.Value("string")}))
    ds.save_to_disk(str(tmp_path / "d"))
    out = list(read_hf_images(str(tmp_path / "d")))
    assert [type(o).__name__ for o in out] == ["Frame", "ItemError", "Frame"]
    assert out[0].image_id == "a" and out[1].item == "b" and out[1].stage == "read"
    assert out[2].image.shape == (8, 9, 3)


def test_read_hf_images_from_image_folder_and_source_dispatch(tmp_path):
    pytest.importorskip("datasets")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(_gradient(10, 12 + i)).save(folder / f"p{i}.png")
    frames = list(read_image_source(f"hf:{folder}"))
    assert len(frames) == 2 and all(isinstance(f, Frame) for f in frames)
    assert sorted(f.image.shape[1] for f in frames) == [12, 13]
    photos = list(read_image_source(f"photos:{folder}"))
    assert [f.image_id for f in photos] == ["p0", "p1"]
    with pytest.raises(ValueError, match="unknown image source"):
        read_image_source(str(folder))


def test_real_photo_reads():
    p = DATA / "nyu_kitti_metric3d" / "data" / "nyu_demo" / "rgb"
    if not p.exists():
        pytest.skip("shared data folder not present")
    frames = list(read_photos(p))
    assert len(frames) == 3 and all(f.image.shape == (480, 640, 3) for f in frames)
