"""The reasoning loop: a planner breaks a spatial question into direct ones, an answerer answers them.

Each step the planner gets the chat so far and replies with one JSON tool call (see
:mod:`spatialvlm.reason.tools`). The agent parses it, runs the tool on the answerer and appends the result
(``RESULT {...}``) or the tool's error (``ERROR {...}``) to the chat. It stops at ``final``.

Bounds and failures, all reported in :class:`ReasonResult` (``status``), never raised:

* ``ok``: the planner gave a final answer;
* ``unanswered``: the planner's final reply says it cannot answer (``"unanswerable": true``), e.g. a direct
  question it needed failed; ``reason`` holds its explanation;
* ``malformed``: ``max_retries`` consecutive replies were not a valid tool call (each one was answered with an
  ``ERROR`` message explaining what was wrong, so the planner could correct itself);
* ``step_limit``: ``max_steps`` tool calls were made without a final answer;
* ``planner_error``: the planner could not be reached or failed (HTTP error, generation error).

Every reply, parsed call, result and error is kept in ``trace`` and logged (logger ``spatialvlm.reason``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from spatialvlm.qa.taxonomy import TYPES
from spatialvlm.reason.answerers import Answerer, ToolError
from spatialvlm.reason.planners import ERROR_PREFIX, RESULT_PREFIX, PlannerError
from spatialvlm.reason.tools import MalformedReply, ToolCall, parse_tool_call, safe_calc

log = logging.getLogger("spatialvlm.reason")


@dataclass
class TraceStep:
    step: int  # 1-based planner turn
    reply: str  # the planner's raw reply
    call: dict[str, Any] | None = None  # the parsed tool call (None when malformed)
    result: Any = None  # what the tool returned
    error: str | None = None  # malformed reply or tool error
    kind: str = "tool"  # "tool" | "malformed" | "tool_error" | "final" | "planner_error"
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReasonResult:
    question: str
    status: str  # "ok" | "unanswered" | "malformed" | "step_limit" | "planner_error"
    answer: str | None
    value: Any = None  # structured answer when the planner gave one (bool, name, number)
    reasoning: str = ""
    reason: str = ""  # why there is no answer, when status != "ok"
    trace: list[TraceStep] = field(default_factory=list)
    planner: str = ""
    answerer: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def direct_questions(self) -> list[dict[str, Any]]:
        """The direct questions asked (the ``ask`` / ``ask_free`` calls) with their answers."""
        return [{**s.call, "result": s.result, "error": s.error} for s in self.trace
                if s.call and s.call.get("tool") in ("ask", "ask_free")]

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "status": self.status, "answer": self.answer, "value": self.value,
                "reasoning": self.reasoning, "reason": self.reason, "planner": self.planner,
                "answerer": self.answerer, "trace": [s.to_dict() for s in self.trace]}

    def format_trace(self) -> str:
        lines = [f"Q: {self.question}"]
        for s in self.trace:
            if s.kind == "malformed":
                lines.append(f"  [{s.step}] malformed reply: {s.reply[:120]!r} -> {s.error}")
            elif s.kind == "planner_error":
                lines.append(f"  [{s.step}] planner error: {s.error}")
            elif s.kind == "final":
                continue
            else:
                call = dict(s.call or {})
                tool = call.pop("tool", "?")
                args = ", ".join(f"{k}={v!r}" for k, v in call.items())
                out = s.error if s.error else _short(s.result)
                lines.append(f"  [{s.step}] {tool}({args}) -> {out}")
        if self.ok or self.status == "unanswered":
            lines.append(f"A: {self.answer}")
            if self.reasoning:
                lines.append(f"   because: {self.reasoning}")
        if not self.ok:
            lines.append(f"no answer ({self.status})" + ("" if self.status == "unanswered" else f": {self.reason}"))
        return "\n".join(lines)


def _short(result: Any) -> str:
    if isinstance(result, dict):
        if "answer" in result and "value" in result:
            rel = "" if "reliable" not in result else f" (reliable: {result['reliable']})"
            return f"{result['answer']}{rel}"
        if "objects" in result:
            return ", ".join(result["objects"])
        if "value" in result:
            return str(result["value"])
    return json.dumps(result)[:160]


def system_prompt(answerer: Answerer, max_steps: int) -> str:
    types = "\n".join(f"  {t}: {_TYPE_HELP.get(t, _family_help(t))}" for t in TYPES)
    return f"""You answer spatial questions about one image by asking simpler, direct questions to a spatial
