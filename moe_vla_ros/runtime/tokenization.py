"""Tokenizers of instructions and reasoning texts (numpy + `tokenizers`; no torch).

Special tokens have fixed ids, the same for every vocabulary (baked into the exported graphs):

    [PAD]=0  [BOS]=1  [EOS]=2  [UNK]=3

Encodings are fixed-length numpy arrays (the exported graphs have static shapes):

    encode(instruction)      -> ids [L] int64, mask [L] int64   L = max_instruction_tokens
    encode_reasoning(text)   -> ids [R] int64, mask [R] int64   R = max_reasoning_tokens
                                (at most R - 1 text tokens: the decoder needs one slot for BOS)
    decode(ids)              -> text (stops at EOS, drops PAD/BOS, transformers' space clean-up)
    read(instruction)        -> InstructionReading: the words the model does not know or never
                                sees (cut off after L tokens); punctuation is not a word

- `InstructionTokenizer` (training side): a word-level vocabulary learned with `tokenizers`
  (WordLevel, lower-cased, split on whitespace and punctuation) from the instructions and
  reasoning texts of a dataset, stored with transformers' `PreTrainedTokenizerFast.save_pretrained`
  so `from_pretrained` reloads it from a local folder with HF_HUB_OFFLINE=1 (transformers is
  imported only by its train/load methods).
- `RuntimeTokenizer` (robot side): the same encodings with the `tokenizers` library alone (no
  transformers), from the files `InstructionTokenizer.save` writes (tokenizer.json +
  tokenizer_config.json, whose `model_max_length` is L and `max_reasoning_tokens` is R).
  Encoded instructions are cached (instructions change rarely; inference runs at control rate).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from moe_vla_ros.errors import BadInputError

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


def pad_ids(ids: list[int], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Word ids -> (ids [length] int64, mask [length] int64): truncated, then right-padded with PAD."""
    ids = ids[:length]
    out = np.full(length, PAD_ID, dtype=np.int64)  # [length]
    mask = np.zeros(length, dtype=np.int64)  # [length]
    out[: len(ids)] = ids
    mask[: len(ids)] = 1
    return out, mask


def text_ids(ids) -> list[int]:
    """The word ids of a token buffer: up to the first EOS, without PAD and BOS."""
    words: list[int] = []
    for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            words.append(i)
    return words


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


