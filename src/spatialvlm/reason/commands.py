"""CLI: ``spatialvlm reason``, ``spatialvlm reward`` and ``spatialvlm episodes render|showcase``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def _load_frame(image: Path | None, frames: Path | None, image_id: str | None):
    from spatialvlm.records import Frame, ItemError

    if frames is not None:
        from spatialvlm.io.frames import read_frames

        found, ids = None, []
        for it in read_frames(frames):
            if isinstance(it, ItemError):
                continue
            ids.append(it.image_id)
            if image_id is None or it.image_id == image_id:
                if found is not None and image_id is None:
                    raise typer.BadParameter(f"{frames} holds several frames; pick one with --image-id "
                                             f"(e.g. {', '.join(ids[:5])})")
                found = it
        if found is None:
            raise typer.BadParameter(f"no frame {image_id!r} in {frames}; ids: {', '.join(ids[:20]) or '(none)'}")
        return found
    if image is None:
        raise typer.BadParameter("give --image IMG or --frames DIR [--image-id ID]")
    from spatialvlm.io.photos import load_image

    arr, meta = load_image(image)
    return Frame(image_id=Path(image).stem, image=arr, source=str(image), meta=meta)


def register(app: typer.Typer) -> None:
    @app.command("reason")
    def reason_cmd(
        question: Annotated[str, typer.Argument(help="The spatial question, in quotes.")],
        image: Annotated[Path | None, typer.Option("--image", help="A photo (needs the perception models for "
                                                      "the scene-graph answerer).")] = None,
        frames: Annotated[Path | None, typer.Option("--frames", help="An RGB-D folder (frames.jsonl).")] = None,
        image_id: Annotated[str | None, typer.Option("--image-id", help="Which frame of --frames.")] = None,
        answerer: Annotated[str, typer.Option("--answerer", help="'scene' (our 3D scene graph), 'truth' (the exact "
                                              "scene of a rendered frame or of one with 3D boxes) or vlm:<model spec> "
                                              "(e.g. vlm:openai:gpt-4o@https://api.openai.com/v1, "
                                              "vlm:hf:<folder>).")] = "scene",
        planner: Annotated[str, typer.Option("--planner", help="'rule' (deterministic, offline), "
                                             "openai:<model>@<base_url> or hf:<model id or folder>.")] = "rule",
        gate: Annotated[str, typer.Option("--gate", help="Scene-graph answerer: report | strict | off.")] = "report",
        max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Most tool calls.")] = 12,
        max_retries: Annotated[int, typer.Option("--max-retries", min=1,
                                                 help="Malformed replies in a row before giving up.")] = 3,
        iso_tol: Annotated[float, typer.Option("--iso-tol", help="Rule planner: isosceles tolerance.")] = 0.10,
        clearance: Annotated[float, typer.Option("--clearance", help="Rule planner: extra metres a robot needs "
                                                 "beyond its width.")] = 0.0,
        trace: Annotated[Path | None, typer.Option("--trace", help="Write the full result and trace "
                                                      "(JSON) here.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Answer a hard spatial question by planning direct questions to a spatial answerer."""
        from spatialvlm.reason.agent import reason
        from spatialvlm.reason.answerers import SceneGraphAnswerer, VLMAnswerer
        from spatialvlm.reason.planners import load_planner

        frame = _load_frame(image, frames, image_id)
        if answerer == "scene":
            if frame.depth is None or frame.intrinsics is None or not frame.objects:
                from spatialvlm.perception.loading import ModelNotFoundError
                from spatialvlm.perception.stage import PerceptionConfig, PerceptionStage
                from spatialvlm.records import ItemError

                try:
                    stage = PerceptionStage(PerceptionConfig(scene_filter=None))
                except (ModelNotFoundError, FileNotFoundError) as exc:
                    typer.echo(f"error: {frame.image_id} has no depth / objects and the perception models are "
                               f"unavailable: {exc}", err=True)
                    raise typer.Exit(2) from exc
                got = stage([frame])[0]
                if isinstance(got, ItemError):
                    typer.echo(f"error: perception failed for {frame.image_id}: {got.reason}", err=True)
                    raise typer.Exit(2)
                frame = got
            from spatialvlm.geometry.scene import build_scene

            ans = SceneGraphAnswerer(build_scene(frame), gate=gate)
        elif answerer == "truth":
            from spatialvlm.qa.truth import gt_scene

            try:
                scene = gt_scene(frame)
            except ValueError as exc:
                typer.echo(f"error: no ground truth for {frame.image_id}: {exc}", err=True)
                raise typer.Exit(2) from exc
            from spatialvlm.qa.naming import assign_names

            assign_names(scene)
            ans = SceneGraphAnswerer(scene, gate="off", name=f"truth:{frame.image_id}")
        elif answerer.startswith("vlm:"):
            from spatialvlm.eval.adapters import load_model

            ans = VLMAnswerer(load_model(answerer[4:]), frame.image, [o.name for o in frame.objects] or None)
        else:
            raise typer.BadParameter(f"unknown answerer {answerer!r}: use 'scene', 'truth' or vlm:<model spec>")
        pl = load_planner(planner, iso_tol=iso_tol, clearance=clearance)
        res = reason(question, ans, pl, max_steps=max_steps, max_retries=max_retries)
        if trace is not None:
            trace.parent.mkdir(parents=True, exist_ok=True)
            trace.write_text(json.dumps(res.to_dict(), indent=2, default=str), encoding="utf-8")
        typer.echo(json.dumps(res.to_dict(), indent=2, default=str) if as_json else res.format_trace())
        if not res.ok:
            raise typer.Exit(1)

    @app.command("reward")
    def reward_cmd(
        frames: Annotated[Path, typer.Option("--frames", help="Episode: RGB-D folder (frames.jsonl, in order) or "
                                             "a folder of images (file-name order).")],
        source: Annotated[str, typer.Option("--from", help="First object, e.g. gripper.")],
        target: Annotated[str, typer.Option("--to", help="Second object, e.g. bottle.")],
        out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/reward"),
        samples: Annotated[int, typer.Option("--samples", min=1, help="Estimates per frame.")] = 5,
        shaping: Annotated[str, typer.Option("--shaping", help="Comma list of exp, negative, linear, delta, "
                                             "success; the first is the 'reward' column.")] = "exp,delta",
        metric: Annotated[str, typer.Option("--metric", help="distance (centres) or gap (surfaces).")] = "distance",
        estimator: Annotated[str, typer.Option("--estimator", help="'scene' or vlm:<model spec>.")] = "scene",
        aggregate: Annotated[str, typer.Option("--aggregate", help="median | mean | trimmed.")] = "median",
        scale: Annotated[float, typer.Option("--scale", help="Metres, for exp shaping.")] = 0.25,
        success_threshold: Annotated[float, typer.Option("--success-threshold",
                                                         help="Metres, for success shaping.")] = 0.05,
        interpolate: Annotated[bool, typer.Option("--interpolate/--no-interpolate",
                                                  help="Fill frames without estimate (flagged).")] = False,
        episode_index: Annotated[int | None, typer.Option("--episode-index",
                                                             help="Override the episode index.")] = None,
        fps: Annotated[float | None, typer.Option("--fps", help="Timestamps when frames carry none.")] = None,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write reward.html and reward.png.")] = True,
    ) -> None:
        """Per-frame distance between two objects over an episode -> dense reward curve (CSV, Parquet, plot)."""
        from spatialvlm.reason.reward import RewardConfig, compute_reward, read_episode, write_reward

        cfg = RewardConfig(source=source, target=target, metric=metric, estimator=estimator, samples=samples,
                           aggregate=aggregate, shaping=shaping, scale=scale, success_threshold=success_threshold,
                           interpolate=interpolate, episode_index=episode_index, fps=fps, seed=seed)
        df, summary = compute_reward(read_episode(frames), cfg, progress=True)
        paths = write_reward(df, summary, out, plot=plot)
        typer.echo(f"{summary['frames_with_estimate']}/{summary['frames']} frames with a distance estimate")
        for f in summary["failures"][:10]:
            typer.echo(f"  frame {f['frame_index']} ({f['image_id']}): {f['reason']}")
        gt = summary.get("ground_truth")
        if gt:
            typer.echo(f"vs ground truth ({gt['frames']} frames): Spearman {gt['spearman']:.3f}, mean |error| "
                       f"{gt['mean_abs_error_m']:.3f} m, max |error| {gt['max_abs_error_m']:.3f} m "
                       "(per frame: error_m column)")
        typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))

    episodes = typer.Typer(help="Rendered episodes (an object moving towards another) and showcase scenes, with "
                                "exact ground truth.", no_args_is_help=True)

    @episodes.command("render")
    def episodes_render(
        out: Annotated[Path, typer.Option("--out", help="Output RGB-D folder.")],
        n_frames: Annotated[int, typer.Option("--frames", "-n", min=2, help="Frames in the episode.")] = 24,
        seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
        mover: Annotated[str, typer.Option("--mover", help="'gripper' or a library category.")] = "gripper",
        target: Annotated[str, typer.Option("--target", help="A table-top category (bottle, mug...).")] = "bottle",
        retreat: Annotated[float, typer.Option("--retreat", help="Move back out at the end: outgoing / incoming "
                                                "frames (0 = approach only).")] = 0.0,
        fps: Annotated[float, typer.Option("--fps")] = 10.0,
        episode_index: Annotated[int, typer.Option("--episode-index", min=0)] = 0,
        width: Annotated[int, typer.Option("--width", min=16)] = 512,
        height: Annotated[int, typer.Option("--height", min=16)] = 384,
    ) -> None:
        """Render an object moving towards another; writes frames.jsonl + ground_truth.csv."""
        from spatialvlm.render.episode import EpisodeConfig, write_episode

        cfg = EpisodeConfig(n_frames=n_frames, seed=seed, mover=mover, target=target, retreat=retreat, fps=fps,
                            episode_index=episode_index, width=width, height=height)
        m = write_episode(cfg, out, progress=True)
        typer.echo(f"wrote {n_frames} frames: {m} (ground truth: {out / 'ground_truth.csv'})")

    @episodes.command("showcase")
    def episodes_showcase(
        out: Annotated[Path, typer.Option("--out", help="Output RGB-D folder (+ questions.jsonl).")],
        width: Annotated[int, typer.Option("--width", min=16)] = 512,
        height: Annotated[int, typer.Option("--height", min=16)] = 384,
        run: Annotated[bool, typer.Option("--run/--no-run", help="Also answer the questions with the rule planner "
                                          "and the scene-graph answerer; writes showcase_results.jsonl.")] = True,
    ) -> None:
        """Render the showcase scenes (robot gap, isosceles triangle, closest object) with their true answers."""
        from spatialvlm.reason.showcase import run_showcase, write_showcase

        scenes = write_showcase(out, width, height)
        typer.echo(f"wrote {len(scenes)} scenes to {out}")
        if run:
            rows = run_showcase(scenes)
            with (out / "showcase_results.jsonl").open("w", encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps(r, default=str) + "\n")
            for r in rows:
                typer.echo(("RIGHT " if r["correct"] else "WRONG ") + r["trace"].replace("\n", "\n      "))
            typer.echo(f"{sum(r['correct'] for r in rows)}/{len(rows)} showcase answers right")

    app.add_typer(episodes, name="episodes")
