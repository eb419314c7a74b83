"""The tokenizers-only runtime tokenizer encodes and decodes exactly like InstructionTokenizer."""

import sys

import numpy as np
import pytest

from moe_vla_ros.runtime.tokenization import InstructionTokenizer, RuntimeTokenizer, TokenizerLoadError

CORPUS = ["reach the red square", "the red square is top left . moving there", "don't stop , it's fine !"]
TEXTS = [
    "reach the red square",
    "Reach   THE red square!",
    "the red square is top left . moving there and then some more words than fit",
    "an unseen word",
    "don't stop , it's fine !",
]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tok")
    reference = InstructionTokenizer.train(CORPUS, max_instruction_tokens=6, max_reasoning_tokens=8)
    reference.save(directory)
    return InstructionTokenizer.load(directory), RuntimeTokenizer.load(directory)


@pytest.mark.parametrize("text", TEXTS)
def test_encode_matches_reference(tokenizers, text):
    reference, runtime = tokenizers
    for got, want in zip(runtime.encode(text), reference.encode(text)):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.int64


@pytest.mark.parametrize("text", TEXTS)
def test_decode_matches_reference(tokenizers, text):
    reference, runtime = tokenizers
    ids = np.asarray([1] + reference.tokenize_ids(text) + [2, 5, 6])  # BOS ... EOS, then ignored ids
    assert runtime.decode(ids) == reference.decode(ids)


def test_lengths_and_vocab_come_from_the_files(tokenizers):
    reference, runtime = tokenizers
    assert (runtime.max_instruction_tokens, runtime.max_reasoning_tokens) == (6, 8)
    assert runtime.vocab_size == reference.vocab_size


def test_encodings_are_cached_and_read_only(tokenizers):
    _, runtime = tokenizers
    first = runtime.encode("reach the red square")
    assert runtime.encode("reach the red square")[0] is first[0]
    with pytest.raises(ValueError):
        first[0][0] = 7


def test_missing_files(tmp_path):
    with pytest.raises(TokenizerLoadError, match="tokenizer.json"):
        RuntimeTokenizer.load(tmp_path)


def test_no_transformers_or_torch_import():
    import subprocess

    code = "import sys, moe_vla_ros.runtime.tokenization; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize(
    "text, words, unknown, cut",
    [
        ("reach the red square", 4, (), ()),
        ("Reach   THE red square!", 4, (), ()),  # case and punctuation are not words
        ("please grab the Crimson square", 5, ("please", "grab", "Crimson"), ()),  # as written
        ("reach now the red", 4, ("now",), ()),
        ("reach the red , square top left", 6, (), ("left",)),  # the comma takes one of the 6 tokens
        ("reach the red square top left fine", 7, (), ("fine",)),  # 7 words, the model reads 6
        ("", 0, (), ()),
    ],
)
def test_read_names_the_words_the_model_cannot_read(tokenizers, text, words, unknown, cut):
    training, runtime = tokenizers
    reading = runtime.read(text)
    assert (reading.num_words, reading.unknown_words, reading.cut_words) == (words, unknown, cut)
    assert training.read(text) == reading  # the training tokenizer reads the same way
    assert reading.unread_words == unknown + cut
    # every unknown word really is [UNK] in the encoding the model gets
    ids, _ = runtime.encode(text)
    assert int((ids == 3).sum()) == len(unknown)


def test_reading_describes_itself(tokenizers):
    _, runtime = tokenizers
    assert runtime.read("please reach the red square").describe() == "1 of 5 words unknown to the model: 'please'"
    assert runtime.read("reach the red square").describe() == "all 4 words known"
    assert "past the model's instruction length: 'fine'" in runtime.read("reach the red square top left fine").describe()
