"""Question and answer phrasings: enough variety per type, well-formed text, answers consistent with the truth."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from spatialvlm.qa.phrasing import speak_clock, speak_distance
from spatialvlm.qa.taxonomy import ALL_TYPES, RELATIONS, TYPES
from spatialvlm.qa.templates import answer_templates, question_templates, render_qa

NAMES = ["mug", "wooden chair", "potted plant", "desk lamp", "bookshelf", "large sofa", "chair on the left",
         "trash can", "coffee table", "monitor", "small bottle", "tall cabinet"]

# word forms that name each relation in an answer; an answer that claims a relation uses one of them
FORMS = {
    "left": ["left"], "right": ["right"],
    "above": ["above", "higher"], "below": ["below", "lower", "under", "beneath"],
    "behind": ["behind", "further back", "farther"], "front": ["front", "closer", "nearer", "forward"],
    "tall": ["tall"], "short": ["short"],
    "wide": ["wide", "broad"], "thin": ["thin", "narrow"],
    "big": ["big", "large"], "small": ["small", "less bulky"],
}
# the form a classify answer must contain
CLASSIFY_FORMS = {
    "left": ["left"], "right": ["right"], "above": ["above"], "below": ["below"], "behind": ["behind"],
    "front": ["front"], "tall": ["taller"], "short": ["shorter"], "wide": ["wider"],
    "thin": ["thinner", "narrower"], "big": ["bigger", "larger"], "small": ["smaller"],
}
PLACEHOLDER = re.compile(r"\{[^}]*\}")


def _truth_for(qa_type: str, names: list[str], rng: np.random.Generator):
    info = TYPES[qa_type]
    if info.family == "predicate":
        return bool(rng.integers(2))
    if info.family == "choice":
        return names[int(rng.integers(2))]
    if info.family == "classify":
        return qa_type.split("_")[int(rng.integers(2))]
    if info.family == "quantitative":
        return float(np.exp(rng.uniform(np.log(0.02), np.log(20.0))))
    return int(rng.integers(1, 13))


def _pick_names(rng: np.random.Generator, n: int) -> list[str]:
    idx = rng.choice(len(NAMES), size=n, replace=False)
    return [NAMES[i] for i in idx]


def _strip_names(text: str, names: list[str]) -> str:
    for n in sorted(names, key=len, reverse=True):
        text = text.replace(n, "OBJ")
    return text


def _check_well_formed(text: str, names_in_text: list[str], question: bool) -> None:
    assert text and text == text.strip(), text
    assert text[0].isupper() or text[0].isdigit(), text
    assert "  " not in text, text
    assert not re.search(r"\bthe the\b", text, re.IGNORECASE), text
    assert not PLACEHOLDER.search(text), text
    assert text.endswith("?" if question else "."), text
    for sentence in re.split(r"(?<=[.?!])\s+", text):
        assert sentence[0].isupper() or sentence[0].isdigit(), text
    for n in names_in_text:
        for m in re.finditer(re.escape(n), text):
            assert text[:m.start()].endswith(("the ", "The ")), f"name {n!r} without article in {text!r}"


# --------------------------------------------------------------------------------------------------------------
# counts and template-level checks
# --------------------------------------------------------------------------------------------------------------
def test_all_44_types_have_templates():
    assert len(ALL_TYPES) == 44
    for t in ALL_TYPES:
        assert len(question_templates(t)) >= 10, t
        info = TYPES[t]
        if info.family == "predicate":
            assert len(answer_templates(t, True)) >= 5 and len(answer_templates(t, False)) >= 5, t
        elif info.family == "classify":
            for word in t.split("_")[:2]:
                assert len(answer_templates(t, word)) >= 5, (t, word)
        else:
            assert len(answer_templates(t)) >= 5, t
        # distinct phrasings, not repeats
        assert len(set(question_templates(t))) == len(question_templates(t))
        assert len(set(answer_templates(t))) == len(answer_templates(t))


def test_unknown_type_raises():
    with pytest.raises(ValueError, match="unknown question type"):
        question_templates("diagonal_predicate")
    with pytest.raises(ValueError):
        render_qa("nope", True, ["mug", "desk lamp"], np.random.default_rng(0))


@pytest.mark.parametrize("qa_type", ALL_TYPES)
def test_template_placeholders(qa_type):
    info = TYPES[qa_type]
    allowed_q = {"{A}", "{B}"} if info.n_objects == 2 else {"{A}"}
    for q in question_templates(qa_type):
        assert set(PLACEHOLDER.findall(q)) <= allowed_q, q
        assert q.count("{A}") == 1 and q.count("{B}") == (1 if info.n_objects == 2 else 0), q
        assert q.endswith("?"), q
        assert q[0].isupper() and "  " not in q, q
    allowed_a = allowed_q | ({"{X}"} if info.family == "choice" else set())
    allowed_a |= {"{V}"} if info.family in ("quantitative", "direction") else set()
    for a in answer_templates(qa_type):
        assert set(PLACEHOLDER.findall(a)) <= allowed_a, a
        assert a.endswith("."), a
        if info.family == "choice":
            assert "{X}" in a, a
        if info.family in ("quantitative", "direction"):
            assert a.count("{V}") == 1, a


@pytest.mark.parametrize("qa_type", [t for t in ALL_TYPES if TYPES[t].family == "classify"])
def test_classify_answer_templates_name_only_their_word(qa_type):
    first, second = qa_type.split("_")[:2]
    for word, other in ((first, second), (second, first)):
        for a in answer_templates(qa_type, word):
            low = a.lower()
            assert any(f in low for f in CLASSIFY_FORMS[word]), a
            assert not any(f in low for f in FORMS[other]), a


@pytest.mark.parametrize("qa_type", [t for t in ALL_TYPES if TYPES[t].family == "predicate"])
def test_predicate_answer_templates(qa_type):
    rel = TYPES[qa_type].relation
    for a in answer_templates(qa_type, True):
        low = a.lower()
        assert re.match(r"(yes|correct|indeed)\b", low), a
        assert " not " not in low and "n't" not in low, a
        assert a == "Yes, it is." or any(f in low for f in FORMS[rel]), a
    for a in answer_templates(qa_type, False):
        low = a.lower()
        assert re.match(r"(no|nope|actually, no)\b", low), a
        negated = " not " in low or "n't" in low
        if not negated:  # then it must not claim the relation at all
            assert not any(f in low for f in FORMS[rel]), a
            assert a == "No, it isn't." or any(f in low for f in FORMS[RELATIONS[rel][0]]), a


# --------------------------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("qa_type", ALL_TYPES)
def test_render_every_type(qa_type):
    info = TYPES[qa_type]
    rng = np.random.default_rng(zlib.crc32(qa_type.encode()))
    q_used, a_used = set(), set()
    for _ in range(150):
        names = _pick_names(rng, info.n_objects)
        truth = _truth_for(qa_type, names, rng)
        spoken = None
        if info.family == "quantitative" and rng.random() < 0.5:
            spoken = speak_distance(truth, rng).text
        elif info.family == "direction" and rng.random() < 0.5:
            spoken = speak_clock(truth, rng)
        q, a, qi, ai = render_qa(qa_type, truth, names, rng, spoken=spoken)
        q_used.add(qi)
        a_used.add(ai)

        # indices point at the templates used
        assert question_templates(qa_type)[qi].replace("{A}", names[0]).replace(
            "{B}", names[-1])[1:] == q[1:]
        template = answer_templates(qa_type, truth)[ai]
        pattern = re.escape(template)
        for ph, val in (("{A}", names[0]), ("{B}", names[-1]), ("{X}", str(truth))):
            pattern = pattern.replace(re.escape(ph), re.escape(val))
        pattern = pattern.replace(re.escape("{V}"), ".+")
        assert re.fullmatch(pattern, a[0].lower() + a[1:]) or re.fullmatch(pattern, a), (template, a)

        for n in names:  # each name exactly as given, in the question
            assert n in q, (n, q)
        _check_well_formed(q, names, question=True)
        _check_well_formed(a, names, question=False)

        stripped = _strip_names(a, names).lower()
        if info.family == "choice":
            other = names[1 - names.index(truth)]
            assert truth in a and other not in a, (truth, a)
        elif info.family == "classify":
            other = qa_type.split("_")[1 - qa_type.split("_").index(truth)]
            assert any(f in stripped for f in CLASSIFY_FORMS[truth]), a
            assert not any(f in stripped for f in FORMS[other]), a
        elif info.family == "predicate":
            if truth:
                assert re.match(r"(yes|correct|indeed)\b", stripped), a
            else:
                assert re.match(r"(no|nope|actually, no)\b", stripped), a
        elif info.family == "quantitative":
            if spoken is not None:
                assert spoken in a or spoken[0].upper() + spoken[1:] in a, (spoken, a)
            assert re.search(r"\d|half|a meter|an inch|a foot", a), a
        else:
            assert re.search(rf"\b{truth} o'clock\b", a), a
    assert len(q_used) >= 8, "question phrasings should vary"
    assert len(a_used) >= 4, "answer phrasings should vary"


def test_render_is_deterministic():
    def run(seed):
        rng = np.random.default_rng(seed)
        out = []
        for t in ALL_TYPES:
            names = ["mug", "desk lamp"][: TYPES[t].n_objects]
            out.append(render_qa(t, _truth_for(t, names, rng), names, rng))
        return out

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_spoken_is_phrased_when_missing():
    rng = np.random.default_rng(5)
    _q, a, _, _ = render_qa("distance", 1.5, ["mug", "desk lamp"], rng)
    assert re.search(r"\d|half", a)
    _q, a, _, _ = render_qa("clock_direction", 3, ["mug", "desk lamp"], rng)
    assert "3 o'clock" in a


def test_one_object_types_mention_only_a():
    rng = np.random.default_rng(6)
    for t in ("height", "width", "elevation"):
        for _ in range(20):
            q, a, _, _ = render_qa(t, 0.7, ["desk lamp"], rng, spoken="70 centimeters")
            assert "desk lamp" in q and "70 centimeters" in a


@pytest.mark.parametrize(
    "qa_type, truth, names",
    [
        ("left_predicate", "yes", ["mug", "desk lamp"]),  # not a bool
        ("left_choice", "sofa", ["mug", "desk lamp"]),  # not one of the names
        ("left_right_classify", "above", ["mug", "desk lamp"]),  # not one of the pair
        ("distance", float("nan"), ["mug", "desk lamp"]),
        ("distance", "1 m", ["mug", "desk lamp"]),
        ("clock_direction", 13, ["mug", "desk lamp"]),
        ("clock_direction", 2.5, ["mug", "desk lamp"]),
        ("height", 1.0, ["mug", "desk lamp"]),  # one-object type given two names
        ("distance", 1.0, ["mug"]),  # two-object type given one name
        ("distance", 1.0, ["mug", "mug"]),  # same name twice
        ("distance", 1.0, ["the mug", "desk lamp"]),  # article included
        ("distance", 1.0, ["mug ", "desk lamp"]),  # stray space
        ("distance", 1.0, ["", "desk lamp"]),
    ],
)
def test_invalid_inputs_raise(qa_type, truth, names):
    with pytest.raises((ValueError, TypeError)):
        render_qa(qa_type, truth, names, np.random.default_rng(0))


def test_numpy_truths_accepted():
    rng = np.random.default_rng(7)
    render_qa("left_predicate", np.bool_(True), ["mug", "desk lamp"], rng)
    render_qa("distance", np.float32(1.25), ["mug", "desk lamp"], rng)
    render_qa("clock_direction", np.int64(9), ["mug", "desk lamp"], rng)
