"""Robot-side tokenizer: the same encodings as `moe_vla_ros.model.tokenizer.InstructionTokenizer`
with the `tokenizers` library alone (no transformers, no torch).

Reads the files `InstructionTokenizer.save` writes (tokenizer.json + tokenizer_config.json,
whose `model_max_length` is L and `max_reasoning_tokens` is R):

    encode(instruction) -> ids [L] int64, mask [L] int64   (truncated, right-padded with PAD)
    decode(ids)         -> text (stops at EOS, drops PAD/BOS, transformers' space clean-up)

Encoded instructions are cached (instructions change rarely; inference runs at control rate).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from moe_vla_ros.model.tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class TokenizerLoadError(ValueError):
    """The tokenizer files are missing or do not describe a tokenizer this model can use."""


def clean_up_tokenization(text: str) -> str:
    """transformers' `clean_up_tokenization` (decode with clean_up_tokenization_spaces=True)."""
    return (
        text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
        .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
        .replace(" 've", "'ve").replace(" 're", "'re")
    )  # fmt: skip


class RuntimeTokenizer:
    """Fixed-length instruction encoding and reasoning decoding (see the module docstring).

    Args:
        tokenizer: a `tokenizers.Tokenizer` whose special tokens have the model's fixed ids.
        max_instruction_tokens: L.
        max_reasoning_tokens: R.
        cache_size: encoded instructions kept (least recently used dropped first).
    """

    def __init__(self, tokenizer: Tokenizer, max_instruction_tokens: int, max_reasoning_tokens: int,
                 cache_size: int = 64) -> None:  # fmt: skip
        for token, want in zip(SPECIAL_TOKENS, (PAD_ID, BOS_ID, EOS_ID, UNK_ID)):
            got = tokenizer.token_to_id(token)
            if got != want:
                raise TokenizerLoadError(f"special token {token} has id {got!r}, this model requires {want}")
        if max_instruction_tokens < 1 or max_reasoning_tokens < 2:
            raise TokenizerLoadError(
                f"need max_instruction_tokens >= 1 and max_reasoning_tokens >= 2, "
                f"got {max_instruction_tokens!r}, {max_reasoning_tokens!r}"
            )
        self.tokenizer = tokenizer
        self.max_instruction_tokens = int(max_instruction_tokens)
        self.max_reasoning_tokens = int(max_reasoning_tokens)
        self._clean_up = type(tokenizer.model).__name__ != "BPE"  # as transformers does
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "RuntimeTokenizer":
        directory = Path(directory)
        missing = [f for f in TOKENIZER_FILES if not (directory / f).is_file()]
        if missing:
            raise TokenizerLoadError(f"{directory} lacks tokenizer files {missing}")
        try:
            config = json.loads((directory / "tokenizer_config.json").read_text())
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as e:  # JSON or tokenizers parse errors
            raise TokenizerLoadError(f"{directory}: cannot read the tokenizer: {e}") from None
        try:
            lengths = int(config["model_max_length"]), int(config["max_reasoning_tokens"])
        except (KeyError, TypeError, ValueError):
            raise TokenizerLoadError(
                f"{directory}/tokenizer_config.json needs integer model_max_length and max_reasoning_tokens"
            ) from None
        return cls(tokenizer, *lengths)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, instruction: str) -> tuple[np.ndarray, np.ndarray]:
        """Instruction -> (ids [L] int64, mask [L] int64); cached, returned arrays are read-only."""
        hit = self._cache.get(instruction)
        if hit is not None:
            self._cache.move_to_end(instruction)
            return hit
        words = self.tokenizer.encode(instruction, add_special_tokens=False).ids[: self.max_instruction_tokens]
        ids = np.full(self.max_instruction_tokens, PAD_ID, dtype=np.int64)  # [L]
        mask = np.zeros(self.max_instruction_tokens, dtype=np.int64)  # [L]
        ids[: len(words)] = words
        mask[: len(words)] = 1
        ids.flags.writeable = False
        mask.flags.writeable = False
        self._cache[instruction] = (ids, mask)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ids, mask

    def decode(self, ids: np.ndarray) -> str:
        """Ids -> text: stops at the first EOS, drops PAD/BOS."""
        words: list[int] = []
        for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                words.append(i)
        text = self.tokenizer.decode(words, skip_special_tokens=False)
        return clean_up_tokenization(text) if self._clean_up else text
