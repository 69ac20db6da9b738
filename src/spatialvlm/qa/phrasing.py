"""How numbers are spoken: metric lengths turned into the rounded, unit-switching, sometimes hedged phrases that
people use ("about 90 centimeters", "3 feet 2 inches", "20 meters"), and clock-face directions.

Every choice is drawn from the caller's ``numpy`` generator, so the same generator state always gives the same
phrase. The number actually said is never more than :data:`MAX_REL_ERROR` away from the true value (relative), and
most phrases are within 10 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The largest relative error allowed between the spoken number and the true length.
MAX_REL_ERROR = 0.20

#: Words that soften a spoken number; one of them is put in front with probability ``hedge_prob``.
HEDGES = ("about", "roughly", "around", "approximately", "close to")

#: Metres per unit. Keys are the canonical unit codes used in :class:`Spoken`.
UNIT_METRES: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "ft": 0.3048, "in": 0.0254}

_UNIT_ALIASES: dict[str, str] = {
    "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "cm": "cm", "centimeter": "cm", "centimeters": "cm", "centimetre": "cm", "centimetres": "cm",
    "mm": "mm", "millimeter": "mm", "millimeters": "mm", "millimetre": "mm", "millimetres": "mm",
    "ft": "ft", "foot": "ft", "feet": "ft", "'": "ft",
    "in": "in", "inch": "in", "inches": "in", '"': "in",
}

_WORDS: dict[str, tuple[str, str]] = {
    "m": ("meter", "meters"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "ft": ("foot", "feet"),
    "in": ("inch", "inches"),
}

# probability of writing the unit as an abbreviation ("86 cm") instead of a word, per unit
_ABBREV_PROB: dict[str, float] = {"m": 0.1, "cm": 0.2, "mm": 0.2, "ft": 0.05, "in": 0.0}


@dataclass(frozen=True)
class Spoken:
    """A spoken length: the full phrase, the number said in it and that number's unit (``m``, ``cm``, ``mm``,
    ``ft`` or ``in``). Mixed phrases such as "3 feet 2 inches" give the number in the larger unit (3.1667 ft)."""

    text: str
    number: float
    unit: str

    @property
    def metres(self) -> float:
        return to_metres(self.number, self.unit)


def to_metres(number: float, unit: str) -> float:
    """``number`` ``unit`` in metres. ``unit`` is a code (``m``, ``cm``, ``mm``, ``ft``, ``in``) or a unit word
    such as "feet" or "centimetres"."""
    key = _UNIT_ALIASES.get(str(unit).strip().lower())
    if key is None:
        raise ValueError(f"unknown length unit {unit!r}; known: {sorted(_UNIT_ALIASES)}")
    return float(number) * UNIT_METRES[key]


# --------------------------------------------------------------------------------------------------------------
# number formatting
# --------------------------------------------------------------------------------------------------------------
def _fmt(x: float, decimals: int = 2) -> str:
    """A number as people write it: no trailing zeros, no float noise."""
    r = round(float(x), decimals)
    if abs(r - round(r)) < 1e-9:
        return str(round(r))
    return f"{r:.{decimals}f}".rstrip("0").rstrip(".")


def unit_text(number: float, unit: str, abbreviate: bool = False) -> str:
    """``number`` with its unit as written in answers: "86 cm", "1.5 meters", "1 meter" (``unit`` a code)."""
    if abbreviate:
        return f"{_fmt(number)} {unit}"
    singular, plural = _WORDS[unit]
    return f"{_fmt(number)} {singular if _fmt(number) == '1' else plural}"


def _round_to(x: float, step: float) -> float:
    return round(x / step) * step


def _sig(x: float, digits: int) -> float:
    """``x`` rounded to ``digits`` significant figures."""
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


# --------------------------------------------------------------------------------------------------------------
# candidates: (number, unit, text or None for the plain "N unit" form, weight)
# --------------------------------------------------------------------------------------------------------------
_Cand = tuple[float, str, "str | None", float]


def _metric_candidates(v: float) -> list[_Cand]:
    cm = v * 100.0
    out: list[_Cand] = []
    if v < 0.01:
        out.append((_sig(v * 1000.0, 2), "mm", None, 2.0))
        out.append((round(cm, 1), "cm", None, 1.0))
    elif v < 0.1:
        out.append((float(round(cm)), "cm", None, 3.0))
        out.append((round(cm, 1), "cm", None, 0.5))
        if cm < 5:
            out.append((float(round(v * 1000.0)), "mm", None, 0.5))
    elif v < 1.0:
        out.append((float(round(cm)), "cm", None, 2.0))
        out.append((_round_to(cm, 5), "cm", None, 2.0))
        out.append((_round_to(cm, 10), "cm", None, 2.0))
        out.append((round(v, 1), "m", None, 0.4))
        out.append((0.5, "m", "half a meter", 0.8))
        out.append((1.0, "m", None, 4.0 if v >= 0.85 else 1.0))
        out.append((1.0, "m", "a meter", 0.5))
    elif v < 10.0:
        out.append((round(v, 1), "m", None, 3.0))
        half = _round_to(v, 0.5)
        if half == 1.5:
            out.append((1.5, "m", "a meter and a half", 0.5))
        if half != round(half) and half >= 2:
            out.append((half, "m", f"{int(half)} and a half meters", 0.5))
        out.append((half, "m", None, 1.5))
        out.append((float(round(v)), "m", None, 2.0))
        if round(v) == 1:
            out.append((1.0, "m", "a meter", 0.5))
        if v < 2.0:
            out.append((_round_to(cm, 10), "cm", None, 0.5))
    else:
        out.append((float(round(v)), "m", None, 3.0))
        out.append((_round_to(v, 5), "m", None, 2.0))
        out.append((_round_to(v, 10), "m", None, 1.5))
        if v < 20:
            out.append((round(v, 1), "m", None, 0.5))
    return out


def _feet_inches(total_in: float) -> tuple[int, int]:
    feet = int(total_in // 12)
    inches = round(total_in - 12 * feet)
    if inches == 12:
        feet, inches = feet + 1, 0
    return feet, inches


def _feet_inches_text(feet: int, inches: int) -> str:
    ft = "1 foot" if feet == 1 else f"{feet} feet"
    if inches == 0:
        return ft
    return f"{ft} {'1 inch' if inches == 1 else f'{inches} inches'}"


def _imperial_candidates(v: float) -> list[_Cand]:
    inch = v / UNIT_METRES["in"]
    ft = v / UNIT_METRES["ft"]
    out: list[_Cand] = []
    if inch < 1.0:
        out.append((0.25, "in", "a quarter of an inch", 1.5))
        out.append((0.5, "in", "half an inch", 2.0))
        out.append((0.75, "in", "three quarters of an inch", 1.0))
        out.append((1.0, "in", "an inch", 1.0))
        out.append((round(inch, 1), "in", None, 1.0))
        out.append((_sig(inch, 2), "in", None, 0.2))  # tiny lengths: "0.16 inches"
    elif inch < 24.0:
        n = float(max(1, round(inch)))
        out.append((n, "in", None, 3.0))
        if n == 1:
            out.append((1.0, "in", "an inch", 0.5))
        if inch < 6:
            half = _round_to(inch, 0.5)
            if half != round(half):
                out.append((half, "in", f"{int(half)} and a half inches" if half >= 2 else "an inch and a half",
                            0.5))
                out.append((half, "in", None, 0.5))
        if inch >= 10:
            out.append((_round_to(inch, 5), "in", None, 1.0))
        if inch >= 12:
            f, i = _feet_inches(inch)
            out.append((f + i / 12.0, "ft", _feet_inches_text(f, i), 1.0))
            halfft = _round_to(ft, 0.5)
            if halfft == 1.0:
                out.append((1.0, "ft", "a foot", 0.8))
            elif halfft == 1.5:
                out.append((1.5, "ft", "a foot and a half", 0.8))
            elif halfft == 2.0:
                out.append((2.0, "ft", None, 0.8))
    else:
        if ft < 10:
            f, i = _feet_inches(inch)
            out.append((f + i / 12.0, "ft", _feet_inches_text(f, i), 2.0))
        half = _round_to(ft, 0.5)
        if half != round(half) and ft < 12:
            out.append((half, "ft", f"{int(half)} and a half feet", 1.0))
            out.append((half, "ft", None, 1.0))
        out.append((float(round(ft)), "ft", None, 2.5))
        if ft >= 20:
            out.append((_round_to(ft, 5), "ft", None, 1.5))
        if ft >= 60:
            out.append((_round_to(ft, 10), "ft", None, 1.0))
    return out


def _rel_error(number: float, unit: str, v: float) -> float:
    return abs(to_metres(number, unit) - v) / v


def speak_distance(value_m: float, rng: np.random.Generator, *, imperial_prob: float = 0.2,
                   hedge_prob: float = 0.15) -> Spoken:
    """Say ``value_m`` metres the way a person would.

    The unit system is imperial with probability ``imperial_prob`` (inches below 2 feet, feet or feet and inches
    above), metric otherwise (millimetres below 1 cm, centimetres below 1 m, metres above, with some overlap). A
    rounding is then drawn among the ones people use ("86 cm", "85 cm", "90 cm", "1 meter" for 0.86 m), never
    further than 20 % from the truth and usually within 10 %. With probability ``hedge_prob`` a hedge word
    ("about", "roughly", ...) goes in front."""
    v = float(value_m)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"a spoken length must be a finite, non-negative number of metres, got {value_m!r}")
    for name, p in (("imperial_prob", imperial_prob), ("hedge_prob", hedge_prob)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}")

    imperial = bool(rng.random() < imperial_prob)
    if v == 0.0:
        number, unit, text = 0.0, ("in" if imperial else "cm"), None
    else:
        cands = _imperial_candidates(v) if imperial else _metric_candidates(v)
        ok = [c for c in cands if c[0] > 0 and _rel_error(c[0], c[1], v) <= MAX_REL_ERROR]
        if not ok:  # cannot happen with the candidate sets above; kept as a guard
            raise RuntimeError(f"no rounding of {v} m within {MAX_REL_ERROR:.0%}")
        # roundings that are off by more than 10 % are kept but made rarer
        w = np.array([c[3] * (1.0 if _rel_error(c[0], c[1], v) <= 0.10 else 0.5) for c in ok])
        number, unit, text, _ = ok[int(rng.choice(len(ok), p=w / w.sum()))]
    if text is None:
        text = unit_text(number, unit, abbreviate=bool(rng.random() < _ABBREV_PROB[unit]))
    if v > 0.0 and rng.random() < hedge_prob:
        text = f"{HEDGES[int(rng.integers(len(HEDGES)))]} {text}"
    return Spoken(text=text, number=float(number), unit=unit)


# --------------------------------------------------------------------------------------------------------------
# clock-face directions
# --------------------------------------------------------------------------------------------------------------
_CLOCK_FORMS = (
    ("{h} o'clock", 5.0),
    ("about {h} o'clock", 1.0),
    ("around {h} o'clock", 1.0),
    ("roughly {h} o'clock", 0.5),
    ("the {h} o'clock position", 1.0),
)


def speak_clock(hour: int, rng: np.random.Generator) -> str:
    """A clock-face direction: "3 o'clock", "about 3 o'clock", "the 3 o'clock position", ... Every form reads
    correctly after "at" ("The mug is at the 3 o'clock position.") and on its own."""
    if isinstance(hour, bool) or not isinstance(hour, (int, np.integer)) or not 1 <= int(hour) <= 12:
        raise ValueError(f"a clock hour must be an integer from 1 to 12, got {hour!r}")
    w = np.array([f[1] for f in _CLOCK_FORMS])
    form = _CLOCK_FORMS[int(rng.choice(len(w), p=w / w.sum()))][0]
    return form.format(h=int(hour))
