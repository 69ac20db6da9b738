"""The planner's tools: their JSON form, a strict parser for planner replies, and a safe calculator.

A planner reply must hold exactly one JSON object naming a tool::

    {"tool": "list_objects"}
    {"tool": "ask", "type": "distance", "a": "sofa", "b": "table"}
    {"tool": "ask_free", "question": "Is there a path between the sofa and the table?"}
    {"tool": "calc", "expr": "abs(1.21 - 1.18) / 1.21"}
    {"tool": "final", "answer": "Yes: the gap is 1.3 m, wider than the robot.", "value": true}
    {"tool": "final", "answer": "I cannot tell: ...", "unanswerable": true}

Arguments may also sit under ``"args"`` / ``"arguments"`` (``{"tool": "ask", "args": {...}}``); text around the
object (a sentence, a Markdown code fence) is tolerated, two different tool objects in one reply are not.
Anything else is a :class:`MalformedReply` whose message tells the planner what was wrong.
"""

from __future__ import annotations

import ast
import json
import math
import operator
from dataclasses import dataclass, field
from typing import Any

from spatialvlm.qa.taxonomy import TYPES

TOOLS = ("list_objects", "ask", "ask_free", "calc", "final")


class MalformedReply(ValueError):
    """A planner reply that is not one valid tool call; the message says why (it is shown to the planner)."""


@dataclass
class ToolCall:
    tool: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, **self.args}


def _json_objects(text: str) -> list[Any]:
    """Every top-level JSON value that starts with ``{`` in ``text``, in order."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return out
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        out.append(obj)
        i = end


def parse_tool_call(text: str | None) -> ToolCall:
    """The one tool call in a planner reply, validated (see the module docstring). Raises MalformedReply."""
    if text is None or not str(text).strip():
        raise MalformedReply("empty reply")
    objs = [o for o in _json_objects(str(text)) if isinstance(o, dict)]
    calls = [o for o in objs if "tool" in o or "name" in o and ("arguments" in o or "args" in o)]
    if not calls:
        if objs:
            raise MalformedReply('the JSON object has no "tool" key')
        raise MalformedReply("no JSON object found in the reply")
    distinct = {json.dumps(c, sort_keys=True) for c in calls}
    if len(distinct) > 1:
        raise MalformedReply(f"{len(distinct)} different tool calls in one reply; send exactly one")
    c = dict(calls[0])
    tool = c.pop("tool", None) or c.pop("name", None)
    if not isinstance(tool, str):
        raise MalformedReply('"tool" must be a string')
    tool = tool.strip().lower()
    args: dict[str, Any] = {}
    for key in ("args", "arguments"):
        inner = c.pop(key, None)
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except json.JSONDecodeError:
                raise MalformedReply(f'"{key}" is a string that is not JSON') from None
        if isinstance(inner, dict):
            args.update(inner)
        elif inner is not None:
            raise MalformedReply(f'"{key}" must be an object')
    args.update(c)
    return validate_call(ToolCall(tool, args))


def _need_str(args: dict, key: str, tool: str) -> str:
    v = args.get(key)
    if not isinstance(v, str) or not v.strip():
        raise MalformedReply(f'{tool} needs a non-empty string "{key}"')
    return v.strip()


def validate_call(call: ToolCall) -> ToolCall:
    t, a = call.tool, call.args
    if t not in TOOLS:
        raise MalformedReply(f"unknown tool {t!r}; tools: {', '.join(TOOLS)}")
    if t == "ask":
        qtype = _need_str(a, "type", t).lower().replace(" ", "_").replace("-", "_")
        if qtype not in TYPES:
            raise MalformedReply(f"unknown question type {qtype!r}; types: {', '.join(TYPES)}")
        info = TYPES[qtype]
        args = {"type": qtype, "a": _need_str(a, "a", t)}
        if info.n_objects == 2:
            args["b"] = _need_str(a, "b", t)
        return ToolCall(t, args)
    if t == "ask_free":
        return ToolCall(t, {"question": _need_str(a, "question", t)})
    if t == "calc":
        return ToolCall(t, {"expr": _need_str(a, "expr", t)})
    if t == "final":
        if "answer" not in a or a["answer"] is None or (isinstance(a["answer"], str) and not a["answer"].strip()):
            raise MalformedReply('final needs an "answer"')
        out = {"answer": a["answer"] if isinstance(a["answer"], str) else json.dumps(a["answer"])}
        if "value" in a:
            out["value"] = a["value"]
        elif not isinstance(a["answer"], str):
            out["value"] = a["answer"]
        if isinstance(a.get("reasoning"), str):
            out["reasoning"] = a["reasoning"]
        if a.get("unanswerable") is True:
            out["unanswerable"] = True
        return ToolCall(t, out)
    return ToolCall(t, {})


# --------------------------------------------------------------------------------------------------------------
# A calculator that evaluates arithmetic only (no names, attributes, calls other than a few math functions)
# --------------------------------------------------------------------------------------------------------------
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.Mod: operator.mod, ast.FloorDiv: operator.floordiv}
_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}
_FUN = {"abs": abs, "min": min, "max": max, "sqrt": math.sqrt, "round": round, "hypot": math.hypot}


def safe_calc(expr: str) -> float | bool:
    """Evaluate an arithmetic expression (numbers, + - * / ** %, comparisons, and/or/not, abs min max sqrt round
    hypot). Raises ValueError for anything else."""
    if len(expr) > 500:
        raise ValueError("expression too long")
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {exc.msg}") from None

    def ev(n: ast.AST):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float, bool)):
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in _BIN:
            left, right = ev(n.left), ev(n.right)
            if isinstance(n.op, ast.Pow) and abs(right) > 64:
                raise ValueError("exponent too large")
            return _BIN[type(n.op)](left, right)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd, ast.Not)):
            v = ev(n.operand)
            return -v if isinstance(n.op, ast.USub) else (+v if isinstance(n.op, ast.UAdd) else not v)
        if isinstance(n, ast.Compare):
            left = ev(n.left)
            for op, comp in zip(n.ops, n.comparators):
                if type(op) not in _CMP:
                    raise ValueError("unsupported comparison")
                right = ev(comp)
                if not _CMP[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(n, ast.BoolOp):
            vals = [ev(v) for v in n.values]
            return all(vals) if isinstance(n.op, ast.And) else any(vals)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _FUN and not n.keywords:
            return _FUN[n.func.id](*[ev(a) for a in n.args])
        raise ValueError(f"unsupported element {type(n).__name__} in expression")

    try:
        v = ev(tree)
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("result is not finite")
    return v
