"""Table-driven tests of the answer parsers: what a model may say, and what we must read from it."""

from __future__ import annotations

import random

import pytest

from spatialvlm.eval.parse import (
    parse_choice,
    parse_classify,
    parse_clock,
    parse_distance,
    parse_distance_detail,
    parse_yes_no,
)

FT = 0.3048
IN = 0.0254

# (text, metres or None)
DISTANCES = [
    ("1.5m", 1.5),
    ("1.5 m", 1.5),
    ("1.5 meters", 1.5),
    ("1.5 metres", 1.5),
    ("It is about 1.5 meters away.", 1.5),
    ("roughly 40cm", 0.40),
    ("40 centimeters", 0.40),
    ("40 centimetres", 0.40),
    ("350 mm", 0.35),
    ("350 millimeters", 0.35),
    ("0.002 km", 2.0),
    ("2 kilometers", 2000.0),
    ("3 feet", 3 * FT),
    ("3 ft", 3 * FT),
    ("3ft", 3 * FT),
    ("1 foot", FT),
    ("a foot", FT),
    ("10 inches", 10 * IN),
    ("10 in", 10 * IN),
    ("10 in.", 10 * IN),
    ("an inch", IN),
    ("2 yards", 2 * 0.9144),
    ("1 yd", 0.9144),
    ("about 3 feet 2 inches", 3 * FT + 2 * IN),
    ("3 ft 2 in", 3 * FT + 2 * IN),
    ("3 feet and 2 inches", 3 * FT + 2 * IN),
    ("5'4\"", 5 * FT + 4 * IN),
    ("5' 4\"", 5 * FT + 4 * IN),
    ("5'4''", 5 * FT + 4 * IN),
    ("5\u20324\u2033", 5 * FT + 4 * IN),
    ("6'", 6 * FT),
    ("6 ft 2", 6 * FT + 2 * IN),
    ("1 m 20 cm", 1.2),
    ("1 meter and 20 centimeters", 1.2),
    ("half a meter", 0.5),
    ("half a metre", 0.5),
    ("about half a meter", 0.5),
    ("a half meter", 0.5),
    ("half of a meter", 0.5),
    ("one and a half meters", 1.5),
    ("one and a half feet", 1.5 * FT),
    ("a meter and a half", 1.5),
    ("two and a half meters", 2.5),
    ("a quarter of a meter", 0.25),
    ("three quarters of a meter", 0.75),
    ("one meter", 1.0),
    ("a meter", 1.0),
    ("two meters", 2.0),
    ("twelve feet", 12 * FT),
    ("twenty meters", 20.0),
    ("twenty-five centimeters", 0.25),
    ("twenty five centimeters", 0.25),
    ("fifteen inches", 15 * IN),
    ("a couple of meters", 2.0),
    ("a hundred meters", 100.0),
    ("one hundred and fifty centimeters", 1.5),
    ("1/2 meter", 0.5),
    ("1 1/2 feet", 1.5 * FT),
    ("\u00bd m", 0.5),
    ("2-3 meters", 2.5),
    ("2 - 3 meters", 2.5),
    ("2\u20133 m", 2.5),
    ("2 to 3 meters", 2.5),
    ("between 2 and 3 feet", 2.5 * FT),
    ("2 m to 3 m", 2.5),
    ("1.5-2 m", 1.75),
    ("2 or 3 meters", 2.5),
    ("1,5 m", 1.5),
    ("0,75 meters", 0.75),
    ("1,500 mm", 1.5),
    ("1,200 centimeters", 12.0),
    ("~2m", 2.0),
    ("\u2248 2 m", 2.0),
    ("The distance is 2.", 2.0),  # no unit: metres, flagged
    ("0.86", 0.86),
    ("1.5 m (about 5 feet)", 1.5),
    ("About 5 feet (1.5 m)", 5 * FT),
    ("The chair is 1.2 meters from the table, which is 0.5 meters wide.", 1.2),
    ("The 3D distance is 2 m", 2.0),
    ("It is 2 m in front of the sofa", 2.0),
    ("It is 2 in front of the sofa", 2.0),  # "in front" is not inches
    ("zero meters", 0.0),
    ("0 m", 0.0),
    ("A: 3.25m", 3.25),
    ("approximately 7 ft tall", 7 * FT),
    ("the mug is 12 cm high", 0.12),
    ("I estimate around 4.0 meters.", 4.0),
    ("It's a few meters away.", None),
    ("I cannot tell.", None),
    ("far away", None),
    ("", None),
    ("They are close together.", None),
    ("It's quite far", None),
    ("The distance cannot be determined from this image.", None),
]


