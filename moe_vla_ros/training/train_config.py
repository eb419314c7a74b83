"""TrainConfig: every knob of `train_policy` / the `train` command, documented and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from moe_vla_ros.errors import BadInputError
from moe_vla_ros.model.baselines import DENSE_WIDTHS
from moe_vla_ros.model.component_configs import check_keys
from moe_vla_ros.model.config import ModelConfig
from moe_vla_ros.training.instruction_variants import InstructionVariantsConfig
from moe_vla_ros.validation import require_choice, require_int, require_non_negative, require_number, require_positive

PRESETS = ("small", "tiny")
DEVICES = ("cpu", "cuda")


@dataclass
class TrainConfig:
    """Training run settings.

    Model:
        preset: "small" (bundled demo model) or "tiny" (tests); see ModelConfig.small/tiny.
        model_overrides: partial ModelConfig.to_dict() tree merged into the preset (e.g.
            {"trunk": {"moe": {"num_experts": 4}}}); the contract always comes from the dataset.
        chunk_length, max_instruction_tokens, max_reasoning_tokens: contract fields the dataset
            does not define; None keeps the preset's values.
        init_checkpoint: fine-tune: start from this trained checkpoint folder (weights, model
            config, tokenizer and normalisation stats) instead of a fresh preset model. Its
            sensor contract must match the dataset's. The checkpoint is already an MoE model,
            so only stage 3 runs: dense_steps must be 0, and preset, model_overrides and the
            contract fields above do not apply (they must stay unset / empty).
        dense_baseline: None trains the MoE recipe. "active" / "total" trains the preset's (with
            overrides) dense baseline instead (model/baselines.py): each MoE layer a dense FFN of
            the MoE's active or total expert width, trained end to end in ONE dense stage of
            dense_steps + moe_steps steps (the MoE recipe's total; one warm-up and cosine
            schedule at lr), no upcycling. Same data, split, batch order and seed as the recipe.

    Schedule:
        seed: seeds model init, episode split, batch order, dropout and upcycling noise.
        dense_steps: stage 1 (dense warm-up) optimizer steps; 0 upcycles the initial model.
        moe_steps: stage 3 (MoE tuning, frozen trunk attention/vision/embeddings) steps.
        batch_size: samples per step.
        lr: peak AdamW learning rate of stage 1.
        moe_lr: peak learning rate of stage 3 (None: same as lr).
        warmup_steps: linear warm-up at the start of each stage (then cosine decay to 10%).
        weight_decay: AdamW weight decay.
        grad_clip: max global gradient norm (0 disables clipping).
        upcycle_noise_std: Gaussian noise on the upcycled experts' weights (0: exact copies).
        image_shift_pixels: training images are shifted by up to this many pixels in x and y,
            each image independently (training/augment.py; 0 disables).
        state_dropout: probability that a training sample's joint state is replaced by the
            dataset mean, so the policy learns to read the scene from the cameras (0 disables).
        start_oversampling: samples of an episode's first `start_steps` steps are drawn this
            many times as often as the others (1 = uniform). At the start pose only the
            cameras say where the target is; the few such samples otherwise barely count.
        start_steps: how many steps at each episode start `start_oversampling` applies to.
        instruction_variants: probability in [0, 1] that a training sample shows a paraphrase
            of its instruction (synonyms, polite forms: training/instruction_variants.py) instead
            of the recorded one; a fresh tokenizer learns every variant word, so the node reads
            the usual wordings instead of holding on unknown words. When fine-tuning, variants
            with words the checkpoint's tokenizer does not know are left out. 0 disables.
        variants_per_instruction: paraphrases generated per distinct instruction (>= 1).

    Evaluation and logging:
        val_fraction: share of episodes held out for evaluation.
        eval_every: evaluate every this many steps (and at the end of each stage).
        max_eval_samples: held-out samples per evaluation (evenly spaced).
        eval_generated_samples: samples evaluated with the model's own greedy reasoning.
        log_every: write a train_log.jsonl record every this many steps.
        progress: show a tqdm progress bar.

    Runtime:
        device: "cpu" or "cuda".
        num_threads: torch CPU threads (None leaves torch's default).
        overwrite: allow writing into an output folder that already holds a checkpoint.
        save_every: write a resumable training state (training/resume.py) every this many
            steps; 0: never.
        resume: continue the run saved in the output folder (its settings must match; with no
            saved state the run starts from the beginning).
        reuse_backbone_features: with a frozen backbone and no image shifts, compute the
            backbone's features of every frame once and train on them instead of running the
            backbone at every step (training/feature_cache.py: same training, ~2x faster on CPU).
        feature_cache_dir: folder where those features are kept between runs, one file per
            episode keyed by the backbone weights and the episode's images (runs on the same
            episodes share them, whatever their train/held-out split); None: computed by every run.
    """

    preset: str = "small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    chunk_length: int | None = None
    max_instruction_tokens: int | None = None
    max_reasoning_tokens: int | None = None
    init_checkpoint: str | None = None
    dense_baseline: str | None = None
    seed: int = 0
    dense_steps: int = 1500
    moe_steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    moe_lr: float | None = None
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    upcycle_noise_std: float = 0.005
    image_shift_pixels: int = 4
    state_dropout: float = 0.0
    start_oversampling: float = 1.0
    start_steps: int = 3
    instruction_variants: float = 0.0
    variants_per_instruction: int = 8
    val_fraction: float = 0.1
    eval_every: int = 250
    max_eval_samples: int = 512
    eval_generated_samples: int = 64
    log_every: int = 10
    progress: bool = True
    device: str = "cpu"
    num_threads: int | None = None
    overwrite: bool = False
    save_every: int = 0
    resume: bool = False
    reuse_backbone_features: bool = True
    feature_cache_dir: str | None = None

    def __post_init__(self) -> None:
        require_choice("preset", self.preset, PRESETS)
        if not isinstance(self.model_overrides, Mapping):
            raise BadInputError(f"model_overrides must be a mapping, got {type(self.model_overrides).__name__}")
        getattr(ModelConfig, self.preset)().with_overrides(self.model_overrides)  # raises naming a bad override
        for name in ("chunk_length", "max_instruction_tokens", "max_reasoning_tokens", "num_threads"):
            if getattr(self, name) is not None:
                require_int(name, getattr(self, name), 1)
        for name in ("seed", "dense_steps", "moe_steps", "warmup_steps", "eval_generated_samples", "image_shift_pixels",
                     "save_every"):
            require_int(name, getattr(self, name), 0)
        for name in ("batch_size", "eval_every", "max_eval_samples", "log_every", "start_steps", "variants_per_instruction"):
            require_int(name, getattr(self, name), 1)
        if self.dense_steps + self.moe_steps < 1:
            raise BadInputError(f"dense_steps + moe_steps must be >= 1, got {self.dense_steps} + {self.moe_steps}")
        require_positive("lr", self.lr)
        if self.moe_lr is not None:
            require_positive("moe_lr", self.moe_lr)
        for name in ("weight_decay", "grad_clip", "upcycle_noise_std"):
            require_non_negative(name, getattr(self, name))
        for name in ("state_dropout", "val_fraction"):
            require_number(name, getattr(self, name), 0, 1, high_open=True)
        require_number("instruction_variants", self.instruction_variants, 0, 1)
        require_number("start_oversampling", self.start_oversampling, 1)
        if self.init_checkpoint is not None:
            self._check_fine_tuning()
        if self.dense_baseline is not None:
            require_choice("dense_baseline", self.dense_baseline, DENSE_WIDTHS)
            if self.init_checkpoint is not None:
                raise BadInputError(f"dense_baseline={self.dense_baseline!r} trains a fresh dense model; "
                                    f"it cannot fine-tune init_checkpoint {self.init_checkpoint!r}")
        require_choice("device", self.device, DEVICES)
        if self.feature_cache_dir is not None and (not isinstance(self.feature_cache_dir, str) or not self.feature_cache_dir):
            raise BadInputError(f"feature_cache_dir must be a folder path or None, got {self.feature_cache_dir!r}")

    def _check_fine_tuning(self) -> None:
        if not isinstance(self.init_checkpoint, str) or not self.init_checkpoint:
            raise BadInputError(f"init_checkpoint must be a checkpoint folder path, got {self.init_checkpoint!r}")
        if self.dense_steps != 0:
            raise BadInputError(
                f"init_checkpoint {self.init_checkpoint!r} is already an MoE model: only stage 3 (moe_steps) "
                f"can run, so dense_steps must be 0 (got {self.dense_steps})"
            )
        if self.moe_steps < 1:
            raise BadInputError(f"fine-tuning from init_checkpoint needs moe_steps >= 1, got {self.moe_steps!r}")
        fixed = [n for n in ("chunk_length", "max_instruction_tokens", "max_reasoning_tokens") if getattr(self, n) is not None]
        if self.model_overrides or fixed:
            what = (["model_overrides"] if self.model_overrides else []) + fixed
            raise BadInputError(f"init_checkpoint fixes the model and its contract; do not also set {what}")

    @property
    def variants(self) -> InstructionVariantsConfig:
        """The instruction-variant settings of the training samples (seeded by `seed`)."""
        return InstructionVariantsConfig(self.instruction_variants, self.variants_per_instruction, self.seed)

    @property
    def dense_stage_steps(self) -> int:
        """Steps of stage 1: dense_steps, or every step (dense_steps + moe_steps) of a dense baseline."""
        return self.dense_steps + self.moe_steps if self.dense_baseline else self.dense_steps

    @property
    def stage3_lr(self) -> float:
        return self.lr if self.moe_lr is None else self.moe_lr

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        check_keys(cls, d)
        return cls(**d)

