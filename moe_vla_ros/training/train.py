"""The `moe_vla_train` command: dense warm-up -> upcycle -> MoE tuning on a demonstration dataset.

    moe_vla_train --dataset DATA --out CKPT --preset small
    moe_vla_train ... --dense-baseline active   # the dense baseline of equal active parameters,
                                                # one dense stage of --dense-steps + --moe-steps

    moe_vla_train ... --save-every 250          # a resumable state every 250 steps; after an
    moe_vla_train ... --save-every 250 --resume # interruption the same command + --resume goes on

Writes into --out: the checkpoint (model.safetensors, config.json, tokenizer files),
train_config.json, train_log.jsonl (one record per log step, kind "train", and per
evaluation, kind "eval"), expert_usage.jsonl (per-layer expert load at every MoE-stage
evaluation), loss_curves.png and expert_usage.png.

`train_policy(dataset_dir, out_dir, TrainConfig(...))` is the programmatic API the CLI wraps.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from moe_vla_ros.cli import DefaultsHelpFormatter, add_output_argument, add_progress_argument, bad_input, parse_pairs, run_tool, tool_parser
from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.data.dataset import DemoDataset
from moe_vla_ros.data.lerobot.mapping import LeRobotMapping, LeRobotMappingError
from moe_vla_ros.data.lerobot.reader import LeRobotDemoDataset
from moe_vla_ros.model.baselines import DENSE_WIDTHS, dense_baseline
from moe_vla_ros.model.checkpoint import CONFIG_FILE, load_checkpoint, load_tokenizer, save_checkpoint
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.model.vla import MoEVLA
from moe_vla_ros.runtime.tokenization import InstructionTokenizer, dataset_texts
from moe_vla_ros.training import plots
from moe_vla_ros.training.augment import drop_state, random_shift
from moe_vla_ros.training.data import (
    VLADataset,
    iterate_batches,
    normalization_from_episodes,
    open_training_dataset,
    split_episodes,
    start_weights,
)
from moe_vla_ros.training.evaluate import evaluate
from moe_vla_ros.training.feature_cache import dataset_features, not_cacheable_reason
from moe_vla_ros.training.instruction_variants import vocabulary_texts
from moe_vla_ros.training.resume import TrainingState, load_state, remove_state, save_state, truncate_lines
from moe_vla_ros.training.stages import (
    STAGE_DENSE,
    STAGE_MOE,
    cosine_lr,
    dense_warmup_parameters,
    freeze_for_moe_tuning,
    learn_new_instruction_words,
    upcycle_model,
)
from moe_vla_ros.training.train_config import TrainConfig

TRAIN_LOG = "train_log.jsonl"
USAGE_LOG = "expert_usage.jsonl"


@dataclasses.dataclass
class TrainResult:
    """What a run produced: the checkpoint folder, final numbers and every log record."""

    out_dir: Path
    final_train_loss: float
    final_eval: dict[str, Any]
    records: list[dict[str, Any]]
    model: MoEVLA


class RunLog:
    """Appends JSON lines to train_log.jsonl / expert_usage.jsonl and keeps them in memory.
    `resume_lines` ({file name: lines}): continue a resumed run's logs from their first lines."""

    def __init__(self, out_dir: Path, resume_lines: dict[str, int] | None = None) -> None:
        self.records: list[dict[str, Any]] = []
        self.usage: list[dict[str, Any]] = []
        if resume_lines is not None:
            for name, kept in ((TRAIN_LOG, self.records), (USAGE_LOG, self.usage)):
                kept.extend(json.loads(line) for line in truncate_lines(out_dir / name, resume_lines.get(name, 0)))
        mode = "a" if resume_lines is not None else "w"
        self._train = open(out_dir / TRAIN_LOG, mode)
        self._usage = open(out_dir / USAGE_LOG, mode)

    @property
    def lines(self) -> dict[str, int]:
        return {TRAIN_LOG: len(self.records), USAGE_LOG: len(self.usage)}

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._train.write(json.dumps(record) + "\n")
        self._train.flush()

    def write_usage(self, record: dict[str, Any]) -> None:
        self.usage.append(record)
        self._usage.write(json.dumps(record) + "\n")
        self._usage.flush()

    def close(self) -> None:
        self._train.close()
        self._usage.close()


