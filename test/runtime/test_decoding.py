"""Tests of moe_vla_ros/runtime/decoding.py: the backend-independent greedy loop."""

import numpy as np
import pytest

from moe_vla_ros.runtime.decoding import greedy_decode
from moe_vla_ros.runtime.tokenization import BOS_ID, EOS_ID, PAD_ID

VOCAB = 12


def scripted_step(scripts, seen):
    """Step function whose prediction at position i is scripts[row][i]; records the buffers it saw."""

    def step(tokens):
        seen.append(tokens.copy())
        logits = np.zeros((tokens.shape[0], tokens.shape[1], VOCAB), dtype=np.float32)
        for row, script in enumerate(scripts):
            for i, token in enumerate(script[: tokens.shape[1]]):
                logits[row, i, token] = 1.0
        return logits

    return step


def test_stops_when_every_row_emitted_eos():
    seen = []
    step = scripted_step([[5, 6, EOS_ID, 9, 9, 9], [7, EOS_ID, 9, 9, 9, 9]], seen)
    result = greedy_decode(step, batch_size=2, max_tokens=6)
    assert result.steps == 3  # row 0 ends at the third step
    assert result.ids.tolist() == [[5, 6, PAD_ID, PAD_ID, PAD_ID, PAD_ID], [7, PAD_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]]
    assert result.mask.tolist() == [[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
    assert seen[0][:, 0].tolist() == [BOS_ID, BOS_ID] and (seen[0][:, 1:] == PAD_ID).all()
    assert seen[-1][1, 2] == PAD_ID  # a finished row gets no more tokens


def test_respects_the_buffer_length_without_eos():
    result = greedy_decode(scripted_step([[4] * 8], []), batch_size=1, max_tokens=5)
    assert result.steps == 4 and result.mask.sum() == 4  # R - 1 tokens, one slot for BOS
    assert result.ids.tolist() == [[4, 4, 4, 4, PAD_ID]]


def test_max_new_tokens_and_immediate_eos():
    assert greedy_decode(scripted_step([[4] * 8], []), 1, 8, max_new_tokens=2).mask.sum() == 2
    empty = greedy_decode(scripted_step([[EOS_ID] * 8], []), 1, 8)
    assert empty.steps == 1 and empty.mask.sum() == 0
    assert greedy_decode(scripted_step([[4] * 8], []), 1, 8, max_new_tokens=0).steps == 0
    with pytest.raises(ValueError, match="max_tokens"):
        greedy_decode(scripted_step([[4]], []), 1, 1)
