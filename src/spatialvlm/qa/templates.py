"""How every question type is asked and answered.

Templates are plain strings with four placeholders:

* ``{A}``, ``{B}``: the object names (noun phrases without article; templates write "the {A}" themselves);
* ``{X}``: the chosen object of a choice question (one of A, B);
* ``{V}``: the spoken value of a quantitative or direction answer ("about 1.5 meters", "3 o'clock").

Relation-based families (predicate, choice, classify) are built from a small table of relation phrases crossed
with sentence frames, so that every relation gets the same variety; quantitative and direction types are written
out one by one. :func:`render_qa` picks one question and one answer phrasing with the caller's generator.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from .phrasing import speak_clock, speak_distance
from .taxonomy import RELATIONS, TYPES

# --------------------------------------------------------------------------------------------------------------
# Relation phrases
# --------------------------------------------------------------------------------------------------------------
# P: complements of "is", followed by "the {B}" (the first one is the plain form used in answers)
# C: comparatives that stand alone after "is" ("which is further left?", "the mug is further left")
# S: a short answer that names the relation word ("to the left", "above it")
_REL: dict[str, dict[str, list[str] | str]] = {
    "left": {
        "P": ["to the left of", "on the left side of", "left of", "further to the left than"],
        "C": ["more to the left", "further left", "farther to the left"],
        "S": "to the left",
    },
    "right": {
        "P": ["to the right of", "on the right side of", "right of", "further to the right than"],
        "C": ["more to the right", "further right", "farther to the right"],
        "S": "to the right",
    },
    "above": {
        "P": ["above", "higher than", "positioned above", "located over"],
        "C": ["higher up", "higher", "positioned higher"],
        "S": "above it",
    },
    "below": {
        "P": ["below", "lower than", "under", "beneath"],
        "C": ["lower down", "lower", "positioned lower"],
        "S": "below it",
    },
    "behind": {
        "P": ["behind", "further back than", "farther from the camera than", "farther away than"],
        "C": ["further back", "farther from the camera", "more distant from the viewer"],
        "S": "behind it",
    },
    "front": {
        "P": ["in front of", "closer to the camera than", "nearer to the viewer than", "further forward than"],
        "C": ["closer to the camera", "further forward", "nearer to the viewer"],
        "S": "in front of it",
    },
    "tall": {
        "P": ["taller than", "greater in height than"],
        "C": ["taller", "the taller of the two"],
        "S": "taller",
    },
    "short": {
        "P": ["shorter than", "less tall than"],
        "C": ["shorter", "the shorter of the two"],
        "S": "shorter",
    },
    "wide": {
        "P": ["wider than", "broader than"],
        "C": ["wider", "broader"],
        "S": "wider",
    },
    "thin": {
        "P": ["thinner than", "narrower than"],
        "C": ["thinner", "narrower"],
        "S": "thinner",
    },
    "big": {
        "P": ["bigger than", "larger than"],
        "C": ["bigger", "larger"],
        "S": "bigger",
    },
    "small": {
        "P": ["smaller than", "less bulky than"],
        "C": ["smaller", "the smaller of the two"],
        "S": "smaller",
    },
}

# extra hand-written questions for relations whose phrase table is short or that read better said another way
_EXTRA_PREDICATE_Q: dict[str, list[str]] = {
    "left": ["From the viewer's perspective, is the {A} to the left of the {B}?"],
    "right": ["From the viewer's perspective, is the {A} to the right of the {B}?"],
    "above": ["Does the {A} sit higher up than the {B}?"],
    "below": ["Does the {A} sit lower down than the {B}?"],
    "behind": ["Seen from the camera, is the {A} further away than the {B}?"],
    "front": ["Seen from the camera, is the {A} nearer than the {B}?"],
    "tall": ["Does the {A} stand taller than the {B}?", "Is the {A} the taller one compared with the {B}?"],
    "short": ["Does the {A} stand shorter than the {B}?", "Is the {A} the shorter one compared with the {B}?"],
    "wide": ["Does the {A} span more from side to side than the {B}?"],
    "thin": ["Does the {A} span less from side to side than the {B}?"],
    "big": ["Does the {A} take up more space than the {B}?"],
    "small": ["Does the {A} take up less space than the {B}?"],
}

_EXTRA_CHOICE_Q: dict[str, list[str]] = {
    "left": ["From the viewer's side, which lies more to the left: the {A} or the {B}?"],
    "right": ["From the viewer's side, which lies more to the right: the {A} or the {B}?"],
    "above": ["Which sits higher, the {A} or the {B}?"],
    "below": ["Which sits lower, the {A} or the {B}?"],
    "behind": ["Which is further from the camera, the {A} or the {B}?"],
    "front": ["Which is nearer to the camera, the {A} or the {B}?"],
    "tall": ["Which stands taller, the {A} or the {B}?", "Which has the greater height, the {A} or the {B}?"],
    "short": ["Which stands shorter, the {A} or the {B}?", "Which has the lesser height, the {A} or the {B}?"],
    "wide": ["Which spans more from side to side, the {A} or the {B}?"],
    "thin": ["Which spans less from side to side, the {A} or the {B}?"],
    "big": ["Which takes up more space, the {A} or the {B}?"],
    "small": ["Which takes up less space, the {A} or the {B}?"],
}

# --------------------------------------------------------------------------------------------------------------
# Frames for the relation families ({P}, {C}, {S} and their opposites {OP}, {OC}, {OS} are filled per relation)
# --------------------------------------------------------------------------------------------------------------
_PREDICATE_Q_FRAMES = [
    "Is the {A} {P} the {B}?",
    "Looking at the image, is the {A} {P} the {B}?",
    "Would you say the {A} is {P} the {B}?",
    "Is it true that the {A} is {P} the {B}?",
    "Can you tell whether the {A} is {P} the {B}?",
    "In this picture, is the {A} {P} the {B}?",
    "Does the {A} appear to be {P} the {B}?",
    "Is the {A} {P} the {B} or not?",
    "Based on what you see, is the {A} {P} the {B}?",
    "Could you check if the {A} is {P} the {B}?",
    "Is the {A} actually {P} the {B}?",
    "Tell me, is the {A} {P} the {B}?",
]

_PREDICATE_YES = [
    "Yes, the {A} is {P} the {B}.",
    "Yes, it is {P} the {B}.",
    "Yes. The {A} is {P} the {B}.",
    "Correct, the {A} is {P} the {B}.",
    "Yes, it is.",
    "Indeed, the {A} is {C}.",
    "Yes, the {A} is {S}.",
]

_PREDICATE_NO = [
    "No, the {A} is not {P} the {B}.",
    "No, it is {OP} the {B}.",
    "No. The {A} is {OP} the {B}.",
    "No, it isn't.",
    "No, the {A} is {OC}.",
    "Actually, no: the {A} is {OP} the {B}.",
    "Nope, the {A} is {OS}.",
]

_CHOICE_Q_FRAMES = [
    "Which is {C}, the {A} or the {B}?",
    "Which one is {C}: the {A} or the {B}?",
    "Between the {A} and the {B}, which is {C}?",
    "Of the {A} and the {B}, which one is {C}?",
    "Which object is {C}, the {A} or the {B}?",
    "Looking at the {A} and the {B}, which appears {C}?",
    "Which of these two is {C}: the {A} or the {B}?",
    "Can you tell which is {C}, the {A} or the {B}?",
    "Comparing the {A} with the {B}, which one is {C}?",
    "Which would you say is {C}, the {A} or the {B}?",
]

_CHOICE_ANSWERS = [
    "The {X} is {C}.",
    "The {X}.",
    "It is the {X}.",
    "That would be the {X}.",
    "Of the two, the {X} is {C}.",
    "The {X} is the one that is {C}.",
]

# classify answers: every frame names the relation through {P} or {S}, which always hold the relation word
_CLASSIFY_ANSWERS = [
    "The {A} is {P} the {B}.",
    "It is {P} the {B}.",
    "{S}.",
    "The {A} is {S}.",
    "Looking at the image, the {A} is {P} the {B}.",
    "It's {S}.",
]

# hand-written: the two relation words of each pair in one question
_CLASSIFY_Q: dict[str, list[str]] = {
    "left_right_classify": [
        "Is the {A} to the left or to the right of the {B}?",
        "Is the {A} on the left or the right side of the {B}?",
        "Relative to the {B}, is the {A} on the left or on the right?",
        "Does the {A} sit to the left or to the right of the {B}?",
        "From the camera's view, is the {A} left or right of the {B}?",
        "Which side of the {B} is the {A} on, left or right?",
        "Looking at the {B}, is the {A} to its left or to its right?",
        "Is the {A} placed left or right of the {B}?",
        "Left or right: where is the {A} relative to the {B}?",
        "In the image, does the {A} appear to the left or to the right of the {B}?",
        "Compared with the {B}, is the {A} further left or further right?",
    ],
    "above_below_classify": [
        "Is the {A} above or below the {B}?",
        "Does the {A} sit above or below the {B}?",
        "Relative to the {B}, is the {A} above it or below it?",
        "Is the {A} located above the {B} or below it?",
        "Above or below: where is the {A} compared with the {B}?",
        "Would you say the {A} is above or below the {B}?",
        "Is the {A} positioned above the {B}, or below it?",
        "In terms of height, is the {A} above or below the {B}?",
        "Looking at the image, is the {A} above or below the {B}?",
        "Is the {A} found above or below the {B}?",
    ],
    "behind_front_classify": [
        "Is the {A} behind or in front of the {B}?",
        "Is the {A} in front of the {B} or behind it?",
        "From the camera, is the {A} behind the {B} or in front of it?",
        "Does the {A} sit behind or in front of the {B}?",
        "Relative to the {B}, is the {A} in front or behind?",
        "Behind or in front: where is the {A} compared with the {B}?",
        "Looking from the camera, is the {A} located behind the {B} or in front of it?",
        "Would you say the {A} is in front of or behind the {B}?",
        "Along the viewing direction, is the {A} behind or in front of the {B}?",
        "In this picture, is the {A} placed behind the {B} or in front of it?",
    ],
    "tall_short_classify": [
        "Is the {A} taller or shorter than the {B}?",
        "Is the {A} shorter or taller than the {B}?",
        "Compared with the {B}, is the {A} taller or shorter?",
        "Would you say the {A} is taller or shorter than the {B}?",
        "Taller or shorter: how does the {A} compare with the {B}?",
        "Does the {A} stand taller or shorter than the {B}?",
        "In height, is the {A} taller or shorter than the {B}?",
        "Looking at the image, is the {A} taller than the {B} or shorter?",
        "Is the {A} the taller or the shorter one next to the {B}?",
        "Relative to the {B}, is the {A} taller or shorter?",
    ],
    "wide_thin_classify": [
        "Is the {A} wider or thinner than the {B}?",
        "Is the {A} thinner or wider than the {B}?",
        "Compared with the {B}, is the {A} wider or narrower?",
        "Would you say the {A} is wider or thinner than the {B}?",
        "Wider or thinner: how does the {A} compare with the {B}?",
        "From side to side, is the {A} wider or narrower than the {B}?",
        "In width, is the {A} wider or thinner than the {B}?",
        "Looking at the image, is the {A} wider than the {B} or thinner?",
        "Is the {A} the wider or the thinner one next to the {B}?",
        "Relative to the {B}, is the {A} wider or narrower?",
    ],
    "big_small_classify": [
        "Is the {A} bigger or smaller than the {B}?",
        "Is the {A} smaller or bigger than the {B}?",
        "Compared with the {B}, is the {A} bigger or smaller?",
        "Would you say the {A} is larger or smaller than the {B}?",
        "Bigger or smaller: how does the {A} compare with the {B}?",
        "In overall size, is the {A} bigger or smaller than the {B}?",
        "Does the {A} look bigger or smaller than the {B}?",
        "Looking at the image, is the {A} larger than the {B} or smaller?",
        "Is the {A} the bigger or the smaller one next to the {B}?",
        "Relative to the {B}, is the {A} larger or smaller?",
    ],
}


# --------------------------------------------------------------------------------------------------------------
# Quantitative and direction types: written out
# --------------------------------------------------------------------------------------------------------------
def _mirror(templates: list[str], pairs: list[tuple[str, str]]) -> list[str]:
    """Swap words (e.g. left -> right) in every template, keeping the rest of the sentence."""
    out = []
    for t in templates:
        for a, b in pairs:
            t = t.replace(a, "\0").replace(b, a).replace("\0", b)
        out.append(t)
    return out


_LEFT_DIFF_Q = [
    "How much further to the left is the {A} than the {B}?",
    "By how much is the {A} to the left of the {B}?",
    "How far to the left of the {B} is the {A}?",
    "How much farther left does the {A} sit compared with the {B}?",
    "From the viewer's perspective, how much further left is the {A} than the {B}?",
    "Across the image, how far left of the {B} is the {A}?",
    "How far is the {A} offset to the left of the {B}?",
    "By what distance does the {A} lie to the left of the {B}?",
    "Compared with the {B}, how much more to the left is the {A}?",
    "How much further left than the {B} is the {A}?",
]
_LEFT_DIFF_A = [
    "The {A} is {V} further to the left than the {B}.",
    "It is {V} more to the left.",
    "{V}.",
    "The {A} sits {V} to the left of the {B}.",
    "The {A} is further left by {V}.",
    "Seen from the camera, the {A} is {V} left of the {B}.",
]

_ABOVE_DIFF_Q = [
    "How much higher is the {A} than the {B}?",
    "By how much is the {A} higher than the {B}?",
    "How far above the {B} is the {A}?",
    "How much higher up does the {A} sit compared with the {B}?",
    "What is the height difference by which the {A} is above the {B}?",
    "How much more elevated is the {A} than the {B}?",
    "How far up from the {B} is the {A}?",
    "By what distance does the {A} sit above the {B}?",
    "How much higher is the bottom of the {A} than the bottom of the {B}?",
    "Compared with the {B}, how much higher is the {A}?",
]
_ABOVE_DIFF_A = [
    "The {A} is {V} higher than the {B}.",
    "It is {V} higher.",
    "{V}.",
    "The {A} sits {V} above the {B}.",
    "The {A} is higher by {V}.",
    "The bottom of the {A} is {V} above the bottom of the {B}.",
]

_BELOW_DIFF_Q = [
    "How much lower is the {A} than the {B}?",
    "By how much is the {A} lower than the {B}?",
    "How far below the {B} is the {A}?",
    "How much lower down does the {A} sit compared with the {B}?",
    "What is the height difference by which the {A} is below the {B}?",
    "How much less elevated is the {A} than the {B}?",
    "How far down from the {B} is the {A}?",
    "By what distance does the {A} sit below the {B}?",
    "How much lower is the bottom of the {A} than the bottom of the {B}?",
    "Compared with the {B}, how much lower is the {A}?",
]
_BELOW_DIFF_A = [
    "The {A} is {V} lower than the {B}.",
    "It is {V} lower.",
    "{V}.",
    "The {A} sits {V} below the {B}.",
    "The {A} is lower by {V}.",
    "The bottom of the {A} is {V} below the bottom of the {B}.",
]

_BEHIND_DIFF_Q = [
    "How much farther from the camera is the {A} than the {B}?",
    "How much further back is the {A} than the {B}?",
    "By how much is the {A} behind the {B}?",
    "How far behind the {B} is the {A}?",
    "How much deeper into the scene is the {A} than the {B}?",
    "Compared with the {B}, how much farther away is the {A}?",
    "How much more distant from the viewer is the {A} than the {B}?",
    "Along the viewing direction, how much farther is the {A} than the {B}?",
    "By what distance is the {A} further back than the {B}?",
    "Seen from the camera, how far past the {B} is the {A}?",
]
_BEHIND_DIFF_A = [
    "The {A} is {V} farther back than the {B}.",
    "It is {V} further from the camera.",
    "{V}.",
    "The {A} is {V} behind the {B}.",
    "The {A} is farther away by {V}.",
    "Along the viewing direction, the {A} is {V} beyond the {B}.",
]

_FRONT_DIFF_Q = [
    "How much closer to the camera is the {A} than the {B}?",
    "How much further forward is the {A} than the {B}?",
    "By how much is the {A} in front of the {B}?",
    "How far in front of the {B} is the {A}?",
    "How much nearer to the viewer is the {A} than the {B}?",
    "Compared with the {B}, how much closer is the {A}?",
    "How much less distant from the camera is the {A} than the {B}?",
    "Along the viewing direction, how much nearer is the {A} than the {B}?",
    "By what distance is the {A} further forward than the {B}?",
    "Seen from the camera, how far ahead of the {B} is the {A}?",
]
_FRONT_DIFF_A = [
    "The {A} is {V} closer to the camera than the {B}.",
    "It is {V} nearer to the camera.",
    "{V}.",
    "The {A} is {V} in front of the {B}.",
    "The {A} is closer by {V}.",
    "Along the viewing direction, the {A} is {V} ahead of the {B}.",
]

_QUANT_Q: dict[str, list[str]] = {
    "distance": [
        "How far is the {A} from the {B}?",
        "What is the distance between the {A} and the {B}?",
        "How far apart are the {A} and the {B}?",
        "How much distance is there between the {A} and the {B}?",
        "Can you estimate the distance from the {A} to the {B}?",
        "Measured center to center, how far is the {A} from the {B}?",
        "What is the distance from the center of the {A} to the center of the {B}?",
        "How far away is the {A} from the {B}?",
        "Roughly how far is the {A} from the {B}?",
        "How long is a straight line from the {A} to the {B}?",
        "What distance separates the {A} and the {B}?",
    ],
    "gap": [
        "How much space is there between the {A} and the {B}?",
        "What is the gap between the {A} and the {B}?",
        "How big is the gap between the {A} and the {B}?",
        "How much room is there between the {A} and the {B}?",
        "What is the clearance between the {A} and the {B}?",
        "How close do the {A} and the {B} come to each other?",
        "What is the shortest distance between the surfaces of the {A} and the {B}?",
        "How wide is the space separating the {A} from the {B}?",
        "How far apart are the nearest edges of the {A} and the {B}?",
        "Measured between their closest points, how far apart are the {A} and the {B}?",
        "How much empty space lies between the {A} and the {B}?",
    ],
    "height": [
        "How tall is the {A}?",
        "What is the height of the {A}?",
        "How tall does the {A} stand?",
        "Can you estimate the height of the {A}?",
        "What is the vertical size of the {A}?",
        "How tall would you say the {A} is?",
        "Measured from bottom to top, how tall is the {A}?",
        "What height is the {A}?",
        "From its base to its top, how tall is the {A}?",
        "How much does the {A} measure from top to bottom?",
        "Roughly how tall is the {A}?",
    ],
    "width": [
        "How wide is the {A}?",
        "What is the width of the {A}?",
        "How wide does the {A} look from side to side?",
        "Can you estimate the width of the {A}?",
        "From left to right, how wide is the {A}?",
        "How much does the {A} measure from side to side?",
        "What is the side-to-side size of the {A} as seen in the image?",
        "How broad is the {A}?",
        "How wide would you say the {A} is?",
        "Roughly how wide is the {A}?",
        "Seen from the camera, how wide is the {A}?",
    ],
    "elevation": [
        "How high above the floor is the {A}?",
        "How far off the floor is the bottom of the {A}?",
        "At what height above the floor does the {A} sit?",
        "What is the elevation of the {A} above the floor?",
        "How high up is the {A}, measured from the floor to its bottom?",
        "How far above the ground is the base of the {A}?",
        "How high off the ground is the {A}?",
        "What is the distance from the floor up to the bottom of the {A}?",
        "How much higher than the floor is the lowest point of the {A}?",
        "Roughly how high above the floor is the {A} placed?",
    ],
    "vertical_distance": [
        "What is the vertical distance between the {A} and the {B}?",
        "How far apart are the {A} and the {B} vertically?",
        "How much height difference is there between the {A} and the {B}?",
        "Measured straight up and down, how far is the {A} from the {B}?",
        "What is the difference in height between the centers of the {A} and the {B}?",
        "Vertically, how far is the {A} from the {B}?",
        "How far is the {A} from the {B} along the vertical?",
        "Ignoring any sideways offset, how far apart are the {A} and the {B}?",
        "What vertical gap separates the centers of the {A} and the {B}?",
        "How large is the vertical offset between the {A} and the {B}?",
    ],
    "horizontal_distance": [
        "What is the horizontal distance between the {A} and the {B}?",
        "How far apart are the {A} and the {B} horizontally?",
        "Measured along the floor, how far is the {A} from the {B}?",
        "Ignoring height, how far is the {A} from the {B}?",
        "Horizontally, how far is the {A} from the {B}?",
        "How far is the {A} from the {B} when viewed from above?",
        "What is the distance between the {A} and the {B} projected onto the floor?",
        "How much horizontal distance separates the {A} and the {B}?",
        "On the floor plane, how far apart are the {A} and the {B}?",
        "Leaving out the difference in height, what is the distance between the {A} and the {B}?",
    ],
    "above_difference": _ABOVE_DIFF_Q,
    "below_difference": _BELOW_DIFF_Q,
    "behind_difference": _BEHIND_DIFF_Q,
    "front_difference": _FRONT_DIFF_Q,
    "left_difference": _LEFT_DIFF_Q,
    "right_difference": _mirror(_LEFT_DIFF_Q, [("left", "right")]),
}

_QUANT_A: dict[str, list[str]] = {
    "distance": [
        "The {A} is {V} from the {B}.",
        "They are {V} apart.",
        "The distance between the {A} and the {B} is {V}.",
        "{V}.",
        "The {A} and the {B} are {V} apart.",
        "It is {V} from the {A} to the {B}.",
    ],
    "gap": [
        "There is {V} of space between the {A} and the {B}.",
        "The gap between the {A} and the {B} is {V}.",
        "{V}.",
        "Their closest surfaces are {V} apart.",
        "The {A} and the {B} are separated by {V}.",
        "The space between them is {V}.",
    ],
    "height": [
        "The {A} is {V} tall.",
        "It is {V} tall.",
        "{V}.",
        "The height of the {A} is {V}.",
        "The {A} stands {V} tall.",
        "It measures {V} from bottom to top.",
    ],
    "width": [
        "The {A} is {V} wide.",
        "It is {V} wide.",
        "{V}.",
        "The width of the {A} is {V}.",
        "It measures {V} from side to side.",
        "The {A} spans {V} from left to right.",
    ],
    "elevation": [
        "The bottom of the {A} is {V} above the floor.",
        "It sits {V} off the floor.",
        "{V}.",
        "The {A} is {V} above the floor.",
        "Its base is {V} above the ground.",
        "The {A} rests {V} above the floor.",
    ],
    "vertical_distance": [
        "The vertical distance between the {A} and the {B} is {V}.",
        "They are {V} apart vertically.",
        "{V}.",
        "Vertically, the {A} and the {B} are {V} apart.",
        "Their centers differ by {V} in height.",
    ],
    "horizontal_distance": [
        "The horizontal distance between the {A} and the {B} is {V}.",
        "They are {V} apart horizontally.",
        "{V}.",
        "Horizontally, the {A} is {V} from the {B}.",
        "Measured along the floor, they are {V} apart.",
    ],
    "above_difference": _ABOVE_DIFF_A,
    "below_difference": _BELOW_DIFF_A,
    "behind_difference": _BEHIND_DIFF_A,
    "front_difference": _FRONT_DIFF_A,
    "left_difference": _LEFT_DIFF_A,
    "right_difference": _mirror(_LEFT_DIFF_A, [("left", "right")]),
}

_CLOCK_Q = [
    "If you stand at the {A} facing the same way as the camera, at what o'clock is the {B}?",
    "Standing at the {A} and looking in the camera's direction, where is the {B} on a clock face?",
    "Imagine you are at the {A}, facing where the camera faces. At what o'clock is the {B}?",
    "From the {A}, facing the same direction as the camera, which clock direction points to the {B}?",
    "Picture yourself at the {A}, looking the way the camera looks. In which o'clock direction is the {B}?",
    "If 12 o'clock is the camera's forward direction, at what o'clock is the {B} from the {A}?",
    "Using clock directions from the {A}, with 12 o'clock pointing the way the camera faces, where is the {B}?",
    "Facing the camera's forward direction from the {A}, at what o'clock do you see the {B}?",
    "At what o'clock is the {B} when seen from the {A}, with the camera's view as 12 o'clock?",
    "Suppose you stand at the {A}, facing the same way as the camera. Which hour on a clock points to the {B}?",
]
_CLOCK_A = [
    "The {B} is at {V}.",
    "It is at {V}.",
    "{V}.",
    "From the {A}, the {B} is at {V}.",
    "You would find the {B} at {V}.",
    "Facing the camera's way from the {A}, the {B} is at {V}.",
]


# --------------------------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------------------------
def _fill_relation(frame: str, rel: str, p: str | None = None, c: str | None = None) -> str:
    r, o = _REL[rel], _REL[RELATIONS[rel][0]]
    subs = {
        "{P}": p if p is not None else r["P"][0],
        "{C}": c if c is not None else r["C"][0],
        "{S}": r["S"],
        "{OP}": o["P"][0],
        "{OC}": o["C"][0],
        "{OS}": o["S"],
    }
    for k, v in subs.items():
        frame = frame.replace(k, str(v))
    return _capitalise(frame)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _info(qa_type: str):
    try:
        return TYPES[qa_type]
    except KeyError:
        raise ValueError(f"unknown question type {qa_type!r}; known types: {', '.join(TYPES)}") from None


@cache
def _questions(qa_type: str) -> tuple[str, ...]:
    info = _info(qa_type)
    if info.family == "predicate":
        rel = info.relation
        out = [_fill_relation(f, rel, p=p) for p in _REL[rel]["P"] for f in _PREDICATE_Q_FRAMES]
        out += _EXTRA_PREDICATE_Q[rel]
    elif info.family == "choice":
        rel = info.relation
        out = [_fill_relation(f, rel, c=c) for c in _REL[rel]["C"] for f in _CHOICE_Q_FRAMES]
        out += _EXTRA_CHOICE_Q[rel]
    elif info.family == "classify":
        out = list(_CLASSIFY_Q[qa_type])
    elif info.family == "quantitative":
        out = list(_QUANT_Q[qa_type])
    else:
        out = list(_CLOCK_Q)
    return tuple(_unique(out))


@cache
def _answers(qa_type: str, key: str | None) -> tuple[str, ...]:
    info = _info(qa_type)
    if info.family == "predicate":
        yes = [_fill_relation(f, info.relation) for f in _PREDICATE_YES]
        no = [_fill_relation(f, info.relation) for f in _PREDICATE_NO]
        out = yes if key == "yes" else no if key == "no" else yes + no
    elif info.family == "choice":
        out = [_fill_relation(f, info.relation) for f in _CHOICE_ANSWERS]
    elif info.family == "classify":
        first, second = qa_type.split("_")[:2]
        per = {w: [_fill_relation(f, w) for f in _CLASSIFY_ANSWERS] for w in (first, second)}
        out = per[key] if key is not None else per[first] + per[second]
    elif info.family == "quantitative":
        out = list(_QUANT_A[qa_type])
    else:
        out = list(_CLOCK_A)
    return tuple(_unique(out))


def _answer_key(qa_type: str, truth) -> str | None:
    """Which answer list ``truth`` selects (predicates: yes/no; classify: the relation word), validated."""
    info = _info(qa_type)
    if truth is None:
        return None
    if info.family == "predicate":
        if not isinstance(truth, (bool, np.bool_)):
            raise TypeError(f"{qa_type}: truth must be a bool, got {truth!r}")
        return "yes" if bool(truth) else "no"
    if info.family == "classify":
        words = tuple(qa_type.split("_")[:2])
        if truth not in words:
            raise ValueError(f"{qa_type}: truth must be one of {words}, got {truth!r}")
        return str(truth)
    return None


def question_templates(qa_type: str) -> list[str]:
    """All question phrasings of ``qa_type`` (placeholders ``{A}``, ``{B}``)."""
    return list(_questions(qa_type))


def answer_templates(qa_type: str, truth=None) -> list[str]:
    """The answer phrasings of ``qa_type``. For predicates ``truth`` (bool) selects the yes or no answers and for
    classify types the relation word selects its answers; with ``truth=None`` all of them are returned. Other
    families ignore ``truth``. Placeholders: ``{A}``, ``{B}``, ``{X}`` (chosen object), ``{V}`` (spoken value)."""
    return list(_answers(qa_type, _answer_key(qa_type, truth)))


def _check_names(qa_type: str, names: list[str], n: int) -> list[str]:
    if isinstance(names, str) or len(names) != n:
        raise ValueError(f"{qa_type} is about {n} object(s); got names {names!r}")
    out = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{qa_type}: object names must be non-empty strings, got {name!r}")
        if name != name.strip() or "  " in name:
            raise ValueError(f"{qa_type}: object name {name!r} has stray spaces")
        first = name.split()[0].lower()
        if first in ("the", "a", "an"):
            raise ValueError(f"{qa_type}: object name {name!r} must not start with an article; "
                             "templates add 'the' themselves")
        if any(ph in name for ph in ("{A}", "{B}", "{X}", "{V}")):
            raise ValueError(f"{qa_type}: object name {name!r} contains a template placeholder")
        out.append(name)
    if n == 2 and out[0] == out[1]:
        raise ValueError(f"{qa_type}: the two objects must have different names, both are {out[0]!r}")
    return out


def _fill(template: str, subs: dict[str, str]) -> str:
    for k, v in subs.items():
        template = template.replace(k, v)
    return _capitalise(template)


def render_qa(qa_type: str, truth, names: list[str], rng: np.random.Generator,
              spoken: str | None = None) -> tuple[str, str, int, int]:
    """Say one question of ``qa_type`` about ``names`` and its answer ``truth``.

    ``names`` holds ``[A]`` for one-object types and ``[A, B]`` for two-object types, as noun phrases without an
    article ("chair", "red mug", "chair on the left"). ``truth`` is a bool (predicate), the chosen name (choice),
    the relation word (classify), metres (quantitative) or an hour 1..12 (clock direction). ``spoken`` is the value
    as it should be said in the answer ("about 1.5 meters", "3 o'clock"); when left out for a quantitative or
    direction type it is phrased here with :func:`~spatialvlm.qa.phrasing.speak_distance` /
    :func:`~spatialvlm.qa.phrasing.speak_clock` from the same ``rng``.

    Returns ``(question, answer, question_template_index, answer_template_index)``; the indices point into
    :func:`question_templates` and ``answer_templates(qa_type, truth)``."""
    info = _info(qa_type)
    names = _check_names(qa_type, list(names) if not isinstance(names, str) else names, info.n_objects)
    subs = {"{A}": names[0]}
    if info.n_objects == 2:
        subs["{B}"] = names[1]

    if info.family == "choice":
        if truth not in names:
            raise ValueError(f"{qa_type}: truth must be one of the names {names!r}, got {truth!r}")
        subs["{X}"] = str(truth)
    elif info.family == "quantitative":
        if isinstance(truth, bool) or not isinstance(truth, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(truth)):
            raise ValueError(f"{qa_type}: truth must be a finite number of metres, got {truth!r}")
        if spoken is None:
            spoken = speak_distance(float(truth), rng).text
        subs["{V}"] = spoken
    elif info.family == "direction":
        if isinstance(truth, bool) or not isinstance(truth, (int, np.integer)) or not 1 <= int(truth) <= 12:
            raise ValueError(f"{qa_type}: truth must be an hour 1..12, got {truth!r}")
        if spoken is None:
            spoken = speak_clock(int(truth), rng)
        subs["{V}"] = spoken
    if "{V}" in subs and (not subs["{V}"].strip() or subs["{V}"] != subs["{V}"].strip()):
        raise ValueError(f"{qa_type}: spoken value {spoken!r} is empty or has stray spaces")

    questions = _questions(qa_type)
    answers = _answers(qa_type, _answer_key(qa_type, truth))
    qi = int(rng.integers(len(questions)))
    ai = int(rng.integers(len(answers)))
    return _fill(questions[qi], subs), _fill(answers[ai], subs), qi, ai

