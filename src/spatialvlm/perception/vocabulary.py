"""The default open-vocabulary detection list: everyday indoor and street objects with a stable physical size,
no background stuff (walls, sky, ceiling) and no parts of objects. Pass your own with ``vocabulary=[...]`` or
``vocabulary_file`` (one entry per line, ``#`` comments)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_VOCABULARY: list[str] = [
    # furniture
    "chair", "armchair", "sofa", "table", "desk", "bed", "cabinet", "shelf", "bookshelf", "dresser",
    "nightstand", "stool", "bench", "wardrobe", "counter",
    # appliances and electronics
    "refrigerator", "microwave", "oven", "stove", "sink", "toilet", "bathtub", "washing machine",
    "television", "computer monitor", "laptop", "keyboard", "computer mouse", "phone", "printer", "speaker",
    "lamp", "fan",
    # household items
    "cup", "mug", "bottle", "glass", "bowl", "plate", "vase", "potted plant", "book", "box", "basket",
    "backpack", "handbag", "suitcase", "pillow", "blanket", "towel", "clock", "picture frame", "mirror",
    "trash can", "umbrella", "shoe", "toy", "teddy bear",
    # food
    "apple", "banana", "orange", "cake", "pizza", "sandwich",
    # people, animals
    "person", "dog", "cat", "bird",
    # outdoors
    "car", "truck", "bus", "bicycle", "motorcycle", "traffic light", "stop sign", "fire hydrant",
    "parking meter", "tree", "door",
]

# what the detector is also asked for to find the support surface (floor / table top) for canonicalization
DEFAULT_SUPPORT_PROMPTS: list[str] = ["floor", "table top"]


def load_vocabulary(path: str | Path) -> list[str]:
    """One entry per line; blank lines and ``#`` comments ignored; duplicates removed keeping the first."""
    out: list[str] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry and entry not in out:
            out.append(entry)
    if not out:
        raise ValueError(f"vocabulary file {path} holds no entries")
    return out
