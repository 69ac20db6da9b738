"""DatasetWriter: every file of the output folder is written, readable and consistent with the records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from spatialvlm.io.writers import (
    OBJECT_COLUMNS,
    QA_COLUMNS,
    SCENE_COLUMNS,
    DatasetWriter,
    decode_depth_png,
    decode_instance_png,
    file_stem,
    write_config,
)
from spatialvlm.records import ItemError
from spatialvlm.viewer.synthetic import synthetic_item, write_synthetic_output


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "ds"
    items = [synthetic_item(i, n_objects=2 + i % 3, canonical=i % 3 != 2) for i in range(5)]
    with DatasetWriter(out, hf_shard_rows=7) as w:
        for frame, scene, qas in items:
            w.add(frame, scene, qas)
        w.add_error(ItemError("bad_0.jpg", "read", "truncated JPEG"))
        w.add_error(ItemError("bad_1.jpg", "geometry", "no valid depth"))
        w.add_error(ItemError("bad_1.jpg", "qa", "second error for the same item"))
    return out, items, w.summary


def test_every_file_written(written):
    out, items, _ = written
    for name in ["qa.parquet", "scenes.parquet", "objects.parquet", "errors.parquet", "summary.json", "llava.json",
                 "hf/README.md"]:
        assert (out / name).is_file(), name
    for frame, scene, _ in items:
        stem = file_stem(scene.image_id)
        for sub, ext in [("images", "jpg"), ("depth", "png"), ("masks", "png"), ("points", "npz")]:
            assert (out / sub / f"{stem}.{ext}").is_file()
    assert not list((out / "hf" / "data").glob(".*")), "partial shard files left behind"


def test_qa_parquet_matches_records(written):
    out, items, summary = written
    t = pq.read_table(out / "qa.parquet")
    assert t.column_names == QA_COLUMNS
    expected = [q.to_row() for _, _, qas in items for q in qas]
    got = t.to_pylist()
    assert got == expected
    assert summary["qa_total"] == len(expected)
    assert sum(summary["qa_by_type"].values()) == len(expected)
    quant = [r for r in got if r["family"] == "quantitative"]
    assert quant and all(r["value_m"] is not None for r in quant)
    assert all(r["value_m"] is None for r in got if r["family"] == "predicate")


def test_scenes_and_objects(written):
    out, items, _ = written
    scenes = pq.read_table(out / "scenes.parquet")
    assert scenes.column_names == SCENE_COLUMNS
    rows = {r["image_id"]: r for r in scenes.to_pylist()}
    objs = pq.read_table(out / "objects.parquet")
    assert objs.column_names == OBJECT_COLUMNS
    orows = objs.to_pylist()
    for frame, scene, qas in items:
        r = rows[scene.image_id]
        assert (r["width"], r["height"]) == (frame.width, frame.height)
        assert r["canonicalized"] == scene.canonical.ok
        assert r["n_qa"] == len(qas) and r["n_objects"] == len(scene.objects)
        np.testing.assert_allclose(np.array(r["K"]), frame.intrinsics.K)
        if scene.canonical.ok:
            np.testing.assert_allclose(np.array(r["canon_from_cam"]), scene.canonical.canon_from_cam)
            assert r["camera_height"] == pytest.approx(scene.canonical.camera_height)
        else:
            assert r["canon_from_cam"] is None and r["canonical_reason"]
        mine = [o for o in orows if o["image_id"] == scene.image_id]
        present = {o["object_id"]: o for o in mine if o["object_id"] is not None}
        dropped = [o for o in mine if o["object_id"] is None]
        assert len(present) == len(scene.objects) and len(dropped) == len(scene.dropped)
        assert all(not d["askable"] and d["drop_reason"] for d in dropped)
        for o in scene.objects:
            row = present[o.id]
            assert row["askable"] == o.askable and row["name"] == o.name and row["label"] == o.label
            np.testing.assert_allclose(row["aabb_cam_center"], o.aabb_cam.center)
            np.testing.assert_allclose(row["aabb_cam_size"], o.aabb_cam.size)
            if not o.askable:
                assert row["drop_reason"]
            if scene.canonical.ok:
                assert json.loads(row["obb_canon"])["size"] == pytest.approx(list(o.obb_canon.size))
            else:
                assert row["aabb_canon_center"] is None and row["obb_canon"] is None
            assert json.loads(row["visibility"])["top_seen"] is False


def test_masks_depth_points_round_trip(written):
    out, items, _ = written
    for frame, scene, _ in items:
        stem = file_stem(scene.image_id)
        inst = decode_instance_png(out / "masks" / f"{stem}.png")
        assert inst.shape == (frame.height, frame.width)
        for o in scene.objects:
            np.testing.assert_array_equal(inst == o.id + 1, o.mask)
        assert set(np.unique(inst)) <= {0} | {o.id + 1 for o in scene.objects}
        d = decode_depth_png(out / "depth" / f"{stem}.png")
        valid = frame.depth > 0
        np.testing.assert_allclose(d[valid], frame.depth[valid], atol=6e-4)
        assert (d[~valid] == 0).all()
        with np.load(out / "points" / f"{stem}.npz") as z:
            assert sorted(z.files) == sorted(f"obj_{o.id}" for o in scene.objects)
            for o in scene.objects:
                p = z[f"obj_{o.id}"].astype(np.float64)
                assert len(p) == min(len(o.points_cam), 3000)
                # float16 storage: points stay within a few millimetres of the originals' bounds
                assert (p.min(0) >= o.points_cam.min(0) - 0.01).all() and (p.max(0) <= o.points_cam.max(0) + 0.01).all()


def test_hf_dataset_loads_both_ways(written, tmp_path):
    import datasets
    from PIL import Image

    out, items, summary = written
    n = summary["qa_total"]
    shards = sorted((out / "hf" / "data").glob("*.parquet"))
    assert len(shards) == -(-n // 7) == summary["hf_shards"]
    assert shards[0].name == f"train-00000-of-{len(shards):05d}.parquet"
    a = datasets.load_dataset("parquet", data_dir=str(out / "hf" / "data"), split="train",
                              cache_dir=str(tmp_path / "c1"))
    b = datasets.load_dataset(str(out / "hf"), split="train", cache_dir=str(tmp_path / "c2"))
    assert len(a) == len(b) == n
    first_q = items[0][2][0]
    for ds in (a, b):
        row = ds[0]
        assert isinstance(row["images"], list) and len(row["images"]) == 1
        img = row["images"][0]
        assert isinstance(img, Image.Image) and img.size == (items[0][0].width, items[0][0].height)
        user, asst = row["messages"]
        assert user["role"] == "user" and asst["role"] == "assistant"
        assert [c["type"] for c in user["content"]] == ["image", "text"]
        assert user["content"][1]["text"] == first_q.question
        assert asst["content"] == [{"type": "text", "text": first_q.answer}]
        assert row["prompt"] == [user] and row["completion"] == [asst]
        assert row["image_id"] == first_q.image_id and row["qa_type"] == first_q.qa_type
        assert row["value_m"] == pytest.approx(first_q.value_m)
    assert sorted(set(a["qa_type"])) == sorted(summary["qa_by_type"])
    card = (out / "hf" / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["configs"][0]["data_files"][0]["split"] == "train"


def test_llava_json(written):
    out, items, _ = written
    data = json.loads((out / "llava.json").read_text())
    with_qa = [(f, s, q) for f, s, q in items if q]
    assert len(data) == len(with_qa)
    for entry, (_, scene, qas) in zip(data, with_qa):
        assert entry["id"] == scene.image_id
        assert (out / entry["image"]).is_file() and entry["image"].startswith("images/")
        conv = entry["conversations"]
        assert len(conv) == 2 * len(qas)
        assert [c["from"] for c in conv] == ["human", "gpt"] * len(qas)
        assert conv[0]["value"] == "<image>\n" + qas[0].question
        assert all("<image>" not in c["value"] for c in conv[1:])
        assert [c["value"] for c in conv[1::2]] == [q.answer for q in qas]


def test_errors_and_summary(written):
    out, items, summary = written
    errs = pq.read_table(out / "errors.parquet").to_pylist()
    assert errs == [
        {"item": "bad_0.jpg", "stage": "read", "reason": "truncated JPEG"},
        {"item": "bad_1.jpg", "stage": "geometry", "reason": "no valid depth"},
        {"item": "bad_1.jpg", "stage": "qa", "reason": "second error for the same item"},
    ]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    assert summary["images_ok"] == len(items)
    assert summary["images_failed"] == {"read": 1, "geometry": 1}
    assert summary["images_in"] == len(items) + 2
    assert summary["objects"] == sum(len(s.objects) for _, s, _ in items)
    assert summary["images_canonicalized"] == sum(s.canonical.ok for _, s, _ in items)
    assert summary["complete"] is True and summary["time"] >= 0


def test_empty_run_writes_readable_files(tmp_path):
    import datasets

    out = tmp_path / "empty"
    with DatasetWriter(out) as w:
        pass
    assert pq.read_table(out / "qa.parquet").num_rows == 0
    assert pq.read_table(out / "qa.parquet").column_names == QA_COLUMNS
    assert pq.read_table(out / "errors.parquet").column_names == ["item", "stage", "reason"]
    assert json.loads((out / "llava.json").read_text()) == []
    # datasets 5 cannot load a Parquet file with no rows (documented); the shard still carries the HF features
    shard = out / "hf" / "data" / "train-00000-of-00001.parquet"
    assert pq.read_table(shard).num_rows == 0
    assert datasets.Features.from_arrow_schema(pq.read_schema(shard))["images"] == datasets.List(datasets.Image())
    assert w.summary["images_in"] == 0


def test_refuses_non_empty_folder_and_overwrite_keeps_foreign_files(tmp_path):
    out = tmp_path / "o"
    write_synthetic_output(out, 2)
    with pytest.raises(FileExistsError, match="not empty"):
        DatasetWriter(out)
    (out / "notes.txt").write_text("mine")
    s = write_synthetic_output(out, 1, n_failed=0, overwrite=True)
    assert s["images_ok"] == 1
    assert pq.read_table(out / "scenes.parquet").num_rows == 1
    assert len(list((out / "images").iterdir())) == 1
    assert (out / "notes.txt").read_text() == "mine"


def test_config_first_is_allowed(tmp_path):
    out = tmp_path / "o"
    p = write_config(out, {"n": np.int64(3), "path": Path("a/b"), "ratio": np.float32(0.5), "types": ("a", "b")})
    assert yaml.safe_load(p.read_text()) == {"n": 3, "path": "a/b", "ratio": 0.5, "types": ["a", "b"]}
    with DatasetWriter(out) as w:  # only config.yaml present: fine
        w.add(*synthetic_item(0))
    assert (out / "config.yaml").is_file()


def test_bad_input_raises_and_leaves_no_rows(tmp_path):
    frame, scene, qas = synthetic_item(0)
    with DatasetWriter(tmp_path / "o") as w:
        bad = synthetic_item(1)
        bad[1].objects[0].mask = np.zeros((3, 3), dtype=bool)
        with pytest.raises(ValueError, match="mask shape"):
            w.add(*bad)
        with pytest.raises(ValueError, match="QA for image"):
            w.add(frame, scene, qas + synthetic_item(2)[2])
        w.add(frame, scene, qas)
        with pytest.raises(ValueError, match="added twice"):
            w.add(frame, scene, qas)
    assert pq.read_table(tmp_path / "o" / "scenes.parquet").column("image_id").to_pylist() == [scene.image_id]
    assert w.summary["qa_total"] == len(qas)


def test_exception_inside_context_marks_incomplete(tmp_path):
    with pytest.raises(RuntimeError), DatasetWriter(tmp_path / "o") as w:
        w.add(*synthetic_item(0))
        raise RuntimeError("boom")
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["complete"] is False and s["images_ok"] == 1
    assert pq.read_table(tmp_path / "o" / "qa.parquet").num_rows > 0


def test_unsafe_image_ids_get_distinct_safe_files(tmp_path):
    ids = ["a/b", "a_b", "../x", "a b", ""]
    stems = [file_stem(i) for i in ids]
    assert len(set(stems)) == len(ids)
    assert all("/" not in s and not s.startswith(".") and s for s in stems)
    out = tmp_path / "o"
    with DatasetWriter(out) as w:
        for k, image_id in enumerate(["rgb/0.jpg", "../../evil"]):
            frame, scene, qas = synthetic_item(k)
            frame.image_id = scene.image_id = image_id
            for q in qas:
                q.image_id = image_id
            w.add(frame, scene, qas)
    rows = pq.read_table(out / "scenes.parquet").to_pylist()
    for r in rows:
        assert (out / r["image"]).resolve().parent == (out / "images").resolve()
    assert not (tmp_path / "evil.jpg").exists()


def test_hf_shards_exact_multiple_and_row_groups(tmp_path):
    n = write_synthetic_output(tmp_path / "a", 4, n_failed=0)["qa_total"]
    s = write_synthetic_output(tmp_path / "b", 4, n_failed=0, hf_shard_rows=n)
    shards = sorted((tmp_path / "b" / "hf" / "data").iterdir())
    assert [p.name for p in shards] == ["train-00000-of-00001.parquet"] and s["hf_shards"] == 1
    assert pq.ParquetFile(shards[0]).metadata.num_rows == n
    s = write_synthetic_output(tmp_path / "c", 4, n_failed=0, hf_shard_rows=max(1, n // 2))
    rows = [pq.ParquetFile(p).metadata.num_rows for p in sorted((tmp_path / "c" / "hf" / "data").iterdir())]
    assert sum(rows) == n and max(rows) <= max(1, n // 2) and len(rows) == s["hf_shards"]
