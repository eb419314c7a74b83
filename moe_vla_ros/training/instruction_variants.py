"""Paraphrases and synonyms of instructions for training, so that common wordings are known.

A model reads only the words of its vocabulary (learned from the training instructions); any
other word becomes [UNK], and the node holds on instructions with unknown words
(`PolicyRunner`, `max_unread_words`). Training on variants of every instruction teaches the
vocabulary the usual ways people say the same thing (only wordings with the same meaning):

    synonyms     a word replaced by one of its SYNONYMS ("cube" -> "block", "push" -> "shove")
    politeness   "please ..." / "... please" / "now ..." / "could you ..."

`instruction_variants(text, count, seed)` gives the same variants for the same arguments (the
training run is reproducible); `vocabulary_texts` lists every word a tokenizer must know.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

from moe_vla_ros.errors import BadInputError

# word -> words with the same meaning in the simulator's task families (reach / push / lift)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "cube": ("block", "box"),
    "reach": ("approach",),
    "touch": ("tap",),
    "go": ("move",),
    "push": ("shove", "nudge"),
    "slide": ("shift",),
    "lift": ("raise",),
    "pick": ("take",),
    "grab": ("grasp",),
    "red": ("crimson",),
    "green": ("lime",),
    "blue": ("navy",),
    "gripper": ("hand",),
}
POLITE_FORMS = ("please {}", "{} please", "now {}", "could you {}")

_WORD = re.compile(r"[A-Za-z]+")


class InstructionVariantsError(BadInputError):
    """Invalid instruction-variant settings."""


@dataclass(frozen=True)
class InstructionVariantsConfig:
    """How training uses instruction variants.

    Attributes:
        probability: chance that a training sample shows a variant instead of the recorded
            instruction, in [0, 1] (0: off; validation always uses the recorded one).
        per_instruction: variants generated per distinct instruction, >= 1.
        seed: seed of the variant generation.
    """

    probability: float = 0.0
    per_instruction: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.probability, bool) or not 0.0 <= float(self.probability) <= 1.0:
            raise InstructionVariantsError(f"probability must be in [0, 1], got {self.probability!r}")
        if isinstance(self.per_instruction, bool) or not isinstance(self.per_instruction, int) or self.per_instruction < 1:
            raise InstructionVariantsError(f"per_instruction must be an integer >= 1, got {self.per_instruction!r}")

    @property
    def enabled(self) -> bool:
        return self.probability > 0


def _synonym_forms(text: str) -> list[str]:
    """Every combination of synonym replacements of `text` (the text itself first)."""
    pieces = _WORD.split(text)
    words = _WORD.findall(text)
    choices = [(w,) + SYNONYMS.get(w.lower(), ()) for w in words]
    forms = []
    for combo in itertools.product(*choices):
        out = [pieces[0]]
        for word, piece in zip(combo, pieces[1:]):
            out += [word, piece]
        forms.append("".join(out))
    return forms


def instruction_variants(text: str, count: int, seed: int = 0) -> tuple[str, ...]:
    """Up to `count` distinct variants of `text` with the same meaning (never `text` itself),
    drawn reproducibly from its synonym forms with and without a polite form."""
    text = " ".join(text.split())
    if not text:
        return ()
    forms = _synonym_forms(text)
    candidates = forms[1:] + [polite.format(form) for form in forms for polite in POLITE_FORMS]
    rng = random.Random(f"{seed}:{text}")
    rng.shuffle(candidates)
    return tuple(dict.fromkeys(candidates))[:count]


def vocabulary_texts(instructions: Iterable[str]) -> list[str]:
    """Texts whose words cover every synonym and polite form of `instructions` (for training a
    tokenizer: each word once per form, so no variant word becomes [UNK])."""
    texts: list[str] = []
    for text in dict.fromkeys(" ".join(t.split()) for t in instructions):
        if not text:
            continue
        texts.append(text)
        for word in _WORD.findall(text):
            texts.extend(SYNONYMS.get(word.lower(), ()))
        texts.extend(polite.format(text) for polite in POLITE_FORMS)
    return texts
