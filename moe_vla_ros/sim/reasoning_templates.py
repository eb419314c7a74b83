"""Short reasoning traces of the scripted expert, from a small fixed vocabulary.

A trace states what the robot sees and what it will do next, e.g.
"red cube is left of the gripper, 12 cm away. moving above it." Words are split like a
word-level tokenizer with whitespace + punctuation pre-tokenisation does (`trace_words`):
`reasoning_vocabulary()` lists every word a trace can contain, and no trace has more than
MAX_TRACE_WORDS words (the policy contract's default max_reasoning_tokens is 24, one of which
the decoder needs for its start token).
Traces change with the expert's sub-goal (phase) and with the measured distances.
"""

from __future__ import annotations

import re

import numpy as np

from moe_vla_ros.sim.config import CUBE_COLORS

MAX_TRACE_WORDS = 23
MAX_CENTIMETRES = 99  # distances are clipped to this many whole centimetres
RELATIONS = ("left of", "right of", "ahead of", "behind", "below")

# phase -> template; fields: color, relation, cm, direction, togo.
TEMPLATES: dict[str, str] = {
    "approach": "{color} cube is {relation} the gripper, {cm} cm away. moving above it.",
    "approach_side": "{color} cube is {relation} the gripper, {cm} cm away. moving beside it.",
    "descend": "above the {color} cube. moving down to it.",
    "descend_side": "beside the {color} cube. moving down.",
    "descend_around": "above the {color} cube. moving down around it.",
    "reached": "at the {color} cube. task done.",
    "push": "at the {color} cube. pushing it {direction}, {togo} cm to go.",
    "retreat": "{color} cube moved {cm} cm {direction}. moving up.",
    "pushed": "{color} cube moved {cm} cm {direction}. task done.",
    "grasp": "gripper around the {color} cube. closing the gripper.",
    "lift": "holding the {color} cube. lifting it, {togo} cm to go.",
    "lifted": "{color} cube is lifted. task done.",
}


def centimetres(metres: float) -> int:
    """Whole centimetres, clipped to [0, MAX_CENTIMETRES]."""
    return int(np.clip(round(abs(float(metres)) * 100.0), 0, MAX_CENTIMETRES))


def relation(gripper_position: np.ndarray, cube_position: np.ndarray, below_radius_m: float = 0.02) -> str:
    """Where the cube is seen from the gripper, in the robot frame: the dominant horizontal
    direction ("left of" = +y, "ahead of" = +x), or "below" when horizontally within
    `below_radius_m`. One of RELATIONS."""
    delta = np.asarray(cube_position, dtype=np.float64)[:2] - np.asarray(gripper_position, dtype=np.float64)[:2]
    if np.linalg.norm(delta) < below_radius_m:
        return "below"
    if abs(delta[1]) >= abs(delta[0]):
        return "left of" if delta[1] > 0 else "right of"
    return "ahead of" if delta[0] > 0 else "behind"


def render_trace(phase: str, color: str, **fields) -> str:
    """Fill the template of `phase`; numeric fields `cm`/`togo` are given in metres."""
    if phase not in TEMPLATES:
        raise KeyError(f"no reasoning template for phase {phase!r}; phases are {sorted(TEMPLATES)}")
    values = dict(fields, color=color)
    for key in ("cm", "togo"):
        if key in values:
            values[key] = centimetres(values[key])
    return TEMPLATES[phase].format(**values)


def _template_pattern(template: str) -> re.Pattern[str]:
    fields = {"color": "|".join(map(re.escape, CUBE_COLORS)), "relation": "|".join(map(re.escape, RELATIONS)),
              "cm": r"\d+", "togo": r"\d+", "direction": r"\w+"}
    parts = re.split(r"\{(\w+)\}", template)  # literal, field, literal, field, ...
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?:{fields[p]})" for i, p in enumerate(parts)))


_PATTERNS = {phase: _template_pattern(template) for phase, template in TEMPLATES.items()}


def phase_of_trace(text: str) -> str | None:
    """The phase whose template wrote `text` (e.g. "red cube moved 12 cm left. task done." ->
    "pushed"), None for a trace no template can write (a garbled decode, another model's words)."""
    text = text.strip()
    return next((phase for phase, pattern in _PATTERNS.items() if pattern.fullmatch(text)), None)


def trace_words(text: str) -> list[str]:
    """Split a trace into words and punctuation marks ("cube," -> "cube", ",")."""
    return re.findall(r"\w+|[^\w\s]+", text)


def reasoning_vocabulary() -> list[str]:
    """Every word a trace can contain (template words, colors, directions, 0..MAX_CENTIMETRES)."""
    push_directions = {"left", "right"}  # the {direction} field (tasks.PUSH_DIRECTIONS)
    words = set(CUBE_COLORS) | push_directions | {w for phrase in RELATIONS for w in phrase.split()}
    for template in TEMPLATES.values():
        words.update(w for w in trace_words(re.sub(r"\{\w+\}", " ", template)))
    words.update(str(n) for n in range(MAX_CENTIMETRES + 1))
    return sorted(words)
