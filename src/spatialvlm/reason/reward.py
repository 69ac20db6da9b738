"""Dense rewards for robot learning: the metric distance between two named objects in every frame of an episode.

For each frame, ``samples`` estimates of the distance between ``source`` and ``target`` are made and combined
robustly (the paper averages several answers of its model per frame); a shaping turns the per-frame distance into a
reward. Estimators:

* ``scene`` (default): our 3D pipeline. Frames with metric depth, intrinsics and object masks or boxes (RGB-D
  folders, rendered episodes) are lifted with :func:`spatialvlm.geometry.scene.build_scene`; frames without them
  (plain photos) first go through the perception stage (metric depth model, detector prompted with the two names,
  segmenter; models must be available locally). The measure is the registry's ``distance`` (box centres) or
  ``gap`` (closest box surfaces), computed in the gravity-aligned frame when there is one. Repeated estimates come
  from random subsets (``subsample``) of each object's cleaned points: their spread says how stable the estimate
  is; the first sample always uses all points.
* ``vlm:<model spec>``: a vision-language model (:func:`spatialvlm.eval.adapters.load_model`) asked ``samples``
  times per frame with different phrasings of the distance question; answers are parsed to metres
  (:func:`spatialvlm.eval.parse.parse_distance`), unparsable ones are counted and left out.

Aggregation (``aggregate``): ``median`` (default), ``mean``, or ``trimmed`` (mean of the samples within 3 MADs of
the median). Shapings (``shaping``, several allowed; the first is the ``reward`` column): ``exp``
(exp(-d / scale)), ``negative`` (-d), ``linear`` (1 - d / d0, d0 = first valid distance), ``delta`` (d[t-1] - d[t],
potential-based progress; 0 at the first frame), ``success`` (1 when d <= success_threshold, else 0). ``cost`` is
always d.

Output (``write_reward``): ``reward.csv`` and ``reward.parquet`` (one row per frame, columns below), ``reward.html``
(plotly), ``reward.png`` and ``summary.json``. ``episode_index`` / ``frame_index`` / ``timestamp`` follow LeRobot's
column names: join on (episode_index, frame_index) to add the reward to a LeRobot dataset.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatialvlm.records import Frame, ItemError

SHAPINGS = ("exp", "negative", "linear", "delta", "success")
AGGREGATES = ("median", "mean", "trimmed")


@dataclass
class RewardConfig:
    source: str  # e.g. "gripper"
    target: str  # e.g. "bottle"
    metric: str = "distance"  # "distance" (centres) | "gap" (closest surfaces)
    estimator: str = "scene"  # "scene" | "vlm:<model spec>"
    samples: int = 5
    aggregate: str = "median"
    shaping: list[str] = field(default_factory=lambda: ["exp"])
    scale: float = 0.25  # metres, for "exp"
    success_threshold: float = 0.05  # metres, for "success"
    subsample: float = 0.7  # scene estimator: share of each object's points per repeated sample
    interpolate: bool = False  # fill frames without an estimate by linear interpolation (flagged)
    episode_index: int | None = None  # default: from frame meta, else 0
    fps: float | None = None  # timestamps = frame_index / fps when frames carry none
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.source.strip() or not self.target.strip():
            raise ValueError("--from and --to must name two objects")
        if self.metric not in ("distance", "gap"):
            raise ValueError(f"metric must be 'distance' or 'gap', got {self.metric!r}")
        if self.samples < 1:
            raise ValueError("samples must be >= 1")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {self.aggregate!r}")
        if isinstance(self.shaping, str):
            self.shaping = [s.strip() for s in self.shaping.split(",") if s.strip()]
        bad = [s for s in self.shaping if s not in SHAPINGS]
        if bad or not self.shaping:
            raise ValueError(f"unknown shaping {bad or self.shaping}; choose from {SHAPINGS}")
        if self.scale <= 0:
            raise ValueError("scale must be positive")
        if not 0.0 < self.subsample <= 1.0:
            raise ValueError("subsample must be in (0, 1]")


# --------------------------------------------------------------------------------------------------------------
# Aggregation and shaping
# --------------------------------------------------------------------------------------------------------------
def aggregate(values: Sequence[float], how: str = "median") -> tuple[float, float, int]:
    """(estimate, spread, number of values used) of the finite ``values``; NaN estimate when there are none.
    Spread: standard deviation (mean), 1.4826 * MAD (median / trimmed)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    med = float(np.median(v))
    mad = 1.4826 * float(np.median(np.abs(v - med)))
    if how == "median":
        return med, mad, len(v)
    if how == "mean":
        return float(v.mean()), float(v.std()), len(v)
    if how == "trimmed":
        keep = v[np.abs(v - med) <= 3 * mad] if mad > 0 else v[v == med]
        return float(keep.mean()), mad, len(keep)
    raise ValueError(f"unknown aggregate {how!r}")


