"""Tests of moe_vla_ros/training/train.py (with evaluate.py and plots.py): a tiny end-to-end run."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import interrupt_at, quick

from moe_vla_ros.contract import ContractError
from moe_vla_ros.data.dataset import DatasetWriter, DemoDataset
from moe_vla_ros.model.checkpoint import load_checkpoint, load_tokenizer, read_checkpoint_config
from moe_vla_ros.model.config import tiny_contract
from moe_vla_ros.training.synthetic import generate_synthetic_dataset
from moe_vla_ros.training.train import main, train_policy

torch.set_num_threads(1)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def long_run(dataset_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ckpt"
    cfg = quick(dense_steps=150, moe_steps=150, batch_size=16, eval_every=100, log_every=10, eval_generated_samples=16)
    return train_policy(dataset_dir, out, cfg)


def test_loss_falls_on_the_synthetic_task(long_run):
    train = [r for r in long_run.records if r["kind"] == "train"]
    first = sum(r["loss"] for r in train[:3]) / 3
    last = sum(r["loss"] for r in train[-3:]) / 3
    assert last < 0.5 * first, (first, last)
    final = long_run.final_eval
    assert final["reasoning_accuracy"] > 0.8 and final["action_l1_rad"] < 0.1
    assert long_run.final_train_loss == train[-1]["loss"]


def test_run_writes_checkpoint_logs_and_plots(long_run, dataset_dir):
    out = long_run.out_dir
    for name in ("model.safetensors", "config.json", "tokenizer.json", "train_config.json"):
        assert (out / name).is_file(), name
    for name in ("loss_curves.png", "expert_usage.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    model = load_checkpoint(out, expected_contract=tiny_contract().sensors)
    assert model.is_fully_moe
    cfg, metadata = read_checkpoint_config(out)
    assert metadata["training"]["steps"] == 300 and cfg.contract.normalization.state_std != (1.0, 1.0, 1.0)
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    kinds = {r["kind"] for r in records}
    assert kinds == {"train", "eval", "upcycle"}
    evals = [r for r in records if r["kind"] == "eval"]
    assert {r["stage"] for r in evals} == {"dense", "moe"} and "action_l1_rad_generated" in evals[-1]
    usage = [json.loads(line) for line in (out / "expert_usage.jsonl").read_text().splitlines()]
    assert usage and all(r["stage"] == "moe" for r in usage)
    for row in usage:
        for key in ("trunk_expert_load", "action_head_expert_load"):
            assert len(row[key]) == 1 and abs(sum(row[key][0]) - 1.0) < 1e-4


def test_same_seed_same_result(dataset_dir, tmp_path):
    a = train_policy(dataset_dir, tmp_path / "a", quick(seed=3))
    b = train_policy(dataset_dir, tmp_path / "b", quick(seed=3))
    c = train_policy(dataset_dir, tmp_path / "c", quick(seed=4))
    assert a.final_train_loss == b.final_train_loss != c.final_train_loss
    wa, wb = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_stage_three_leaves_frozen_parameters_untouched(dataset_dir, tmp_path):
    upcycled_only = train_policy(dataset_dir, tmp_path / "a", quick(moe_steps=0)).model.state_dict()
    tuned = train_policy(dataset_dir, tmp_path / "b", quick(moe_steps=10)).model.state_dict()
    frozen = [k for k in tuned if k.startswith(("vision.", "trunk.instruction", "trunk.state_embed", "trunk.norm"))]
    frozen += [k for k in tuned if k.startswith("trunk.blocks.") and ".ffn." not in k]
    frozen += [k for k in tuned if k.startswith("trunk.blocks.0.ffn.")]  # dense (non-MoE) trunk layer
    assert len(frozen) > 20
    assert all(torch.equal(tuned[k], upcycled_only[k]) for k in frozen)
    trained = [k for k in tuned if k.startswith(("trunk.blocks.1.ffn.", "action_head.", "reasoning."))]
    assert sum(not torch.equal(tuned[k], upcycled_only[k]) for k in trained) > len(trained) // 2


@pytest.mark.parametrize("width", ["active", "total"])
def test_dense_baseline_trains_one_dense_stage_of_all_steps(dataset_dir, tmp_path, width):
    """--dense-baseline: same data, split, seed and total steps as the recipe, every step dense,
    no upcycling; the checkpoint is a dense model with the wide FFNs where the MoE layers were."""
    recipe = train_policy(dataset_dir, tmp_path / "moe", quick(dense_steps=4, moe_steps=3))
    result = train_policy(dataset_dir, tmp_path / width, quick(dense_steps=4, moe_steps=3, dense_baseline=width))
    train = [r for r in result.records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(7)) and {r["stage"] for r in train} == {"dense"}
    assert not [r for r in result.records if r["kind"] == "upcycle"]
    assert [r["step"] for r in train[:4]] == [r["step"] for r in recipe.records if r["kind"] == "train"][:4]
    model = load_checkpoint(tmp_path / width)
    assert model.num_moe_layers == 0 and model.cfg.trunk.moe_layers == ()
    moe = recipe.model.cfg.trunk.moe
    k = moe.top_k if width == "active" else moe.num_experts
    assert model.trunk.blocks[1].ffn.d_hidden == k * moe.d_hidden
    _, metadata = read_checkpoint_config(tmp_path / width)
    params = metadata["training"]["parameters"]
    assert params["active"] == params["total"]
    assert metadata["train_config"]["dense_baseline"] == width
    assert json.loads((tmp_path / width / "train_config.json").read_text())["dense_baseline"] == width
    assert result.model.cfg.contract == recipe.model.cfg.contract  # same normalisation and tokenizer sizes


def test_cli(dataset_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--dataset", str(dataset_dir), "--out", str(out), "--preset", "tiny", "--dense-steps", "3",
            "--moe-steps", "3", "--batch-size", "4", "--eval-every", "3", "--no-progress", "--seed", "1",
            "--config", '{"loss": {"action_loss": "mse"}}']
    assert main(args) == 0
    assert "held-out action L1" in capsys.readouterr().out
    cfg, _ = read_checkpoint_config(out)
    assert cfg.loss.action_loss == "mse" and cfg.contract.sensors == tiny_contract().sensors
    assert main(args) == 2  # refuses to overwrite
    err = capsys.readouterr().err
    assert err.startswith("moe_vla_train: error: ") and "overwrite" in err
    assert main(args[:-2] + ["--config", '{"trunk": {"num_layer": 2}}', "--overwrite"]) == 2
    assert "num_layer" in capsys.readouterr().err
    assert main(args[:-2] + ["--config", "{not json"]) == 2
    assert capsys.readouterr().err.startswith("moe_vla_train: error: ")
    assert main(args[:-2] + ["--dense-baseline", "active", "--out", str(tmp_path / "dense")]) == 0
    assert read_checkpoint_config(tmp_path / "dense")[1]["train_config"]["dense_baseline"] == "active"


def test_instruction_variants_teach_the_tokenizer_their_words(dataset_dir, tmp_path, capsys):
    from moe_vla_ros.training.instruction_variants import instruction_variants

    plain = train_policy(dataset_dir, tmp_path / "plain", quick(dense_steps=2, moe_steps=2))
    args = ["--dataset", str(dataset_dir), "--out", str(tmp_path / "varied"), "--preset", "tiny", "--dense-steps", "2",
            "--moe-steps", "2", "--batch-size", "8", "--eval-every", "2", "--no-progress", "--instruction-variants", "0.5"]
    assert main(args) == 0
    capsys.readouterr()
    instruction = DemoDataset(dataset_dir).episode(0).instruction
    variants = instruction_variants(instruction, 8)
    varied, before = load_tokenizer(tmp_path / "varied"), load_tokenizer(plain.out_dir)
    assert all(not varied.read(v).unread_words for v in variants), variants
    assert any(before.read(v).unread_words for v in variants)  # without variants, the synonyms are unknown
    _, metadata = read_checkpoint_config(tmp_path / "varied")
    assert metadata["train_config"]["instruction_variants"] == 0.5


def test_fine_tuning_starts_from_the_checkpoint_and_keeps_its_inputs(long_run, dataset_dir, tmp_path):
    init = long_run.out_dir
    result = train_policy(dataset_dir, tmp_path / "ft", quick(dense_steps=0, moe_steps=12, init_checkpoint=str(init)))
    kinds = [r["kind"] for r in result.records]
    assert kinds[0] == "init" and "upcycle" not in kinds
    assert {r["stage"] for r in result.records if r["kind"] in ("train", "eval")} == {"moe"}
    # it starts where the initial training ended, far below a fresh model's first loss
    fresh_first = next(r["loss"] for r in long_run.records if r["kind"] == "train")
    first = next(r["loss"] for r in result.records if r["kind"] == "train")
    assert first < 0.3 * fresh_first, (first, fresh_first)
    before, _ = read_checkpoint_config(init)
    after, metadata = read_checkpoint_config(tmp_path / "ft")
    assert after.contract == before.contract and after.vocab_size == before.vocab_size  # same inputs
    assert (tmp_path / "ft" / "tokenizer.json").read_bytes() == (init / "tokenizer.json").read_bytes()
    assert metadata["train_config"]["init_checkpoint"] == str(init)
    old, new = load_file(init / "model.safetensors"), load_file(tmp_path / "ft" / "model.safetensors")
    assert torch.equal(old["vision.proj.weight"], new["vision.proj.weight"])  # frozen in stage 3
    assert not torch.equal(old["action_head.out.weight"], new["action_head.out.weight"])


def test_fine_tuning_refuses_another_robots_data(long_run, dataset_dir, tmp_path, capsys):
    other = tmp_path / "other"
    sensors = tiny_contract().sensors
    bigger = dataclasses.replace(sensors, image_height=sensors.image_height * 2)
    generate_synthetic_dataset(other, bigger, num_episodes=2, episode_length=10, seed=0)
    cfg = quick(dense_steps=0, moe_steps=2, init_checkpoint=str(long_run.out_dir))
    with pytest.raises(ContractError, match="image_height"):
        train_policy(other, tmp_path / "x", cfg)
    args = ["--dataset", str(other), "--out", str(tmp_path / "y"), "--init-checkpoint", str(long_run.out_dir),
            "--dense-steps", "0", "--moe-steps", "2", "--no-progress"]
    assert main(args) == 2 and "image_height" in capsys.readouterr().err


@pytest.fixture
def renamed_dataset(dataset_dir, tmp_path):
    """Two episodes of the synthetic set whose instruction has words the tokenizer never saw."""
    renamed = tmp_path / "renamed"
    source = DemoDataset(dataset_dir)
    with DatasetWriter(renamed, source.contract) as writer:
        for i in range(2):
            writer.add_episode(dataclasses.replace(source.episode(i), instruction="wiggle the zorblax"))
    return renamed


def test_fine_tuning_learns_the_new_words_of_its_data(long_run, renamed_dataset, tmp_path, monkeypatch):
    init = long_run.out_dir
    before = load_tokenizer(init)
    new_words = before.new_words(["wiggle the zorblax"])
    assert "zorblax" in new_words and before.read("wiggle the zorblax").unread_words
    cfg = quick(dense_steps=0, moe_steps=6, val_fraction=0.0, init_checkpoint=str(init))
    result = train_policy(renamed_dataset, tmp_path / "z", cfg)
    assert result.records[0] == {"kind": "init", "step": 0, "checkpoint": str(init), "new_words": new_words}

    after = load_tokenizer(tmp_path / "z")  # the new words are read, every known word keeps its id
    assert not after.read("wiggle the zorblax").unread_words
    assert all(after.hf.convert_tokens_to_ids(w) == i for w, i in before.hf.get_vocab().items())
    assert load_checkpoint(tmp_path / "z").cfg.vocab_size == before.vocab_size + len(new_words)
    old, new = load_file(init / "model.safetensors"), load_file(tmp_path / "z" / "model.safetensors")
    v, embed = before.vocab_size, "trunk.instruction_embed.weight"
    assert torch.equal(new[embed][:v], old[embed])  # the trunk's known words stay frozen in stage 3
    assert not torch.allclose(new[embed][v:], old[embed].mean(0).expand(len(new_words), -1))  # the new ones learned
    assert new["reasoning.lm_head.weight"].shape[0] == new["action_head.reasoning_embed.weight"].shape[0] == v + len(new_words)

    with monkeypatch.context() as patch:  # cut short and resumed: the same model as in one go
        interrupt_at(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            train_policy(renamed_dataset, tmp_path / "cut", dataclasses.replace(cfg, save_every=2))
    train_policy(renamed_dataset, tmp_path / "cut", dataclasses.replace(cfg, save_every=2, resume=True))
    resumed = load_file(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(new[k], resumed[k]) for k in new)
