"""Human-like numbers: rounding stays close to the truth, units and plurals are right, text and number agree."""

from __future__ import annotations

import re

import numpy as np
import pytest

from spatialvlm.qa.phrasing import HEDGES, MAX_REL_ERROR, Spoken, speak_clock, speak_distance, to_metres

GRID = np.geomspace(0.01, 50.0, 2000)

_UNIT = {
    "meter": "m", "meters": "m", "m": "m",
    "centimeter": "cm", "centimeters": "cm", "cm": "cm",
    "millimeter": "mm", "millimeters": "mm", "mm": "mm",
    "foot": "ft", "feet": "ft", "ft": "ft",
    "inch": "in", "inches": "in",
}
_SPECIAL = {
    "half a meter": 0.5, "a meter": 1.0, "a meter and a half": 1.5,
    "a quarter of an inch": 0.25 * 0.0254, "half an inch": 0.5 * 0.0254, "three quarters of an inch": 0.75 * 0.0254,
    "an inch": 0.0254, "an inch and a half": 1.5 * 0.0254, "a foot": 0.3048, "a foot and a half": 1.5 * 0.3048,
}


def parse_spoken(text: str) -> float:
    """An independent reader of the phrases speak_distance writes, back to metres."""
    t = text
    for h in sorted(HEDGES, key=len, reverse=True):
        if t.startswith(h + " "):
            t = t[len(h) + 1:]
            break
    if t in _SPECIAL:
        return _SPECIAL[t]
    m = re.fullmatch(r"(\d+) (foot|feet)(?: (\d+) (inch|inches))?", t)
    if m:
        return int(m.group(1)) * 0.3048 + (int(m.group(3)) * 0.0254 if m.group(3) else 0.0)
    m = re.fullmatch(r"(\d+) and a half (\w+)", t)
    if m:
        return to_metres(int(m.group(1)) + 0.5, _UNIT[m.group(2)])
    m = re.fullmatch(r"(\d+(?:\.\d+)?) (\w+)", t)
    assert m, f"unparseable spoken length {text!r}"
    return to_metres(float(m.group(1)), _UNIT[m.group(2)])


def _draws(seed: int = 0, reps: int = 1, **kw) -> list[tuple[float, Spoken]]:
    rng = np.random.default_rng(seed)
    return [(float(v), speak_distance(float(v), rng, **kw)) for v in GRID for _ in range(reps)]


def test_grid_relative_error_and_text_agree_with_number():
    draws = _draws(seed=0, reps=2)
    errs = []
    for v, s in draws:
        said = to_metres(s.number, s.unit)
        err = abs(said - v) / v
        assert err <= MAX_REL_ERROR + 1e-9, (v, s)
        # the text says exactly the number reported in Spoken (within rounding of "3 feet 2 inches" = 3.1667 ft)
        assert parse_spoken(s.text) == pytest.approx(said, rel=1e-6, abs=1e-9), (v, s)
        assert s.metres == pytest.approx(said)
        errs.append(err)
    errs = np.asarray(errs)
    assert (errs <= 0.10).mean() > 0.75, "most spoken numbers should be within 10 %"
    assert (errs <= 0.02).mean() > 0.2, "precise phrasings should also occur"


def test_imperial_share_and_switches():
    draws = _draws(seed=1)
    share = np.mean([s.unit in ("ft", "in") for _, s in draws])
    assert 0.17 < share < 0.23
    assert all(s.unit in ("m", "cm", "mm") for _, s in _draws(seed=2, imperial_prob=0.0))
    assert all(s.unit in ("ft", "in") for _, s in _draws(seed=3, imperial_prob=1.0))
    assert np.mean([s.unit in ("ft", "in") for _, s in _draws(seed=4, imperial_prob=0.5)]) == pytest.approx(
        0.5, abs=0.05)


def test_hedge_share():
    draws = _draws(seed=5)
    hedged = np.mean([any(s.text.startswith(h + " ") for h in HEDGES) for _, s in draws])
    assert 0.11 < hedged < 0.19
    assert not any(any(s.text.startswith(h + " ") for h in HEDGES) for _, s in _draws(seed=6, hedge_prob=0.0))


