"""Lazy, read-only access to an output folder for the viewer.

Nothing is materialised in full. At open, only the small per-image columns of ``scenes.parquet`` are read
(``image_id``, ``canonicalized``, ``n_qa``): about a megabyte for 100k images. Everything else is read on demand:

* a grid page reads only the row groups of ``scenes.parquet`` that hold that page's rows;
* filters scan one or two columns of one table (``qa_type`` of ``qa.parquet``, ``name``/``label`` of
  ``objects.parquet``, ``item`` of ``errors.parquet``) with a pyarrow dataset filter, and the resulting row
  selections are cached (LRU);
* an image page reads the row groups that hold that image's QA and object rows. The writer puts the rows of one
  image next to each other and in the same image order in every table, so the QA rows of image ``i`` start at
  ``sum(n_qa[:i])``; the object rows are located from the ``image_id`` column of ``objects.parquet`` (read once,
  on the first image page). When a folder does not have that layout (rows of an image not contiguous, or in
  another order), a filtered scan is used instead, which is slower but still correct.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from spatialvlm.io import writers as W


class _LRU:
    def __init__(self, size: int) -> None:
        self.size, self.d, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.d:
                self.d.move_to_end(key)
                return self.d[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.d[key] = value
            self.d.move_to_end(key)
            while len(self.d) > self.size:
                self.d.popitem(last=False)


class RowGroupReader:
    """Reads row ranges of one Parquet file through its row-group index (only the overlapping groups)."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.file = pq.ParquetFile(path)
        md = self.file.metadata
        counts = np.array([md.row_group(i).num_rows for i in range(md.num_row_groups)], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.num_rows = int(self.starts[-1])
        self.lock = threading.Lock()  # ParquetFile is not safe to share between threads

    def read_ranges(self, ranges: list[tuple[int, int]], columns: list[str] | None = None):
        """Rows ``[a, b)`` for each range, concatenated in the given order, as a pyarrow Table."""
        import pyarrow as pa

        groups = sorted({g for a, b in ranges if b > a
                         for g in range(int(np.searchsorted(self.starts, a, "right") - 1),
                                        int(np.searchsorted(self.starts, b - 1, "right")))})
        if not groups:
            return self.file.schema_arrow.empty_table().select(columns) if columns else \
                self.file.schema_arrow.empty_table()
        with self.lock:
            t = self.file.read_row_groups(groups, columns=columns)
        offsets, acc = {}, 0
        for g in groups:
            offsets[g] = acc
            acc += int(self.starts[g + 1] - self.starts[g])
        take = []
        for a, b in ranges:
            for r in range(a, b):
                g = int(np.searchsorted(self.starts, r, "right") - 1)
                take.append(offsets[g] + r - int(self.starts[g]))
        return t.take(pa.array(take, type=pa.int64()))

    def read_rows(self, rows: list[int] | np.ndarray, columns: list[str] | None = None):
        return self.read_ranges([(int(r), int(r) + 1) for r in rows], columns)


def _clean(v: Any) -> Any:
    """JSON-safe values (NaN -> None)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


class OutputFolder:
    """A read-only view of one output folder (see docs/outputs.md)."""

    def __init__(self, root: Path | str) -> None:
        import pyarrow.parquet as pq

        self.root = Path(root).resolve()
        if not (self.root / W.SCENES_FILE).is_file():
            raise FileNotFoundError(f"{self.root / W.SCENES_FILE} not found: not a spatialvlm output folder "
                                    "(run `spatialvlm synth` or `spatialvlm demo` first)")
        self.scenes = RowGroupReader(self.root / W.SCENES_FILE)
        idx = pq.read_table(self.root / W.SCENES_FILE, columns=["image_id", "canonicalized", "n_qa"])
        self.image_ids: list[str] = idx.column("image_id").to_pylist()
        self.row_of: dict[str, int] = {i: k for k, i in enumerate(self.image_ids)}
        self.canon = np.asarray(idx.column("canonicalized").to_numpy(zero_copy_only=False), dtype=bool)
        self.n_qa = np.asarray(idx.column("n_qa").to_numpy(zero_copy_only=False), dtype=np.int64)
        self.qa_start = np.concatenate([[0], np.cumsum(self.n_qa)])
        self.qa = RowGroupReader(self.root / W.QA_FILE) if (self.root / W.QA_FILE).is_file() else None
        self.objects = RowGroupReader(self.root / W.OBJECTS_FILE) if (self.root / W.OBJECTS_FILE).is_file() else None
        self._qa_layout_ok = self.qa is not None and self.qa.num_rows == int(self.qa_start[-1])
        self._obj_runs: dict[str, tuple[int, int]] | None = None
        self._obj_runs_lock = threading.Lock()
        self._cache = _LRU(64)
        self.summary = {}
        if (self.root / W.SUMMARY_FILE).is_file():
            self.summary = json.loads((self.root / W.SUMMARY_FILE).read_text(encoding="utf-8"))

    # -- paths --------------------------------------------------------------------------------------------------
    def safe_path(self, rel: str) -> Path:
        """``rel`` resolved inside the folder, or PermissionError (absolute paths, ``..``, links leaving it)."""
        if not rel or "\x00" in rel or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
            raise PermissionError(f"refused path {rel!r}")
        parts = rel.replace("\\", "/").split("/")
        if any(p in ("..", "") for p in parts):
            raise PermissionError(f"refused path {rel!r}")
        p = (self.root / rel).resolve()
        if os.path.commonpath([str(p), str(self.root)]) != str(self.root):
            raise PermissionError(f"refused path {rel!r}: outside the dataset folder")
        if not p.is_file():
            raise FileNotFoundError(rel)
        return p

    # -- meta ---------------------------------------------------------------------------------------------------
    def qa_types(self) -> list[str]:
        key = ("qa_types",)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if self.summary.get("qa_by_type"):
            types = sorted(self.summary["qa_by_type"])
        elif self.qa is not None:
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            col = pq.read_table(self.qa.path, columns=["qa_type"]).column("qa_type")
            types = sorted(x for x in pc.unique(col).to_pylist() if x is not None)
        else:
            types = []
        self._cache.put(key, types)
        return types

    def meta(self) -> dict:
        err_rows = 0
        if (self.root / W.ERRORS_FILE).is_file():
            import pyarrow.parquet as pq

            err_rows = pq.ParquetFile(self.root / W.ERRORS_FILE).metadata.num_rows
        return {
            "name": self.root.name,
            "images": len(self.image_ids),
            "qa": int(self.qa_start[-1]),
            "canonicalized": int(self.canon.sum()),
            "errors": err_rows,
            "qa_types": self.qa_types(),
            "qa_by_type": self.summary.get("qa_by_type", {}),
            "summary": self.summary,
        }

    # -- filtering ----------------------------------------------------------------------------------------------
    def _ids_to_rows(self, ids) -> np.ndarray:
        rows = [self.row_of[i] for i in set(ids) if i in self.row_of]
        return np.array(sorted(rows), dtype=np.int64)

    def _rows_with_type(self, qa_type: str) -> np.ndarray:
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        if self.qa is None:
            return np.zeros(0, dtype=np.int64)
        t = ds.dataset(self.qa.path, format="parquet").to_table(
            columns=["image_id"], filter=ds.field("qa_type") == qa_type)
        return self._ids_to_rows(pc.unique(t.column("image_id")).to_pylist())

    def _rows_with_object(self, text: str) -> np.ndarray:
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        if self.objects is None:
            return np.zeros(0, dtype=np.int64)
        pat = text.strip().lower()
        f = pc.match_substring(pc.utf8_lower(ds.field("name")), pat) | \
            pc.match_substring(pc.utf8_lower(ds.field("label")), pat)
        t = ds.dataset(self.objects.path, format="parquet").to_table(columns=["image_id"], filter=f)
        return self._ids_to_rows(pc.unique(t.column("image_id")).to_pylist())

    def _rows_with_errors(self) -> np.ndarray:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if not (self.root / W.ERRORS_FILE).is_file():
            return np.zeros(0, dtype=np.int64)
        col = pq.read_table(self.root / W.ERRORS_FILE, columns=["item"]).column("item")
        return self._ids_to_rows(pc.unique(col).to_pylist())

    def select(self, qa_type: str = "", obj: str = "", canon: str = "", errors: str = "") -> np.ndarray:
        """Scene row numbers matching all the given filters (empty string = no filter), ascending."""
        key = ("select", qa_type, obj.strip().lower(), canon, errors)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        mask = np.ones(len(self.image_ids), dtype=bool)
        if canon in ("yes", "no"):
            mask &= self.canon if canon == "yes" else ~self.canon
        elif canon:
            raise ValueError(f"canon filter must be '', 'yes' or 'no', got {canon!r}")
        for rows, on in ((lambda: self._rows_with_type(qa_type), bool(qa_type)),
                         (lambda: self._rows_with_object(obj), bool(obj.strip()))):
            if on:
                m = np.zeros_like(mask)
                m[rows()] = True
                mask &= m
        if errors in ("yes", "no"):
            m = np.zeros_like(mask)
            m[self._rows_with_errors()] = True
            mask &= m if errors == "yes" else ~m
        elif errors:
            raise ValueError(f"errors filter must be '', 'yes' or 'no', got {errors!r}")
        rows = np.flatnonzero(mask)
        self._cache.put(key, rows)
        return rows

    def page(self, page: int = 0, size: int = 48, **filters: str) -> dict:
        size = max(1, min(int(size), 500))
        rows = self.select(**filters)
        n_pages = max(1, -(-len(rows) // size))
        page = max(0, min(int(page), n_pages - 1))
        chosen = rows[page * size:(page + 1) * size]
        cols = ["image_id", "width", "height", "canonicalized", "n_objects", "n_askable", "n_qa", "image"]
        items = self.scenes.read_rows(chosen, cols).to_pylist() if len(chosen) else []
        return {"total": len(rows), "page": page, "pages": n_pages, "size": size, "items": _clean(items)}

    # -- one image ----------------------------------------------------------------------------------------------
    def scene_row(self, image_id: str) -> dict:
        if image_id not in self.row_of:
            raise KeyError(image_id)
        return _clean(self.scenes.read_rows([self.row_of[image_id]]).to_pylist()[0])

    def qa_rows(self, image_id: str) -> list[dict]:
        if self.qa is None:
            return []
        k = self.row_of[image_id]
        if self._qa_layout_ok:
            a, b = int(self.qa_start[k]), int(self.qa_start[k + 1])
            rows = self.qa.read_ranges([(a, b)]).to_pylist()
            if all(r["image_id"] == image_id for r in rows):
                return _clean(rows)
            self._qa_layout_ok = False  # not the writer's layout: scan from now on
        return _clean(self._scan(self.qa.path, image_id))

    def object_rows(self, image_id: str) -> list[dict]:
        if self.objects is None:
            return []
        runs = self._object_runs()
        if runs is not None:
            a, n = runs.get(image_id, (0, 0))
            return _clean(self.objects.read_ranges([(a, a + n)]).to_pylist())
        return _clean(self._scan(self.objects.path, image_id))

    def _object_runs(self) -> dict[str, tuple[int, int]] | None:
        with self._obj_runs_lock:
            if self._obj_runs is None:
                import pyarrow.compute as pc
                import pyarrow.parquet as pq

                col = pq.read_table(self.objects.path, columns=["image_id"]).column("image_id")
                enc = pc.dictionary_encode(col).combine_chunks()
                codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
                names = enc.dictionary.to_pylist()
                starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1]) if len(codes) else \
                    np.zeros(0, dtype=np.int64)
                ends = np.concatenate([starts[1:], [len(codes)]]).astype(np.int64)
                run_codes = codes[starts]
                # an image whose rows are split into several runs: not the writer's layout, use filtered scans
                ok = len(np.unique(run_codes)) == len(run_codes)
                runs = {names[c]: (int(a), int(b - a)) for c, a, b in zip(run_codes, starts, ends)} if ok else {}
                self._obj_runs = runs if ok else {}
                self._obj_runs_ok = ok
            return self._obj_runs if self._obj_runs_ok else None

    @staticmethod
    def _scan(path: Path, image_id: str) -> list[dict]:
        import pyarrow.dataset as ds

        return ds.dataset(path, format="parquet").to_table(filter=ds.field("image_id") == image_id).to_pylist()

    def errors_page(self, page: int = 0, size: int = 100) -> dict:
        if not (self.root / W.ERRORS_FILE).is_file():
            return {"total": 0, "page": 0, "pages": 1, "items": []}
        r = RowGroupReader(self.root / W.ERRORS_FILE)
        size = max(1, min(int(size), 1000))
        n_pages = max(1, -(-r.num_rows // size))
        page = max(0, min(int(page), n_pages - 1))
        a, b = page * size, min(r.num_rows, (page + 1) * size)
        items = r.read_ranges([(a, b)]).to_pylist() if b > a else []
        return {"total": r.num_rows, "page": page, "pages": n_pages, "items": items}

    def image_detail(self, image_id: str, max_points: int = 800) -> dict:
        """Everything the image page shows: the scene row, objects, QA, and the plotly 3D figure."""
        from spatialvlm.io.report import _hex, object_colour, scene_figure

        s = self.scene_row(image_id)
        objs = self.object_rows(image_id)
        for o in objs:
            o["colour"] = _hex(object_colour(o.get("object_id")))
        present = [o for o in objs if o.get("object_id") is not None]
        fig = scene_figure(self.root, s, present, max_points=max_points, height=520)
        k = self.row_of[image_id]
        return {
            "scene": s,
            "objects": objs,
            "qa": self.qa_rows(image_id),
            "figure": _clean(fig),
            "index": k,
            "prev": self.image_ids[k - 1] if k > 0 else None,
            "next": self.image_ids[k + 1] if k + 1 < len(self.image_ids) else None,
        }
