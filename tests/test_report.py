"""report.html: self-contained, one 3D plot per sampled image, built from the output folder alone."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from spatialvlm.io.report import colourise_depth, overlay_image, scene_figure, write_report
from spatialvlm.viewer.synthetic import write_synthetic_output


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "ds"
    write_synthetic_output(out, 9, n_failed=2)
    return out


def _newplot_calls(text: str) -> list[tuple[str, list, dict]]:
    calls = []
    for m in re.finditer(r'Plotly\.newPlot\("([^"]+)", (\[.*?\]), (\{.*?\}), \{responsive', text):
        calls.append((m.group(1), json.loads(m.group(2)), json.loads(m.group(3))))
    return calls


def test_report_structure(out_dir):
    path = write_report(out_dir, n_images=5, seed=3)
    text = path.read_text()
    assert path == out_dir / "report.html"
    # one plot div and one newPlot call per sampled image
    divs = re.findall(r"<div id='(plot-\d+)' class='plotly-3d'>", text)
    assert len(divs) == 5
    calls = _newplot_calls(text)
    assert [c[0] for c in calls] == divs
    # offline: plotly.js inlined exactly once, no external scripts or stylesheets
    assert len(re.findall(r"<script[^>]*\bsrc=", text)) == 0
    assert not re.search(r"<link[^>]+href=['\"]https?:", text)
    assert text.count("plotly.js v") >= 1 and text.count("<script type='text/javascript'>") == 1
    # header: per-type counts, canonicalized share, errors
    assert "left_predicate" in text and "distance" in text
    assert "canonicalized" in text and "%" in text
    assert "broken_000.jpg" in text and "broken_001.jpg" in text
    # each sampled image shows the photo with masks, depth and a QA table with raw values
    assert text.count("alt='image with masks' src='data:image/jpeg;base64,") == 5
    assert text.count("alt='depth' src='data:image/jpeg;base64,") == 5
    assert re.search(r"<td>\d+\.\d{3} m</td>", text)
    assert path.stat().st_size < 15 * 1024 * 1024


def test_3d_figures_use_canonical_frame_when_available(out_dir):
    text = write_report(out_dir, n_images=9).read_text()
    calls = _newplot_calls(text)
    assert len(calls) == 9
    kinds = set()
    for _, data, layout in calls:
        names = [t.get("name", "") for t in data]
        points = [t for t in data if t["type"] == "scatter3d" and t["mode"] == "markers" and t["name"] != "camera"]
        boxes = [t for t in data if t["type"] == "scatter3d" and t["mode"] == "lines"]
        assert points and len(boxes) == len(points)
        assert all(len(t["x"]) > 0 for t in points)
        canon = "floor (z = 0)" in names
        kinds.add(canon)
        if canon:
            assert layout["title"]["text"].startswith("canonical")
            # objects stand on the floor: the lowest point of every cloud is close to z = 0, none far below
            for t in points:
                assert min(t["z"]) > -0.05
            cam = next(t for t in data if t["name"] == "camera")
            assert cam["z"][0] == pytest.approx(1.4)
        else:
            assert "not canonicalized" in layout["title"]["text"]
    assert kinds == {True, False}


def test_sampling_is_seeded_and_bounded(out_dir):
    a = write_report(out_dir, n_images=4, seed=1, filename="a.html").read_text()
    b = write_report(out_dir, n_images=4, seed=1, filename="b.html").read_text()
    c = write_report(out_dir, n_images=50, seed=1, filename="c.html").read_text()
    ids = lambda t: re.findall(r"<h3 style='margin:0 0 6px'>(\S+) ", t)
    assert ids(a) == ids(b) and len(ids(a)) == 4
    assert len(ids(c)) == 9


def test_report_reads_only_the_folder(out_dir, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(out_dir, moved)
    text = write_report(moved, n_images=2).read_text()
    assert len(_newplot_calls(text)) == 2
    with pytest.raises(FileNotFoundError, match="scenes.parquet"):
        write_report(tmp_path / "nothing")


def test_report_size_for_twelve_larger_images(tmp_path):
    out = tmp_path / "big"
    write_synthetic_output(out, 12, width=640, height=480, n_failed=0)
    path = write_report(out, n_images=12)
    assert path.stat().st_size < 15 * 1024 * 1024
    assert len(_newplot_calls(path.read_text())) == 12


def test_helpers():
    d = np.array([[0.0, 1.0], [2.0, np.nan]])
    rgb, lo, hi = colourise_depth(d)
    assert rgb.shape == (2, 2, 3) and (rgb[0, 0] == 0).all() and (rgb[1, 1] == 0).all()
    assert 1.0 <= lo < 1.05 and 1.95 < hi <= 2.0 and not (rgb[0, 1] == rgb[1, 0]).all()
    img = np.full((10, 10, 3), 100, dtype=np.uint8)
    inst = np.zeros((10, 10), dtype=np.int32)
    inst[2:5, 2:5] = 1
    out = overlay_image(img, inst, [{"object_id": 0, "name": "cup", "askable": True, "box2d": [2, 2, 5, 5]}],
                        labels=False, long_side=None)
    assert (out[3, 3] != 100).any() and (out[8, 8] == 100).all()


def test_scene_figure_without_points_file(out_dir, tmp_path):
    import pyarrow.parquet as pq

    row = pq.read_table(out_dir / "scenes.parquet").to_pylist()[0]
    objs = [o for o in pq.read_table(out_dir / "objects.parquet").to_pylist()
            if o["image_id"] == row["image_id"] and o["object_id"] is not None]
    fig = scene_figure(tmp_path, row, objs)  # no points/ folder here: boxes still drawn
    assert sum(t["mode"] == "lines" for t in fig["data"] if t["type"] == "scatter3d") == len(objs)