@pytest.mark.parametrize("text,expected", DISTANCES)
def test_parse_distance_table(text, expected):
    got = parse_distance(text)
    if expected is None:
        assert got is None, f"{text!r} -> {got}"
    else:
        assert got is not None, f"{text!r} -> no number"
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9), f"{text!r} -> {got}"


def test_distance_flags():
    assert "no_unit" in parse_distance_detail("about 2").flags
    assert "no_unit" not in parse_distance_detail("about 2 m").flags
    d = parse_distance_detail("2-3 meters")
    assert "range" in d.flags and d.unit == "m" and d.number == 2.5
    d = parse_distance_detail("3 feet 2 inches")
    assert "compound" in d.flags and d.unit == "ft"
    assert parse_distance_detail(None).value_m is None


# (text, relation or None, expected)
YES_NO = [
    ("Yes", None, True),
    ("yes.", None, True),
    ("Yes, it is.", None, True),
    ("Yeah", None, True),
    ("Correct.", None, True),
    ("True", None, True),
    ("No", None, False),
    ("no.", None, False),
    ("No, it is not.", None, False),
    ("Nope", None, False),
    ("False", None, False),
    ("Not at all.", None, False),
    ("It is not.", None, False),
    ("It isn't.", None, False),
    ("The cup isn't to the left of the plate.", "left", False),
    ("The cup is not to the left of the plate.", "left", False),
    ("The cup is to the left of the plate.", "left", True),
    ("The cup is to the right of the plate.", "left", False),
    ("The cup is not to the right of the plate.", "left", True),
    ("The lamp is lower than the shelf.", "above", False),
    ("The lamp sits higher than the shelf.", "above", True),
    ("The chair is closer to the camera.", "behind", False),
    ("The chair is farther away than the table.", "behind", True),
    ("The bottle is narrower than the box.", "wide", False),
    ("It's bigger.", "big", True),
    ("Indeed, the sofa is larger.", "big", True),
    ("It does not appear to be.", None, False),
    ("Neither.", None, False),
    ("I can't tell from this image.", None, None),
    ("I am not sure.", None, None),
    ("Hard to say.", None, None),
    ("", None, None),
]


@pytest.mark.parametrize("text,relation,expected", YES_NO)
def test_parse_yes_no_table(text, relation, expected):
    assert parse_yes_no(text, relation) is expected, text


OPTS = ["the red chair", "the lamp"]
OPTS2 = ["the chair on the left", "the chair on the right"]
# (text, options, expected)
CHOICES = [
    ("The red chair.", OPTS, "the red chair"),
    ("the lamp", OPTS, "the lamp"),
    ("Lamp", OPTS, "the lamp"),
    ("The chair is more to the left.", OPTS, "the red chair"),
    ("The red chair is taller than the lamp.", OPTS, "the red chair"),
    ("The lamp is shorter than the red chair.", OPTS, "the lamp"),
    ("Between the red chair and the lamp, the lamp is taller.", OPTS, "the lamp"),
    ("It's the lamp, not the red chair.", OPTS, "the lamp"),
    ("Compared to the lamp, the red chair is wider.", OPTS, "the red chair"),
    ("(B)", OPTS, "the lamp"),
    ("A", OPTS, "the red chair"),
    ("Answer: B", OPTS, "the lamp"),
    ("The chair on the right.", OPTS2, "the chair on the right"),
    ("the chair on the left is closer", OPTS2, "the chair on the left"),
    ("Point B is closer to the camera.", ["A", "B"], "B"),
    ("A", ["A", "B"], "A"),
    ("(b)", ["A", "B"], "B"),
    ("The answer is A.", ["A", "B"], "A"),
    ("A is closer than B.", ["A", "B"], "A"),
    ("A point near the wall: B", ["A", "B"], "B"),
    ("(A) sink", ["sink", "bottle"], "sink"),
    ("bottle", ["sink", "bottle"], "bottle"),
    ("I don't know", OPTS, None),
    ("the table", OPTS, None),
]


@pytest.mark.parametrize("text,options,expected", CHOICES)
def test_parse_choice_table(text, options, expected):
    assert parse_choice(text, options) == expected, text


CLASSIFY = [
    ("Left.", ["left", "right"], "left"),
    ("It is to the right of the sofa.", ["left", "right"], "right"),
    ("It is not to the left.", ["left", "right"], "right"),
    ("Above", ["above", "below"], "above"),
    ("The mug is higher up than the plate.", ["above", "below"], "above"),
    ("beneath it", ["above", "below"], "below"),
    ("In front of it.", ["behind", "front"], "front"),
    ("It's behind the table.", ["behind", "front"], "behind"),
    ("closer to the camera", ["behind", "front"], "front"),
    ("The lamp is shorter.", ["tall", "short"], "short"),
    ("narrower", ["wide", "thin"], "thin"),
    ("It is larger.", ["big", "small"], "big"),
    ("Smaller, not bigger.", ["big", "small"], "small"),
    ("no idea", ["left", "right"], None),
]


