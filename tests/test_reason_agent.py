"""The reasoning loop on analytic scenes: tool-call parsing, the rule planner's showcase plans, bounds and
failure reporting, the scene-graph and VLM answerers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scenes_synthetic import camera_pose, scene_from_boxes

from spatialvlm.reason.agent import reason
from spatialvlm.reason.answerers import SceneGraphAnswerer, ToolError, VLMAnswerer, resolve_name
from spatialvlm.reason.planners import RulePlanner
from spatialvlm.reason.tools import MalformedReply, parse_tool_call, safe_calc
from spatialvlm.records import ItemError


# ---- parsing ---------------------------------------------------------------------------------------------------
def test_parse_tool_call_accepts_wrapped_and_nested_forms():
    c = parse_tool_call('Sure.\n```json\n{"tool": "ask", "type": "Distance", "a": "sofa", "b": "table"}\n```')
    assert c.tool == "ask" and c.args == {"type": "distance", "a": "sofa", "b": "table"}
    c = parse_tool_call('{"tool": "ask", "args": {"type": "height", "a": "lamp", "b": "ignored"}}')
    assert c.args == {"type": "height", "a": "lamp"}  # one-object type: b dropped
    c = parse_tool_call('{"name": "ask", "arguments": "{\\"type\\": \\"gap\\", \\"a\\": \\"x\\", \\"b\\": \\"y\\"}"}')
    assert c.args["type"] == "gap"
    c = parse_tool_call('{"tool": "final", "answer": true}')
    assert c.args == {"answer": "true", "value": True}
    # the same call repeated (a model looping) is one call
    assert parse_tool_call('{"tool": "list_objects"} {"tool": "list_objects"}').tool == "list_objects"


@pytest.mark.parametrize("reply,why", [
    ("", "empty"),
    ("I think the answer is yes.", "no JSON object"),
    ('{"answer": "yes"}', 'no "tool"'),
    ('{"tool": "teleport"}', "unknown tool"),
    ('{"tool": "ask", "type": "loudness", "a": "x", "b": "y"}', "unknown question type"),
    ('{"tool": "ask", "type": "distance", "a": "x"}', '"b"'),
    ('{"tool": "final"}', '"answer"'),
    ('{"tool": "ask", "type": "distance", "a": "x", "b": "y"} {"tool": "final", "answer": "no"}', "different"),
    ('{"tool": "ask", "type": "distance", "a": "x", "b": ', "no JSON object"),
])
def test_parse_tool_call_rejects_malformed(reply, why):
    with pytest.raises(MalformedReply, match=why):
        parse_tool_call(reply)


def test_safe_calc_is_arithmetic_only():
    assert safe_calc("abs(1.2 - 0.9) / max(1.2, 0.9)") == pytest.approx(0.25)
    assert safe_calc("1.3 >= 1.0 and 2 < 3") is True
    assert safe_calc("sqrt(9) + 2**3") == 11
    for bad in ("__import__('os')", "x + 1", "(1).real", "1/0", "9**999", "[1, 2]"):
        with pytest.raises(ValueError):
            safe_calc(bad)


# ---- scenes ----------------------------------------------------------------------------------------------------
def _room(canonical: bool = True):
    # world: z up, camera at the origin looking along +y
    boxes = {
        "sofa": ((-1.2, 4.0, 0.4), (2.0, 0.9, 0.8)),
        "table": ((1.2, 4.0, 0.375), (1.2, 0.8, 0.75)),  # sofa spans x <= -0.2, table x >= 0.6: gap 0.8 m
        "lamp": ((0.2, 5.5, 0.8), (0.4, 0.4, 1.6)),
    }
    return scene_from_boxes(boxes, camera_pose(1.5, -20.0), canonical=canonical)


def test_resolve_name_rules():
    names = ["coffee table", "table lamp", "chair on the left", "chair on the right"]
    assert resolve_name("The Coffee Tables", names) == "coffee table"
    assert resolve_name("coffee", names) == "coffee table"
    with pytest.raises(ToolError, match="ambiguous"):
        resolve_name("table", names)
    with pytest.raises(ToolError, match="ambiguous"):
        resolve_name("chair", names)
    with pytest.raises(ToolError, match="no object called 'sofa'"):
        resolve_name("sofa", names)
    with pytest.raises(ToolError, match="cannot be asked about"):
        resolve_name("book", names, {"book": "3 objects share this name"})


def test_scene_graph_answerer_values_and_gate_modes():
    ans = SceneGraphAnswerer(_room())
    r = ans.ask("gap", "sofa", "table")
    assert r["value"] == pytest.approx(0.8, abs=0.02) and r["unit"] == "m" and "reliable" in r
    assert ans.ask("left_predicate", "sofa", "table")["value"] is True
    assert ans.ask("tall_choice", "lamp", "table")["value"] == "lamp"
    assert ans.ask("height", "lamp")["value"] == pytest.approx(1.6, abs=0.02)
    assert sorted(ans.list_objects()["objects"]) == ["lamp", "sofa", "table"]
    with pytest.raises(ToolError, match="different objects"):
        ans.ask("distance", "sofa", "sofa")
    with pytest.raises(ToolError, match="only takes structured"):
        ans.ask_free("is it nice?")
    assert "reliable" not in SceneGraphAnswerer(_room(), gate="off").ask("gap", "sofa", "table")
    # strict mode refuses what the gate rejects (analytic scenes carry no visibility info, so the gate judges
    # only margins): tall_choice of two objects of similar height is within the margin
    strict = SceneGraphAnswerer(scene_from_boxes({"a": ((0, 4, 0.5), (0.5, 0.5, 1.0)),
                                                  "b": ((1, 4, 0.51), (0.5, 0.5, 1.02))}, camera_pose()),
                                gate="strict")
    with pytest.raises(ToolError, match="reliably"):
        strict.ask("tall_choice", "a", "b")
    # without a gravity frame, types that need it are refused with the reason
    flat = SceneGraphAnswerer(_room(canonical=False))
    with pytest.raises(ToolError, match="gravity-aligned"):
        flat.ask("height", "lamp")
    assert flat.ask("distance", "sofa", "table")["value"] > 0


# ---- the rule planner through the full loop ---------------------------------------------------------------------
def test_rule_planner_gap_question_both_ways():
    ans = SceneGraphAnswerer(_room())
    yes = reason("Can a 60 cm wide robot pass between the sofa and the table?", ans, RulePlanner())
    no = reason("Can a 1 m wide robot pass between the sofa and the table?", ans, RulePlanner())
    assert yes.ok and yes.value is True and no.ok and no.value is False
    assert [q["type"] for q in yes.direct_questions] == ["gap"]
    assert "0.80" in yes.answer and "gap" in yes.format_trace()
    # a clearance margin turns the 60 cm answer into a no (0.6 + 0.3 > 0.8)
    assert reason("Can a 60 cm wide robot pass between the sofa and the table?", ans,
                  RulePlanner(clearance=0.3)).value is False


def test_rule_planner_triangle_and_closest():
    s = 0.9
    h = math.sqrt(1.2 ** 2 - (s / 2) ** 2)  # apex 1.2 m from both base corners
    iso = scene_from_boxes({"mug": ((-s / 2, 3.0, 0.05), (0.1, 0.1, 0.1)), "bowl": ((s / 2, 3.0, 0.05), (0.1, 0.1, 0.1)),
                            "vase": ((0.0, 3.0 + h, 0.05), (0.1, 0.1, 0.1))}, camera_pose(1.5, -30.0))
    r = reason("Do the mug, the bowl and the vase form an isosceles triangle?", SceneGraphAnswerer(iso),
               RulePlanner())
    assert r.ok and r.value is True and len(r.direct_questions) == 3
    assert {frozenset((q["a"], q["b"])) for q in r.direct_questions} == {
        frozenset(p) for p in (("mug", "bowl"), ("bowl", "vase"), ("mug", "vase"))}
    sca = scene_from_boxes({"mug": ((-0.45, 3.0, 0.05), (0.1, 0.1, 0.1)), "bowl": ((0.45, 3.0, 0.05), (0.1, 0.1, 0.1)),
                            "vase": ((-0.62, 4.09, 0.05), (0.1, 0.1, 0.1))}, camera_pose(1.5, -30.0))
    r = reason("Do the mug, the bowl and the vase form an isosceles triangle?", SceneGraphAnswerer(sca),
               RulePlanner())
    assert r.ok and r.value is False

    r = reason("Which object is closest to the lamp?", SceneGraphAnswerer(_room()), RulePlanner())
    d_table = np.linalg.norm(np.subtract((1.2, 4.0, 0.375), (0.2, 5.5, 0.8)))
    d_sofa = np.linalg.norm(np.subtract((-1.2, 4.0, 0.4), (0.2, 5.5, 0.8)))
    assert r.ok and r.value == ("table" if d_table < d_sofa else "sofa")
    assert r.trace[0].call == {"tool": "list_objects"}
    assert len(r.direct_questions) == 2


def test_rule_planner_reports_what_it_cannot_do():
    ans = SceneGraphAnswerer(_room())
    r = reason("What colour is the sofa?", ans, RulePlanner())
    assert r.status == "unanswered" and "rule-based planner" in r.reason
    r = reason("Can a 1 m wide robot pass between the sofa and the piano?", ans, RulePlanner())
    assert r.status == "unanswered" and "piano" in r.answer
    assert r.trace[0].kind == "tool_error" and "no object called 'piano'" in r.trace[0].error
    r = reason("Which object is closest to the piano?", ans, RulePlanner())
    assert r.status == "unanswered"


# ---- bounds and failure reporting (scripted planner) -------------------------------------------------------------
class Scripted:
    name = "scripted"

    def __init__(self, replies):
        self.replies = list(replies)
        self.seen: list[list[dict]] = []

    def complete(self, messages):
        self.seen.append([dict(m) for m in messages])
        if not self.replies:
            return '{"tool": "list_objects"}'
        r = self.replies.pop(0)
        if isinstance(r, Exception):
            raise r
        return r


def test_malformed_replies_are_retried_with_feedback_then_reported():
    ans = SceneGraphAnswerer(_room())
    p = Scripted(["nonsense", '{"tool": "final", "answer": "Yes.", "value": true}'])
    r = reason("q?", ans, p, max_retries=2)
    assert r.ok and r.value is True and r.trace[0].kind == "malformed"
    fb = p.seen[1][-1]
    assert fb["role"] == "user" and fb["content"].startswith("ERROR ") and "no JSON object" in fb["content"]
    r = reason("q?", ans, Scripted(["junk"] * 5), max_retries=3)
    assert r.status == "malformed" and r.answer is None and len(r.trace) == 3
    assert "3 malformed replies in a row" in r.reason


def test_step_limit_and_planner_error():
    from spatialvlm.reason.planners import PlannerError

    r = reason("q?", SceneGraphAnswerer(_room()), Scripted([]), max_steps=4)
    assert r.status == "step_limit" and sum(1 for s in r.trace if s.result is not None) == 4
    r = reason("q?", SceneGraphAnswerer(_room()), Scripted(['{"tool": "list_objects"}', PlannerError("HTTP 503")]))
    assert r.status == "planner_error" and "503" in r.reason and r.trace[0].result is not None
    json.dumps(r.to_dict(), default=str)  # the whole result serialises


def test_tool_errors_go_back_to_the_planner():
    p = Scripted(['{"tool": "ask", "type": "distance", "a": "sofa", "b": "piano"}',
                  '{"tool": "calc", "expr": "import os"}',
                  '{"tool": "calc", "expr": "0.8 >= 0.6"}',
                  '{"tool": "final", "answer": "ok", "value": 1}'])
    r = reason("q?", SceneGraphAnswerer(_room()), p)
    assert r.ok and [s.kind for s in r.trace] == ["tool_error", "tool_error", "tool", "final"]
    assert r.trace[2].result["value"] is True
    assert "no object called 'piano'" in p.seen[1][-1]["content"]


# ---- VLM answerer -------------------------------------------------------------------------------------------
class FakeVLM:
    name = "fake"

    def __init__(self, reply):
        self.reply = reply
        self.questions: list[str] = []

    def answer(self, images, questions):
        self.questions += list(questions)
        return [self.reply(q) for q in questions]


def test_vlm_answerer_phrases_and_parses():
    img = np.zeros((8, 8, 3), np.uint8)
    v = FakeVLM(lambda q: "They are roughly 3 feet apart." if "sofa" in q else "Yes, it is.")
    ans = VLMAnswerer(v, img, ["sofa", "table"])
    r = ans.ask("distance", "Sofa", "table")
    assert r["value"] == pytest.approx(0.9144, abs=1e-3) and r["parsed"] and "sofa" in r["question"]
    assert ans.ask("left_predicate", "table", "lamp")["value"] is True  # unknown names are still asked
    v2 = FakeVLM(lambda q: "I can't tell from this picture.")
    r = VLMAnswerer(v2, img).ask("distance", "a", "b")
    assert r["value"] is None and r["parsed"] is False
    v3 = FakeVLM(lambda q: "sofa, coffee table and a lamp.")
    assert VLMAnswerer(v3, img).list_objects()["objects"] == ["sofa", "coffee table", "lamp"]
    v4 = FakeVLM(lambda q: ItemError("x", "model", "HTTP 500"))
    with pytest.raises(ToolError, match="HTTP 500"):
        VLMAnswerer(v4, img).ask_free("anything?")


def test_rule_planner_with_vlm_answerer():
    img = np.zeros((8, 8, 3), np.uint8)
    v = FakeVLM(lambda q: "about 1.4 meters")
    r = reason("Can a 1 m wide robot pass between the sofa and the table?", VLMAnswerer(v, img), RulePlanner())
    assert r.ok and r.value is True and len(v.questions) == 1 and "sofa" in v.questions[0].lower()