def build_model_config(dataset: DemoDataset, tokenizer: InstructionTokenizer, cfg: TrainConfig, normalization) -> ModelConfig:
    """The preset (with overrides) for the dataset's sensors, the tokenizer and the normalisation
    stats; its dense baseline when `cfg.dense_baseline` is set."""
    preset = getattr(ModelConfig, cfg.preset)().with_overrides(cfg.model_overrides)
    if cfg.dense_baseline:
        preset = dense_baseline(preset, cfg.dense_baseline)
    contract = PolicyContract(
        sensors=dataset.contract,
        chunk_length=cfg.chunk_length or preset.contract.chunk_length,
        normalization=normalization,
        max_instruction_tokens=tokenizer.max_instruction_tokens,
        max_reasoning_tokens=tokenizer.max_reasoning_tokens,
    )
    return dataclasses.replace(preset.replace_contract(contract), vocab_size=tokenizer.vocab_size)


def load_initial_checkpoint(
    directory: str | os.PathLike, dataset: DemoDataset,
    expand_instructions: Callable[[list[str]], Iterable[str]] | None = None,
) -> tuple[MoEVLA, InstructionTokenizer, list[str]]:
    """The checkpoint to fine-tune, its tokenizer and the words the dataset adds to it. Raises
    ContractError when the dataset's sensors differ from the checkpoint's. Words of the dataset
    (tokenization.dataset_texts) that the tokenizer lacks are appended to its vocabulary and the
    model's word tables grow to match (known words keep their ids and rows; stage 3 learns the
    new ones: stages.learn_new_instruction_words), so they never read as the unknown token."""
    model = load_checkpoint(directory, expected_contract=dataset.contract)
    tokenizer = load_tokenizer(directory)
    added = tokenizer.new_words(dataset_texts(dataset, expand_instructions))
    if added:
        tokenizer = tokenizer.with_words(added)
        model.grow_vocabulary(tokenizer.vocab_size)
    return model, tokenizer, added


