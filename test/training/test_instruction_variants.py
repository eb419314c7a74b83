"""Tests of moe_vla_ros/training/instruction_variants.py and of VLADataset showing the variants."""

import dataclasses

import pytest
import torch

from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.runtime.tokenization import InstructionTokenizer
from moe_vla_ros.sim.tasks import INSTRUCTION_TEMPLATES
from moe_vla_ros.training.data import VLADataset, normalization_from_episodes
from moe_vla_ros.training.instruction_variants import (
    InstructionVariantsConfig,
    InstructionVariantsError,
    instruction_variants,
    vocabulary_texts,
)
from moe_vla_ros.training.synthetic import generate_synthetic_dataset

SIM_INSTRUCTIONS = [t.format(color=c, direction=d) for family in INSTRUCTION_TEMPLATES.values() for t in family
                    for c in ("red", "green", "blue") for d in ("left", "right")]


def test_variants_are_distinct_reproducible_and_keep_the_meaning():
    variants = instruction_variants("push the red cube to the left", 8, seed=3)
    assert len(variants) == 8 == len(set(variants))
    assert "push the red cube to the left" not in variants
    assert variants == instruction_variants("push  the red cube to the left", 8, seed=3)  # same text, spacing aside
    assert variants != instruction_variants("push the red cube to the left", 8, seed=4)
    for text in variants:  # only synonyms and polite forms: the direction and the object stay
        assert "left" in text and any(noun in text for noun in ("cube", "block", "box"))
    assert instruction_variants("", 4) == ()


def test_every_variant_of_the_sim_instructions_is_readable_by_a_tokenizer_trained_on_the_vocabulary_texts():
    tokenizer = InstructionTokenizer.train(vocabulary_texts(SIM_INSTRUCTIONS), max_instruction_tokens=16,
                                           max_reasoning_tokens=8)
    for text in SIM_INSTRUCTIONS[::5]:
        for variant in instruction_variants(text, 16):
            assert 3 not in tokenizer.tokenize_ids(variant), variant  # no [UNK]
    assert 3 not in tokenizer.tokenize_ids("please shove the crimson block to the left")


@pytest.mark.parametrize("change, message", [
    ({"probability": 1.5}, "probability must be in \\[0, 1\\], got 1.5"),
    ({"per_instruction": 0}, "per_instruction must be an integer >= 1, got 0"),
])
def test_config_validation_names_the_bad_value(change, message):
    with pytest.raises(InstructionVariantsError, match=message):
        InstructionVariantsConfig(**change)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    contract = tiny_contract()
    dataset = generate_synthetic_dataset(tmp_path_factory.mktemp("d") / "data", contract.sensors, 3, 10, seed=0)
    instructions = [dataset.episode(i).instruction for i in range(len(dataset))]
    tokenizer = InstructionTokenizer.train(vocabulary_texts(instructions), 8, 10)
    contract = dataclasses.replace(contract, normalization=normalization_from_episodes(dataset, [0, 1, 2]))
    return dataset, contract, tokenizer


@pytest.mark.parametrize("probability", [0.0, 0.5, 1.0])
def test_vla_dataset_shows_variants_with_the_configured_probability(setup, probability):
    dataset, contract, tokenizer = setup
    plain = VLADataset(dataset, contract, tokenizer)
    varied = VLADataset(dataset, contract, tokenizer, variants=InstructionVariantsConfig(probability, 4, seed=1))
    idx = torch.arange(len(plain)).repeat(20)  # [600]
    ids = varied.batch(idx)["instruction_ids"]
    recorded = plain.batch(idx)["instruction_ids"]
    changed = (ids != recorded).any(dim=1).float().mean().item()
    assert changed == pytest.approx(probability, abs=0.06)
    texts = {tokenizer.decode(row) for row in ids[(ids != recorded).any(dim=1)]}
    allowed = {v for i in range(len(dataset)) for v in instruction_variants(dataset.episode(i).instruction, 4, 1)}
    assert texts <= allowed
    # everything else is the plain sample's
    b1, b2 = varied.batch(idx[:5]), plain.batch(idx[:5])
    assert all(torch.equal(b1[k], b2[k]) for k in b1 if not k.startswith("instruction"))


def test_vla_dataset_leaves_out_variants_the_tokenizer_cannot_read(setup):
    dataset, contract, _ = setup
    instructions = [dataset.episode(i).instruction for i in range(len(dataset))]
    plain_words = InstructionTokenizer.train(instructions + ["please"], 8, 10)  # knows "please", no synonyms
    varied = VLADataset(dataset, contract, plain_words, variants=InstructionVariantsConfig(1.0, 16, seed=1))
    ids = varied.batch(torch.arange(len(varied)))["instruction_ids"]  # [N, L]
    assert not (ids == 3).any()  # no [UNK] reaches training
    texts = {plain_words.decode(row) for row in ids}
    assert any(t.startswith("please ") or t.endswith(" please") for t in texts)  # readable variants are shown
