"""Word-level tokenizer for instructions and reasoning texts, trained offline.

The vocabulary is learned with `tokenizers` (WordLevel, lower-cased, split on whitespace and
punctuation) from the instructions and reasoning texts of a dataset, and stored with
transformers' `PreTrainedTokenizerFast.save_pretrained` so `from_pretrained` reloads it from a
local folder with HF_HUB_OFFLINE=1.

Special tokens have fixed ids, the same for every vocabulary:

    [PAD]=0  [BOS]=1  [EOS]=2  [UNK]=3

Encodings are fixed-length numpy arrays (the exported graphs have static shapes):

    encode(instruction)      -> ids [L] int64, mask [L] int64   L = max_instruction_tokens
    encode_reasoning(text)   -> ids [R] int64, mask [R] int64   R = max_reasoning_tokens
                                (at most R - 1 text tokens: the decoder needs one slot for BOS)

No torch import here: the robot-side runtime tokenises with numpy + tokenizers only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


def train_word_level(texts: Iterable[str], min_frequency: int = 1, max_vocab_size: int = 4096):
    """Train a `tokenizers.Tokenizer` (WordLevel) on `texts`; special tokens get ids 0..3."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency!r}")
    if max_vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"max_vocab_size must exceed {len(SPECIAL_TOKENS)}, got {max_vocab_size!r}")
    tok = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(
        vocab_size=max_vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS)
    )
    tok.train_from_iterator((t for t in texts if t and t.strip()), trainer)
    for token, want in zip(SPECIAL_TOKENS, (PAD_ID, BOS_ID, EOS_ID, UNK_ID)):
        if tok.token_to_id(token) != want:  # guaranteed by the trainer; checked because ids are baked in graphs
            raise RuntimeError(f"special token {token} got id {tok.token_to_id(token)}, expected {want}")
    return tok


class InstructionTokenizer:
    """Fixed-length encoding of instructions and reasoning texts (numpy in, numpy out).

    Args:
        hf_tokenizer: a `PreTrainedTokenizerFast` whose special tokens have the ids above.
        max_instruction_tokens: L, the padded instruction length (contract.max_instruction_tokens).
        max_reasoning_tokens: R, the padded reasoning length (contract.max_reasoning_tokens).
    """

    def __init__(self, hf_tokenizer, max_instruction_tokens: int, max_reasoning_tokens: int) -> None:
        if max_instruction_tokens < 1:
            raise ValueError(f"max_instruction_tokens must be >= 1, got {max_instruction_tokens!r}")
        if max_reasoning_tokens < 2:
            raise ValueError(f"max_reasoning_tokens must be >= 2 (BOS + one token), got {max_reasoning_tokens!r}")
        for name, want in (("pad", PAD_ID), ("bos", BOS_ID), ("eos", EOS_ID), ("unk", UNK_ID)):
            got = getattr(hf_tokenizer, f"{name}_token_id")
            if got != want:
                raise ValueError(f"tokenizer {name} id is {got!r}, this model requires {want}")
        self.hf = hf_tokenizer
        self.max_instruction_tokens = int(max_instruction_tokens)
        self.max_reasoning_tokens = int(max_reasoning_tokens)

    # ----------------------------------------------------------------------------- building
    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        max_instruction_tokens: int = 16,
        max_reasoning_tokens: int = 24,
        min_frequency: int = 1,
    ) -> "InstructionTokenizer":
        """Learn a vocabulary from `texts` (instructions and reasoning)."""
        from transformers import PreTrainedTokenizerFast

        hf = PreTrainedTokenizerFast(
            tokenizer_object=train_word_level(texts, min_frequency=min_frequency),
            pad_token=PAD_TOKEN,
            bos_token=BOS_TOKEN,
            eos_token=EOS_TOKEN,
            unk_token=UNK_TOKEN,
            model_max_length=max_instruction_tokens,
            max_reasoning_tokens=max_reasoning_tokens,
        )
        return cls(hf, max_instruction_tokens, max_reasoning_tokens)

    @classmethod
    def from_dataset(
        cls, dataset, max_instruction_tokens: int = 16, max_reasoning_tokens: int = 24, min_frequency: int = 1
    ) -> "InstructionTokenizer":
        """Learn a vocabulary from every instruction and reasoning text of a `DemoDataset`."""
        texts: list[str] = []
        for episode in dataset:
            texts.append(episode.instruction)
            texts.extend(sorted(set(episode.reasoning)))
        return cls.train(texts, max_instruction_tokens, max_reasoning_tokens, min_frequency)

    def save(self, directory: str | os.PathLike) -> None:
        """Write tokenizer.json + tokenizer_config.json (lengths included) into `directory`."""
        self.hf.model_max_length = self.max_instruction_tokens
        self.hf.init_kwargs["max_reasoning_tokens"] = self.max_reasoning_tokens
        for loader_only in ("is_local", "local_files_only"):  # set by `load`, not part of the tokenizer
            self.hf.init_kwargs.pop(loader_only, None)
        self.hf.save_pretrained(str(directory))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "InstructionTokenizer":
        """Load a tokenizer saved with `save` from a local folder (never touches the network)."""
        from transformers import PreTrainedTokenizerFast

        directory = Path(directory)
        if not (directory / "tokenizer.json").is_file():
            raise FileNotFoundError(f"no tokenizer.json in {directory}")
        hf = PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
        reasoning = hf.init_kwargs.get("max_reasoning_tokens")
        if reasoning is None:
            raise ValueError(f"{directory}/tokenizer_config.json has no max_reasoning_tokens")
        return cls(hf, int(hf.model_max_length), int(reasoning))

    # ----------------------------------------------------------------------------- encoding
    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def tokenize_ids(self, text: str) -> list[int]:
        """Word ids of `text` without special tokens or padding (any length)."""
        return list(self.hf.backend_tokenizer.encode(text, add_special_tokens=False).ids)

    def encode(self, instruction: str) -> tuple[np.ndarray, np.ndarray]:
        """Instruction -> (ids [L] int64, mask [L] int64): truncated, then right-padded with PAD."""
        return self._pad(self.tokenize_ids(instruction), self.max_instruction_tokens)

    def encode_reasoning(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Reasoning text -> (ids [R] int64, mask [R] int64), at most R - 1 tokens ("" -> all PAD)."""
        return self._pad(self.tokenize_ids(text)[: self.max_reasoning_tokens - 1], self.max_reasoning_tokens)

    def encode_batch(self, instructions: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Several instructions -> (ids [B, L], mask [B, L])."""
        pairs = [self.encode(t) for t in instructions]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def decode(self, ids) -> str:
        """Ids -> text: stops at the first EOS, drops PAD/BOS."""
        words: list[int] = []
        for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                words.append(i)
        return self.hf.decode(words, skip_special_tokens=False, clean_up_tokenization_spaces=True)

    @staticmethod
    def _pad(ids: list[int], length: int) -> tuple[np.ndarray, np.ndarray]:
        ids = ids[:length]
        out = np.full(length, PAD_ID, dtype=np.int64)  # [length]
        mask = np.zeros(length, dtype=np.int64)  # [length]
        out[: len(ids)] = ids
        mask[: len(ids)] = 1
        return out, mask