def shape_reward(d: np.ndarray, how: str, scale: float = 0.25, success_threshold: float = 0.05) -> np.ndarray:
    """Reward per frame from distances ``d`` (NaN stays NaN)."""
    d = np.asarray(d, dtype=np.float64)
    if how == "exp":
        return np.exp(-d / scale)
    if how == "negative":
        return -d
    if how == "linear":
        valid = np.flatnonzero(np.isfinite(d))
        if not len(valid) or d[valid[0]] <= 0:
            return np.full_like(d, np.nan)
        return 1.0 - d / d[valid[0]]
    if how == "delta":
        out = np.full_like(d, np.nan)
        prev = np.nan
        for i, x in enumerate(d):
            if np.isfinite(x):
                out[i] = 0.0 if not np.isfinite(prev) else prev - x
                prev = x
        return out
    if how == "success":
        return np.where(np.isfinite(d), (d <= success_threshold).astype(np.float64), np.nan)
    raise ValueError(f"unknown shaping {how!r}")


# --------------------------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------------------------
class SceneEstimator:
    """Distances from our 3D pipeline (see the module docstring)."""

    def __init__(self, cfg: RewardConfig, perception_config: dict | None = None, geometry_config=None):
        self.cfg = cfg
        self.perception_config = perception_config
        self.geometry_config = geometry_config
        self._perception = None
        self.name = "scene"

    def _perceive(self, frame: Frame) -> Frame | ItemError:
        if self._perception is None:
            from spatialvlm.perception.stage import PerceptionConfig, PerceptionStage

            data = {"scene_filter": None, **(self.perception_config or {})}
            data.setdefault("vocabulary", [self.cfg.source, self.cfg.target])
            self._perception = PerceptionStage(PerceptionConfig.from_dict(data))
        return self._perception([frame])[0]

    def estimate(self, frames: Sequence[Frame]) -> list[tuple[list[float], str | None]]:
        return [self._one(f, i) for i, f in enumerate(frames)]

    def _one(self, frame: Frame, index: int) -> tuple[list[float], str | None]:
        from spatialvlm.geometry.scene import build_scene, make_object
        from spatialvlm.qa.types import UNGATED, evaluate
        from spatialvlm.reason.answerers import ToolError, resolve_name
        from spatialvlm.records import Scene

        if frame.depth is None or frame.intrinsics is None or not frame.objects:
            got = self._perceive(frame)
            if isinstance(got, ItemError):
                return [], f"perception: {got.reason}"
            frame = got
        frame = _only_named(frame, (self.cfg.source, self.cfg.target))
        try:
            scene = build_scene(frame, self.geometry_config)
        except ValueError as exc:
            return [], f"geometry: {exc}"
        names = {o.name: o for o in scene.objects if o.askable}
        others = {o.label: o.meta.get("name_reason", "not askable") for o in scene.objects if not o.askable}
        others.update({d.label: f"dropped: {d.reason}" for d in scene.dropped})
        try:
            oa = names[resolve_name(self.cfg.source, list(names), others)]
            ob = names[resolve_name(self.cfg.target, list(names), others)]
        except ToolError as exc:
            return [], str(exc)
        rng = np.random.default_rng(np.random.SeedSequence([self.cfg.seed, index]))
        out: list[float] = []
        for k in range(self.cfg.samples):
            if k == 0:
                a, b = oa, ob
            else:
                a, b = (make_object(o.id, o.label, _subset(o.points_cam, self.cfg.subsample, rng), scene.canonical)
                        for o in (oa, ob))
            r = evaluate(self.cfg.metric, Scene(scene.image_id, [a, b], scene.canonical, scene.intrinsics,
                                                scene.image_size), a, b, UNGATED)
            if r is None:
                return [], f"{self.cfg.metric} cannot be computed for this frame"
            out.append(float(r[1]))
        return out, None


def _only_named(frame: Frame, queries: Sequence[str]) -> Frame:
    """A shallow copy of ``frame`` keeping the objects whose labels share a word with a query (so that the other
    objects are not lifted for nothing; objects of the same name stay, for the ambiguity rule)."""
    import copy

    from spatialvlm.qa.naming import normalize_label

    words = set().union(*(normalize_label(q).split() for q in queries))
    keep = [o for o in frame.objects if words & set(normalize_label(o.name).split())]
    if len(keep) == len(frame.objects):
        return frame
    out = copy.copy(frame)
    out.objects = keep
    return out


