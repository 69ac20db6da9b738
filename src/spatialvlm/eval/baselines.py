"""The baselines every report shows.

* :class:`BlindBaseline` (``blind``): answers without looking at the image. Per question type it says the
  majority answer (predicates: yes/no; choice: the object in the majority position, first or second named;
  classify: the majority relation word; clock: the majority hour) or, for quantitative types, the mean value.
  It is fitted on a training QA table (``blind:<qa.parquet>``) or, by default, on the benchmark itself
  (in-sample: the best constant answer per type, an upper bound for per-type priors; exactly chance on types
  balanced over their answers).
* ``blind-names`` (``BlindBaseline(by_names=True)``): the same, with statistics per (type, categories of the
  named objects), backing off to the per-type prior; fitted by 2-fold cross-fitting split by image (each half
  is answered from the other half, so it never sees the answers it is scored on). It shows how much object
  categories alone give away (a bed is usually bigger than a mug).
* :class:`OracleBaseline`: our own 3D pipeline answering directly. For each image it lifts the frame's depth
  and masks with :func:`spatialvlm.geometry.scene.build_scene` and computes each question's answer with
  :func:`spatialvlm.qa.types.compute_truth` (ungated: it always answers) about the same objects (by object
  id). Benchmark truths come from the generator's exact geometry, so the oracle measures our geometry against
  ground truth on questions a model sees in the image.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from spatialvlm.eval.items import BenchItem
from spatialvlm.records import ItemError


def _fold(image_id: str, seed: int) -> int:
    return zlib.crc32(f"{seed}:{image_id}".encode()) % 2


_CLAUSE = re.compile(r"\s+on the (?:left|right)$")


def base_label(name: str) -> str:
    """An object's category as named in a question ("chair on the left" -> "chair")."""
    return _CLAUSE.sub("", str(name).strip().lower())


