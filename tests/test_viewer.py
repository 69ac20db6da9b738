"""Viewer server without a browser: API answers, filters, lazy paging on a large table, path traversal and
binding refusals, and the rerun export."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spatialvlm.io import writers as W
from spatialvlm.viewer.data import OutputFolder
from spatialvlm.viewer.server import check_host, is_loopback, make_server
from spatialvlm.viewer.synthetic import write_synthetic_output


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "ds"
    write_synthetic_output(out, 12, n_failed=2)
    return out


@pytest.fixture(scope="module")
def served(small):
    srv = make_server(small, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def get(url: str, method: str = "GET") -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def raw_get(base: str, path: str) -> int:
    """Send ``path`` byte for byte (no client-side normalisation of ``..``) and return the status code."""
    host, port = base.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


# ---------------------------------------------------------------------------------------------------------------
def test_pages_and_api(served, small):
    st, body, ctype = get(served + "/")
    assert st == 200 and b"spatialvlm viewer" in body and ctype.startswith("text/html")
    assert b"https://" not in body and b"http://" not in body  # no CDN: everything is served locally
    st, body, _ = get(served + "/static/plotly.min.js")
    assert st == 200 and len(body) > 1_000_000
    meta = json.loads(get(served + "/api/meta")[1])
    summary = json.loads((small / "summary.json").read_text())
    assert meta["images"] == 12 and meta["qa"] == summary["qa_total"] and meta["errors"] == 2
    assert meta["qa_types"] == sorted(summary["qa_by_type"])

    page = json.loads(get(served + "/api/images?size=5&page=1")[1])
    assert page["total"] == 12 and page["pages"] == 3 and len(page["items"]) == 5
    assert [i["image_id"] for i in page["items"]] == [f"syn_{k:06d}" for k in range(5, 10)]

    d = json.loads(get(served + "/api/image?id=syn_000004")[1])
    qa = [r for r in pq.read_table(small / "qa.parquet").to_pylist() if r["image_id"] == "syn_000004"]
    assert d["qa"] == qa
    assert {o["object_id"] for o in d["objects"]} >= {0, 1}
    assert d["prev"] == "syn_000003" and d["next"] == "syn_000005"
    traces = d["figure"]["data"]
    assert any(t.get("name") == "floor (z = 0)" for t in traces)

    for path, ctype_want in [("/api/overlay?id=syn_000004", "image/png"), ("/api/overlay?id=syn_000004&object=1",
                             "image/png"), ("/api/depth?id=syn_000004", "image/png"),
                             ("/thumb/images/syn_000004.jpg?w=64", "image/jpeg"),
                             ("/file/images/syn_000004.jpg", "image/jpeg")]:
        st, body, ctype = get(served + path)
        assert st == 200 and ctype == ctype_want and len(body) > 50, path
    errs = json.loads(get(served + "/api/errors")[1])
    assert errs["total"] == 2 and errs["items"][0]["item"] == "broken_000.jpg"
    assert get(served + "/api/image?id=missing")[0] == 404
    assert get(served + "/api/images?canon=perhaps")[0] == 400


def test_filters_match_the_tables(small):
    data = OutputFolder(small)
    qa = pq.read_table(small / "qa.parquet").to_pylist()
    scenes = pq.read_table(small / "scenes.parquet").to_pylist()
    objs = pq.read_table(small / "objects.parquet").to_pylist()
    ids = [s["image_id"] for s in scenes]

    def got(**f):
        return [ids[i] for i in data.select(**f)]

    assert got(qa_type="height") == [i for i in ids if any(q["image_id"] == i and q["qa_type"] == "height"
                                                             for q in qa)]
    assert got(canon="no") == [s["image_id"] for s in scenes if not s["canonicalized"]]
    assert got(canon="yes", qa_type="height") == got(qa_type="height")  # height needs the canonical frame
    assert got(canon="no", qa_type="height") == []
    assert got(obj="LAMP") == [i for i in ids if any(o["image_id"] == i and "lamp" in (o["label"] or "")
                                                    for o in objs)]
    assert got(obj="wall") == ids  # dropped objects are searchable too
    assert got(errors="yes") == [] and got(errors="no") == ids  # the failures are not written images
    with pytest.raises(ValueError):
        data.select(errors="maybe")


def test_path_traversal_refused(served, small, tmp_path_factory):
    secret = small.parent / "secret.txt"
    secret.write_text("do not serve")
    (small / "link_out").symlink_to(secret)
    for path in ["/file/../secret.txt", "/file/%2e%2e/secret.txt", "/file/images/../../secret.txt",
                 "/file//etc/passwd", "/file/%2Fetc%2Fpasswd", "/thumb/../secret.txt", "/file/link_out",
                 "/file/images/%2e%2e/%2e%2e/secret.txt", "/file/..%5csecret.txt", "/file/C:/windows/win.ini"]:
        code = raw_get(served, path)
        assert code == 403, (path, code)
    assert raw_get(served, "/static/../server.py") == 404
    assert raw_get(served, "/static/data.py") == 404
    assert raw_get(served, "/file/summary.json") == 200
    # read-only: no method other than GET / HEAD
    for method in ("POST", "PUT", "DELETE"):
        assert get(served + "/api/meta", method)[0] == 405
    assert get(served + "/api/meta", "HEAD")[0] == 200


def test_non_local_binding_refused(small):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20") and not is_loopback("::")
    for host in ("0.0.0.0", "10.1.2.3", "::"):
        with pytest.raises(PermissionError, match="allow-remote"):
            make_server(small, host, 0)
    check_host("0.0.0.0", allow_remote=True)  # explicit opt-in passes the check
    srv = make_server(small, "localhost", 0)
    try:
        assert srv.server_address[0] in ("127.0.0.1", "::1")
    finally:
        srv.server_close()


def test_cli_view_refuses_remote_host(small):
    r = subprocess.run([sys.executable, "-m", "spatialvlm.cli", "view", str(small), "--host", "0.0.0.0",
                        "--port", "0"], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "allow-remote" in r.stderr


# ---------------------------------------------------------------------------------------------------------------
def _big_tables(out: Path, n_images: int, qa_per_image: int, row_group: int = 2000) -> None:
    """Tables only (no image files) in the writer's layout and schemas, written in row groups like the writer."""
    qa_s, sc_s, ob_s, er_s = W._schemas()
    types = ["left_predicate", "distance", "height", "width", "behind_choice", "clock_direction"]
    rng = np.random.default_rng(0)
    out.mkdir(parents=True)
    ids = [f"img_{i:07d}" for i in range(n_images)]
    canon = rng.random(n_images) < 0.7
    with pq.ParquetWriter(out / "scenes.parquet", sc_s) as w:
        for a in range(0, n_images, 500):
            b = min(n_images, a + 500)
            n = b - a
            w.write_table(pa.table({
                "image_id": ids[a:b], "source": ["bench"] * n, "width": [640] * n, "height": [480] * n,
                "canonicalized": canon[a:b].tolist(), "canonical_reason": [""] * n, "camera_height": [1.4] * n,
                "support": ["floor"] * n, "K": [None] * n, "n_objects": [3] * n, "n_askable": [3] * n,
                "n_qa": [qa_per_image] * n, "image": [f"images/{i}.jpg" for i in ids[a:b]], "depth": [None] * n,
                "masks": [None] * n, "canon_from_cam": [None] * n}, schema=sc_s))
    per_group = max(1, row_group // qa_per_image)
    with pq.ParquetWriter(out / "qa.parquet", qa_s) as w:
        for a in range(0, n_images, per_group):
            b = min(n_images, a + per_group)
            m = (b - a) * qa_per_image
            t = [types[(k * 7 + j) % len(types)] for k in range(a, b) for j in range(qa_per_image)]
            w.write_table(pa.table({
                "image_id": [i for i in ids[a:b] for _ in range(qa_per_image)], "qa_type": t,
                "family": ["quantitative"] * m, "question": ["How far is the cup from the mug?"] * m,
                "answer": ["About 1 meter."] * m, "value_m": [1.0] * m, "truth": ["1.0"] * m,
                "objects": [["cup", "mug"]] * m, "object_ids": [[0, 1]] * m, "canonical": [True] * m,
                "question_template": [0] * m, "answer_template": [0] * m, "unit": ["m"] * m,
                "spoken_value": [1.0] * m}, schema=qa_s))
    with pq.ParquetWriter(out / "objects.parquet", ob_s) as w:
        for a in range(0, n_images, 700):
            b = min(n_images, a + 700)
            rows = [{"image_id": i, "object_id": k, "name": nm, "label": nm, "askable": True}
                    for i in ids[a:b] for k, nm in enumerate(["cup", "mug", "lamp"])]
            w.write_table(pa.Table.from_pylist(rows, schema=ob_s))
    pq.write_table(pa.table({"item": ["img_0000003"], "stage": ["qa"], "reason": ["x"]}, schema=er_s),
                   out / "errors.parquet")


def test_twenty_thousand_qa_rows_page_fast(tmp_path):
    out = tmp_path / "big"
    _big_tables(out, n_images=2000, qa_per_image=10)
    assert pq.ParquetFile(out / "qa.parquet").metadata.num_rows == 20000
    t0 = time.perf_counter()
    data = OutputFolder(out)
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    page = data.page(page=17, size=48)
    t_page = time.perf_counter() - t0
    assert [i["image_id"] for i in page["items"]] == [f"img_{k:07d}" for k in range(17 * 48, 18 * 48)]
    t0 = time.perf_counter()
    filt = data.page(page=2, size=48, qa_type="clock_direction", canon="yes")
    t_filter = time.perf_counter() - t0
    # the type pattern gives clock_direction to every image but the k with (7k + j) % 6 != 5 for all j < 10:
    # none, so the filter reduces to the canonicalized images
    assert filt["total"] == int(data.canon.sum())
    t0 = time.perf_counter()
    qa = data.qa_rows("img_0001234")
    objs = data.object_rows("img_0001234")
    t_image = time.perf_counter() - t0
    assert len(qa) == 10 and all(r["image_id"] == "img_0001234" for r in qa)
    assert [o["object_id"] for o in objs] == [0, 1, 2]
    assert data.select(errors="yes").tolist() == [3]
    # generous bounds for 2 slow shared cores; typical numbers are ten times smaller
    assert t_open < 2.0 and t_page < 0.5 and t_filter < 1.5 and t_image < 1.5, (t_open, t_page, t_filter, t_image)


def test_lazy_reads_touch_only_needed_row_groups(tmp_path, monkeypatch):
    out = tmp_path / "big"
    _big_tables(out, n_images=2000, qa_per_image=10)
    data = OutputFolder(out)
    seen = []
    orig = pq.ParquetFile.read_row_groups

    def spy(self, groups, *a, **k):
        seen.append(list(groups))
        return orig(self, groups, *a, **k)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    data.page(page=0, size=48)
    assert seen == [[0]]  # 500-row groups: the first page lives in the first group
    seen.clear()
    data.qa_rows("img_0001999")
    n_groups = pq.ParquetFile(out / "qa.parquet").metadata.num_row_groups
    assert seen == [[n_groups - 1]]


def test_fallback_when_rows_are_not_in_writer_order(tmp_path):
    out = tmp_path / "shuffled"
    write_synthetic_output(out, 5, n_failed=0)
    for name in ("qa.parquet", "objects.parquet"):
        t = pq.read_table(out / name)
        pq.write_table(t.take(pa.array(np.random.default_rng(1).permutation(t.num_rows))), out / name)
    data = OutputFolder(out)
    for i in data.image_ids:
        qa = data.qa_rows(i)
        assert qa and all(r["image_id"] == i for r in qa)
        objs = data.object_rows(i)
        assert objs and all(o["image_id"] == i for o in objs)


@pytest.mark.slow
def test_hundred_thousand_images_open_in_seconds(tmp_path):
    out = tmp_path / "huge"
    _big_tables(out, n_images=100_000, qa_per_image=20)
    t0 = time.perf_counter()
    data = OutputFolder(out)
    page = data.page(page=1000, size=48)
    detail_qa = data.qa_rows("img_0099999")
    assert time.perf_counter() - t0 < 5.0
    assert page["total"] == 100_000 and len(detail_qa) == 20
    t0 = time.perf_counter()
    assert data.page(qa_type="height")["total"] > 0
    assert time.perf_counter() - t0 < 10.0


# ---------------------------------------------------------------------------------------------------------------
def test_export_rerun(small, tmp_path):
    pytest.importorskip("rerun", reason="rerun-sdk not installed")
    from spatialvlm.viewer.rerun_export import export_rerun

    rrd = export_rerun(small, tmp_path / "rec.rrd", image_ids=["syn_000001", "syn_000002"])
    assert rrd.is_file() and rrd.stat().st_size > 5000
    with pytest.raises(KeyError, match="nope"):
        export_rerun(small, tmp_path / "x.rrd", image_ids=["nope"])
    cli = Path(sys.executable).parent / "rerun"
    if not cli.exists():
        return
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    v = subprocess.run([str(cli), "rrd", "verify", str(rrd)], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert v.returncode == 0, v.stderr
    p = subprocess.run([str(cli), "rrd", "print", str(rrd)], check=False, capture_output=True, text=True, env=env, timeout=120)
    text = p.stdout + p.stderr
    for entity in ["/world/camera/image/rgb", "/world/camera/image/depth", "/world/camera/image/segmentation",
                   "/world/boxes", "/world/camera/points/", "/world/floor", "/qa", "/objects"]:
        assert entity in text, entity
