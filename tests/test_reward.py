"""Dense rewards over rendered episodes: the reward curve follows ground-truth distance, outputs are joinable by
frame index, aggregation and shaping are right, failures are recorded per frame."""

from __future__ import annotations

import hashlib
import json
from functools import cache

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("open3d")

from spatialvlm.reason.reward import RewardConfig, aggregate, compute_reward, read_episode, shape_reward
from spatialvlm.render.episode import EpisodeConfig, render_episode


@cache
def _episode():
    # approach then retreat: the distance is not monotonic, so rank agreement is a real test; the stored depth
    # carries 1% per-pixel noise and a 3% per-frame scale error (ground truth stays exact)
    return render_episode(EpisodeConfig(n_frames=14, retreat=0.4, width=320, height=240, seed=3, depth_noise=0.01,
                                        depth_scale_jitter=0.03))


def test_episode_ground_truth_moves_in_and_out():
    ep = _episode()
    d = np.array([g["gt_distance_m"] for g in ep.ground_truth])
    gap = np.array([g["gt_gap_m"] for g in ep.ground_truth])
    k = int(np.argmin(d))
    assert 0 < k < len(d) - 1 and d[0] > 0.6 and d[k] < 0.25
    assert np.all(np.diff(d[:k + 1]) < 0) and np.all(np.diff(d[k:]) > 0)
    assert gap[k] == pytest.approx(0.04, abs=1e-6) and np.all(gap < d)
    f = ep.frames[3]
    assert f.meta["frame_index"] == 3 and f.meta["generator"] == "spatialvlm.render.episode"
    assert abs(f.meta["depth_corruption"]["scale"] - 1.0) > 1e-4
    assert {o.name for o in f.objects} == {"table", "bottle", "gripper"}


def test_reward_follows_ground_truth_distance():
    ep = _episode()
    cfg = RewardConfig("gripper", "bottle", samples=3, shaping=["exp", "delta", "success"],
                       success_threshold=0.2)
    df, summary = compute_reward(ep.frames, cfg)
    gt = summary["ground_truth"]
    assert gt["frames"] == 14 and gt["spearman"] >= 0.95
    assert gt["mean_abs_error_m"] < 0.05
    assert df["error_m"].notna().all() and (df["abs_error_m"] == df["error_m"].abs()).all()
    assert list(df["frame_index"]) == list(range(14)) and (df["n_used"] == 3).all()
    # the reward rises as the distance falls
    assert np.corrcoef(df["reward"], df["gt_distance_m"])[0, 1] < -0.9
    assert df["reward_success"].max() == 1.0 and df["reward_success"].iloc[0] == 0.0
    assert df["reward_delta"].iloc[0] == 0.0


def test_gap_metric_and_missing_objects_recorded():
    ep = _episode()
    frames = list(ep.frames[:4])
    df, s = compute_reward(frames, RewardConfig("gripper", "bottle", metric="gap", samples=1))
    assert s["ground_truth"]["mean_abs_error_m"] < 0.05
    assert np.allclose(df["gt_distance_m"], [g["gt_gap_m"] for g in ep.ground_truth[:4]])
    df, s = compute_reward(frames, RewardConfig("gripper", "piano", samples=1))
    assert df["distance_m"].isna().all() and df["reward"].isna().all()
    assert all("no object called 'piano'" in e for e in df["error"]) and len(s["failures"]) == 4
    assert "ground_truth" not in s  # no ground truth for this pair


def test_interpolation_fills_and_flags_a_failed_frame():
    from spatialvlm.records import ItemError

    ep = _episode()
    items = [ep.frames[0], ItemError("frames.jsonl:2", "read", "cannot read image"), ep.frames[2]]
    df, s = compute_reward(items, RewardConfig("gripper", "bottle", samples=1, interpolate=True))
    assert df["interpolated"].tolist() == [False, True, False]
    assert df["distance_m"].iloc[1] == pytest.approx((df["distance_m"].iloc[0] + df["distance_m"].iloc[2]) / 2)
    assert df["error"].iloc[1].startswith("read: cannot read image")
    assert s["frames_interpolated"] == 1 and s["ground_truth"]["frames"] == 2