@pytest.mark.parametrize("text,options,expected", CLASSIFY)
def test_parse_classify_table(text, options, expected):
    assert parse_classify(text, options) == expected, text


CLOCKS = [
    ("3 o'clock", 3),
    ("At 3 o\u2019clock.", 3),
    ("three o'clock", 3),
    ("twelve o'clock", 12),
    ("It is at 11 o clock", 11),
    ("9 oclock", 9),
    ("at 3", 3),
    ("The sofa is at the 2 o'clock direction.", 2),
    ("2:30", 3),
    ("12:00", 12),
    ("0", 12),
    ("15:00", 3),
    ("straight ahead", 12),
    ("to the left", 9),
    ("I can't see it", None),
]


@pytest.mark.parametrize("text,expected", CLOCKS)
def test_parse_clock_table(text, expected):
    assert parse_clock(text) == expected, text


def test_table_size():
    assert len(DISTANCES) + len(YES_NO) + len(CHOICES) + len(CLASSIFY) + len(CLOCKS) >= 100


def test_parser_reads_every_spoken_distance():
    """Whatever qa.phrasing says, the parser reads back exactly the number it said (in metres)."""
    phrasing = pytest.importorskip("spatialvlm.qa.phrasing")
    import numpy as np

    rng = np.random.default_rng(0)
    pyrng = random.Random(0)
    misses = []
    for _ in range(1500):
        v = 10 ** pyrng.uniform(-2.5, 1.7)
        spoken = phrasing.speak_distance(v, rng, imperial_prob=0.5, hedge_prob=0.3)
        got = parse_distance(spoken.text)
        said = phrasing.to_metres(spoken.number, spoken.unit)
        if got is None or abs(got - said) > 1e-6 * max(1.0, said):
            misses.append((v, spoken.text, got, said))
    assert not misses, misses[:10]
    if hasattr(phrasing, "speak_clock"):
        for h in range(1, 13):
            for _ in range(5):
                assert parse_clock(phrasing.speak_clock(h, rng)) == h


NAME_SETS = [["red chair", "lamp"], ["chair on the left", "chair on the right"], ["mug", "potted plant"]]


def test_parser_reads_every_answer_template():
    """Every answer phrasing written by qa.templates, for every type, parses back to its truth."""
    templates = pytest.importorskip("spatialvlm.qa.templates")
    from spatialvlm.eval.metrics import score_item
    from spatialvlm.qa.taxonomy import CLASSIFY_PAIRS, TYPES

    bad = []
    n = 0
    for qa_type, info in TYPES.items():
        for names in NAME_SETS:
            names = names[: info.n_objects]
            if info.family == "predicate":
                cases = [(True, None), (False, None)]
            elif info.family == "choice":
                cases = [(names[0], None), (names[1], None)]
            elif info.family == "classify":
                pair = next(p for p in CLASSIFY_PAIRS if p[0] == info.relation)
                cases = [(pair[0], None), (pair[1], None)]
            elif info.family == "quantitative":
                cases = [(1.5, "1.5 meters"), (0.3, "about 30 cm"), (0.9652, "3 feet 2 inches")]
            else:
                cases = [(3, "3 o'clock"), (12, "about 12 o'clock")]
            for truth, spoken in cases:
                for tmpl in templates.answer_templates(
                    qa_type, truth if info.family in ("predicate", "classify") else None
                ):
                    text = tmpl.replace("{A}", names[0]).replace("{V}", spoken or "")
                    if len(names) > 1:
                        text = text.replace("{B}", names[1])
                    if info.family == "choice":
                        text = text.replace("{X}", truth)
                    options = (
                        names
                        if info.family == "choice"
                        else list(next(p for p in CLASSIFY_PAIRS if p[0] == info.relation))
                        if info.family == "classify"
                        else None
                    )
                    r = score_item(
                        info.family,
                        truth,
                        text,
                        value_m=truth if info.family == "quantitative" else None,
                        options=options,
                        relation=info.relation,
                        objects=names,
                    )
                    n += 1
                    if info.family == "quantitative":
                        ok = r["parsed"] is not None and abs(r["parsed"] - truth) < 1e-3
                    else:
                        ok = r["correct"] == 1
                    if not ok:
                        bad.append((qa_type, truth, text, r["parsed"]))
    assert n > 500
    assert not bad, f"{len(bad)} of {n} unread: {bad[:15]}"