def dataset_texts(dataset, expand_instructions: Callable[[list[str]], Iterable[str]] | None = None) -> list[str]:
    """Every text whose words a model of `dataset` must know: the words its writer declared
    (`dataset.vocabulary`), each episode's instruction and reasoning texts, and the texts
    `expand_instructions(instructions)` gives (e.g. training-time instruction variants)."""
    texts: list[str] = list(dataset.vocabulary)
    instructions: list[str] = []
    for episode in dataset:
        instructions.append(episode.instruction)
        texts.append(episode.instruction)
        texts.extend(sorted(set(episode.reasoning)))
    if expand_instructions is not None:
        texts.extend(expand_instructions(instructions))
    return texts


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
    ) -> InstructionTokenizer:
        """Learn a vocabulary from `texts` (instructions and reasoning)."""
        return cls._wrap(train_word_level(texts, min_frequency=min_frequency), max_instruction_tokens,
                         max_reasoning_tokens)

    @classmethod
    def _wrap(cls, backend: Tokenizer, max_instruction_tokens: int, max_reasoning_tokens: int) -> InstructionTokenizer:
        """A `tokenizers.Tokenizer` with our special tokens as a transformers tokenizer of these lengths."""
        from transformers import PreTrainedTokenizerFast

        hf = PreTrainedTokenizerFast(
            tokenizer_object=backend,
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
        cls, dataset, max_instruction_tokens: int = 16, max_reasoning_tokens: int = 24, min_frequency: int = 1,
        expand_instructions: Callable[[list[str]], Iterable[str]] | None = None,
    ) -> InstructionTokenizer:
        """Learn a vocabulary from every instruction and reasoning text of a `DemoDataset`, the
        words its writer declared (`dataset.vocabulary`, e.g. every word of the simulator's
        traces), and the texts `expand_instructions(instructions)` gives (e.g. the words of
        training-time instruction variants, training/instruction_variants.vocabulary_texts)."""
        texts = dataset_texts(dataset, expand_instructions)
        return cls.train(texts, max_instruction_tokens, max_reasoning_tokens, min_frequency)

    def new_words(self, texts: Iterable[str]) -> list[str]:
        """The words of `texts` this vocabulary lacks (normalised and split as encoding does), sorted."""
        backend = self.hf.backend_tokenizer
        found: set[str] = set()
        for text in texts:
            if not text or not text.strip():
                continue
            for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text)):
                if backend.token_to_id(word) is None:
                    found.add(word)
        return sorted(found)

    def with_words(self, words: Iterable[str]) -> InstructionTokenizer:
        """This tokenizer with `words` (as `new_words` gives them) appended to the vocabulary: every
        known word keeps its id, the new ones get ids vocab_size, vocab_size + 1, ... in order
        (a model grows its word tables to match: MoEVLA.grow_vocabulary)."""
        data = json.loads(self.hf.backend_tokenizer.to_str())
        vocab: dict[str, int] = data["model"]["vocab"]
        if max(vocab.values()) + 1 != self.vocab_size:  # ids are dense: new ones append at the end
            raise ValueError(f"vocabulary ids are not 0..{self.vocab_size - 1}: cannot append words")
        for word in words:
            if word in vocab:
                raise ValueError(f"{word!r} is already in the vocabulary (id {vocab[word]})")
            vocab[word] = len(vocab)
        return self._wrap(Tokenizer.from_str(json.dumps(data)), self.max_instruction_tokens, self.max_reasoning_tokens)

    def save(self, directory: str | os.PathLike) -> None:
        """Write tokenizer.json + tokenizer_config.json (lengths included) into `directory`."""
        self.hf.model_max_length = self.max_instruction_tokens
        self.hf.init_kwargs["max_reasoning_tokens"] = self.max_reasoning_tokens
        for loader_only in ("is_local", "local_files_only"):  # set by `load`, not part of the tokenizer
            self.hf.init_kwargs.pop(loader_only, None)
        self.hf.save_pretrained(str(directory))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> InstructionTokenizer:
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
        return pad_ids(self.tokenize_ids(instruction), self.max_instruction_tokens)

    def encode_reasoning(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Reasoning text -> (ids [R] int64, mask [R] int64), at most R - 1 tokens ("" -> all PAD)."""
        return pad_ids(self.tokenize_ids(text)[: self.max_reasoning_tokens - 1], self.max_reasoning_tokens)

    def read(self, instruction: str) -> InstructionReading:
        """Which words of `instruction` the model does not read (as RuntimeTokenizer.read)."""
        encoding = self.hf.backend_tokenizer.encode(instruction, add_special_tokens=False)
        return read_encoding(instruction, encoding.ids, encoding.offsets, self.max_instruction_tokens)

    def decode(self, ids) -> str:
        """Ids -> text: stops at the first EOS, drops PAD/BOS."""
        return self.hf.decode(text_ids(ids), skip_special_tokens=False, clean_up_tokenization_spaces=True)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class TokenizerLoadError(BadInputError):
    """The tokenizer files are missing or do not describe a tokenizer this model can use."""


def clean_up_tokenization(text: str) -> str:
    """transformers' `clean_up_tokenization` (decode with clean_up_tokenization_spaces=True)."""
    return (
        text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
        .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
        .replace(" 've", "'ve").replace(" 're", "'re")
    )


@dataclass(frozen=True)
class InstructionReading:
    """How much of an instruction the model can read.

    Attributes:
        num_words: words in the instruction (tokens with a letter or digit; punctuation excluded).
        unknown_words: words outside the vocabulary (the model sees [UNK]), in order, as written.
        cut_words: words after the first L tokens (the model never sees them), as written.
    """

    num_words: int
    unknown_words: tuple[str, ...] = ()
    cut_words: tuple[str, ...] = ()

    @property
    def unread_words(self) -> tuple[str, ...]:
        """Words the model does not read: unknown ones first, then cut-off ones."""
        return self.unknown_words + self.cut_words

    def describe(self) -> str:
        """One line for people, e.g. "2 of 5 words unknown to the model: 'grab', 'crimson'"."""
        parts = []
        if self.unknown_words:
            listed = ", ".join(repr(w) for w in self.unknown_words)
            parts.append(f"{len(self.unknown_words)} of {self.num_words} words unknown to the model: {listed}")
        if self.cut_words:
            listed = ", ".join(repr(w) for w in self.cut_words)
            parts.append(f"{len(self.cut_words)} words past the model's instruction length: {listed}")
        return "; ".join(parts) if parts else f"all {self.num_words} words known"


def read_encoding(text: str, ids: list[int], offsets: list[tuple[int, int]], max_tokens: int) -> InstructionReading:
    """InstructionReading of `text` from its token ids and character offsets (a `tokenizers` Encoding)."""
    unknown: list[str] = []
    cut: list[str] = []
    num_words = 0
    for index, (token_id, (start, end)) in enumerate(zip(ids, offsets)):
        word = text[start:end]
        if not any(ch.isalnum() for ch in word):
            continue  # punctuation carries no meaning the model could miss
        num_words += 1
        if index >= max_tokens:
            cut.append(word)
        elif token_id == UNK_ID:
            unknown.append(word)
    return InstructionReading(num_words, tuple(unknown), tuple(cut))


class RuntimeTokenizer:
    """Fixed-length instruction encoding and reasoning decoding (see the module docstring).

    Args:
        tokenizer: a `tokenizers.Tokenizer` whose special tokens have the model's fixed ids.
        max_instruction_tokens: L.
        max_reasoning_tokens: R.
        cache_size: encoded instructions kept (least recently used dropped first).
    """

    def __init__(self, tokenizer: Tokenizer, max_instruction_tokens: int, max_reasoning_tokens: int,
                 cache_size: int = 64) -> None:
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
    def load(cls, directory: str | os.PathLike) -> RuntimeTokenizer:
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
        ids, mask = pad_ids(self.tokenizer.encode(instruction, add_special_tokens=False).ids,
                            self.max_instruction_tokens)  # [L], [L]
        ids.flags.writeable = False
        mask.flags.writeable = False
        self._cache[instruction] = (ids, mask)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ids, mask

    def decode(self, ids: np.ndarray) -> str:
        """Ids -> text: stops at the first EOS, drops PAD/BOS."""
        text = self.tokenizer.decode(text_ids(ids), skip_special_tokens=False)
        return clean_up_tokenization(text) if self._clean_up else text

    def read(self, instruction: str) -> InstructionReading:
        """Which words of `instruction` the model does not read (unknown or past L tokens)."""
        encoding = self.tokenizer.encode(instruction, add_special_tokens=False)
        return read_encoding(instruction, encoding.ids, encoding.offsets, self.max_instruction_tokens)
