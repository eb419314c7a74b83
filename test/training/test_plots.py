"""Tests of moe_vla_ros/training/plots.py: PNG files from log records."""

from moe_vla_ros.training.plots import plot_expert_usage, plot_loss_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plots_write_png_files(tmp_path):
    records = [
        {"kind": "train", "step": s, "loss": 2.0 / (s + 1), "action_loss": 1.0, "reasoning_loss": 1.0, "moe_aux": 0.0}
        for s in range(5)
    ] + [{"kind": "eval", "step": 4, "action_l1_rad": 0.1, "action_l1_rad_no_reasoning": 0.2}]
    usage = [
        {"step": 2, "trunk_expert_load": [[0.5, 0.5], [1.0, 0.0]], "action_head_expert_load": [[0.25] * 4]},
        {"step": 4, "trunk_moe_layers": [1, 3], "trunk_expert_load": [[0.4, 0.6], [0.9, 0.1]], "action_head_expert_load": [[0.25] * 4]},
    ]
    for path in (
        plot_loss_curves(records, tmp_path / "loss.png", upcycle_step=2),
        plot_expert_usage(usage, tmp_path / "usage.png"),
        plot_expert_usage([], tmp_path / "empty.png"),
    ):
        assert path.read_bytes()[:8] == PNG_MAGIC
