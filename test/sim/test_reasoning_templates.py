"""Reasoning templates: small closed vocabulary, bounded length, sensible relations."""

from __future__ import annotations

import pytest

from moe_vla_ros.sim.reasoning_templates import (
    MAX_TRACE_WORDS,
    TEMPLATES,
    centimetres,
    phase_of_trace,
    reasoning_vocabulary,
    relation,
    render_trace,
    trace_words,
)

FIELDS = {"relation": "behind", "cm": 0.987, "direction": "right", "togo": 0.123}


def test_every_trace_uses_the_vocabulary_and_fits_the_token_budget():
    vocab = set(reasoning_vocabulary())
    for phase in TEMPLATES:
        for color in ("red", "green", "blue"):
            words = trace_words(render_trace(phase, color, **FIELDS))
            assert set(words) <= vocab, (phase, set(words) - vocab)
            assert len(words) <= MAX_TRACE_WORDS, phase


def test_every_trace_reads_back_as_its_phase():
    for phase in TEMPLATES:
        for color in ("red", "green", "blue"):
            for fields in (FIELDS, {"relation": "left of", "cm": 0.0, "direction": "left", "togo": 0.31}):
                assert phase_of_trace(render_trace(phase, color, **fields)) == phase
    assert phase_of_trace(" red cube moved 12 cm left. task done.\n") == "pushed"


@pytest.mark.parametrize("text", ["", "red cube moved cm left. task done.", "crimson cube is lifted. task done.",
                                  "at the red cube. task done. task done.", "the red cube is ahead"])
def test_a_trace_no_template_writes_has_no_phase(text):
    assert phase_of_trace(text) is None


def test_vocabulary_is_small():
    vocab = reasoning_vocabulary()
    assert 50 < len(vocab) < 200 and len(vocab) == len(set(vocab))


def test_render_fills_distances_in_whole_centimetres():
    assert render_trace("approach", "red", relation="left of", cm=0.1204) == (
        "red cube is left of the gripper, 12 cm away. moving above it."
    )
    assert render_trace("push", "blue", direction="left", togo=0.05) == "at the blue cube. pushing it left, 5 cm to go."
    assert centimetres(-0.034) == 3 and centimetres(5.0) == 99
    with pytest.raises(KeyError, match="'fly'"):
        render_trace("fly", "red")


@pytest.mark.parametrize(
    "cube, expected",
    [
        ((0.0, 0.1), "left of"),
        ((0.0, -0.1), "right of"),
        ((0.1, 0.05), "ahead of"),
        ((-0.1, 0.0), "behind"),
        ((0.01, 0.0), "below"),
    ],
)
def test_relation_uses_the_dominant_horizontal_direction(cube, expected):
    assert relation((0.0, 0.0, 0.2), (*cube, 0.02)) == expected