def _subset(points: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    n = len(points)
    k = max(3, round(n * share))
    return points if k >= n else points[rng.choice(n, k, replace=False)]


class VLMEstimator:
    """Distances read from a vision-language model's answers (see the module docstring)."""

    def __init__(self, cfg: RewardConfig, vlm: Any):
        self.cfg = cfg
        self.vlm = vlm
        self.name = f"vlm:{getattr(vlm, 'name', type(vlm).__name__)}"

    def estimate(self, frames: Sequence[Frame]) -> list[tuple[list[float], str | None]]:
        from spatialvlm.eval.parse import parse_distance
        from spatialvlm.reason.answerers import fill_question

        qs = [fill_question(self.cfg.metric, self.cfg.source, self.cfg.target, k) for k in range(self.cfg.samples)]
        images, questions = [], []
        for f in frames:
            images += [f.image] * len(qs)
            questions += qs
        answers = self.vlm.answer(images, questions)
        if len(answers) != len(questions):
            raise RuntimeError(f"{self.name} returned {len(answers)} answers for {len(questions)} questions")
        out = []
        for i in range(len(frames)):
            vals, why = [], []
            for a in answers[i * len(qs):(i + 1) * len(qs)]:
                if isinstance(a, ItemError):
                    why.append(a.reason)
                    continue
                v = parse_distance(a)
                if v is None:
                    why.append(f"no distance in {str(a)[:60]!r}")
                else:
                    vals.append(float(v))
            out.append((vals, None if vals else "; ".join(why) or "no answer"))
        return out


def make_estimator(cfg: RewardConfig, **kw):
    if cfg.estimator == "scene":
        return SceneEstimator(cfg, kw.get("perception_config"), kw.get("geometry_config"))
    if cfg.estimator.startswith("vlm:"):
        vlm = kw.get("vlm")
        if vlm is None:
            from spatialvlm.eval.adapters import load_model

            vlm = load_model(cfg.estimator[4:], **kw.get("model_options", {}))
        return VLMEstimator(cfg, vlm)
    raise ValueError(f"unknown estimator {cfg.estimator!r}; use 'scene' or 'vlm:<model spec>'")


# --------------------------------------------------------------------------------------------------------------
# Episodes
# --------------------------------------------------------------------------------------------------------------
def read_episode(path: str | Path) -> list[Frame | ItemError]:
    """An RGB-D folder (``frames.jsonl``) in manifest order, or a folder of images in file-name order."""
    p = Path(path)
    if p.is_file() and p.suffix == ".jsonl" or (p / "frames.jsonl").exists():
        from spatialvlm.io.frames import read_frames

        return list(read_frames(p))
    if p.is_dir():
        from spatialvlm.io.photos import read_photos

        return list(read_photos(p, recursive=False))
    raise FileNotFoundError(f"{p}: expected an RGB-D folder with frames.jsonl or a folder of images")


def _gt(frame: Frame, cfg: RewardConfig) -> float | None:
    g = (frame.meta or {}).get("ground_truth")
    if not isinstance(g, dict):
        return None
    from spatialvlm.qa.naming import normalize_label

    if normalize_label(str(g.get("from", ""))) != normalize_label(cfg.source) or \
            normalize_label(str(g.get("to", ""))) != normalize_label(cfg.target):
        return None
    v = g.get(f"{cfg.metric}_m")
    return float(v) if isinstance(v, (int, float)) else None


def compute_reward(items: Iterable[Frame | ItemError], cfg: RewardConfig, estimator=None, batch: int = 8,
                   progress: bool = False):
    """The per-frame table (a pandas DataFrame) and a summary dict. ``items`` in episode order; unreadable
    frames (ItemError) keep their row with the reason."""
    import pandas as pd

    est = estimator or make_estimator(cfg)
    items = list(items)
    rows: list[dict[str, Any]] = []
    frames_idx = [i for i, it in enumerate(items) if isinstance(it, Frame)]
    results: dict[int, tuple[list[float], str | None]] = {}
    it = range(0, len(frames_idx), batch)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="estimating distances", unit="batch")
    for s in it:
        idx = frames_idx[s:s + batch]
        for i, r in zip(idx, est.estimate([items[i] for i in idx])):
            results[i] = r
    for pos, item in enumerate(items):
        if isinstance(item, ItemError):
            rows.append({"episode_index": cfg.episode_index or 0, "frame_index": pos, "timestamp": None,
                         "image_id": item.item, "samples": [], "error": f"read: {item.reason}", "gt": None})
            continue
        meta = item.meta or {}
        fi = meta.get("frame_index", pos)
        ep = cfg.episode_index if cfg.episode_index is not None else meta.get("episode_index", 0)
        ts = meta.get("timestamp")
        if ts is None and cfg.fps:
            ts = fi / cfg.fps
        vals, err = results[pos]
        rows.append({"episode_index": int(ep), "frame_index": int(fi), "timestamp": ts, "image_id": item.image_id,
                     "samples": vals, "error": err, "gt": _gt(item, cfg)})
    table = []
    for r in rows:
        d, spread, n = aggregate(r["samples"], cfg.aggregate)
        table.append({"episode_index": r["episode_index"], "frame_index": r["frame_index"],
                      "timestamp": r["timestamp"], "image_id": r["image_id"], "distance_m": d,
                      "distance_spread_m": spread, "n_samples": cfg.samples, "n_used": n,
                      "distance_samples": json.dumps([round(x, 5) for x in r["samples"]]),
                      "interpolated": False, "error": r["error"] or "", "gt_distance_m": r["gt"]})
    df = pd.DataFrame(table)
    if cfg.interpolate and df["distance_m"].notna().sum() >= 2:
        miss = df["distance_m"].isna()
        df["distance_m"] = df["distance_m"].interpolate(limit_area="inside")
        df["interpolated"] = miss & df["distance_m"].notna()
    d = df["distance_m"].to_numpy(dtype=np.float64)
    df["cost"] = d
    for k, s in enumerate(cfg.shaping):
        r = shape_reward(d, s, cfg.scale, cfg.success_threshold)
        df[f"reward_{s}"] = r
        if k == 0:
            df["reward"] = r
    df["gt_distance_m"] = pd.to_numeric(df["gt_distance_m"], errors="coerce")
    df["error_m"] = df["distance_m"] - df["gt_distance_m"]
    df["abs_error_m"] = df["error_m"].abs()
    return df, summarize(df, cfg, getattr(est, "name", "?"))