def test_imperial_units_by_size():
    rng = np.random.default_rng(7)
    for v in np.linspace(0.03, 0.29, 50):  # under a foot: inches
        assert speak_distance(v, rng, imperial_prob=1.0).unit == "in"
    for v in np.linspace(0.75, 40.0, 50):  # above ~2.5 ft: feet
        assert speak_distance(v, rng, imperial_prob=1.0).unit == "ft"


def test_singular_and_plural():
    singular_words = {"meter", "foot", "inch", "centimeter", "millimeter"}
    n_checked = 0
    for _, s in _draws(seed=8, imperial_prob=0.5):
        for m in re.finditer(r"(?<![\d.])(\d+(?:\.\d+)?) (meters?|feet|foot|inch(?:es)?|centimeters?|millimeters?)\b",
                             s.text):
            assert (m.group(2) in singular_words) == (m.group(1) == "1"), s.text
            n_checked += 1
        assert "  " not in s.text and s.text == s.text.strip()
    assert n_checked > 1500


def test_feet_and_inches_number():
    rng = np.random.default_rng(9)
    seen = {}
    for _ in range(400):
        s = speak_distance(0.9652, rng, imperial_prob=1.0, hedge_prob=0.0)  # 38 inches
        seen[s.text] = s
    assert "3 feet 2 inches" in seen
    assert seen["3 feet 2 inches"].number == pytest.approx(3 + 2 / 12)
    assert seen["3 feet 2 inches"].unit == "ft"


@pytest.mark.parametrize(
    "value, expected",
    [
        (0.86, {"1 meter", "90 centimeters", "86 centimeters", "85 centimeters"}),
        (0.043, {"4 centimeters"}),
        (2.37, {"2.4 meters", "2.5 meters"}),
        (23.0, {"20 meters", "23 meters"}),
    ],
)
def test_typical_roundings_occur(value, expected):
    rng = np.random.default_rng(10)
    texts = {speak_distance(value, rng, imperial_prob=0.0, hedge_prob=0.0).text for _ in range(300)}
    assert expected <= texts, texts - expected


def test_one_meter_is_common_for_086():
    rng = np.random.default_rng(11)
    texts = [speak_distance(0.86, rng, imperial_prob=0.0, hedge_prob=0.0).text for _ in range(1000)]
    share = np.mean([t in ("1 meter", "a meter", "1 m") for t in texts])
    assert 0.15 < share < 0.6


def test_determinism_by_seed():
    a = [s for _, s in _draws(seed=12)]
    b = [s for _, s in _draws(seed=12)]
    c = [s for _, s in _draws(seed=13)]
    assert a == b
    assert a != c


def test_zero_and_invalid_values():
    rng = np.random.default_rng(14)
    s = speak_distance(0.0, rng, imperial_prob=0.0)
    assert s.number == 0.0 and s.text in ("0 centimeters", "0 cm")
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            speak_distance(bad, rng)
    with pytest.raises(ValueError):
        speak_distance(1.0, rng, imperial_prob=1.5)


def test_to_metres():
    assert to_metres(2, "m") == 2.0
    assert to_metres(86, "cm") == pytest.approx(0.86)
    assert to_metres(4, "mm") == pytest.approx(0.004)
    assert to_metres(3, "ft") == pytest.approx(0.9144)
    assert to_metres(10, "in") == pytest.approx(0.254)
    assert to_metres(3, "feet") == to_metres(3, "ft")
    assert to_metres(1, "Inches") == pytest.approx(0.0254)
    with pytest.raises(ValueError):
        to_metres(1, "furlong")


def test_speak_clock():
    rng = np.random.default_rng(15)
    for h in range(1, 13):
        forms = {speak_clock(h, rng) for _ in range(200)}
        assert f"{h} o'clock" in forms
        assert all(re.search(rf"\b{h} o'clock\b", f) for f in forms)
        assert len(forms) >= 3
    a = [speak_clock(5, np.random.default_rng(1)) for _ in range(3)]
    b = [speak_clock(5, np.random.default_rng(1)) for _ in range(3)]
    assert a == b
    for bad in (0, 13, 2.5, True):
        with pytest.raises(ValueError):
            speak_clock(bad, rng)