class BlindBaseline:
    """Text-only priors; see the module docstring. ``by_names`` adds the named objects' categories to the
    statistics (a bed is usually bigger than a mug)."""

    def __init__(
        self,
        fit_rows: Sequence[dict] | None = None,
        seed: int = 0,
        name: str = "blind",
        by_names: bool = False,
    ) -> None:
        self.name = name
        self.seed = seed
        self.by_names = by_names
        self.stats = self._fit(fit_rows) if fit_rows is not None else None

    @classmethod
    def from_spec(cls, arg: str, seed: int = 0, by_names: bool = False) -> BlindBaseline:
        kind = "blind-names" if by_names else "blind"
        if not arg:
            return cls(None, seed, kind, by_names)
        p = Path(arg)
        if p.is_dir():
            cands = [p / "qa.parquet", *sorted(p.glob("data/*.parquet"))]
            p = next((c for c in cands if c.exists()), p)
        if not p.exists():
            raise FileNotFoundError(
                f"{kind} baseline: training QA table not found: {arg} "
                "(give qa.parquet from `spatialvlm synth`, or a benchmark folder)"
            )
        import pandas as pd

        df = pd.read_parquet(p)
        df = df.drop(columns=[c for c in ("image", "images") if c in df.columns])
        return cls(df.to_dict("records"), seed, f"{kind}:{arg}", by_names)

    # -- fitting ---------------------------------------------------------------------------------------------
    @staticmethod
    def _key(row: dict) -> tuple[str, Any] | None:
        fam = row.get("family")
        truth = row.get("truth")
        if fam == "quantitative":
            v = row.get("value_m")
            if v is None or (isinstance(v, float) and math.isnan(v)):
                v = float(truth)
            return ("value", float(v))
        if fam == "predicate":
            return ("label", str(truth).lower() in ("true", "yes", "1"))
        if fam == "choice":
            objs = list(row.get("objects") if row.get("objects") is not None else [])
            opts = list(row.get("options") if row.get("options") is not None else []) or objs
            if not opts:
                return None
            return ("label", opts.index(truth) if truth in opts else None)
        if fam in ("classify", "direction"):
            return ("label", str(truth))
        return None

    @staticmethod
    def _groups(row: dict, by_names: bool) -> list[tuple]:
        g: list[tuple] = [(row["qa_type"],)]
        objs = row.get("objects")
        if by_names and objs is not None and len(objs):
            g.append((row["qa_type"], *[base_label(o) for o in objs]))
        return g

    def _fit(self, rows: Iterable[dict], levels: str = "all") -> dict[tuple, Any]:
        """Statistics per group: the type (levels "all" / "type") and, with names, the type and the objects'
        categories (levels "all" / "names")."""
        vals: dict[tuple, list] = defaultdict(list)
        labels: dict[tuple, Counter] = defaultdict(Counter)
        for r in rows:
            k = self._key(r)
            if k is None or k[1] is None:
                continue
            groups = self._groups(r, self.by_names)
            if levels == "type":
                groups = groups[:1]
            elif levels == "names":
                groups = groups[1:]
            for g in groups:
                if k[0] == "value":
                    vals[g].append(k[1])
                else:
                    labels[g][k[1]] += 1
        stats: dict[tuple, Any] = {}
        for g, v in vals.items():
            stats[g] = ("mean", sum(v) / len(v))
        for g, c in labels.items():
            # ties broken by the label's text so the choice is deterministic
            stats[g] = ("majority", min(c.items(), key=lambda kv: (-kv[1], str(kv[0])))[0])
        all_vals = [x for g, v in vals.items() if len(g) == 1 for x in v]
        stats[("__mean__",)] = ("mean", sum(all_vals) / len(all_vals) if all_vals else 1.0)
        return stats

    # -- answering -------------------------------------------------------------------------------------------
    @staticmethod
    def _say(item: BenchItem, stat: tuple[str, Any] | None, fallback_mean: float) -> str:
        fam = item.family
        if fam == "quantitative":
            v = stat[1] if stat and stat[0] == "mean" else fallback_mean
            return f"{v:.2f} meters"
        if fam == "predicate":
            return "Yes." if (stat[1] if stat else True) else "No."
        if fam == "choice":
            opts = item.options or item.objects
            k = stat[1] if stat and isinstance(stat[1], int) and stat[1] < len(opts) else 0
            return str(opts[k])
        if fam == "classify":
            return str(stat[1]) if stat else str((item.options or ["?"])[0])
        if fam == "direction":
            return f"{stat[1] if stat else 12} o'clock"
        return ""

    def _lookup(self, stats_names: dict, stats_type: dict, item: BenchItem) -> str:
        row = item.to_row()
        groups = self._groups(row, self.by_names)
        stat = None
        if self.by_names and len(groups) > 1:
            stat = stats_names.get(groups[1])
        if stat is None:
            stat = stats_type.get(groups[0])
        return self._say(item, stat, stats_type[("__mean__",)][1])

    def answer(self, images, questions):  # pragma: no cover - guidance only
        raise TypeError(
            "the blind baseline answers benchmark items (answer_items), not raw image/question pairs"
        )

    def answer_items(self, items: Sequence[BenchItem]) -> list[str]:
        if self.stats is not None:
            return [self._lookup(self.stats, self.stats, it) for it in items]
        rows = [it.to_row() for it in items]
        # per-type priors in-sample: the best constant answer per type on this very benchmark (an upper bound
        # for priors; exactly chance on types balanced over their answers)
        type_stats = self._fit(rows, "type")
        if not self.by_names:
            return [self._lookup({}, type_stats, it) for it in items]
        # category statistics cross-fitted by image: each half answered from the other half
        folds = [_fold(it.image_id, self.seed) for it in items]
        names = {f: self._fit([r for r, g in zip(rows, folds) if g != f], "names") for f in (0, 1)}
        return [self._lookup(names[g], type_stats, it) for it, g in zip(items, folds)]


