"""Planners: whatever writes the next tool call, given the conversation so far.

A planner has ``complete(messages) -> str``: ``messages`` is an OpenAI-style chat (``{"role", "content"}``
dicts: the system prompt, the user's question, then alternating planner replies and tool results) and the return
value is the planner's raw reply, which the agent parses (:func:`spatialvlm.reason.tools.parse_tool_call`).
A planner that cannot be reached raises :class:`PlannerError`; the agent reports it in the result.

* :class:`RulePlanner` (``rule``): deterministic, no model; handles the showcase questions (robot through a gap,
  isosceles triangle, closest object) and a few direct ones ("how far is A from B"). The offline default.
* :class:`OpenAIPlanner` (``openai:<model>@<base_url>``): any OpenAI-compatible chat-completions endpoint, over
  plain HTTP (urllib); API key from ``$OPENAI_API_KEY`` (none is sent when unset, as local servers need none).
* :class:`HFPlanner` (``hf:<hub id or folder>``): a local transformers causal LM, greedy.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Generator
from pathlib import Path
from typing import Any, Protocol

Messages = list[dict[str, str]]

RESULT_PREFIX = "RESULT "
ERROR_PREFIX = "ERROR "


class PlannerError(RuntimeError):
    """The planner could not produce a reply at all (endpoint unreachable, HTTP error, model failure)."""


class Planner(Protocol):
    name: str

    def complete(self, messages: Messages) -> str: ...


# --------------------------------------------------------------------------------------------------------------
# OpenAI-compatible endpoint
# --------------------------------------------------------------------------------------------------------------
class OpenAIPlanner:
    """Chat completions over HTTP (``POST {base_url}/chat/completions``), temperature 0. Connection errors, 429
    and 5xx are retried ``retries`` times with exponential backoff; other HTTP errors and malformed responses
    raise PlannerError at once. A reply carrying OpenAI ``tool_calls`` instead of text is turned into our JSON
    form (``{"tool": <function name>, **arguments}``)."""

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1", *, api_key_env: str = "OPENAI_API_KEY",
                 max_tokens: int = 400, timeout: float = 60.0, retries: int = 2, backoff: float = 0.5,
                 json_mode: bool = False):
        if not model:
            raise ValueError("the openai planner needs a model name: openai:<model>@<base_url>")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = os.environ.get(api_key_env) or None
        self.max_tokens = int(max_tokens)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.json_mode = bool(json_mode)
        self.name = f"openai:{model}@{self.base_url}"

    def complete(self, messages: Messages) -> str:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0,
                                   "max_tokens": self.max_tokens}
        if self.json_mode:
            payload["response_format"] = {"type": "json_object"}
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers,
                                         method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    data = json.loads(resp.read().decode("utf-8"))
                return _content_of(data)
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')[:300]}"
                if exc.code != 429 and exc.code < 500:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            except (KeyError, IndexError, TypeError, json.JSONDecodeError) as exc:
                raise PlannerError(f"{self.name}: malformed response ({type(exc).__name__}: {exc})") from None
            if attempt < self.retries:
                time.sleep(self.backoff * (2 ** attempt))
        raise PlannerError(f"{self.name}: {last}")


def _content_of(data: dict) -> str:
    msg = data["choices"][0]["message"]
    calls = msg.get("tool_calls") or []
    if calls:
        fn = calls[0]["function"]
        args = fn.get("arguments") or "{}"
        try:
            parsed = json.loads(args) if isinstance(args, str) else dict(args)
        except json.JSONDecodeError:
            return json.dumps({"tool": fn.get("name"), "arguments": args})  # the parser will report it
        return json.dumps({"tool": fn.get("name"), **(parsed if isinstance(parsed, dict) else {})})
    content = msg.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


# --------------------------------------------------------------------------------------------------------------
# Local transformers causal LM
# --------------------------------------------------------------------------------------------------------------
class HFPlanner:
    """A local causal LM (AutoModelForCausalLM + AutoTokenizer), greedy. The chat is rendered with the
    tokenizer's chat template when it has one, else as plain ``System: / User: / Assistant:`` turns."""

    def __init__(self, model: str, *, max_new_tokens: int = 256, device: str | None = None,
                 trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        p = Path(model).expanduser()
        looks_local = model.startswith((".", "/", "~")) or model.count("/") > 1
        if looks_local and not p.exists():
            raise FileNotFoundError(
                f"planner model folder not found: {model!r} (looked at {p.resolve()}). Pass a folder written by "
                "save_pretrained or a Hugging Face id fetched beforehand with `huggingface-cli download <id>`.")
        src = str(p) if p.exists() else model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32,
                                                              trust_remote_code=trust_remote_code)
        except OSError as exc:
            where = f"the folder {p.resolve()}" if p.exists() else "the Hugging Face cache ($HF_HOME)"
            raise FileNotFoundError(
                f"could not load planner model {model!r} from {where}: {exc}. Download it beforehand with "
                f"`huggingface-cli download {model}` (or pass a local folder) where network access is allowed."
            ) from exc
        from spatialvlm.eval.adapters import pick_device

        self.device = pick_device(device)
        self.model = self.model.to(self.device).eval()
        self.max_new_tokens = int(max_new_tokens)
        self.name = f"hf:{model}"

    def _prompt(self, messages: Messages) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n".join(turns) + "\nAssistant:"

    def complete(self, messages: Messages) -> str:
        import torch

        text = self._prompt(messages)
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        try:
            with torch.inference_mode():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          eos_token_id=eos, pad_token_id=pad)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise PlannerError(f"{self.name}: generation failed: {type(exc).__name__}: {exc}") from exc
        new = gen[0, enc["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()


# --------------------------------------------------------------------------------------------------------------
# Deterministic rule-based planner
# --------------------------------------------------------------------------------------------------------------
def _clean_name(s: str) -> str:
    s = s.strip().strip("?.!,;: ")
    s = re.sub(r"^(the|a|an)\s+", "", s, flags=re.IGNORECASE)
    return s.strip()


_GAP = re.compile(r"\b(?:a|an)\s+(?P<w>.+?)\s+wide\b.*?\bbetween\s+(?P<a>.+?)\s+and\s+(?P<b>.+?)\s*[?.!]*$", re.IGNORECASE)
_TRI = re.compile(r"(?:do|does|are|would)\s+(?P<list>.+?)\s+form\s+(?:an?\s+)?isosceles\s+triangle", re.IGNORECASE)
_CLOSE = re.compile(r"\b(?:closest|nearest)\s+(?:object\s+)?to\s+(?P<x>.+?)\s*[?.!]*$", re.IGNORECASE)
_DIST = re.compile(r"\bhow\s+far\s+(?:apart\s+are\s+(?P<a1>.+?)\s+and\s+(?P<b1>.+?)|is\s+(?P<a2>.+?)\s+from\s+"
                   r"(?P<b2>.+?))\s*[?.!]*$", re.IGNORECASE)

Step = Generator[dict[str, Any], dict[str, Any], None]


def _final(answer: str, value: Any = None, reasoning: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"tool": "final", "answer": answer}
    if value is not None:
        out["value"] = value
    else:
        out["unanswerable"] = True
    if reasoning:
        out["reasoning"] = reasoning
    return out


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class RulePlanner:
    """Plans the showcase questions with fixed rules, emitting the same JSON tool calls an LLM would.

    * "Can a <W> wide robot pass between A and B?": ``gap`` (closest box surfaces) of A and B; yes when
      gap >= W + ``clearance``.
    * "Do A, B and C form an isosceles triangle?": the three centre ``distance`` s; yes when two of them differ
      by at most ``iso_tol`` of the longer one.
    * "Which object is closest to X?": ``list_objects``, then ``distance`` (centre to centre) from X to each
      other object; the smallest wins.
    * "How far is A from B?" / "How far apart are A and B?": one ``distance``.
    """

    name = "rule"

    def __init__(self, iso_tol: float = 0.10, clearance: float = 0.0):
        self.iso_tol = float(iso_tol)
        self.clearance = float(clearance)
        self._gen: Step | None = None
        self._question: str | None = None

    # ---- the conversation protocol --------------------------------------------------------------------------
    def complete(self, messages: Messages) -> str:
        question = next((m["content"] for m in messages if m["role"] == "user"), "")
        first = not any(m["role"] == "assistant" for m in messages)
        if first or self._gen is None or question != self._question:
            self._question = question
            self._gen = self._plan(_question_text(question))
            call = next(self._gen)
        else:
            call = self._gen.send(_last_result(messages))
        return json.dumps(call)

    def _plan(self, q: str) -> Step:
        q = " ".join(q.split())
        m = _GAP.search(q)
        if m:
            return self._gap(m.group("w"), _clean_name(m.group("a")), _clean_name(m.group("b")))
        m = _TRI.search(q)
        if m:
            names = [_clean_name(x) for x in re.split(r",\s*(?:and\s+)?|\s+and\s+", m.group("list")) if x.strip()]
            return self._triangle(names)
        m = _CLOSE.search(q)
        if m:
            return self._closest(_clean_name(m.group("x")))
        m = _DIST.search(q)
        if m:
            a, b = (m.group("a1"), m.group("b1")) if m.group("a1") else (m.group("a2"), m.group("b2"))
            return self._distance(_clean_name(a), _clean_name(b))
        return self._unsupported(q)

    # ---- plans ----------------------------------------------------------------------------------------------
    def _unsupported(self, q: str) -> Step:
        yield _final("I cannot answer this: the rule-based planner only handles robot-through-a-gap, isosceles "
                     "triangle, closest-object and how-far questions; use an LLM planner (--planner openai:... or "
                     "hf:...) for other questions.", value=None, reasoning="no rule matches the question")

    def _gap(self, width_text: str, a: str, b: str) -> Step:
        from spatialvlm.eval.parse import parse_distance

        width = parse_distance(width_text)
        if width is None:
            yield _final(f"I cannot tell how wide the robot is from {width_text!r}.",
                         reasoning="no width in the question")
            return
        r = yield {"tool": "ask", "type": "gap", "a": a, "b": b}
        gap = _num(r.get("value"))
        if gap is None:
            yield _final(f"I could not measure the gap between the {a} and the {b}: {r.get('error', r)}",
                         reasoning="the gap question failed")
            return
        need = width + self.clearance
        ok = gap >= need
        reasoning = (f"The free space between the {r.get('a', a)} and the {r.get('b', b)} is {gap:.2f} m; the robot "
                     f"needs {need:.2f} m ({width:.2f} m wide" + (f" + {self.clearance:.2f} m clearance"
                                                                  if self.clearance else "") + ").")
        yield _final(("Yes" if ok else "No") + f", the gap is about {gap:.2f} m and the robot is {width:.2f} m wide.",
                     value=ok, reasoning=reasoning)

    def _triangle(self, names: list[str]) -> Step:
        if len(names) != 3:
            yield _final(f"A triangle needs three objects; I read {len(names)}: {names}.",
                         reasoning="could not split the question into three objects")
            return
        pairs = [(names[0], names[1]), (names[1], names[2]), (names[0], names[2])]
        sides = []
        for a, b in pairs:
            r = yield {"tool": "ask", "type": "distance", "a": a, "b": b}
            d = _num(r.get("value"))
            if d is None:
                yield _final(f"I could not measure the distance between the {a} and the {b}: {r.get('error', r)}",
                             reasoning="a distance question failed")
                return
            sides.append(d)
        diffs = []
        for i in range(3):
            for j in range(i + 1, 3):
                diffs.append((abs(sides[i] - sides[j]) / max(sides[i], sides[j], 1e-9), i, j))
        best, i, j = min(diffs)
        ok = best <= self.iso_tol
        lens = ", ".join(f"{a}-{b} {d:.2f} m" for (a, b), d in zip(pairs, sides))
        reasoning = (f"Side lengths: {lens}. The two closest in length differ by {100 * best:.0f}% "
                     f"(tolerance {100 * self.iso_tol:.0f}%).")
        yield _final(("Yes, they form an isosceles triangle" if ok else "No, they do not form an isosceles triangle")
                     + f" ({lens}).", value=ok, reasoning=reasoning)

    def _closest(self, x: str) -> Step:
        r = yield {"tool": "list_objects"}
        objs = list(r.get("objects") or [])
        from spatialvlm.reason.answerers import ToolError, resolve_name

        try:
            xn = resolve_name(x, objs)
        except ToolError:
            xn = x
        cands = [o for o in objs if o != xn]
        if not cands:
            yield _final(f"There is no other object to compare with the {x}.", reasoning=f"objects: {objs}")
            return
        dists: dict[str, float] = {}
        failed: list[str] = []
        for o in cands:
            r = yield {"tool": "ask", "type": "distance", "a": xn, "b": o}
            d = _num(r.get("value"))
            if d is None:
                failed.append(f"{o}: {r.get('error', 'no value')}")
                if "no object called" in str(r.get("error", "")):
                    yield _final(f"I cannot find the {x} in this image: {r.get('error')}",
                                 reasoning="the reference object is unknown")
                    return
                continue
            dists[o] = d
        if not dists:
            yield _final(f"I could not measure any distance from the {x}.", reasoning="; ".join(failed))
            return
        best = min(dists, key=dists.get)
        lens = ", ".join(f"{o} {d:.2f} m" for o, d in sorted(dists.items(), key=lambda kv: kv[1]))
        yield _final(f"The {best} is closest to the {xn} (about {dists[best]:.2f} m between centres).", value=best,
                     reasoning=f"Centre distances from the {xn}: {lens}."
                     + (f" Not measured: {'; '.join(failed)}." if failed else ""))

    def _distance(self, a: str, b: str) -> Step:
        r = yield {"tool": "ask", "type": "distance", "a": a, "b": b}
        d = _num(r.get("value"))
        if d is None:
            yield _final(f"I could not measure the distance between the {a} and the {b}: {r.get('error', r)}",
                         reasoning="the distance question failed")
            return
        yield _final(f"The {a} and the {b} are about {d:.2f} m apart (centre to centre).", value=d,
                     reasoning=f"distance({a}, {b}) = {d:.3f} m")


def _question_text(content: str) -> str:
    m = re.search(r"Question:\s*(.+)", content, flags=re.DOTALL)
    return (m.group(1) if m else content).strip().splitlines()[0]


def _last_result(messages: Messages) -> dict[str, Any]:
    for m in reversed(messages):
        if m["role"] != "user":
            continue
        c = m["content"]
        for prefix in (RESULT_PREFIX, ERROR_PREFIX):
            if c.startswith(prefix):
                try:
                    obj = json.loads(c[len(prefix):])
                except json.JSONDecodeError:
                    return {"error": c}
                return obj if isinstance(obj, dict) else {"value": obj}
        return {"error": c}
    return {}


# --------------------------------------------------------------------------------------------------------------
def load_planner(spec: str, **options) -> Any:
    """``rule`` | ``openai:<model>@<base_url>`` | ``hf:<hub id or folder>``."""
    kind, _, arg = spec.partition(":")
    if kind == "rule":
        return RulePlanner(**{k: v for k, v in options.items() if k in ("iso_tol", "clearance")})
    if kind == "openai":
        model, _, base = arg.partition("@")
        kw = {k: v for k, v in options.items()
              if k in ("api_key_env", "max_tokens", "timeout", "retries", "backoff", "json_mode")}
        return OpenAIPlanner(model, base or "https://api.openai.com/v1", **kw)
    if kind == "hf":
        if not arg:
            raise ValueError("hf planner needs a model: hf:<hub id or folder>")
        kw = {k: v for k, v in options.items() if k in ("max_new_tokens", "device", "trust_remote_code")}
        return HFPlanner(arg, **kw)
    raise ValueError(f"unknown planner {spec!r}; use rule, openai:<model>@<base_url> or hf:<model>")
