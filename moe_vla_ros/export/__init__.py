"""Export a checkpoint to a verified ONNX model folder (torch side; the robot reads it with
moe_vla_ros.runtime).

    from moe_vla_ros.export.pipeline import export_policy
    from moe_vla_ros.export.config import ExportConfig
    manifest = export_policy("runs/ckpt", "models/demo", ExportConfig(int8=True))

or `moe_vla_export --checkpoint runs/ckpt --out models/demo --int8` (export/cli.py).
Modules: config, graphs (stage wrappers, op allowlist), verify (torch vs ONNX Runtime),
quantize (int8 / fp16 variants and their gate), pipeline, cli, demo_checkpoint (seeded random
checkpoints for tests and benchmarks), onnx_check (export one module, an ONNX Runtime CPU session,
op sets), examples (random batches shaped by a model config, the export dummies), errors.
"""
