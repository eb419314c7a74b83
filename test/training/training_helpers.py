"""Helpers of the training tests."""

from moe_vla_ros.training.train import RunLog
from moe_vla_ros.training.train_config import TrainConfig


def quick(**kwargs) -> TrainConfig:
    """A seconds-long tiny run (8 dense + 8 MoE steps, a log record every step); `kwargs` override."""
    base = dict(preset="tiny", dense_steps=8, moe_steps=8, batch_size=8, eval_every=8, log_every=1,
                eval_generated_samples=4, max_eval_samples=32, progress=False)
    return TrainConfig(**{**base, **kwargs})


def interrupt_at(monkeypatch, step: int) -> None:
    """The run stops (KeyboardInterrupt, as Ctrl-C) right after it logs training step `step`."""
    original = RunLog.write

    def write(self, record):
        original(self, record)
        if record.get("kind") == "train" and record["step"] == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunLog, "write", write)
