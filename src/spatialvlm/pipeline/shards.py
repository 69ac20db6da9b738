"""Work planning and the shard store: how a run is cut into shards, written atomically, resumed and merged.

A run enumerates its input once, cheaply (manifest lines, file names or row numbers; no pixel is decoded), into
numbered :class:`WorkItem` s with unique image ids, and cuts them into shards of ``shard_size`` consecutive items.
Shard ``k`` holds items ``k * shard_size ... (k + 1) * shard_size - 1``, whichever engine processed them, so the
shard contents never depend on scheduling.

On disk (inside the output folder)::

    _shards/run.json                     what this run is (input, limit, shard size, config): checked by --resume
    _shards/plan.parquet                 every work item with its shard, written once before any work
    _shards/shard-00003.parquet          one row per item, in input order: encoded outputs and/or its error
    _shards/shard-00003.done.json        completion marker (counts, seconds by stage), written last
    _shards/.shard-00003.*.partial       being written; removed by --resume

Both files are written under a temporary name and renamed into place (``os.replace`` is atomic on POSIX), and the
marker is written after the shard, so a shard is either complete or absent, whatever kills the process.
When every shard is done, :func:`merge_shards` streams them in order through one
:class:`~spatialvlm.io.writers.DatasetWriter`, which writes the usual top-level dataset (qa.parquet, hf/, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

SHARDS_DIR = "_shards"
RUN_FILE = "run.json"
PLAN_FILE = "plan.parquet"


@dataclass
class WorkItem:
    """One input item, before it is read. ``item`` is how errors name it (``frames.jsonl:12``, ``sub/a.jpg``,
    ``name/train/000003``); ``ref`` is what the read stage needs (the manifest line's text, the file path relative
    to the photo folder, or the row number); ``error`` a failure already found while planning."""

    pos: int
    item: str
    image_id: str
    ref: str
    line: int = 0
    error: str = ""

    def to_row(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------------------------
class _Ids:
    """Unique image ids (``_2``, ``_3`` suffixes), also unique as file stems (the writer's ``file_stem``)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.stems: set[str] = set()

    def take(self, base: str) -> str:
        from ..io.writers import file_stem

        cand, n = base, 1
        while cand in self.ids or file_stem(cand) in self.stems:
            n += 1
            cand = f"{base}_{n}"
        self.ids.add(cand)
        self.stems.add(file_stem(cand))
        return cand


def count_items(kind: str, target: str) -> int:
    """How many work items the input holds (cheap: no pixel is decoded)."""
    if kind == "frames":
        from ..io.frames import count_frames

        return count_frames(Path(target))
    if kind == "photos":
        from ..io.photos import list_photos

        return len(list_photos(Path(target)))
    from ..io.photos import _open_dataset, parse_hf_spec

    repo, split = parse_hf_spec(target)
    ds, _ = _open_dataset(repo, split)
    return len(ds)


def plan_items(kind: str, target: str, limit: int | None = None) -> Iterator[WorkItem]:
    """The work items of an input, in input order, with unique image ids. Deterministic: the same input gives the
    same items, ids and positions (so shards can be redone and compared)."""
    ids = _Ids()
    n = 0
    for it in _plan(kind, target, ids):
        if limit is not None and n >= limit:
            return
        n += 1
        yield it


def _plan(kind: str, target: str, ids: _Ids) -> Iterator[WorkItem]:
    if kind == "frames":
        from ..io.frames import _manifest_path, iter_manifest_lines

        manifest = _manifest_path(Path(target))
        for pos, (line_no, text, err) in enumerate(iter_manifest_lines(manifest)):
            item = f"{manifest.name}:{line_no}"
            if err:
                yield WorkItem(pos, item, "", "", line_no, err)
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield WorkItem(pos, item, "", "", line_no, f"malformed JSON: {exc}")
                continue
            base = ""
            if isinstance(obj, dict):
                if isinstance(obj.get("image_id"), str) and obj["image_id"]:
                    base = obj["image_id"]
                elif isinstance(obj.get("image"), str) and obj["image"]:
                    base = Path(obj["image"]).stem
            # lines without a usable id keep "": reading them fails and says why
            yield WorkItem(pos, item, ids.take(base) if base else "", text, line_no)
    elif kind == "photos":
        from ..io.photos import list_photos

        d = Path(target)
        for pos, p in enumerate(list_photos(d)):
            rel = p.relative_to(d).as_posix()
            yield WorkItem(pos, rel, ids.take(p.relative_to(d).with_suffix("").as_posix()), rel)
    elif kind == "hf":
        from ..io.photos import _open_dataset, parse_hf_spec

        repo, split = parse_hf_spec(target)
        ds, split = _open_dataset(repo, split)
        id_col = next((c for c in ("image_id", "id", "file_name", "filename") if c in ds.column_names), None)
        col_ids = ds[id_col] if id_col is not None else None
        base_name = Path(repo).name or repo
        for i in range(len(ds)):
            item = f"{base_name}/{split}/{i:06d}"
            base = str(col_ids[i]) if col_ids is not None and col_ids[i] is not None else item
            yield WorkItem(i, item, ids.take(base), str(i))
    else:
        raise ValueError(f"unknown input kind {kind!r}")


def _plan_schema():
    import pyarrow as pa

    return pa.schema([("shard", pa.int64()), ("pos", pa.int64()), ("item", pa.string()), ("image_id", pa.string()),
                      ("ref", pa.string()), ("line", pa.int64()), ("error", pa.string())])


PLAN_GROUP = 1024  # rows per row group of plan.parquet: item ``pos`` is in row group ``pos // PLAN_GROUP``


def write_plan(path: Path, items: Iterable[WorkItem], shard_size: int, chunk: int = PLAN_GROUP) -> int:
    """Stream the work items, with their shard numbers, into ``plan.parquet`` (atomically); returns their count.
    Engines read work from this file, so a resumed run works on exactly the items of the first run. Row groups
    hold ``PLAN_GROUP`` items, so any item can be fetched by position (:func:`plan_rows`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _plan_schema()
    tmp = path.with_name(f".{path.name}.partial")
    n = 0
    rows: list[dict] = []
    with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
        for it in items:
            rows.append({**it.to_row(), "shard": n // shard_size})
            n += 1
            if len(rows) >= chunk:
                w.write_table(pa.Table.from_pylist(rows, schema=schema))
                rows = []
        w.write_table(pa.Table.from_pylist(rows, schema=schema))
    os.replace(tmp, path)
    return n


def plan_rows(path: Path, positions: Iterable[int]) -> list[dict]:
    """The plan rows (with ``shard``) at ``positions``, reading only the row groups that hold them."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    groups: dict[int, list[dict]] = {}
    out = []
    for pos in positions:
        g, i = divmod(int(pos), PLAN_GROUP)
        if g not in groups:
            groups[g] = pf.read_row_group(g).to_pylist()
        row = groups[g][i]
        if row["pos"] != pos:
            raise RuntimeError(f"plan.parquet is damaged: row {pos} holds item {row['pos']}")
        out.append(row)
    return out


def iter_plan(path: Path, skip: Iterable[int] = ()) -> Iterator[tuple[int, list[WorkItem]]]:
    """(shard index, its work items) from ``plan.parquet``, in order, leaving out the shards in ``skip``."""
    import pyarrow.parquet as pq

    skip = set(skip)
    cur, items = None, []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
        for r in batch.to_pylist():
            k = r.pop("shard")
            if k in skip:
                continue
            if k != cur and items:
                yield cur, items
                items = []
            cur = k
            items.append(WorkItem(**r))
    if items:
        yield cur, items


# --------------------------------------------------------------------------------------------------------------
# the shard store
# --------------------------------------------------------------------------------------------------------------
def shard_name(k: int) -> str:
    return f"shard-{k:05d}"


def _shard_schema():
    import pyarrow as pa

    s, b = pa.string(), pa.large_binary()
    return pa.schema([
        ("pos", pa.int64()), ("image_id", s), ("jpeg", b), ("depth_png", b), ("mask_png", b),
        ("points_npz", b), ("scene_row", s), ("object_rows", s), ("qa_rows", s), ("n_dropped", pa.int64()),
        ("err_item", s), ("err_stage", s), ("err_reason", s),
    ])


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_shard(shards_dir: Path, k: int, records: list[tuple[int, dict]], meta: dict) -> None:
    """Write shard ``k`` from ``(pos, record)`` pairs (records as made by ``EncodeStage``), then its completion
    marker; both atomically. ``meta`` (counts, seconds by stage) goes into the marker."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for pos, r in sorted(records, key=lambda x: x[0]):
        enc, err = r.get("item"), r.get("error")
        rows.append({
            "pos": int(pos), "image_id": r.get("image_id") or "",
            "jpeg": enc["jpeg"] if enc else None, "depth_png": enc["depth_png"] if enc else None,
            "mask_png": enc["mask_png"] if enc else None, "points_npz": enc["points_npz"] if enc else None,
            "scene_row": json.dumps(enc["scene_row"]) if enc else None,
            "object_rows": json.dumps(enc["object_rows"]) if enc else None,
            "qa_rows": json.dumps(enc["qa_rows"]) if enc else None,
            "n_dropped": int(enc["n_dropped"]) if enc else 0,
            "err_item": err[0] if err else None, "err_stage": err[1] if err else None,
            "err_reason": err[2] if err else None,
        })
    schema = _shard_schema()
    table = pa.table({n: [r[n] for r in rows] for n in schema.names}, schema=schema)
    final = shards_dir / f"{shard_name(k)}.parquet"
    tmp = shards_dir / f".{shard_name(k)}.parquet.partial"
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    marker = {"shard": k, "items": len(rows), "ok": sum(r["jpeg"] is not None for r in rows),
              "errors": sum(r["err_item"] is not None for r in rows), **meta}
    _atomic_write_bytes(shards_dir / f"{shard_name(k)}.done.json", json.dumps(marker, indent=1).encode())


def done_shards(shards_dir: Path) -> dict[int, dict]:
    """Completed shards (marker and data present): index -> marker."""
    out = {}
    if not shards_dir.is_dir():
        return out
    for p in shards_dir.glob("shard-*.done.json"):
        k = int(p.name[len("shard-"):len("shard-") + 5])
        if (shards_dir / f"{shard_name(k)}.parquet").is_file():
            out[k] = json.loads(p.read_text())
    return out


def clean_partials(shards_dir: Path) -> int:
    """Remove leftovers of interrupted writes; returns how many."""
    n = 0
    for p in shards_dir.glob(".*.partial"):
        p.unlink()
        n += 1
    return n


def read_shard(shards_dir: Path, k: int, batch_rows: int = 32) -> Iterator[tuple[dict | None, tuple | None]]:
    """(encoded item or None, error triple or None) for each row of shard ``k``, in input order, streamed."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(shards_dir / f"{shard_name(k)}.parquet")
    for batch in pf.iter_batches(batch_size=batch_rows):
        for r in batch.to_pylist():
            item = None
            if r["jpeg"] is not None:
                item = {"image_id": r["image_id"], "jpeg": r["jpeg"], "depth_png": r["depth_png"],
                        "mask_png": r["mask_png"], "points_npz": r["points_npz"],
                        "scene_row": json.loads(r["scene_row"]), "object_rows": json.loads(r["object_rows"]),
                        "qa_rows": json.loads(r["qa_rows"]), "n_dropped": r["n_dropped"]}
            err = (r["err_item"], r["err_stage"], r["err_reason"]) if r["err_item"] is not None else None
            yield item, err


def merge_shards(out_dir: Path, n_shards: int, *, progress: bool = True, total_items: int | None = None) -> dict:
    """Stream every shard, in order, into the top-level dataset of ``out_dir``; returns the writer's summary."""
    from tqdm import tqdm

    from ..io.writers import DatasetWriter
    from ..records import ItemError

    shards_dir = out_dir / SHARDS_DIR
    writer = DatasetWriter(out_dir, overwrite=True)  # removes only the writer's own files; _shards stays
    bar = tqdm(total=total_items, unit="img", disable=not progress, desc="merge", dynamic_ncols=True)
    ok = False
    try:
        for k in range(n_shards):
            for item, err in read_shard(shards_dir, k):
                if item is not None:
                    writer.add_encoded(item)
                if err is not None:
                    writer.add_error(ItemError(*err))
                bar.update(1)
        ok = True
    finally:
        bar.close()
        summary = writer.close(complete=ok)
    return summary
