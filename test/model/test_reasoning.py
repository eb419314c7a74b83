"""Tests of moe_vla_ros/model/reasoning.py: step function, generation, teacher forcing."""

import pytest
import torch

from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.reasoning import IGNORE_INDEX, ReasoningDecoder, teacher_forcing
from moe_vla_ros.runtime.tokenization import BOS_ID, EOS_ID, PAD_ID

torch.set_num_threads(1)


@pytest.fixture
def decoder():
    torch.manual_seed(0)
    return ReasoningDecoder(ModelConfig.tiny()).eval()


def trunk_tokens(batch=2):
    cfg = ModelConfig.tiny()
    return torch.randn(batch, cfg.num_trunk_tokens, cfg.d_model, generator=torch.Generator().manual_seed(1))


def force_token(decoder, token):
    with torch.no_grad():
        decoder.lm_head.weight.zero_()
        decoder.lm_head.bias.fill_(0.0)
        decoder.lm_head.bias[token] = 10.0


def test_step_is_causal_with_static_shapes(decoder):
    R = decoder.max_tokens
    tokens = torch.full((2, R), PAD_ID)
    tokens[:, 0] = BOS_ID
    tokens[:, 1:3] = torch.tensor([5, 6])
    logits = decoder(trunk_tokens(), tokens).logits
    assert logits.shape == (2, R, 64)
    changed = tokens.clone()
    changed[:, 3] = 9  # a later position must not change earlier logits
    assert torch.allclose(decoder(trunk_tokens(), changed).logits[:, :3], logits[:, :3], atol=1e-6)
    assert not torch.allclose(decoder(trunk_tokens() * 2, tokens).logits, logits)  # conditioned on trunk


def test_generation_stops_at_eos(decoder):
    force_token(decoder, EOS_ID)
    result = decoder.generate(trunk_tokens())
    assert result.steps == 1 and result.mask.sum() == 0 and (result.ids == PAD_ID).all()


def test_generation_respects_max_length(decoder):
    force_token(decoder, 7)
    result = decoder.generate(trunk_tokens())
    R = decoder.max_tokens
    assert result.steps == R - 1 and result.ids.shape == (2, R)
    assert result.mask.sum(1).tolist() == [R - 1, R - 1] and (result.ids[:, : R - 1] == 7).all()
    assert decoder.generate(trunk_tokens(), max_new_tokens=3).mask.sum(1).tolist() == [3, 3]


def test_teacher_forcing_shifts_and_appends_eos():
    ids = torch.tensor([[5, 6, 7, PAD_ID, PAD_ID], [PAD_ID] * 5])
    mask = torch.tensor([[1, 1, 1, 0, 0], [0] * 5])
    inputs, targets = teacher_forcing(ids, mask)
    assert inputs.tolist() == [[BOS_ID, 5, 6, 7, PAD_ID], [BOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]]
    I = IGNORE_INDEX
    assert targets.tolist() == [[5, 6, 7, EOS_ID, I], [EOS_ID, I, I, I, I]]
    with pytest.raises(ValueError, match="R - 1"):
        teacher_forcing(ids, torch.ones_like(mask))