class OracleBaseline:
    """Our pipeline's geometry answering directly; see the module docstring."""

    def __init__(
        self,
        frames_dir: str | Path | None = None,
        bench_dir: str | Path | None = None,
        geometry_cfg: Any = None,
        name: str = "oracle",
    ) -> None:
        self.name = name
        self.frames_dir = Path(frames_dir) if frames_dir else None
        self.bench_dir = Path(bench_dir) if bench_dir else None
        self.geometry_cfg = geometry_cfg
        self.failures: dict[str, str] = {}

    def _frames_dir(self) -> Path:
        if self.frames_dir is not None:
            return self.frames_dir
        if self.bench_dir is not None and (self.bench_dir / "bench.json").exists():
            import json

            meta = json.loads((self.bench_dir / "bench.json").read_text())
            if meta.get("frames_dir"):
                return Path(meta["frames_dir"])
        raise ValueError(
            "the oracle needs the benchmark's frames (depth + masks): use oracle:<frames dir>, or a "
            "benchmark built by bench-build (its bench.json names the frames folder)"
        )

    def available(self) -> str | None:
        """None when the oracle can run, else why not (no frames behind this benchmark)."""
        try:
            d = self._frames_dir()
        except ValueError as exc:
            return str(exc)
        if not d.exists():
            return f"the benchmark's frames folder {d} does not exist (moved?); pass oracle:<frames dir>"
        return None

    @staticmethod
    def say(family: str, truth: Any) -> str:
        if family == "predicate":
            return "Yes." if bool(truth) else "No."
        if family == "quantitative":
            return f"{float(truth):.3f} m"
        if family == "direction":
            return f"{int(truth)} o'clock"
        return str(truth)

    def answer_scene(self, scene, items: Sequence[BenchItem]) -> list[str | ItemError]:
        from spatialvlm.qa.types import UNGATED, compute_truth

        out: list[str | ItemError] = []
        by_id = {o.id: o for o in scene.objects}
        for it in items:
            objs = [by_id.get(i) for i in it.object_ids]
            if not it.object_ids or any(o is None for o in objs):
                missing = [i for i, o in zip(it.object_ids, objs) if o is None]
                out.append(
                    ItemError(
                        it.id,
                        "oracle",
                        f"object(s) {missing} not in the pipeline scene "
                        f"(dropped: {[d.reason for d in scene.dropped]})",
                    )
                )
                continue
            # answer in the benchmark's names (a choice answer is a name)
            saved = [o.name for o in objs]
            for o, n in zip(objs, it.objects or saved):
                o.name = n
            try:
                truth = compute_truth(it.qa_type, scene, objs[0], objs[1] if len(objs) > 1 else None, UNGATED)
            except ValueError as exc:
                out.append(ItemError(it.id, "oracle", str(exc)))
                continue
            finally:
                for o, n in zip(objs, saved):
                    o.name = n
            if truth is None:
                out.append(
                    ItemError(it.id, "oracle", "pipeline scene cannot answer this type (not canonicalized)")
                )
                continue
            out.append(self.say(it.family, truth))
        return out

    def answer(self, images, questions):  # pragma: no cover - guidance only
        raise TypeError("the oracle answers benchmark items (answer_items) from their frames, not raw images")

    def answer_items(self, items: Sequence[BenchItem]) -> list[str | ItemError]:
        from spatialvlm.geometry.scene import build_scene
        from spatialvlm.io.frames import read_frames

        want: dict[str, list[int]] = defaultdict(list)
        for k, it in enumerate(items):
            want[it.image_id].append(k)
        out: list[str | ItemError | None] = [None] * len(items)
        for fr in read_frames(self._frames_dir()):
            if isinstance(fr, ItemError) or fr.image_id not in want:
                continue
            idx = want.pop(fr.image_id)
            try:
                scene = build_scene(fr, self.geometry_cfg)
            except ValueError as exc:
                for k in idx:
                    out[k] = ItemError(items[k].id, "oracle", f"geometry failed: {exc}")
                continue
            for k, a in zip(idx, self.answer_scene(scene, [items[k] for k in idx])):
                out[k] = a
            if not want:
                break
        for img, idx in want.items():
            for k in idx:
                out[k] = ItemError(items[k].id, "oracle", f"frame {img!r} not found in {self._frames_dir()}")
        return out  # type: ignore[return-value]
