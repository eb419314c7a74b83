"""Greedy decoding loop over a fixed-length reasoning step function (numpy only, no torch).

The reasoning decoder is exported as a pure step function with a static token buffer:

    step(tokens [B, R] int64) -> logits [B, R, V]      (trunk tokens bound by the caller)

`tokens[:, 0]` is BOS; logits at position i predict the token at position i + 1 (causal
decoder, so positions after i do not affect them). The same loop drives the torch module and
an ONNX Runtime session, so both backends generate identical texts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from moe_vla_ros.runtime.tokenization import BOS_ID, EOS_ID, PAD_ID


class GreedyResult(NamedTuple):
    """Generated reasoning, in the layout the action head takes.

    ids:    [B, R] int64 generated text tokens (no BOS, no EOS), right-padded with PAD.
    mask:   [B, R] int64 1 where ids holds a generated token.
    steps:  number of step() calls made.
    """

    ids: np.ndarray
    mask: np.ndarray
    steps: int


def greedy_decode(
    step: Callable[[np.ndarray], np.ndarray],
    batch_size: int,
    max_tokens: int,
    max_new_tokens: int | None = None,
) -> GreedyResult:
    """Run greedy decoding until every row produced EOS or the buffer is full.

    Args:
        step: tokens [B, R] int64 -> logits [B, R, V] (numpy in, numpy-convertible out).
        batch_size: B.
        max_tokens: R, the static buffer length (contract.max_reasoning_tokens); at most R - 1
            tokens are generated.
        max_new_tokens: optional lower bound on the number of generated tokens (<= R - 1).
    """
    if batch_size < 1 or max_tokens < 2:
        raise ValueError(f"need batch_size >= 1 and max_tokens >= 2, got {batch_size!r}, {max_tokens!r}")
    limit = max_tokens - 1 if max_new_tokens is None else min(int(max_new_tokens), max_tokens - 1)
    if limit < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens!r}")
    tokens = np.full((batch_size, max_tokens), PAD_ID, dtype=np.int64)  # [B, R]
    tokens[:, 0] = BOS_ID
    finished = np.zeros(batch_size, dtype=bool)  # [B]
    lengths = np.zeros(batch_size, dtype=np.int64)  # [B] generated tokens per row
    steps = 0
    for i in range(limit):
        logits = np.asarray(step(tokens))  # [B, R, V]
        steps += 1
        next_ids = logits[:, i, :].argmax(-1).astype(np.int64)  # [B]
        finished |= next_ids == EOS_ID
        if finished.all():
            break
        write = ~finished
        tokens[write, i + 1] = next_ids[write]
        lengths[write] += 1
    ids = np.full((batch_size, max_tokens), PAD_ID, dtype=np.int64)  # [B, R]
    ids[:, :-1] = tokens[:, 1:]  # drop BOS
    mask = (np.arange(max_tokens)[None, :] < lengths[:, None]).astype(np.int64)  # [B, R]
    ids[mask == 0] = PAD_ID
    return GreedyResult(ids, mask, steps)