def _optimizer(params: Sequence[torch.nn.Parameter], lr: float, weight_decay: float,
               undecayed: Sequence[torch.nn.Parameter] = ()) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, norms, embeddings' 1-D params, nor on
    the matrices in `undecayed`: those with rows that must not move)."""
    keep = {id(p) for p in undecayed}
    decay = [p for p in params if p.dim() >= 2 and id(p) not in keep]
    no_decay = [p for p in params if p.dim() < 2 or id(p) in keep]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def _eval_and_log(model: MoEVLA, val: VLADataset, log: RunLog, step: int, stage: str, cfg: TrainConfig) -> dict:
    metrics = evaluate(
        model, val, batch_size=cfg.batch_size * 2, max_samples=cfg.max_eval_samples,
        generated_samples=cfg.eval_generated_samples, device=cfg.device,
    )
    loads = {k: metrics.pop(k) for k in ("trunk_expert_load", "action_head_expert_load")}
    log.write({"kind": "eval", "step": step, "stage": stage, **metrics})
    if loads["trunk_expert_load"] or loads["action_head_expert_load"]:
        layers = {"trunk_moe_layers": list(model.cfg.trunk.moe_layers),
                  "action_head_moe_layers": list(model.cfg.action_head.moe_layers)}
        log.write_usage({"step": step, "stage": stage, **layers, **loads})
    return metrics


@dataclasses.dataclass
class _Run:
    """One training run's moving parts: what every stage trains with and how it is saved."""

    model: MoEVLA
    out: Path
    cfg: TrainConfig
    train: VLADataset
    val: VLADataset
    batches: Iterator[torch.Tensor]
    augment_rng: torch.Generator
    log: RunLog
    bar: tqdm

    def generator_states(self) -> dict[str, torch.Tensor]:
        states = {"torch": torch.get_rng_state(), "augment": self.augment_rng.get_state()}
        if self.train.variants is not None:
            states["variants"] = self.train.variant_generator.get_state()
        return states

    def restore(self, state: TrainingState) -> None:
        """Continue where `state` was saved: weights, random generators, batch order (the batches
        of the steps done are drawn again: the order's position within an epoch is no generator state)."""
        self.model.load_state_dict(state.model)
        torch.set_rng_state(state.generators["torch"])
        self.augment_rng.set_state(state.generators["augment"])
        if self.train.variants is not None:
            self.train.variant_generator.set_state(state.generators["variants"])
        for _ in range(state.step):
            next(self.batches)
        self.bar.update(state.step)

    def save(self, stage: str, step: int, stage_step: int, optimizer: torch.optim.Optimizer) -> None:
        save_state(self.out, TrainingState(
            self.cfg.to_dict(), stage, step, stage_step, self.model.state_dict(), optimizer.state_dict(),
            self.generator_states(), self.log.lines))

    def stage(self, params: list[torch.nn.Parameter], stage: str, steps: int, lr: float, first_step: int,
              resume: TrainingState | None = None,
              undecayed: Sequence[torch.nn.Parameter] = ()) -> tuple[int, float, dict]:
        """Train `params` (no weight decay on `undecayed`) for `steps` steps (from
        `resume.stage_step` when resuming this stage); returns (next global step, last loss, last eval metrics)."""
        model, cfg, log = self.model, self.cfg, self.log
        optimizer = _optimizer(params, lr, cfg.weight_decay, undecayed)
        done = 0
        if resume is not None:
            optimizer.load_state_dict(resume.optimizer)
            done = resume.stage_step
        mean_state = torch.tensor(model.cfg.contract.normalization.state_mean, dtype=torch.float32, device=cfg.device)
        model.train()
        last_loss, metrics, start = float("nan"), {}, time.perf_counter()
        for i in range(done, steps):
            step = first_step + i
            current_lr = cosine_lr(i, steps, lr, cfg.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = current_lr
            batch = {k: v.to(cfg.device) for k, v in self.train.batch(next(self.batches)).items()}
            batch["images"] = random_shift(batch["images"], cfg.image_shift_pixels, self.augment_rng)
            batch["state"] = drop_state(batch["state"], mean_state, cfg.state_dropout, self.augment_rng)
            losses = model.compute_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            last_loss = float(losses.total.detach())
            if i % cfg.log_every == 0 or i == steps - 1:
                log.write({
                    "kind": "train", "step": step, "stage": stage, "lr": current_lr, "loss": last_loss,
                    "action_loss": float(losses.action), "reasoning_loss": float(losses.reasoning),
                    "moe_aux": float(losses.moe_aux), "reasoning_accuracy": float(losses.reasoning_accuracy),
                    "target_loss": float(losses.target), "elapsed_s": time.perf_counter() - start,
                })
                self.bar.set_postfix(stage=stage, loss=f"{last_loss:.3f}")
            self.bar.update(1)
            if (i + 1) % cfg.eval_every == 0 or i == steps - 1:
                metrics = _eval_and_log(model, self.val, log, step, stage, cfg)
            if cfg.save_every and (step + 1) % cfg.save_every == 0 and i < steps - 1:
                self.save(stage, step + 1, i + 1, optimizer)
        return first_step + steps, last_loss, metrics


def train_policy(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: TrainConfig | None = None,
                 lerobot_map: LeRobotMapping | None = None) -> TrainResult:
    """Train a policy on the dataset at `dataset_dir` (ours, or a LeRobot v3.0 folder read through
    `lerobot_map`); write checkpoint, logs and plots to `out_dir`. With `cfg.resume`, continue the
    run saved there (training/resume.py)."""
    cfg = cfg or TrainConfig()
    out = Path(out_dir)
    if (out / CONFIG_FILE).exists() and not cfg.overwrite:
        raise FileExistsError(f"{out} already holds a checkpoint; pass overwrite=True (--overwrite) to replace it")
    resume = load_state(out, cfg) if cfg.resume else None
    if cfg.resume and resume is None and cfg.progress:
        print(f"nothing to resume in {out}: starting from the beginning")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))

    image_size = None
    if cfg.init_checkpoint:  # LeRobot frames are resized to the fine-tuned model's cameras
        from moe_vla_ros.model.checkpoint import read_checkpoint_config

        sensors = read_checkpoint_config(cfg.init_checkpoint)[0].contract.sensors
        image_size = (sensors.image_height, sensors.image_width)
    dataset = open_training_dataset(dataset_dir, lerobot_map, image_size)
    if not getattr(dataset, "complete", True):
        warnings.warn(f"{dataset_dir}: writing this dataset was interrupted ({len(dataset)} episodes were written): "
                      "training on those; generate it again for the full set", stacklevel=2)
    if isinstance(dataset, LeRobotDemoDataset) and cfg.progress:
        print(dataset.describe())
    train_eps, val_eps = split_episodes(len(dataset), cfg.val_fraction, cfg.seed)
    new_words: list[str] = []
    if cfg.init_checkpoint:
        model, tokenizer, new_words = load_initial_checkpoint(
            cfg.init_checkpoint, dataset, vocabulary_texts if cfg.variants.enabled else None)
        model.to(cfg.device)
        if new_words and cfg.progress:
            print(f"vocabulary: {len(new_words)} word(s) of the dataset are new to {cfg.init_checkpoint}, "
                  f"fine-tuning learns them: {new_words[:10]}{' ...' if len(new_words) > 10 else ''}")
    else:
        preset = getattr(ModelConfig, cfg.preset)().contract
        tokenizer = InstructionTokenizer.from_dataset(
            dataset,
            max_instruction_tokens=cfg.max_instruction_tokens or preset.max_instruction_tokens,
            max_reasoning_tokens=cfg.max_reasoning_tokens or preset.max_reasoning_tokens,
            expand_instructions=vocabulary_texts if cfg.variants.enabled else None,
        )
        model_cfg = build_model_config(dataset, tokenizer, cfg, normalization_from_episodes(dataset, train_eps))
        model = MoEVLA(model_cfg, use_moe=False).to(cfg.device)
    train = VLADataset(dataset, model.cfg.contract, tokenizer, train_eps, variants=cfg.variants)
    val = VLADataset(dataset, model.cfg.contract, tokenizer, val_eps) if val_eps else train
    _reuse_backbone_features(model, cfg, train, val)

    generator = torch.Generator().manual_seed(cfg.seed)
    weights = start_weights(train.step_in_episode, cfg.start_oversampling, cfg.start_steps)
    run = _Run(model, out, cfg, train, val, iterate_batches(len(train), cfg.batch_size, generator, weights),
               torch.Generator(device=cfg.device).manual_seed(cfg.seed + 1),
               RunLog(out, resume.log_lines if resume else None),
               tqdm(total=cfg.dense_steps + cfg.moe_steps, disable=not cfg.progress, desc="train", unit="step"))
    log = run.log
    in_moe_stage = resume is not None and resume.stage == STAGE_MOE
    try:
        if cfg.init_checkpoint:  # already MoE: straight to stage 3
            step, loss, metrics = 0, float("nan"), {}
            if resume is None:
                log.write({"kind": "init", "step": 0, "checkpoint": str(cfg.init_checkpoint), "new_words": new_words})
        elif in_moe_stage:  # the dense stage is done
            step, loss, metrics = cfg.dense_stage_steps, float("nan"), {}
        else:
            if resume is not None:
                run.restore(resume)
            step, loss, metrics = run.stage(dense_warmup_parameters(model), STAGE_DENSE, cfg.dense_stage_steps,
                                            cfg.lr, 0, resume)
        if not cfg.dense_baseline:  # a dense baseline has no MoE stage: every step was dense
            if not cfg.init_checkpoint:
                upcycled = upcycle_model(model, cfg.upcycle_noise_std, seed=cfg.seed)
                if not in_moe_stage:
                    log.write({"kind": "upcycle", "step": step, "layers": upcycled, "noise_std": cfg.upcycle_noise_std})
                model.to(cfg.device)
            params = freeze_for_moe_tuning(model)
            undecayed: list[torch.nn.Parameter] = []
            if new_words:  # the instruction embedding's new rows learn too, its known rows stay
                undecayed.append(learn_new_instruction_words(model, model.cfg.vocab_size - len(new_words)))
                params.append(undecayed[-1])
            if in_moe_stage:
                run.restore(resume)
            step, moe_loss, moe_metrics = run.stage(params, STAGE_MOE, cfg.moe_steps, cfg.stage3_lr, step,
                                                    resume if in_moe_stage else None, undecayed)
            if cfg.moe_steps:
                loss, metrics = moe_loss, moe_metrics
    finally:
        run.bar.close()
        log.close()

    model.eval()
    summary = {"dataset": str(dataset_dir), "steps": step, "final_train_loss": loss, "final_eval": metrics,
               "train_episodes": train_eps, "val_episodes": val_eps, "parameters": model.parameter_counts()}
    save_checkpoint(model, out, tokenizer, metadata={"training": summary, "train_config": cfg.to_dict()})
    remove_state(out)
    upcycle_step = None if cfg.init_checkpoint or cfg.dense_baseline else cfg.dense_steps
    plots.plot_loss_curves(log.records, out / "loss_curves.png", upcycle_step=upcycle_step)
    plots.plot_expert_usage(log.usage, out / "expert_usage.png")
    return TrainResult(out, loss, metrics, log.records, model)


