"""Turning free-text model answers into values that can be scored.

Every parser returns ``None`` when the answer does not contain what is asked for ("no number", "can't tell"),
so that the metrics can count such answers as unanswered instead of guessing.

Rules for numbers (see docs/eval.md for the full table):

* units: m / meter / metre, cm, mm, km, in / inch, ft / foot / feet, yard, mile, and the marks ``'`` (feet)
  and ``"`` (inches); compound lengths add up ("3 feet 2 inches", ``5'4"``, "1 m 20 cm");
* number words zero..twenty, the tens, "hundred", "a"/"an" before a unit, "half a meter", "one and a half", "a
  meter and a half", "a quarter of a meter", "three quarters", "a couple of", "a dozen";
* fractions "1/2", "1 1/2";
* ranges "2-3 meters", "2 to 3 m", "between 2 and 3 feet", "2 or 3 meters" give the **midpoint**; a unit said
  only once, after the second number, applies to both;
* a comma followed by exactly three digits is a thousands separator ("1,500 mm" = 1.5 m); followed by any
  other count of digits it is a decimal comma ("1,5 m" = 1.5 m);
* several quantities in one answer: the first that carries a unit wins; with no unit anywhere the first number
  is read as metres and the result is flagged ``no_unit``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "RELATION_WORDS",
    "ParsedDistance",
    "parse_choice",
    "parse_classify",
    "parse_clock",
    "parse_distance",
    "parse_distance_detail",
    "parse_yes_no",
]

# ------------------------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------------------------
_UNICODE = {
    "\u2019": "'",
    "\u2018": "'",
    "\u2032": "'",
    "\u00b4": "'",
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2033": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2212": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u00a0": " ",
    "\u202f": " ",
    "\u00bd": " 1/2",
    "\u00bc": " 1/4",
    "\u00be": " 3/4",
    "\u2153": " 1/3",
    "\u2154": " 2/3",
    "~": " ",
    "\u2248": " ",
}


def _normalise(text: str) -> str:
    t = str(text)
    for k, v in _UNICODE.items():
        t = t.replace(k, v)
    t = t.lower()
    t = t.replace("''", '"')
    return t


_ONES = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}

_ONES_RE = "|".join(sorted(_ONES, key=len, reverse=True))
_TENS_RE = "|".join(_TENS)
# "twenty five", "twenty-five", "twenty", "seven", "two hundred (and) fifty"
_WORDNUM_RE = re.compile(
    rf"\b(?:(?P<h>{_ONES_RE}|a|one)\s+hundred(?:\s+(?:and\s+)?)?)?"
    rf"(?:(?P<t>{_TENS_RE})(?:[\s-]+(?P<tu>{_ONES_RE}))?|(?P<o>{_ONES_RE}))?\b"
)


def _wordnum_sub(m: re.Match) -> str:
    if not m.group(0).strip():
        return m.group(0)
    total = 0
    if m.group("h"):
        h = m.group("h")
        total += 100 * (1 if h in ("a", "one") else _ONES[h])
    if m.group("t"):
        total += _TENS[m.group("t")] + (_ONES[m.group("tu")] if m.group("tu") else 0)
    elif m.group("o"):
        total += _ONES[m.group("o")]
    elif not m.group("h"):
        return m.group(0)
    return str(total)


_UNIT_WORDS = (
    r"kilometers|kilometres|kilometer|kilometre|kms|km|centimeters|centimetres|centimeter|centimetre|cms|cm|"
    r"millimeters|millimetres|millimeter|millimetre|mm|meters|metres|meter|metre|mtrs|mtr|m|inches|inch|in|"
    r"feet|foot|ft|yards|yard|yds|yd|miles|mile|mi"
)


def _lead(s: str) -> int:
    return 1 if s in ("a", "an") else int(s)


# phrase -> replacement, applied in order after number words became digits
_PHRASES: list[tuple[re.Pattern, str]] = [
    # "a meter and a half", "2 feet and a half"
    (
        re.compile(rf"\b(a|an|\d+)\s+({_UNIT_WORDS})\s+and\s+a\s+half\b"),
        lambda m: f"{_lead(m.group(1)) + 0.5} {m.group(2)}",
    ),
    (
        re.compile(rf"\b(a|an|\d+)\s+({_UNIT_WORDS})\s+and\s+a\s+quarter\b"),
        lambda m: f"{_lead(m.group(1)) + 0.25} {m.group(2)}",
    ),
    # "one and a half", "2 and a quarter", "1 and three quarters"
    (re.compile(r"\b(\d+)\s+and\s+a\s+half\b"), r"\1.5"),
    (re.compile(r"\b(\d+)\s+and\s+(?:a|1)\s+quarter\b"), r"\1.25"),
    (re.compile(r"\b(\d+)\s+and\s+3\s+quarters\b"), r"\1.75"),
    # "three quarters of a meter", "a quarter of a foot", "half a meter", "half of a meter", "a half meter"
    (re.compile(r"\b3\s+quarters?\s+(?:of\s+)?(?:an?\s+)?"), "0.75 "),
    (re.compile(r"\b(?:a|1|one)\s+quarter\s+(?:of\s+)?(?:an?\s+)?"), "0.25 "),
    (re.compile(r"\b(?:a\s+|1\s+)?half\s+(?:of\s+)?(?:an?\s+)(?=(?:" + _UNIT_WORDS + r")\b)"), "0.5 "),
    (re.compile(r"\ba\s+half\s+(?=(?:" + _UNIT_WORDS + r")\b)"), "0.5 "),
    (re.compile(r"\bhalf\s+(?=(?:" + _UNIT_WORDS + r")\b)"), "0.5 "),
    (re.compile(r"\ba\s+couple\s+(?:of\s+)?"), "2 "),
    (re.compile(r"\ba\s+dozen\s+"), "12 "),
    (re.compile(r"\b(\d+)\s+dozen\s+"), lambda m: f"{int(m.group(1)) * 12} "),
    # "a meter", "an inch"
    (re.compile(rf"\b(?:a|an)\s+(?=(?:{_UNIT_WORDS})\b)"), "1 "),
]

_MIXED_FRACTION = re.compile(r"\b(\d+)[\s-]+(\d+)/(\d+)\b")
_FRACTION = re.compile(r"(?<![\d.])(\d+)/(\d+)\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d)")


def _numbers_to_digits(t: str) -> str:
    t = _WORDNUM_RE.sub(_wordnum_sub, t)
    for pat, rep in _PHRASES:
        t = pat.sub(rep, t)
    t = _MIXED_FRACTION.sub(lambda m: _fmt(int(m.group(1)) + int(m.group(2)) / max(int(m.group(3)), 1)), t)
    t = _FRACTION.sub(lambda m: _fmt(int(m.group(1)) / int(m.group(2))) if int(m.group(2)) else m.group(0), t)
    t = _THOUSANDS.sub("", t)
    t = _DECIMAL_COMMA.sub(".", t)
    return t


def _fmt(x: float) -> str:
    return repr(float(x))


# ------------------------------------------------------------------------------------------------------------
# Distances
# ------------------------------------------------------------------------------------------------------------
UNIT_TO_M: dict[str, float] = {
    "km": 1000.0,
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "in": 0.0254,
    "ft": 0.3048,
    "yd": 0.9144,
    "mi": 1609.344,
}
_UNIT_CANON = {
    **{u: "km" for u in ("kilometers", "kilometres", "kilometer", "kilometre", "kms", "km")},
    **{u: "cm" for u in ("centimeters", "centimetres", "centimeter", "centimetre", "cms", "cm")},
    **{u: "mm" for u in ("millimeters", "millimetres", "millimeter", "millimetre", "mm")},
    **{u: "m" for u in ("meters", "metres", "meter", "metre", "mtrs", "mtr", "m")},
    **{u: "in" for u in ("inches", "inch", "in", '"')},
    **{u: "ft" for u in ("feet", "foot", "ft", "'")},
    **{u: "yd" for u in ("yards", "yard", "yds", "yd")},
    **{u: "mi" for u in ("miles", "mile", "mi")},
}
_NUM = r"\d+(?:\.\d+)?|\.\d+"
# a number, optionally followed by a unit. "in" only counts as inches when nothing word-like follows it
# ("2 in" / "3 ft 2 in." / "2 in and"), not in "2 in front".
_QTY = re.compile(
    rf"(?P<num>{_NUM})(?:\s*(?P<unit>(?:"
    r"kilometers|kilometres|kilometer|kilometre|kms|km|centimeters|centimetres|centimeter|centimetre|cms|cm|"
    r"millimeters|millimetres|millimeter|millimetre|mm|meters|metres|meter|metre|mtrs|mtr|m|inches|inch|"
    r"feet|foot|ft|yards|yard|yds|yd|miles|mile|mi)(?![a-z])\.?|in(?=\s*(?:$|[.,;:!?)\]]|\d|and\b|tall\b|wide\b|"
    r"long\b|high\b|away\b|apart\b|from\b))\.?|'(?!s\b)|\"))?"
)


@dataclass
class ParsedDistance:
    """What :func:`parse_distance_detail` read. ``value_m`` is None when there is no number."""

    value_m: float | None
    number: float | None = None  # the number as said (midpoint for ranges, total in ``unit`` for compounds)
    unit: str | None = None  # canonical unit symbol (m, cm, mm, km, in, ft, yd, mi) or None
    flags: list[str] = field(default_factory=list)  # no_unit, range, compound, multiple
    span: tuple[int, int] | None = None  # where in the normalised text


@dataclass
class _Q:
    num: float
    unit: str | None
    start: int
    end: int


def _scan(t: str) -> list[_Q]:
    out: list[_Q] = []
    for m in _QTY.finditer(t):
        # skip digits glued to letters before them ("r2d2", "3d" is fine: digit first)
        if m.start() > 0 and t[m.start() - 1].isalpha():
            continue
        unit_raw = m.group("unit")
        unit = None
        if unit_raw:
            key = unit_raw.rstrip(".")
            unit = _UNIT_CANON.get(key)
        # "3d", "2x": a digit glued to letters that are not a unit is not a quantity
        if unit is None and m.end() < len(t) and t[m.end()].isalpha():
            continue
        out.append(_Q(float(m.group("num")), unit, m.start(), m.end()))
    return out


_RANGE_JOIN = re.compile(r"^\s*(?:-|to|or|and|/)\s*$")
_COMPOUND_JOIN = re.compile(r"^\s*(?:,|and|,\s*and|\+|plus)?\s*$")
_BIG_SMALL = {("ft", "in"), ("m", "cm"), ("m", "mm"), ("cm", "mm"), ("yd", "ft"), ("km", "m")}


def parse_distance_detail(text: str | None) -> ParsedDistance:
    """Read a length from free text; see the module docstring for the rules."""
    if text is None:
        return ParsedDistance(None, flags=["empty"])
    t = _numbers_to_digits(_normalise(text))
    qs = _scan(t)
    if not qs:
        return ParsedDistance(None)
    groups: list[tuple[float, str | None, list[str], int, int]] = []
    i = 0
    while i < len(qs):
        q = qs[i]
        nxt = qs[i + 1] if i + 1 < len(qs) else None
        between = t[q.end : nxt.start] if nxt else ""
        # compound: 3 ft 2 in, 1 m 20 cm, 5'4", 5 ft 4 (bare inches after feet)
        if nxt and q.unit and _COMPOUND_JOIN.match(between):
            if (q.unit, nxt.unit) in _BIG_SMALL:
                total_m = q.num * UNIT_TO_M[q.unit] + nxt.num * UNIT_TO_M[nxt.unit]  # type: ignore[index]
                groups.append((total_m / UNIT_TO_M[q.unit], q.unit, ["compound"], q.start, nxt.end))
                i += 2
                continue
            if q.unit == "ft" and nxt.unit is None and nxt.num < 12 and not t[nxt.end :].strip(" .,!;)"):
                total_m = q.num * UNIT_TO_M["ft"] + nxt.num * UNIT_TO_M["in"]
                groups.append((total_m / UNIT_TO_M["ft"], "ft", ["compound"], q.start, nxt.end))
                i += 2
                continue
        # range: 2-3 m, 2 to 3 meters, between 2 and 3 ft, 2 m to 3 m
        if nxt and _RANGE_JOIN.match(between) and (q.unit is None or nxt.unit is None or q.unit == nxt.unit):
            word = between.strip()
            before = t[max(0, q.start - 12) : q.start]
            if word != "and" or "between" in before:
                unit = q.unit or nxt.unit
                lo, hi = q.num, nxt.num
                if unit is not None and q.unit is None and nxt.unit is not None and lo > hi:
                    # "50-1 m" is not a range; leave as two numbers
                    pass
                else:
                    groups.append(((lo + hi) / 2.0, unit, ["range"], q.start, nxt.end))
                    i += 2
                    continue
        groups.append((q.num, q.unit, [], q.start, q.end))
        i += 1
    with_unit = [g for g in groups if g[1] is not None]
    flags_extra = ["multiple"] if len(groups) > 1 else []
    if with_unit:
        num, unit, flags, s, e = with_unit[0]
        return ParsedDistance(num * UNIT_TO_M[unit], num, unit, flags + flags_extra, (s, e))  # type: ignore[index]
    num, unit, flags, s, e = groups[0]
    return ParsedDistance(num, num, None, flags + ["no_unit"] + flags_extra, (s, e))


def parse_distance(text: str | None) -> float | None:
    """Metres said in ``text``, or None when it holds no number. A number without a unit is read as metres
    (use :func:`parse_distance_detail` to see the ``no_unit`` flag)."""
    return parse_distance_detail(text).value_m


# ------------------------------------------------------------------------------------------------------------
# Yes / no
# ------------------------------------------------------------------------------------------------------------
_UNKNOWN = re.compile(
    r"\b(?:can ?not|can't|cant|unable to|impossible to|hard to|difficult to|not possible to|no way to)\s+"
    r"(?:\w+\s+){0,2}(?:tell|determine|say|know|judge|see|answer|be determined)\b|"
    r"\b(?:not sure|unsure|uncertain|unclear|(?:do not|don't|dont) know|no idea|not (?:enough|possible)|"
    r"insufficient|cannot be (?:determined|known)|it depends|ambiguous)\b"
)
_YES_START = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|y|correct|true|affirmative|indeed|definitely|certainly|"
    r"absolutely|sure|of course|that's right|that is right)\b"
)
_NO_START = re.compile(
    r"^\W*(?:no|nope|nah|n|false|incorrect|wrong|negative|not|never|neither|it isn't|"
    r"it is not|it's not|they are not|they aren't|not really|not at all)\b"
)
_NEG = re.compile(
    r"\b(?:not|no|never|neither|nor|isn't|isnt|aren't|arent|wasn't|weren't|doesn't|doesnt|don't|dont|"
    r"cannot|can't|won't|hardly)\b|n't\b"
)
_AFFIRM = re.compile(r"\b(?:yes|is|are|does|do|appears|seems|looks|sits|stands|lies|it's|they're)\b")

# relation -> words that say it (for yes/no answers that restate the opposite relation, and for classify)
RELATION_WORDS: dict[str, list[str]] = {
    "left": ["to the left", "left of", "left side", "on the left", "leftward", "left"],
    "right": ["to the right", "right of", "right side", "on the right", "rightward", "right"],
    "above": ["above", "higher", "over", "on top", "atop", "up"],
    "below": ["below", "beneath", "under", "underneath", "lower", "down"],
    "behind": ["behind", "farther", "further", "in back", "at the back", "back", "more distant"],
    "front": ["in front", "front", "closer", "nearer", "ahead"],
    "tall": ["taller", "tall", "higher"],
    "short": ["shorter", "short", "lower"],
    "wide": ["wider", "wide", "broader", "broad"],
    "thin": ["thinner", "thin", "narrower", "narrow", "skinnier", "slimmer"],
    "big": ["bigger", "larger", "big", "large", "huge"],
    "small": ["smaller", "small", "tiny", "little", "tinier"],
}
_OPPOSITE = {
    "left": "right",
    "right": "left",
    "above": "below",
    "below": "above",
    "behind": "front",
    "front": "behind",
    "tall": "short",
    "short": "tall",
    "wide": "thin",
    "thin": "wide",
    "big": "small",
    "small": "big",
}


def _find_words(t: str, words: Sequence[str]) -> list[tuple[int, int]]:
    spans = []
    for w in sorted(words, key=len, reverse=True):
        for m in re.finditer(rf"\b{re.escape(w)}\b", t):
            if not any(s <= m.start() < e for s, e in spans):
                spans.append((m.start(), m.end()))
    return sorted(spans)


_PREAMBLE = re.compile(
    r"^\W*(?:(?:well|so|hmm+|um+|ok(?:ay)?|actually|in fact|honestly|i think|i believe|i'd say|i would say|"
    r"it seems|it appears|looking at the image|based on the image|from the image|"
    r"the answer is|answer)\b[\s,:;.-]*)+"
)


def _mask_names(t: str, names: Sequence[str] | None) -> str:
    """Replace object names by a neutral token so that "chair on the left" does not read as a relation."""
    for n in sorted(names or [], key=len, reverse=True):
        n = _normalise(n).strip()
        if n:
            t = re.sub(rf"(?<![\w]){re.escape(n)}(?![\w])", " object ", t)
    return t


def _clause_negated(t: str, start: int) -> bool:
    """A negation in the same clause, before position ``start``."""
    clause = re.split(r"[.,;:!?]", t[:start])[-1]
    return bool(_NEG.search(clause))


def parse_yes_no(
    text: str | None, relation: str | None = None, names: Sequence[str] | None = None
) -> bool | None:
    """True / False for a yes-no answer, None when the answer says it cannot tell or says nothing usable.

    The first word decides when it is a yes or a no ("No, it is not", "Actually, no: ...", "Yes."). Otherwise,
    with ``relation`` (the relation the question asks about, e.g. "left"), a statement of that relation is a
    yes and of the opposite relation a no, each flipped by a negation in its clause ("is not to the right" =
    yes). Without a relation word, any negation makes a no and a plain statement a yes. ``names`` (the
    objects' names) are masked first so a name like "chair on the left" is not read as a relation."""
    if text is None:
        return None
    t = _normalise(text).strip()
    t = _PREAMBLE.sub("", t)
    if not t:
        return None
    if _UNKNOWN.search(t) and not re.match(r"^\W*(?:yes|no)\b", t):
        return None
    if _NO_START.match(t):
        return False
    if _YES_START.match(t):
        return True
    t = _mask_names(t, names)
    if relation is not None and relation in RELATION_WORDS:
        own_w = RELATION_WORDS[relation]
        opp_w = RELATION_WORDS[_OPPOSITE[relation]]
        shared = set(own_w) & set(opp_w)
        own = _find_words(t, [w for w in own_w if w not in shared])
        opp = _find_words(t, [w for w in opp_w if w not in shared])
        if own or opp:
            first_own = own[0] if own else None
            first_opp = opp[0] if opp else None
            if first_own and (not first_opp or first_own[0] < first_opp[0]):
                return not _clause_negated(t, first_own[0])
            return _clause_negated(t, first_opp[0])  # type: ignore[index]
    if _NEG.search(t):
        return False
    if _AFFIRM.search(t):
        return True
    return None


# ------------------------------------------------------------------------------------------------------------
# Choices and classify
# ------------------------------------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(?:the|a|an)\b\s*")
_LOSER_BEFORE = re.compile(
    r"(?:\bthan|\bnot|\brather than|\binstead of|\bcompared (?:to|with)|\bversus|\bvs\.?|"
    r"\bunlike|\bwhereas)\s*(?:the\s+|a\s+|an\s+)?$"
)
_WINNER_AFTER = re.compile(r"^\s*(?:is|are|appears|seems|looks|sits|stands|lies|has|was)\b")
_LETTER = re.compile(r"^\W*(?:answer\s*(?:is)?\s*:?\s*|option\s*|choice\s*)?\(?([a-z])\)?(?:[.):,]|\s|$)")


def _clean(s: str) -> str:
    s = _normalise(s)
    s = re.sub(r"[^\w\s'-]", " ", s)
    s = _ARTICLES.sub("", s)
    return re.sub(r"\s+", " ", s).strip()


def _pick(t: str, cands: list[tuple[int, int, int]]) -> int | None:
    """Among mentions (start, end, option index) choose the answer: drop those after 'than' / 'not', prefer
    one followed by 'is'; else the first mentioned."""
    if not cands:
        return None
    idxs = {c[2] for c in cands}
    if len(idxs) == 1:
        return cands[0][2]
    losers = {c[2] for c in cands if _LOSER_BEFORE.search(t[: c[0]])}
    keep = [c for c in cands if c[2] not in losers]
    if len({c[2] for c in keep}) == 1:
        return keep[0][2]
    pool = keep or cands
    for c in pool:
        if _WINNER_AFTER.match(t[c[1] :]):
            return c[2]
    return pool[0][2]


def parse_choice(text: str | None, options: Sequence[str]) -> str | None:
    """The option (returned exactly as given in ``options``) that the answer names, or None.

    Tries, in order: a letter answer ("(B)", "B.", "Answer: b") when the options are not themselves letters;
    whole option phrases (longest first, articles ignored); then words that belong to exactly one option ("the
    lamp" for "the tall lamp"). With several options named, one after "than" / "not" loses and one followed by
    "is" wins ("Between the chair and the lamp, the lamp is taller")."""
    if text is None or not options:
        return None
    if all(len(o.strip()) == 1 and o.strip().isalpha() for o in options):
        return _parse_letter(text, options)
    opts = [_clean(o) for o in options]
    t = _clean(text)
    raw = _normalise(text).strip()
    letters_are_options = all(len(o) == 1 for o in opts)
    if not letters_are_options:
        m = _LETTER.match(raw)
        if m and (
            len(raw.strip(" .()")) <= 2 or re.match(r"^\W*(?:answer|option|choice)|^\W*\([a-z]\)", raw)
        ):
            k = ord(m.group(1)) - ord("a")
            if 0 <= k < len(options):
                return options[k]
    if not t:
        return None
    # whole phrases
    cands: list[tuple[int, int, int]] = []
    taken: list[tuple[int, int]] = []
    for k in sorted(range(len(opts)), key=lambda k: len(opts[k]), reverse=True):
        if not opts[k]:
            continue
        for m in re.finditer(rf"(?<![\w]){re.escape(opts[k])}(?![\w])", t):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            cands.append((m.start(), m.end(), k))
    cands.sort()
    k = _pick(t, cands)
    if k is not None:
        return options[k]
    # words unique to one option
    toks = [set(o.split()) for o in opts]
    cands = []
    for k, ws in enumerate(toks):
        uniq = ws - set().union(*(toks[j] for j in range(len(toks)) if j != k))
        for w in uniq:
            if len(w) < 2:
                continue
            for m in re.finditer(rf"(?<![\w]){re.escape(w)}(?![\w])", t):
                cands.append((m.start(), m.end(), k))
    cands.sort()
    k = _pick(t, cands)
    return None if k is None else options[k]


def _parse_letter(text: str, options: Sequence[str]) -> str | None:
    """Options that are single letters (points "A" / "B" marked on the image)."""
    letters = [o.strip().lower() for o in options]
    raw = _normalise(text).strip()
    m = re.match(r"^\W*(?:(?:the\s+)?answer\s*(?:is)?\s*:?\s*|option\s*|point\s*)?\(?([a-z])\)?\W*$", raw)
    if m and m.group(1) in letters:
        return options[letters.index(m.group(1))]
    cands = []
    for m in re.finditer(r"\(([a-z])\)|\b(?:point|option|answer:?)\s+([a-z])\b", raw):
        c = m.group(1) or m.group(2)
        if c in letters:
            cands.append((m.start(), m.end(), letters.index(c)))
    if not cands:
        # capital letters standing alone; "A" only where it cannot be the article
        tt = _normalise_case(text)
        for m in re.finditer(r"(?<![\w'])([A-Z])(?![\w'])", tt):
            c = m.group(1)
            after = tt[m.end() : m.end() + 4]
            if (
                c == "A"
                and re.match(r"\s+[a-z]", after)
                and not re.match(r"\s+(?:is|was|has|and|or)\b", after)
            ):
                continue
            if c.lower() in letters:
                cands.append((m.start(), m.end(), letters.index(c.lower())))
        t = tt
    else:
        t = raw
    cands.sort()
    k = _pick(t.lower(), cands)
    return None if k is None else options[k]


def _normalise_case(text: str) -> str:
    t = str(text)
    for k, v in _UNICODE.items():
        t = t.replace(k, v)
    return t


def parse_classify(
    text: str | None, options: Sequence[str], names: Sequence[str] | None = None
) -> str | None:
    """Which of the relation words in ``options`` (e.g. ["left", "right"]) the answer says, with synonyms
    ("higher" for above, "closer" for front, "narrower" for thin) and negation ("not to the left" picks the
    other one of a pair). Options that are not known relation words are matched literally. ``names`` (the
    objects' names) are masked first."""
    if text is None or not options:
        return None
    t = _mask_names(_PREAMBLE.sub("", _normalise(text)), names)
    cands: list[tuple[int, int, int]] = []
    taken: list[tuple[int, int]] = []
    word_lists = [RELATION_WORDS.get(o.lower(), [o.lower()]) for o in options]
    shared = set.intersection(*(set(w) for w in word_lists)) if len(word_lists) > 1 else set()
    for k, words in enumerate(word_lists):
        for s, e in _find_words(t, [w for w in words if w not in shared]):
            if any(a < e and s < b for a, b in taken):
                continue
            taken.append((s, e))
            cands.append((s, e, k))
    cands.sort()
    if not cands:
        return None
    mentioned = {c[2] for c in cands}
    if len(mentioned) == 1 and len(options) == 2:
        k = cands[0][2]
        before = t[: cands[0][0]]
        if re.search(r"\b(?:not|isn't|isnt|aren't|never|neither)\b(?:\s+\w+){0,3}\s*$", before) or re.search(
            r"n't(?:\s+\w+){0,3}\s*$", before
        ):
            return options[1 - k]
        return options[k]
    k = _pick(t, cands)
    return None if k is None else options[k]


# ------------------------------------------------------------------------------------------------------------
# Clock directions
# ------------------------------------------------------------------------------------------------------------
_CLOCK_NUM = re.compile(r"(?<![\d.])(\d{1,2})(?::(\d{2}))?\s*(?:o\s*'?\s*clock|oclock|o'clock|h\b|:00)?")
_CLOCK_EXPLICIT = re.compile(
    r"(?<![\d.])(\d{1,2})(?::(\d{2}))?\s*(?:o\s*'?\s*clock|oclock|h\b)|(?<![\d.])(\d{1,2}):(\d{2})"
)
_CLOCK_WORDS = [
    (re.compile(r"\b(?:straight ahead|directly ahead|dead ahead|in front)\b"), 12),
    (re.compile(r"\b(?:directly behind|straight behind|right behind)\b"), 6),
    (re.compile(r"\b(?:to the right|on the right|right side)\b"), 3),
    (re.compile(r"\b(?:to the left|on the left|left side)\b"), 9),
]


def _hour(h: int, minutes: int) -> int | None:
    if h > 24 or minutes >= 60:
        return None
    x = (h % 12) + (1 if minutes >= 30 else 0)
    x = x % 12
    return 12 if x == 0 else x


def parse_clock(text: str | None) -> int | None:
    """The clock-face hour 1..12 an answer names: "3 o'clock", "three o'clock", "at 3", "2:30" (rounded half
    up to 3), "12" or "0" -> 12. With no number, plain directions count: ahead 12, right 3, behind 6,
    left 9."""
    if text is None:
        return None
    t = _numbers_to_digits(_normalise(text))
    m = _CLOCK_EXPLICIT.search(t)
    if m:
        if m.group(1) is not None:
            return _hour(int(m.group(1)), int(m.group(2) or 0))
        return _hour(int(m.group(3)), int(m.group(4)))
    for m in re.finditer(r"(?<![\d.])(\d{1,2})(?![\d.]|\s*(?:" + _UNIT_WORDS + r")\b)", t):
        h = _hour(int(m.group(1)), 0)
        if h is not None:
            return h
    for pat, h in _CLOCK_WORDS:
        if pat.search(t):
            return h
    return None
