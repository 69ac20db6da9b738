"""Synthetic QA datasets in the synth output layout (OUT/hf/data/*.parquet + OUT/qa.parquet), for training tests.

Each image shows two coloured squares on a grey canvas; questions ask whether one is left of the other (predicate),
which of them is more to the left (choice) and how far apart they are (quantitative, 1 pixel = 1 cm). The objects
table holds each square's 2D box and label (and a made-up depth: 1 m for the first, 2 m for the second, 3 m for the
background), and like a real synth output the folder has images/, masks/ (instance map, object_id + 1) and depth/
(millimetre PNG) per image, named in scenes.parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# dimensions of the tiny models the training tests build (seconds per test on one core)
SMALL = dict(vocab_size=400, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, num_kv_heads=1,
             vision_dim=32, vision_depth=2, vision_heads=2, max_pixels=112 * 84, image_size=56)

COLOURS = {"red box": (220, 40, 40), "blue box": (40, 60, 220), "green box": (40, 200, 60)}


def _features():
    from datasets import Features, Image, List, Value

    content = List({"type": Value("string"), "text": Value("string")})
    turn = {"role": Value("string"), "content": content}
    return Features({"images": List(Image()), "messages": List(turn), "prompt": List(turn), "completion": List(turn),
                     "image_id": Value("string"), "qa_type": Value("string"), "value_m": Value("float64")})


def make_dataset(out: Path, n_images: int = 12, seed: int = 0, size: tuple[int, int] = (64, 48)) -> Path:
    import io

    import pandas as pd
    from datasets import Dataset
    from PIL import Image

    from spatialvlm.io.writers import encode_depth_png, encode_instance_png

    rng = np.random.default_rng(seed)
    w, h = size
    for sub in ("images", "masks", "depth"):
        (Path(out) / sub).mkdir(parents=True, exist_ok=True)
    rows, qa, objects, scenes = [], [], [], []
    names = list(COLOURS)
    for k in range(n_images):
        a, b = rng.choice(len(names), size=2, replace=False)
        na, nb = names[a], names[b]
        img = np.full((h, w, 3), 128, np.uint8)
        xa, xb = rng.integers(2, w - 12, size=2)
        ya, yb = rng.integers(2, h - 12, size=2)
        img[ya:ya + 10, xa:xa + 10] = COLOURS[na]
        img[yb:yb + 10, xb:xb + 10] = COLOURS[nb]
        inst = np.zeros((h, w), np.uint16)
        depth = np.full((h, w), 3.0, np.float32)
        inst[ya:ya + 10, xa:xa + 10], depth[ya:ya + 10, xa:xa + 10] = 1, 1.0
        inst[yb:yb + 10, xb:xb + 10], depth[yb:yb + 10, xb:xb + 10] = 2, 2.0
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        image = {"bytes": buf.getvalue(), "path": None}
        iid = f"img_{seed}_{k:03d}"
        (Path(out) / "images" / f"{iid}.png").write_bytes(buf.getvalue())
        (Path(out) / "masks" / f"{iid}.png").write_bytes(encode_instance_png(inst))
        (Path(out) / "depth" / f"{iid}.png").write_bytes(encode_depth_png(depth))
        dist_m = float(np.hypot(float(xa) - float(xb), float(ya) - float(yb))) / 100.0
        left = bool(xa < xb)
        items = [
            ("left_predicate", "predicate", f"Is the {na} to the left of the {nb}?",
             "Yes, it is." if left else "No, it is not.", "true" if left else "false", None, [na, nb]),
            ("left_choice", "choice", f"Which is more to the left, the {na} or the {nb}?",
             f"The {na if left else nb}.", na if left else nb, None, [na, nb]),
            ("distance", "quantitative", f"How far is the {na} from the {nb}?",
             f"About {dist_m:.2f} meters.", f"{dist_m}", dist_m, [na, nb]),
        ]
        for oid, (name, x, y) in enumerate(((na, xa, ya), (nb, xb, yb))):
            objects.append({"image_id": iid, "object_id": oid, "name": name, "label": name,
                            "box2d": [float(x), float(y), float(x + 10), float(y + 10)],
                            "aabb_cam_center": [0.0, 0.0, 1.0 + oid]})
        scenes.append({"image_id": iid, "width": w, "height": h, "image": f"images/{iid}.png",
                       "depth": f"depth/{iid}.png", "masks": f"masks/{iid}.png"})
        for qa_type, fam, q, ans, truth, val, objs in items:
            user = {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": q}]}
            asst = {"role": "assistant", "content": [{"type": "text", "text": ans}]}
            rows.append({"images": [image], "messages": [user, asst], "prompt": [user], "completion": [asst],
                         "image_id": iid, "qa_type": qa_type, "value_m": val})
            qa.append({"image_id": iid, "qa_type": qa_type, "family": fam, "question": q, "answer": ans,
                       "value_m": val, "truth": truth, "objects": objs, "object_ids": [0, 1]})
    data_dir = Path(out) / "hf" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    ds = Dataset.from_list(rows, features=_features())
    ds.to_parquet(str(data_dir / "train-00000-of-00001.parquet"))
    pd.DataFrame(qa).to_parquet(Path(out) / "qa.parquet")
    pd.DataFrame(objects).to_parquet(Path(out) / "objects.parquet")
    pd.DataFrame(scenes).to_parquet(Path(out) / "scenes.parquet")
    return Path(out)