def _reuse_backbone_features(model: MoEVLA, cfg: TrainConfig, *datasets: VLADataset) -> None:
    """Give the datasets their frames' backbone features when they do not change during training."""
    reason = not_cacheable_reason(model.cfg, cfg.image_shift_pixels)
    if not cfg.reuse_backbone_features or reason is not None:
        if cfg.progress and cfg.reuse_backbone_features:
            print(f"backbone features are computed at every step: {reason}")
        return
    for data in {id(d): d for d in datasets}.values():
        data.use_backbone_features(dataset_features(model.vision, data.images, cfg.feature_cache_dir, cfg.progress,
                                                    data.episode_starts))


PROG = "moe_vla_train"


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, TrainConfig]:
    defaults = TrainConfig()
    p = tool_parser(PROG, "Train the MoE-VLA policy: dense warm-up -> upcycle -> MoE tuning.",
                    formatter_class=DefaultsHelpFormatter)
    p.add_argument("--dataset", required=True,
                   help="dataset folder: ours (meta.json + episodes/) or a LeRobotDataset v3.0 (meta/info.json)")
    p.add_argument("--lerobot-map", action="append", default=[], metavar="KEY=VALUE",
                   help="LeRobot features -> our contract, repeated: state=KEY, action=KEY, joint.OURS=THEIRS, "
                        "camera.OURS=IMAGE_KEY, image_size=HxW, degrees=true, scale=X, reasoning=KEY, target=KEY, "
                        "check_actions=false")
    add_output_argument(p, "output folder for checkpoint, logs and plots")
    p.add_argument("--preset", choices=("small", "tiny"), default=defaults.preset, help="model size preset")
    p.add_argument("--config", help="model overrides: a JSON file or an inline JSON object")
    p.add_argument("--init-checkpoint", default=None,
                   help="fine-tune this trained checkpoint folder (stage 3 only: pass --dense-steps 0)")
    p.add_argument("--dense-baseline", choices=DENSE_WIDTHS, default=None,
                   help="train the dense baseline instead: each MoE layer one dense FFN of the MoE's active "
                        "(top_k + shared experts) or total (all experts) width, one dense stage of "
                        "--dense-steps + --moe-steps steps, no upcycling")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of init, split, batches and noise")
    p.add_argument("--dense-steps", type=int, default=defaults.dense_steps, help="stage 1 (dense warm-up) steps")
    p.add_argument("--moe-steps", type=int, default=defaults.moe_steps, help="stage 3 (MoE tuning) steps")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="samples per step")
    p.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate")
    p.add_argument("--moe-lr", type=float, default=None, help="stage 3 peak learning rate (default: --lr)")
    p.add_argument("--eval-every", type=int, default=defaults.eval_every, help="steps between evaluations")
    p.add_argument("--image-shift", type=int, default=defaults.image_shift_pixels,
                   help="random-shift augmentation of training images, pixels (0: off)")
    p.add_argument("--state-dropout", type=float, default=defaults.state_dropout,
                   help="probability of replacing a sample's joint state by the dataset mean (0: off)")
    p.add_argument("--start-oversampling", type=float, default=defaults.start_oversampling,
                   help="draw samples of the first --start-steps steps of each episode this many times as often (1: uniform)")
    p.add_argument("--start-steps", type=int, default=defaults.start_steps,
                   help="episode-start steps that --start-oversampling applies to")
    p.add_argument("--instruction-variants", type=float, default=defaults.instruction_variants, metavar="P",
                   help="probability that a sample shows a paraphrase of its instruction (synonyms, polite "
                        "forms); the tokenizer learns their words (default: off)")
    p.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="share of held-out episodes")
    p.add_argument("--device", choices=("cpu", "cuda"), default=defaults.device, help="torch device")
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in --out")
    p.add_argument("--save-every", type=int, default=defaults.save_every, metavar="N",
                   help="write a resumable state into --out every N steps (0: never)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run saved in --out (same settings; none saved: start from the beginning)")
    p.add_argument("--no-feature-reuse", action="store_true",
                   help="run a frozen backbone at every step instead of once per frame (slower, same training)")
    p.add_argument("--feature-cache", default=None, metavar="DIR",
                   help="keep a frozen backbone's features of the dataset in DIR, shared by runs on the same "
                        "data and backbone (default: computed by each run)")
    add_progress_argument(p)
    args = p.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.config:
        text = args.config if args.config.lstrip().startswith("{") else Path(args.config).read_text()
        overrides = json.loads(text)
    cfg = TrainConfig(
        preset=args.preset, model_overrides=overrides, init_checkpoint=args.init_checkpoint,
        dense_baseline=args.dense_baseline, seed=args.seed,
        dense_steps=args.dense_steps, moe_steps=args.moe_steps, batch_size=args.batch_size, lr=args.lr,
        moe_lr=args.moe_lr, eval_every=args.eval_every, image_shift_pixels=args.image_shift,
        state_dropout=args.state_dropout, start_oversampling=args.start_oversampling,
        start_steps=args.start_steps, instruction_variants=args.instruction_variants, val_fraction=args.val_fraction, device=args.device,
        num_threads=args.num_threads, overwrite=args.overwrite, progress=args.progress,
        save_every=args.save_every, resume=args.resume, reuse_backbone_features=not args.no_feature_reuse,
        feature_cache_dir=args.feature_cache,
    )
    return args, cfg


def main(argv: Sequence[str] | None = None) -> int:
    """`moe_vla_train`: exit 0 trained, 2 bad arguments or inputs (config, dataset, checkpoint, an
    occupied --out), 1 failed; errors on stderr."""
    return run_tool(PROG, lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    with bad_input((ValueError, OSError)):  # bad values / unreadable --config
        args, cfg = parse_args(argv)
    pairs = parse_pairs(args.lerobot_map, "=", "--lerobot-map KEY=VALUE", LeRobotMappingError)
    result = train_policy(args.dataset, args.out, cfg, LeRobotMapping.from_pairs(pairs) if pairs else None)
    ev = result.final_eval
    print(
        f"saved {result.out_dir}: final train loss {result.final_train_loss:.4f}, "
        f"held-out action L1 {ev.get('action_l1_rad', float('nan')):.4f} rad, "
        f"reasoning token accuracy {ev.get('reasoning_accuracy', float('nan')):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