def test_aggregate_and_shaping():
    assert aggregate([1.0, 1.1, 0.9, 50.0, None, float("nan")], "median")[0] == pytest.approx(1.05)
    t = aggregate([1.0, 1.1, 0.9, 50.0], "trimmed")
    assert t[0] == pytest.approx(1.0) and t[2] == 3  # the outlier is left out
    assert aggregate([1.0, 3.0], "mean")[:2] == (2.0, 1.0)
    assert np.isnan(aggregate([], "median")[0])
    d = np.array([1.0, np.nan, 0.5, 0.25])
    assert np.allclose(shape_reward(d, "negative"), -d, equal_nan=True)
    assert np.allclose(shape_reward(d, "exp", scale=0.5), np.exp(-d / 0.5), equal_nan=True)
    assert np.allclose(shape_reward(d, "linear"), [0, np.nan, 0.5, 0.75], equal_nan=True)
    assert np.allclose(shape_reward(d, "delta"), [0, np.nan, 0.5, 0.25], equal_nan=True)
    assert np.allclose(shape_reward(d, "success", success_threshold=0.3), [0, np.nan, 0, 1], equal_nan=True)
    with pytest.raises(ValueError, match="unknown shaping"):
        RewardConfig("a", "b", shaping="fast")


class NoisyVLM:
    """Answers from the ground truth in assorted phrasings, with an outlier and a refusal per frame."""

    name = "noisy"

    def __init__(self, truths):
        self.truths = truths
        self.calls = 0

    def answer(self, images, questions):
        out = []
        for img, q in zip(images, questions):
            key = hashlib.md5(img.tobytes()).hexdigest()
            d = self.truths[key]
            k = self.calls % 5
            self.calls += 1
            out.append([f"about {d * 100:.0f} cm", f"{d * 1.05:.2f} meters", "I cannot tell.",
                        f"{d * 20:.1f} m", f"roughly {d / 0.3048:.1f} feet"][k])
        return out


def test_vlm_estimator_robust_aggregation():
    ep = _episode()
    truths = {hashlib.md5(f.image.tobytes()).hexdigest(): g["gt_distance_m"] for f, g in zip(ep.frames, ep.ground_truth)}
    assert len(truths) == len(ep.frames)
    from spatialvlm.reason.reward import make_estimator

    cfg = RewardConfig("gripper", "bottle", estimator="vlm:noisy", samples=5, aggregate="median")
    est = make_estimator(cfg, vlm=NoisyVLM(truths))
    df, s = compute_reward(ep.frames, cfg, estimator=est, batch=4)
    assert (df["n_used"] == 4).all()  # the refusal is not counted
    assert s["ground_truth"]["spearman"] >= 0.95 and s["ground_truth"]["median_abs_rel_error"] < 0.06
    samples = json.loads(df["distance_samples"].iloc[0])
    assert len(samples) == 4 and max(samples) > 10 * min(samples)  # the outlier is kept in the record


def test_cli_episode_and_reward_outputs_join_by_frame_index(tmp_path):
    from typer.testing import CliRunner

    from spatialvlm.cli import app

    runner = CliRunner()
    ep_dir, out = tmp_path / "ep", tmp_path / "rw"
    res = runner.invoke(app, ["episodes", "render", "--out", str(ep_dir), "--frames", "6", "--width", "256",
                              "--height", "192", "--episode-index", "7", "--fps", "5"])
    assert res.exit_code == 0, res.output
    gt = pd.read_csv(ep_dir / "ground_truth.csv")
    assert list(gt["frame_index"]) == list(range(6)) and (gt["episode_index"] == 7).all()
    assert len([f for f in read_episode(ep_dir)]) == 6
    res = runner.invoke(app, ["reward", "--frames", str(ep_dir), "--from", "gripper", "--to", "bottle", "--out",
                              str(out), "--samples", "2", "--shaping", "exp,delta"])
    assert res.exit_code == 0, res.output
    assert "Spearman" in res.output
    for name in ("reward.csv", "reward.parquet", "reward.html", "reward.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    df = pd.read_parquet(out / "reward.parquet")
    assert {"episode_index", "frame_index", "timestamp", "distance_m", "reward", "reward_exp", "reward_delta",
            "cost", "gt_distance_m", "error_m"} <= set(df.columns)
    assert df["timestamp"].tolist() == pytest.approx([i / 5 for i in range(6)])
    # a LeRobot-style table joins on (episode_index, frame_index)
    lerobot = pd.DataFrame({"episode_index": [7] * 6, "frame_index": range(6), "index": range(100, 106)})
    joined = lerobot.merge(df[["episode_index", "frame_index", "reward"]], on=["episode_index", "frame_index"])
    assert len(joined) == 6 and joined["reward"].notna().all()
    assert pd.read_csv(out / "reward.csv")["frame_index"].tolist() == list(range(6))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ground_truth"]["frames"] == 6
