"""Tests of moe_vla_ros/runtime/tokenization.py InstructionTokenizer: offline build, save/load, fixed-length encodings."""

import subprocess
import sys

import numpy as np
import pytest

from moe_vla_ros.data.dataset import DatasetWriter, DemoDataset
from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.runtime.tokenization import BOS_ID, EOS_ID, PAD_ID, UNK_ID, InstructionTokenizer
from moe_vla_ros.training.synthetic import generate_synthetic_dataset

TEXTS = ["Reach the red square", "push the blue cube, then stop.", "the red square is top left . moving there"]


@pytest.fixture
def tokenizer():
    return InstructionTokenizer.train(TEXTS, max_instruction_tokens=6, max_reasoning_tokens=5)


def test_special_token_ids_are_fixed(tokenizer):
    hf = tokenizer.hf
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id, hf.unk_token_id) == (PAD_ID, BOS_ID, EOS_ID, UNK_ID)


def test_encode_pads_truncates_and_lowercases(tokenizer):
    ids, mask = tokenizer.encode("REACH the red square")
    assert ids.dtype == np.int64 and mask.dtype == np.int64 and ids.shape == mask.shape == (6,)
    assert mask.tolist() == [1, 1, 1, 1, 0, 0]
    assert ids[4:].tolist() == [PAD_ID, PAD_ID] and UNK_ID not in ids[:4]
    long_ids, long_mask = tokenizer.encode("the red square the red square the red")
    assert long_mask.sum() == 6 and long_ids.shape == (6,)
    assert tokenizer.encode("reach the green square")[0][2] == UNK_ID


def test_reasoning_keeps_one_slot_for_bos(tokenizer):
    _ids, mask = tokenizer.encode_reasoning("the red square is top left")
    assert mask.tolist() == [1, 1, 1, 1, 0]
    empty_ids, empty_mask = tokenizer.encode_reasoning("")
    assert empty_mask.sum() == 0 and (empty_ids == PAD_ID).all()


def test_decode_stops_at_eos_and_skips_padding(tokenizer):
    ids, _ = tokenizer.encode("push the blue cube, then stop.")
    assert tokenizer.decode(ids) == "push the blue cube, then"  # 6 tokens, "," is one
    with_eos = np.concatenate([[BOS_ID], tokenizer.encode("reach the red square")[0][:4], [EOS_ID, 7, 8]])
    assert tokenizer.decode(with_eos) == "reach the red square"


def test_save_load_round_trip_offline(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    code = (
        "import sys; import moe_vla_ros.runtime.decoding; from moe_vla_ros.runtime.tokenization import InstructionTokenizer as T; "
        f"t = T.load({str(tmp_path)!r}); print(t.encode('reach the red square')[0].tolist(), "
        "t.max_instruction_tokens, t.max_reasoning_tokens, 'torch' in sys.modules)"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    ids, lengths = tokenizer.encode("reach the red square")[0].tolist(), "6 5"
    assert run.stdout.strip() == f"{ids} {lengths} False"  # same ids, lengths kept, torch never imported


def test_from_dataset_learns_instructions_and_reasoning(tmp_path):
    contract = tiny_contract()
    dataset = generate_synthetic_dataset(tmp_path / "data", contract.sensors, num_episodes=3, episode_length=5)
    tok = InstructionTokenizer.from_dataset(dataset, 8, 10)
    for episode in dataset:
        for text in [episode.instruction, *episode.reasoning]:
            ids, mask = (tok.encode if text == episode.instruction else tok.encode_reasoning)(text)
            assert UNK_ID not in ids[mask == 1]


def test_from_dataset_also_learns_the_declared_vocabulary(tmp_path):
    contract = tiny_contract()
    episode = next(iter(generate_synthetic_dataset(tmp_path / "one", contract.sensors, num_episodes=1, episode_length=3)))
    with DatasetWriter(tmp_path / "declared", contract.sensors, vocabulary=["behind", "crimson", "behind"]) as writer:
        writer.add_episode(episode)
    dataset = DemoDataset(tmp_path / "declared")
    assert dataset.vocabulary == ("behind", "crimson")
    tok = InstructionTokenizer.from_dataset(dataset, 8, 10)
    ids, mask = tok.encode_reasoning("behind")
    assert UNK_ID not in ids[mask == 1] and not tok.read("crimson").unread_words
    assert DemoDataset(tmp_path / "one").vocabulary == ()  # none declared


def test_invalid_lengths_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="max_reasoning_tokens"):
        InstructionTokenizer(tokenizer.hf, 4, 1)


def test_a_loaded_tokenizer_saves_the_same_files(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "a")
    InstructionTokenizer.load(tmp_path / "a").save(tmp_path / "b")  # e.g. a fine-tuned checkpoint
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "b" / name).read_text() == (tmp_path / "a" / name).read_text(), name


def test_with_words_appends_new_words_and_keeps_every_known_id(tokenizer, tmp_path):
    texts = ["Reach the GREEN square!", "the square is behind , 0 cm"]
    new = tokenizer.new_words(texts)
    assert new == sorted(["green", "!", "behind", "0", "cm"])  # normalised as encoding does; known words absent
    grown = tokenizer.with_words(new)
    assert grown.vocab_size == tokenizer.vocab_size + len(new)
    assert [grown.hf.convert_tokens_to_ids(w) for w in new] == list(range(tokenizer.vocab_size, grown.vocab_size))
    for word, i in tokenizer.hf.get_vocab().items():
        assert grown.hf.convert_tokens_to_ids(word) == i
    assert not grown.new_words(texts) and not grown.read("reach the green square").unread_words
    assert tokenizer.read("reach the green square").unread_words == ("green",)
    grown.save(tmp_path)
    loaded = InstructionTokenizer.load(tmp_path)
    assert loaded.encode("behind the green square")[0].tolist() == grown.encode("behind the green square")[0].tolist()
    assert (loaded.max_instruction_tokens, loaded.max_reasoning_tokens) == (6, 5)
    with pytest.raises(ValueError, match="already in the vocabulary"):
        tokenizer.with_words(["red"])
