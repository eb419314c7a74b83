"""Helpers of the training tests."""

from moe_vla_ros.training.train_config import TrainConfig


def quick(**kwargs) -> TrainConfig:
    """A seconds-long tiny run (8 dense + 8 MoE steps, a log record every step); `kwargs` override."""
    base = dict(preset="tiny", dense_steps=8, moe_steps=8, batch_size=8, eval_every=8, log_every=1,
                eval_generated_samples=4, max_eval_samples=32, progress=False)
    return TrainConfig(**{**base, **kwargs})