answerer ({answerer.describe()}) and composing its answers. You act only through tool calls.

Reply with exactly ONE JSON object and nothing else, one of:
  {{"tool": "list_objects"}}  -> the names of the objects you may ask about
  {{"tool": "ask", "type": "<type>", "a": "<object>", "b": "<object>"}}  -> a direct answer ("b" only for
      two-object types); quantitative answers are in metres
  {{"tool": "ask_free", "question": "<free-form question>"}}  -> free text (vision-language answerers only)
  {{"tool": "calc", "expr": "<arithmetic>"}}  -> evaluates + - * / ** abs min max sqrt and comparisons
  {{"tool": "final", "answer": "<your answer in one or two sentences>", "value": <true/false, a name or a
      number>, "reasoning": "<how the direct answers give the answer>"}}
  {{"tool": "final", "answer": "<why you cannot answer>", "unanswerable": true}}

Types ("a"/"b" are object names; left/right are from the viewer; behind/front along the viewing direction):
{types}

You have at most {max_steps} tool calls. Use object names exactly as list_objects gives them. Each tool result
comes back as a message starting with RESULT or ERROR.""".replace("\n  ", "\n  ")


_TYPE_HELP = {
    "distance": "distance between the centres of a and b",
    "gap": "free space between a and b (closest surfaces; 0 when touching)",
    "height": "height of a", "width": "width of a (left to right as seen)",
    "elevation": "height of a's bottom above the floor",
    "vertical_distance": "vertical offset between the centres", "horizontal_distance":
        "offset between the centres on the floor plane",
    "clock_direction": "standing at a facing forward, the hour (1-12) pointing at b",
    "above_difference": "how much higher a's bottom is than b's", "below_difference":
        "how much lower a's bottom is than b's", "behind_difference": "how much farther from the viewer a is than b",
    "front_difference": "how much nearer the viewer a is than b", "left_difference":
        "how much farther left a is than b", "right_difference": "how much farther right a is than b",
}


_PRED = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below",
         "behind": "behind (farther from the viewer than)", "front": "in front of (nearer the viewer than)",
         "tall": "taller than", "short": "shorter than", "wide": "wider than", "thin": "thinner than",
         "big": "bigger than", "small": "smaller than"}
_MORE = {"left": "more to the left", "right": "more to the right", "above": "higher", "below": "lower",
         "behind": "farther from the viewer", "front": "nearer the viewer", "tall": "taller", "short": "shorter",
         "wide": "wider", "thin": "thinner", "big": "bigger", "small": "smaller"}


def _family_help(t: str) -> str:
    info = TYPES[t]
    if info.family == "predicate":
        return f"is a {_PRED[info.relation]} b? (true/false)"
    if info.family == "choice":
        return f"which of a and b is {_MORE[info.relation]}? (a name)"
    if info.family == "classify":
        r1, r2 = t.split("_")[:2]
        return f"is a {r1} or {r2} (of / than) b? (the word '{r1}' or '{r2}')"
    return t.replace("_", " ") + " (metres)"


def run_tool(call: ToolCall, answerer: Answerer) -> Any:
    """Run one (non-final) tool call. Raises ToolError with a message for the planner."""
    t, a = call.tool, call.args
    if t == "list_objects":
        return answerer.list_objects()
    if t == "ask":
        return answerer.ask(a["type"], a["a"], a.get("b"))
    if t == "ask_free":
        return answerer.ask_free(a["question"])
    if t == "calc":
        try:
            return {"expr": a["expr"], "value": safe_calc(a["expr"])}
        except ValueError as exc:
            raise ToolError(f"calc: {exc}") from None
    raise ToolError(f"tool {t!r} cannot be run")


def reason(question: str, answerer: Answerer, planner: Any, *, max_steps: int = 12,
           max_retries: int = 3) -> ReasonResult:
    """Answer ``question`` with ``planner`` driving ``answerer`` (see the module docstring)."""
    if max_steps < 1 or max_retries < 1:
        raise ValueError("max_steps and max_retries must be >= 1")
    pname = getattr(planner, "name", type(planner).__name__)
    res = ReasonResult(question=question, status="step_limit", answer=None, planner=pname,
                       answerer=getattr(answerer, "name", ""))
    messages = [{"role": "system", "content": system_prompt(answerer, max_steps)},
                {"role": "user", "content": f"Question: {question}"}]
    tool_calls = 0
    bad_in_row = 0
    turn = 0
    while True:
        turn += 1
        t0 = time.time()
        try:
            reply = planner.complete(messages)
        except PlannerError as exc:
            res.trace.append(TraceStep(turn, "", error=str(exc), kind="planner_error", seconds=time.time() - t0))
            res.status, res.reason = "planner_error", str(exc)
            log.warning("planner error: %s", exc)
            return res
        reply = "" if reply is None else str(reply)
        messages.append({"role": "assistant", "content": reply})
        try:
            call = parse_tool_call(reply)
        except MalformedReply as exc:
            bad_in_row += 1
            res.trace.append(TraceStep(turn, reply, error=str(exc), kind="malformed", seconds=time.time() - t0))
            log.info("step %d: malformed reply (%d/%d): %s", turn, bad_in_row, max_retries, exc)
            if bad_in_row >= max_retries:
                res.status = "malformed"
                res.reason = f"{bad_in_row} malformed replies in a row; last: {exc}"
                return res
            messages.append({"role": "user", "content": ERROR_PREFIX + json.dumps(
                {"error": f"your reply was not a valid tool call: {exc}. Reply with exactly one JSON object, "
                          'e.g. {"tool": "list_objects"}.'})})
            continue
        bad_in_row = 0
        if call.tool == "final":
            res.trace.append(TraceStep(turn, reply, call.to_dict(), kind="final", seconds=time.time() - t0))
            res.status, res.answer = "ok", call.args["answer"]
            res.value = call.args.get("value")
            res.reasoning = call.args.get("reasoning", "")
            if call.args.get("unanswerable"):
                res.status, res.reason = "unanswered", call.args["answer"]
            log.info("step %d: final answer: %s", turn, res.answer)
            return res
        if tool_calls >= max_steps:
            res.trace.append(TraceStep(turn, reply, call.to_dict(), error="step budget exhausted",
                                       kind="tool_error", seconds=time.time() - t0))
            res.status = "step_limit"
            res.reason = f"no final answer after {max_steps} tool calls"
            return res
        tool_calls += 1
        try:
            result = run_tool(call, answerer)
        except ToolError as exc:
            res.trace.append(TraceStep(turn, reply, call.to_dict(), error=str(exc), kind="tool_error",
                                       seconds=time.time() - t0))
            log.info("step %d: %s -> error: %s", turn, call.to_dict(), exc)
            messages.append({"role": "user", "content": ERROR_PREFIX + json.dumps({"error": str(exc)})})
            continue
        res.trace.append(TraceStep(turn, reply, call.to_dict(), result=result, seconds=time.time() - t0))
        log.info("step %d: %s -> %s", turn, call.to_dict(), result)
        messages.append({"role": "user", "content": RESULT_PREFIX + json.dumps(result, default=str)})
