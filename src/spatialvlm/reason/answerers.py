"""Answerers: what the planner's direct questions go to.

* :class:`SceneGraphAnswerer` answers from our 3D scene graph (a :class:`~spatialvlm.records.Scene` built by the
  pipeline, or a ground-truth scene) with the question-type registry (:mod:`spatialvlm.qa.types`), i.e. with
  exactly the definitions used to write the training data. Gating (``gate``):

  - ``"report"`` (default): always answer with the measured value and say whether the registry's gate would have
    allowed asserting it (``"reliable": true/false``: both objects measurable on the axes the type needs and the
    answer clear of the measurement uncertainty by the type's margin);
  - ``"strict"``: refuse (tool error) what the gate rejects, as the dataset writer does;
  - ``"off"``: answer ungated, without the reliability flag.

* :class:`VLMAnswerer` asks a vision-language model (any :class:`spatialvlm.eval.adapters.VLM`: ``hf:``,
  ``openai:``, ``spatialvlm:``...) the question in our template wording and parses the free-text reply with
  :mod:`spatialvlm.eval.parse`.

Both raise :class:`ToolError` for a question they cannot take (unknown or ambiguous object, a type that needs
gravity on a scene without a canonical frame, a model failure); the agent hands the message back to the planner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from spatialvlm.qa.taxonomy import TYPES
from spatialvlm.records import ItemError, Scene


class ToolError(ValueError):
    """A tool call that could not be answered; the message is returned to the planner."""


class Answerer(Protocol):
    name: str

    def describe(self) -> str: ...

    def list_objects(self) -> dict[str, Any]: ...

    def ask(self, qa_type: str, a: str, b: str | None = None) -> dict[str, Any]: ...

    def ask_free(self, question: str) -> dict[str, Any]: ...


def _norm(s: str) -> str:
    from spatialvlm.qa.naming import normalize_label

    return normalize_label(s)


def resolve_name(query: str, names: Sequence[str], others: dict[str, str] | None = None) -> str:
    """The one name of ``names`` that ``query`` means: same name after normalisation (case, articles, plurals),
    else the only name containing all of the query's words. ``others`` maps labels of objects that cannot be
    asked about to the reason (for a clear error)."""
    q = _norm(query)
    exact = [n for n in names if _norm(n) == q]
    if len(exact) == 1:
        return exact[0]
    words = set(q.split())
    partial = [n for n in names if words and words <= set(_norm(n).split())]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        raise ToolError(f"{query!r} is ambiguous: it could be {', '.join(sorted(partial))}; use one of these names")
    for label, why in (others or {}).items():
        if _norm(label) == q:
            raise ToolError(f"{query!r} cannot be asked about in this image: {why}")
    raise ToolError(f"no object called {query!r}; known objects: {', '.join(names) or '(none)'}")


def _fmt_value(qa_type: str, truth: Any) -> str:
    fam = TYPES[qa_type].family
    if fam == "quantitative":
        return f"{float(truth):.3f} m"
    if fam == "predicate":
        return "yes" if truth else "no"
    if fam == "direction":
        return f"{int(truth)} o'clock"
    return str(truth)


def _jsonable(v: Any) -> Any:
    import numpy as np

    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return round(float(v), 4)
    return v


class SceneGraphAnswerer:
    """Answers direct questions from a :class:`Scene` with the question-type registry (see the module
    docstring for ``gate``)."""

    def __init__(self, scene: Scene, gate: str = "report", gate_config=None, name: str | None = None):
        from spatialvlm.qa.types import GateConfig

        if gate not in ("report", "strict", "off"):
            raise ValueError(f"gate must be 'report', 'strict' or 'off', got {gate!r}")
        self.scene = scene
        self.gate = gate
        self.gate_config = gate_config or GateConfig()
        self.name = name or f"scene-graph:{scene.image_id}"
        self._by_name = {o.name: o for o in scene.objects if o.askable}
        self._others = {o.label: o.meta.get("name_reason", "not askable") for o in scene.objects if not o.askable}
        self._others.update({d.label: f"dropped ({d.reason})" for d in scene.dropped})

    def describe(self) -> str:
        canon = "gravity-aligned frame found" if self.scene.canonical.ok else \
            f"no gravity-aligned frame ({self.scene.canonical.reason}): types needing it are unavailable"
        return (f"3D scene graph of image {self.scene.image_id}: {len(self._by_name)} named objects, {canon}; "
                f"gate mode {self.gate}")

    def list_objects(self) -> dict[str, Any]:
        out: dict[str, Any] = {"objects": sorted(self._by_name)}
        if self._others:
            out["not_askable"] = [f"{k}: {v}" for k, v in sorted(self._others.items())]
        return out

    def _obj(self, name: str):
        return self._by_name[resolve_name(name, list(self._by_name), self._others)]

    def ask(self, qa_type: str, a: str, b: str | None = None) -> dict[str, Any]:
        from spatialvlm.qa.types import UNGATED, evaluate

        info = TYPES.get(qa_type)
        if info is None:
            raise ToolError(f"unknown question type {qa_type!r}")
        oa = self._obj(a)
        ob = self._obj(b) if info.n_objects == 2 and b is not None else None
        if info.n_objects == 2 and ob is None:
            raise ToolError(f"{qa_type} needs two objects")
        if ob is not None and ob.id == oa.id:
            raise ToolError(f"{qa_type} needs two different objects, both are {oa.name!r}")
        r = evaluate(qa_type, self.scene, oa, ob, UNGATED)
        if r is None:
            raise ToolError(f"{qa_type} needs the gravity-aligned frame, which this scene does not have "
                            f"({self.scene.canonical.reason})")
        truth = r[0]
        out: dict[str, Any] = {"type": qa_type, "a": oa.name, **({"b": ob.name} if ob is not None else {}),
                               "value": _jsonable(truth)}
        if info.family == "quantitative":
            out["unit"] = "m"
        out["answer"] = _fmt_value(qa_type, truth)
        if self.gate != "off":
            reliable = evaluate(qa_type, self.scene, oa, ob, self.gate_config) is not None
            if self.gate == "strict" and not reliable:
                raise ToolError(f"{qa_type} about {oa.name}" + (f" and {ob.name}" if ob is not None else "")
                                + " cannot be answered reliably from this view (object cut off or occluded, or "
                                  "the answer is within the measurement margin)")
            out["reliable"] = bool(reliable)
        return out

    def ask_free(self, question: str) -> dict[str, Any]:
        raise ToolError("the scene-graph answerer only takes structured questions: use "
                        '{"tool": "ask", "type": ..., "a": ..., "b": ...}')


def fill_question(qa_type: str, a: str, b: str | None = None, template: int = 0) -> str:
    """Question ``template`` (index into the type's phrasings, modulo their count) of ``qa_type``."""
    from spatialvlm.qa.templates import question_templates

    qs = question_templates(qa_type)
    t = qs[template % len(qs)].replace("{A}", a)
    if b is not None:
        t = t.replace("{B}", b)
    return t[:1].upper() + t[1:]


def parse_reply(qa_type: str, text: str, a: str, b: str | None) -> Any:
    """The value in a model's free-text answer to a ``qa_type`` question, or None."""
    from spatialvlm.eval import parse as P

    info = TYPES[qa_type]
    names = [a] + ([b] if b else [])
    if info.family == "quantitative":
        return P.parse_distance(text)
    if info.family == "predicate":
        return P.parse_yes_no(text, info.relation, names)
    if info.family == "choice":
        return P.parse_choice(text, names)
    if info.family == "classify":
        return P.parse_classify(text, qa_type.split("_")[:2], names)
    return P.parse_clock(text)


class VLMAnswerer:
    """Direct questions put to a vision-language model about one image, answers parsed to values."""

    def __init__(self, vlm: Any, image: Any, object_names: Sequence[str] | None = None, template: int = 0):
        self.vlm = vlm
        self.image = image
        self.names = list(object_names) if object_names else None
        self.template = int(template)
        self.name = f"vlm:{getattr(vlm, 'name', type(vlm).__name__)}"

    def describe(self) -> str:
        return f"vision-language model {getattr(self.vlm, 'name', '?')} answering about one image"

    def _ask_text(self, question: str) -> str:
        out = self.vlm.answer([self.image], [question])
        if len(out) != 1:
            raise ToolError(f"the model returned {len(out)} answers for one question")
        r = out[0]
        if isinstance(r, ItemError):
            raise ToolError(f"the model failed: {r.reason}")
        return str(r)

    def list_objects(self) -> dict[str, Any]:
        if self.names is None:
            import re

            text = self._ask_text("List the main objects you see in this image as a comma-separated list of "
                                  "short names, nothing else.")
            parts = [re.sub(r"^(the|a|an|some)\s+", "", p.strip(" .;:-*\n\t").lower())
                     for p in re.split(r",|\n|;|\band\b", text)]
            self.names = list(dict.fromkeys(p for p in parts if p and len(p) < 40))
        return {"objects": list(self.names)}

    def _resolve(self, name: str) -> str:
        if not self.names:
            return name.strip()
        try:
            return resolve_name(name, self.names)
        except ToolError:
            return name.strip()  # a VLM can be asked about anything it may see

    def ask(self, qa_type: str, a: str, b: str | None = None) -> dict[str, Any]:
        info = TYPES.get(qa_type)
        if info is None:
            raise ToolError(f"unknown question type {qa_type!r}")
        a = self._resolve(a)
        b = self._resolve(b) if b is not None and info.n_objects == 2 else None
        q = fill_question(qa_type, a, b, self.template)
        text = self._ask_text(q)
        value = parse_reply(qa_type, text, a, b)
        out: dict[str, Any] = {"type": qa_type, "a": a, **({"b": b} if b else {}), "question": q,
                               "answer": text, "value": _jsonable(value), "parsed": value is not None}
        if info.family == "quantitative":
            out["unit"] = "m"
        return out

    def ask_free(self, question: str) -> dict[str, Any]:
        return {"question": question, "answer": self._ask_text(question)}
