"""End-to-end: headless Debian chromium (Selenium + the system chromedriver, nothing downloaded) opens the viewer on
a synthetic dataset, filters by a question type, opens an image page, checks the 3D view drew something and the QA
list, and saves screenshots under test-artifacts/."""

from __future__ import annotations

import io
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)

selenium = pytest.importorskip("selenium", reason="selenium not installed (pip install selenium)")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="Debian chromium + chromium-driver not installed (apt-get install chromium "
                                       "chromium-driver)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from spatialvlm.viewer.server import make_server
    from spatialvlm.viewer.synthetic import write_synthetic_output

    out = tmp_path_factory.mktemp("viewer") / "ds"
    write_synthetic_output(out, 30, width=160, height=120, n_failed=2)
    srv = make_server(out, "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}", out
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--enable-unsafe-swiftshader", "--window-size=1400,1100",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def _wait(drv, cond, timeout=20.0, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            v = cond()
        except Exception:  # noqa: BLE001 - element not there yet: keep polling until the timeout
            v = None
        if v:
            return v
        time.sleep(0.1)
    ARTIFACTS.mkdir(exist_ok=True)
    drv.save_screenshot(str(ARTIFACTS / "viewer-timeout.png"))
    raise AssertionError(f"timed out waiting for {what}")


def _shot(drv, name):
    ARTIFACTS.mkdir(exist_ok=True)
    p = ARTIFACTS / name
    drv.save_screenshot(str(p))
    assert p.stat().st_size > 1000


def test_viewer_end_to_end(server, browser):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, out = server
    drv = browser
    drv.get(base + "/")
    _wait(drv, lambda: drv.execute_script("return document.body.dataset.ready") == "1", what="app ready")
    cards = _wait(drv, lambda: drv.find_elements(By.CSS_SELECTOR, "#grid .card"), what="grid cards")
    assert len(cards) == 30
    assert "30 images" in drv.find_element(By.ID, "page-info").text
    _shot(drv, "viewer-grid.png")

    # filter by a type that only canonicalized images have
    import pyarrow.parquet as pq

    qa = pq.read_table(out / "qa.parquet", columns=["image_id", "qa_type"]).to_pylist()
    want = sorted({r["image_id"] for r in qa if r["qa_type"] == "height"})
    assert 0 < len(want) < 30
    Select(drv.find_element(By.ID, "f-qa-type")).select_by_value("height")
    _wait(drv, lambda: len(drv.find_elements(By.CSS_SELECTOR, "#grid .card")) == len(want), what="filtered grid")
    shown = [c.get_attribute("data-id") for c in drv.find_elements(By.CSS_SELECTOR, "#grid .card")]
    assert shown == want
    assert "qa_type=height" in drv.current_url
    _shot(drv, "viewer-grid-filtered.png")

    # open an image page from the filtered grid
    target = want[0]
    drv.find_element(By.CSS_SELECTOR, f"#grid .card[data-id='{target}']").click()
    _wait(drv, lambda: drv.find_element(By.ID, "plot3d").get_attribute("data-ready") == "1", what="3D view")
    assert drv.find_element(By.ID, "image-title").text == target
    rows = drv.find_elements(By.CSS_SELECTOR, "#qa-table tbody tr")
    expected = [r for r in qa if r["image_id"] == target]
    assert len(rows) == len(expected)
    assert [r.get_attribute("data-type") for r in rows] == [r["qa_type"] for r in expected]
    assert "height" in [r.get_attribute("data-type") for r in rows]
    # photo, mask overlay and depth images loaded
    for img_id in ("photo-img", "photo-masks", "depth-img"):
        js = f"const i = document.getElementById('{img_id}'); return i.complete && i.naturalWidth > 0"
        _wait(drv, lambda js=js: drv.execute_script(js),
            what=f"{img_id} loaded")
    # the 3D view drew something: a WebGL canvas exists and its screenshot is not uniform
    canvas = _wait(drv, lambda: drv.find_element(By.CSS_SELECTOR, "#plot3d canvas"), what="3D canvas")
    assert canvas.size["width"] > 100 and canvas.size["height"] > 100
    time.sleep(0.5)
    plot_png = drv.find_element(By.ID, "plot3d").screenshot_as_png
    pix = np.asarray(Image.open(io.BytesIO(plot_png)).convert("RGB")).astype(np.int32)
    assert pix.std() > 5, "3D view looks empty"
    colours = {tuple(c) for c in pix.reshape(-1, 3)[::7]}
    assert len(colours) > 20
    _shot(drv, "viewer-image.png")

    # hovering a two-object QA highlights exactly its objects (2D boxes, object rows and 3D traces)
    from selenium.webdriver.common.action_chains import ActionChains

    two = next(r for r in rows if "," in (r.get_attribute("data-objects") or ""))
    ids = two.get_attribute("data-objects")
    ActionChains(drv).move_to_element(two).perform()
    _wait(drv, lambda: drv.find_element(By.ID, "plot3d").get_attribute("data-highlight") == ids,
          what="3D highlight")
    hl = [r.get_attribute("data-object") for r in drv.find_elements(By.CSS_SELECTOR, "#obj-table tbody tr.hl")]
    assert sorted(hl) == sorted(ids.split(","))
    assert len(drv.find_elements(By.CSS_SELECTOR, "#photo-hover img")) == 2
    _shot(drv, "viewer-image-hover.png")

    # errors page lists the recorded failures
    drv.get(base + "/#/errors")
    _wait(drv, lambda: len(drv.find_elements(By.CSS_SELECTOR, "#err-table tbody tr")) == 2, what="errors table")
    assert "broken_000.jpg" in drv.find_element(By.ID, "err-table").text
    _shot(drv, "viewer-errors.png")
