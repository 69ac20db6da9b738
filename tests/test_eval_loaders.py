"""One test per public benchmark format, on small files written here in that format."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatialvlm.eval.loaders import (
    load_any,
    load_blink,
    load_cvbench,
    load_qspatial,
    load_spatialrgpt,
    load_vsr,
)
from spatialvlm.eval.metrics import score_item


def _png(seed: int = 0, size=(48, 32)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _image_struct(b: bytes | None, path: str | None = None) -> dict:
    return {"bytes": b, "path": path}


IMG_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _score(it, pred):
    return score_item(
        it.family, it.truth, pred, value_m=it.value_m, options=it.options or None, relation=it.relation
    )


def test_qspatial_parquet(tmp_path):
    table = pa.table(
        {
            "question": [
                "How tall is the door?",
                "What is the distance between the mug and the plate?",
                "How wide is the sofa?",
            ],
            "answer_value": [6.5, 30.0, 2.1],
            "answer_unit": ["feet", "centimeters", "meters"],
            "question_type": ["height", "distance", "width"],
            "image_path": ["a.jpg", "b.jpg", "missing.jpg"],
            "image": pa.array(
                [_image_struct(_png(0)), _image_struct(_png(1)), _image_struct(None, None)], IMG_TYPE
            ),
        }
    )
    d = tmp_path / "qspatial" / "data"
    d.mkdir(parents=True)
    pq.write_table(table, d / "QSpatial_plus-00000.parquet")
    items, errors = load_qspatial(tmp_path / "qspatial")
    assert len(items) == 2 and len(errors) == 1 and "missing" not in items[0].image_id
    assert items[0].value_m == pytest.approx(6.5 * 0.3048)
    assert items[1].value_m == pytest.approx(0.30)
    assert items[0].family == "quantitative" and items[0].qa_type == "height"
    assert items[0].load_image().size == (48, 32)
    assert _score(items[1], "about 1 foot")["within_50_200"] == 1
    items2, _, bench_dir = load_any(f"qspatial:{tmp_path / 'qspatial'}")
    assert len(items2) == 2 and bench_dir is None


def test_spatialrgpt_json(tmp_path):
    (tmp_path / "imgs").mkdir()
    for k in range(4):
        (tmp_path / "imgs" / f"{k}.png").write_bytes(_png(k, (64, 48)))
    recs = [
        {
            "id": "a",
            "image_info": {"file_path": "0.png"},
            "text_q": "Is Region [0] behind Region [1]?",
            "conversations": [
                {"from": "human", "value": "<image>\nIs <mask> <depth> behind <mask> <depth>?"},
                {"from": "gpt", "value": "No, Region [0] is in front of Region [1]."},
            ],
            "bbox": [[2, 2, 20, 20], [30, 10, 60, 40]],
            "qa_info": {"type": "qualitative", "category": "behind_predicate"},
        },
        {
            "id": "b",
            "image_info": {"file_path": "1.png"},
            "text_q": "Which is taller, Region [0] or Region [1]?",
            "conversations": [
                {"from": "human", "value": "x"},
                {"from": "gpt", "value": "Region [1] is taller."},
            ],
            "bbox": [[2, 2, 20, 20], [30, 10, 60, 40]],
            "qa_info": {"type": "qualitative", "category": "tall_choice"},
        },
        {
            "id": "c",
            "image_info": {"file_path": "2.png"},
            "text_q": "What is the height of Region [0]?",
            "conversations": [
                {"from": "human", "value": "x"},
                {"from": "gpt", "value": "It is 6.91 feet tall."},
            ],
            "bbox": [[2, 2, 20, 20]],
            "qa_info": {"type": "quantitative", "category": "height_data"},
        },
        {
            "id": "d",
            "image_info": {"file_path": "3.png"},
            "text_q": "Where is Region [1] from Region [0]?",
            "conversations": [
                {"from": "human", "value": "x"},
                {"from": "gpt", "value": "Region [1] is at 2 o'clock."},
            ],
            "bbox": [[2, 2, 20, 20], [30, 10, 60, 40]],
            "qa_info": {"type": "quantitative", "category": "direction"},
        },
        {
            "id": "e",
            "image_info": {"file_path": "nope.png"},
            "text_q": "How wide is Region [0]?",
            "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "1 meter"}],
            "qa_info": {"type": "quantitative", "category": "width_data"},
        },
        {
            "id": "f",
            "image_info": {"file_path": "0.png"},
            "text_q": "How far?",
            "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "Quite far."}],
            "qa_info": {"type": "quantitative", "category": "distance_data"},
        },
    ]
    p = tmp_path / "SpatialRGPT-Bench_v1.json"
    p.write_text(json.dumps(recs))
    items, errors = load_spatialrgpt(p, image_root=tmp_path / "imgs")
    by = {it.id: it for it in items}
    assert set(by) == {"spatialrgpt:a", "spatialrgpt:b", "spatialrgpt:c", "spatialrgpt:d"}
    assert {e.item for e in errors} == {"spatialrgpt:e", "spatialrgpt:f"}
    assert all(e.reason for e in errors)
    a, b, c, d = (by[f"spatialrgpt:{k}"] for k in "abcd")
    assert (a.family, a.truth, a.relation) == ("predicate", "no", "behind")
    assert (b.family, b.truth, b.options) == ("choice", "Region [1]", ["Region [0]", "Region [1]"])
    assert c.family == "quantitative" and c.qa_type == "height" and c.value_m == pytest.approx(6.91 * 0.3048)
    assert (d.family, d.truth) == ("direction", "2")
    im = a.load_image()  # regions drawn in colour on the image
    assert im.size == (64, 48) and im.getpixel((2, 10)) == (255, 0, 0)
    assert _score(b, "Region [1]")["correct"] == 1 and _score(b, "Region [0] is taller")["correct"] == 0
    # jsonl variant reads the same
    p2 = tmp_path / "bench.jsonl"
    p2.write_text("\n".join(json.dumps(r) for r in recs))
    assert len(load_spatialrgpt(p2, image_root=tmp_path / "imgs")[0]) == 4


def test_cvbench_parquet_and_jsonl(tmp_path):
    rows = {
        "idx": [0, 1, 2],
        "type": ["3D", "3D", "2D"],
        "task": ["Depth", "Distance", "Count"],
        "question": [
            "Which is closer to the camera, the sink or the bottle?",
            "Which object is closer to the desk, the shelves or the books?",
            "How many chairs?",
        ],
        "choices": [["sink", "bottle"], ["shelves", "books"], ["1", "2", "3"]],
        "answer": ["(B)", "(A)", "(C)"],
        "prompt": [
            "Which is closer to the camera, the sink (red box) or the bottle (blue box)? (A) sink (B) bottle",
            "Which object is closer to the desk? (A) shelves (B) books",
            "How many? (A) 1 (B) 2 (C) 3",
        ],
        "filename": ["img/3D/depth/x.png", "img/3D/distance/y.png", "img/2D/count/z.png"],
        "image": pa.array([_image_struct(_png(i)) for i in range(3)], IMG_TYPE),
    }
    pq.write_table(pa.table(rows), tmp_path / "test.parquet")
    items, errors = load_cvbench(tmp_path / "test.parquet")
    assert [it.truth for it in items] == ["bottle", "shelves"] and not errors
    assert items[0].qa_type == "cvbench_depth" and items[0].options == ["sink", "bottle"]
    assert _score(items[0], "(B)")["correct"] == 1
    assert _score(items[0], "The sink is closer.")["correct"] == 0
    assert len(load_cvbench(tmp_path / "test.parquet", subset=None)[0]) == 3
    # jsonl + image files
    (tmp_path / "img" / "3D" / "depth").mkdir(parents=True)
    (tmp_path / "img" / "3D" / "depth" / "x.png").write_bytes(_png(5))
    jl = tmp_path / "test.jsonl"
    with open(jl, "w") as f:
        for i in range(3):
            rec = {k: v[i] for k, v in rows.items() if k != "image"}
            f.write(json.dumps(rec) + "\n")
    items, errors = load_cvbench(jl)
    assert len(items) == 1 and len(errors) == 1 and "not found" in errors[0].reason
    assert items[0].load_image().size == (48, 32)


def test_blink_parquet_folders(tmp_path):
    none_img = _image_struct(None)
    for task, choices, answers, question in [
        ("Relative_Depth", [["A", "B"], ["A", "B"]], ["(A)", "(B)"], "Which point is closer to the camera?"),
        ("Spatial_Relation", [["yes", "no"], ["yes", "no"]], ["(B)", "(A)"], "Is the car beneath the cat?"),
    ]:
        d = tmp_path / task
        d.mkdir()
        pq.write_table(
            pa.table(
                {
                    "idx": [f"val_{task}_1", f"val_{task}_2"],
                    "question": [question] * 2,
                    "sub_task": [task.replace("_", " ")] * 2,
                    "image_1": pa.array([_image_struct(_png(1)), _image_struct(_png(2))], IMG_TYPE),
                    "image_2": pa.array([none_img, none_img], IMG_TYPE),
                    "choices": choices,
                    "answer": answers,
                    "prompt": [
                        f"{question}\nSelect from the following choices.\n(A) {c[0]}\n(B) {c[1]}"
                        for c in choices
                    ],
                }
            ),
            d / "val-00000-of-00001.parquet",
        )
    items, errors = load_blink(tmp_path)
    assert not errors and len(items) == 4
    depth = [it for it in items if it.qa_type == "blink_relative_depth"]
    rel = [it for it in items if it.qa_type == "blink_spatial_relation"]
    assert [it.truth for it in depth] == ["A", "B"] and depth[0].family == "choice"
    assert [it.truth for it in rel] == ["no", "yes"] and rel[0].family == "predicate"
    assert _score(depth[0], "(A)")["correct"] == 1 and _score(depth[0], "Point B is closer.")["correct"] == 0
    assert _score(rel[0], "No, it is not.")["correct"] == 1
    assert len(load_any(f"blink:{tmp_path}")[0]) == 4


def test_vsr_jsonl(tmp_path):
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "000000085637.jpg").write_bytes(_png(3))
    lines = [
        {
            "image": "000000085637.jpg",
            "caption": "The teddy bear is at the right side of the person.",
            "label": 1,
            "relation": "at the right side of",
        },
        {
            "image": "000000085637.jpg",
            "caption": "The cat is under the table.",
            "label": 0,
            "relation": "under",
        },
        {"image": "000000000001.jpg", "caption": "The dog is on the bed.", "label": 1, "relation": "on"},
    ]
    p = tmp_path / "test.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in lines))
    items, errors = load_vsr(p, image_root=tmp_path / "coco")
    assert [it.truth for it in items] == ["yes", "no"] and len(errors) == 1
    assert "teddy bear" in items[0].question and items[0].meta["relation"] == "at the right side of"
    assert _score(items[1], "No.")["correct"] == 1


def test_unknown_bench_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_any(str(tmp_path / "nothing_here"))
