"""Photos (no depth, no labels) through perception on both engines: tiny random perception models built offline,
a perception actor pool on Ray (num_gpus=0 here), and the same bytes out of both engines."""

from __future__ import annotations

import pytest
from test_scale_fixtures import small_scenes, tree_digest

from spatialvlm.pipeline.run import SynthConfig, run_synth

ray = pytest.importorskip("ray")
pytest.importorskip("transformers")
pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    import shutil

    import torch
    from perception_tiny import build_all, spec

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("rayphotos")
    tiny = build_all(tmp / "models", ["depth-pro", "owlv2", "sam", "clip"])
    scenes = small_scenes(tmp, 3)
    photos = tmp / "photos"
    photos.mkdir()
    for p in sorted((scenes / "rgb").iterdir()):
        shutil.copy(p, photos / p.name)
    (photos / "broken.jpg").write_bytes(b"not an image")
    perception = {"depth": spec("depth-pro", tiny["depth-pro"]), "detector": spec("owlv2", tiny["owlv2"]),
                  "segmenter": spec("sam", tiny["sam"]), "scene_filter": spec("clip", tiny["clip"]),
                  "embedder": None, "captioner": None, "filter_threshold": 0.0, "detection_threshold": 0.0,
                  "vocabulary": ["chair", "table", "lamp"], "device": "cpu", "batch_size": 2, "max_objects": 4,
                  "min_mask_pixels": 1}
    sets = ["qa.per_image=6", "report_images=0", "shard_size=2", "batch_size=2", "ray.workers=1",
            "ray.perception_gpus=0", "ray.perception_batch_size=2"]
    return tmp, photos, perception, sets


def _cfg(perception, sets) -> SynthConfig:
    cfg = SynthConfig.load(None, sets)
    cfg.perception = dict(perception)
    return cfg


def test_photos_local_and_ray_give_the_same_bytes(job):
    tmp, photos, perception, sets = job
    local = run_synth(f"photos:{photos}", tmp / "local", _cfg(perception, sets), progress=False)
    assert local["images_in"] == 4 and local["images_failed"].get("read") == 1
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        r = run_synth(f"photos:{photos}", tmp / "ray", _cfg(perception, sets), progress=False, engine="ray")
    finally:
        ray.shutdown()
    assert r["images_in"] == local["images_in"] and r["errors"] == local["errors"]
    assert "perception" in r["seconds_by_stage"] and r["seconds_by_stage"]["perception"] > 0
    assert tree_digest(tmp / "local") == tree_digest(tmp / "ray")


def test_photos_fail_fast_when_perception_cannot_load(job):
    tmp, photos, perception, sets = job
    bad = dict(perception, depth="depth-pro:" + str(tmp / "no_such_model"))
    with pytest.raises(Exception, match="no_such_model"):
        run_synth(f"photos:{photos}", tmp / "bad", _cfg(bad, sets), progress=False)
    assert not (tmp / "bad").exists()  # the models load before the output folder is touched