def summarize(df, cfg: RewardConfig, estimator: str) -> dict[str, Any]:
    valid = df["distance_m"].notna()
    out: dict[str, Any] = {"config": asdict(cfg), "estimator": estimator, "frames": len(df),
                           "frames_with_estimate": int(valid.sum()),
                           "frames_interpolated": int(df["interpolated"].sum()),
                           "failures": [{"frame_index": int(r.frame_index), "image_id": r.image_id, "reason": r.error}
                                        for r in df.itertuples() if r.error]}
    both = valid & df["gt_distance_m"].notna() & ~df["interpolated"]
    if both.sum() >= 2:
        from scipy.stats import pearsonr, spearmanr

        e, g = df.loc[both, "distance_m"].to_numpy(), df.loc[both, "gt_distance_m"].to_numpy()
        rho = spearmanr(e, g).statistic if np.ptp(e) > 0 and np.ptp(g) > 0 else float("nan")
        r = pearsonr(e, g).statistic if np.ptp(e) > 0 and np.ptp(g) > 0 else float("nan")
        err = e - g
        out["ground_truth"] = {
            "frames": int(both.sum()), "spearman": float(rho), "pearson": float(r),
            "mean_abs_error_m": float(np.mean(np.abs(err))), "max_abs_error_m": float(np.max(np.abs(err))),
            "mean_error_m": float(np.mean(err)),
            "median_abs_rel_error": float(np.median(np.abs(err) / np.maximum(g, 1e-6)))}
    return out


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------
def write_reward(df, summary: dict[str, Any], out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
    """Write reward.csv, reward.parquet, summary.json and (``plot``) reward.html + reward.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "reward.csv", "parquet": out / "reward.parquet", "summary": out / "summary.json"}
    df.to_csv(paths["csv"], index=False)
    df.to_parquet(paths["parquet"], index=False)
    paths["summary"].write_text(json.dumps(summary, indent=2, default=_json_default), encoding="utf-8")
    if plot:
        paths["html"] = plot_html(df, summary, out / "reward.html")
        paths["png"] = plot_png(df, out / "reward.png")
    return paths


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


def plot_html(df, summary: dict[str, Any], path: Path) -> Path:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cfg = summary["config"]
    x = df["frame_index"]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=(f"{cfg['metric']} {cfg['source']} -> {cfg['target']} (m)", "reward"))
    d, s = df["distance_m"], df["distance_spread_m"].fillna(0.0)
    fig.add_trace(go.Scatter(x=x, y=d + s, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"),
                  1, 1)
    fig.add_trace(go.Scatter(x=x, y=d - s, mode="lines", line={"width": 0}, fill="tonexty",
                             fillcolor="rgba(31,119,180,0.2)", name="spread"), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=d, mode="lines+markers", name=f"estimate ({summary['estimator']})"), 1, 1)
    if df["gt_distance_m"].notna().any():
        fig.add_trace(go.Scatter(x=x, y=df["gt_distance_m"], mode="lines", name="ground truth",
                                 line={"dash": "dash"}), 1, 1)
    for col in [c for c in df.columns if c.startswith("reward_")]:
        fig.add_trace(go.Scatter(x=x, y=df[col], mode="lines+markers", name=col), 2, 1)
    gt = summary.get("ground_truth")
    title = f"reward curve: {summary['frames_with_estimate']}/{summary['frames']} frames estimated"
    if gt:
        title += f"; vs ground truth: Spearman {gt['spearman']:.3f}, mean |error| {gt['mean_abs_error_m']:.3f} m"
    fig.update_layout(title=title, height=700, template="plotly_white")
    fig.update_xaxes(title_text="frame_index", row=2, col=1)
    fig.write_html(str(path), include_plotlyjs="directory")
    return path


def plot_png(df, path: Path, size: tuple[int, int] = (900, 420)) -> Path:
    """A small dependency-free line plot (Pillow): estimated distance (blue), ground truth (gray, dashed when
    present), reward (orange, right axis scaled to its range)."""
    from PIL import Image, ImageDraw

    W, H = size
    m = (60, 20, 20, 50)  # left, top, right, bottom
    img = Image.new("RGB", (W, H), "white")
    dr = ImageDraw.Draw(img)
    x = df["frame_index"].to_numpy(dtype=np.float64)
    d = df["distance_m"].to_numpy(dtype=np.float64)
    g = df["gt_distance_m"].to_numpy(dtype=np.float64)
    r = df["reward"].to_numpy(dtype=np.float64)
    ys = np.concatenate([d[np.isfinite(d)], g[np.isfinite(g)]])
    if len(x) == 0 or len(ys) == 0:
        dr.text((m[0], H // 2), "no distance estimated", fill="black")
        img.save(path)
        return path
    x0, x1 = float(x.min()), float(max(x.max(), x.min() + 1))
    y0, y1 = 0.0, float(ys.max()) * 1.1 or 1.0

    def px(xv, yv, lo=y0, hi=y1):
        return (m[0] + (xv - x0) / (x1 - x0) * (W - m[0] - m[2]), H - m[3] - (yv - lo) / (hi - lo) * (H - m[1] - m[3]))

    dr.rectangle([m[0], m[1], W - m[2], H - m[3]], outline="black")
    for k in range(5):
        yv = y0 + (y1 - y0) * k / 4
        _, yy = px(x0, yv)
        dr.line([m[0] - 4, yy, m[0], yy], fill="black")
        dr.text((4, yy - 6), f"{yv:.2f} m", fill="black")
    for k in range(6):
        xv = x0 + (x1 - x0) * k / 5
        xx, _ = px(xv, y0)
        dr.line([xx, H - m[3], xx, H - m[3] + 4], fill="black")
        dr.text((xx - 8, H - m[3] + 6), f"{xv:.0f}", fill="black")
    dr.text((W // 2 - 30, H - m[3] + 22), "frame_index", fill="black")

    def line(vals, color, lo=y0, hi=y1, dash=False):
        pts = [px(a, b, lo, hi) for a, b in zip(x, vals) if np.isfinite(b)]
        for k, (p, q) in enumerate(itertools.pairwise(pts)):
            if not dash or k % 2 == 0:
                dr.line([p, q], fill=color, width=2)

    if np.isfinite(g).any():
        line(g, (120, 120, 120), dash=True)
    line(d, (31, 119, 180))
    if np.isfinite(r).any():
        lo, hi = float(np.nanmin(r)), float(np.nanmax(r))
        if hi - lo < 1e-9:
            hi = lo + 1.0
        line(r, (255, 127, 14), lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    dr.text((m[0] + 8, m[1] + 4), "distance (blue), ground truth (gray), reward (orange, own scale)", fill="black")
    img.save(path)
    return path
