"""The paper's showcase questions on rendered scenes with known truth: the rule planner and the scene-graph
answerer built by our geometry from the rendered RGB-D (depth + masks) must give the true answers, and the trace
must show the direct questions asked."""

from __future__ import annotations

import json
from functools import cache

import pytest

pytest.importorskip("open3d")

from typer.testing import CliRunner

from spatialvlm.reason.showcase import build_showcase, run_showcase


@cache
def _scenes():
    return build_showcase(384, 288)


def test_showcase_truths_are_what_the_scenes_were_built_for():
    qs = {q.question: q for s in _scenes() for q in s.questions}
    gap = qs["Can a 1 m wide robot pass between the sofa and the table?"]
    assert gap.detail["gap_m"] == pytest.approx(1.3, abs=1e-6) and gap.truth is True
    assert qs["Can a 1.5 m wide robot pass between the sofa and the table?"].truth is False
    tri = [q for s in _scenes() for q in s.questions if q.kind == "triangle"]
    assert [q.truth for q in tri] == [True, False]
    assert tri[0].detail["closest_relative_difference"] < 0.01
    assert tri[1].detail["closest_relative_difference"] > 0.2
    assert qs["Which object is closest to the chair?"].truth == "floor lamp"


@pytest.mark.parametrize("source", ["pipeline", "truth"])
def test_showcase_answers_are_right(source):
    rows = run_showcase(_scenes(), source=source)
    assert len(rows) == 7
    wrong = [(r["question"], r["truth"], r["value"], r["trace"]) for r in rows if not r["correct"]]
    assert not wrong, wrong
    for r in rows:  # the trace shows the direct questions asked
        kinds = {q["type"] for q in r["direct_questions"]}
        assert kinds == ({"gap"} if r["kind"] == "gap" else {"distance"})
        assert ("ask(type='gap'" if r["kind"] == "gap" else "ask(type='distance'") in r["trace"]
        if r["kind"] == "triangle":
            assert len(r["direct_questions"]) == 3
        if r["kind"] == "closest":
            assert r["trace"].count("ask(type='distance'") == 3 and "list_objects()" in r["trace"]


def test_reason_cli_on_a_written_showcase(tmp_path):
    from spatialvlm.cli import app
    from spatialvlm.reason.showcase import write_showcase

    write_showcase(tmp_path / "sc", scenes=_scenes())
    assert (tmp_path / "sc" / "frames.jsonl").exists() and (tmp_path / "sc" / "questions.jsonl").exists()
    runner = CliRunner()
    res = runner.invoke(app, ["reason", "--frames", str(tmp_path / "sc"), "--image-id", "showcase_closest",
                              "--trace", str(tmp_path / "t.json"), "Which object is closest to the chair?"])
    assert res.exit_code == 0, res.output
    assert "floor lamp is closest" in res.output and "list_objects()" in res.output
    assert (tmp_path / "t.json").exists()
    res = runner.invoke(app, ["reason", "--frames", str(tmp_path / "sc"), "--image-id", "showcase_triangle_scalene",
                              "--answerer", "truth", "--json",
                              "Do the trash bin, the stool and the basketball form an isosceles triangle?"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["status"] == "ok" and out["value"] is False and len(out["trace"]) == 4
    res = runner.invoke(app, ["reason", "--frames", str(tmp_path / "sc"), "What is this?"])
    assert res.exit_code != 0 and "--image-id" in res.output
    res = runner.invoke(app, ["reason", "--frames", str(tmp_path / "sc"), "--image-id", "showcase_gap",
                              "What colour is the sofa?"])
    assert res.exit_code == 1 and "unanswered" in res.output
