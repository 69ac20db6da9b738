"""One benchmark question, whatever benchmark it came from."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatialvlm.qa.taxonomy import CLASSIFY_PAIRS, TYPES


@dataclass
class BenchItem:
    """A question with its exact answer.

    ``truth`` is a string: "yes"/"no" (predicate), the chosen option (choice), the relation word (classify),
    metres (quantitative, also in ``value_m``) or the hour (direction). ``options`` holds the candidates a
    choice / classify answer is matched against. The image is held as encoded bytes, a file path, or a
    callable that returns a PIL image; :meth:`load_image` decodes it."""

    id: str
    image_id: str
    qa_type: str
    family: str
    question: str
    truth: str
    answer: str = ""  # the reference answer sentence, when there is one
    value_m: float | None = None
    options: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    object_ids: list[int] = field(default_factory=list)
    relation: str | None = None
    source: str = ""
    image: Any = None  # bytes | str | Path | PIL.Image.Image | Callable[[], PIL.Image.Image]
    meta: dict[str, Any] = field(default_factory=dict)

    def load_image(self):
        from PIL import Image

        im = self.image
        if im is None:
            raise ValueError(f"item {self.id} has no image")
        if isinstance(im, (bytes, bytearray)):
            im = Image.open(io.BytesIO(im))
        elif isinstance(im, (str, Path)):
            if not Path(im).exists():
                raise FileNotFoundError(f"item {self.id}: image file not found: {im}")
            im = Image.open(im)
        elif isinstance(im, dict) and (im.get("bytes") or im.get("path")):
            im = Image.open(io.BytesIO(im["bytes"])) if im.get("bytes") else Image.open(im["path"])
        elif isinstance(im, Callable):  # type: ignore[arg-type]
            im = im()
        return im.convert("RGB")

    def to_row(self) -> dict[str, Any]:
        """Everything but the image, JSON-ready."""
        return {
            "id": self.id,
            "image_id": self.image_id,
            "qa_type": self.qa_type,
            "family": self.family,
            "question": self.question,
            "answer": self.answer,
            "truth": self.truth,
            "value_m": self.value_m,
            "options": list(self.options),
            "objects": list(self.objects),
            "object_ids": list(self.object_ids),
            "relation": self.relation,
            "source": self.source,
        }


def options_for_type(qa_type: str, objects: list[str]) -> list[str]:
    """The answer candidates of one of our question types: the two names (choice) or the relation pair
    (classify); empty for other families."""
    info = TYPES.get(qa_type)
    if info is None:
        return []
    if info.family == "choice":
        return list(objects)
    if info.family == "classify":
        pair = next(p for p in CLASSIFY_PAIRS if p[0] == info.relation)
        return list(pair)
    return []


def truth_string(truth: Any) -> str:
    if isinstance(truth, bool):
        return "yes" if truth else "no"
    try:
        import numpy as np

        if isinstance(truth, np.bool_):
            return "yes" if bool(truth) else "no"
    except ImportError:  # pragma: no cover
        pass
    return str(truth)
