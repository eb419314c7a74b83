"""Robot-side inference (numpy + onnxruntime + tokenizers; torch only in the torch backend).

    from moe_vla_ros.runtime.loader import load_policy
    from moe_vla_ros.runtime.config import RuntimeConfig
    policy = load_policy("models/demo", RuntimeConfig())
    output = policy.infer(observation)          # moe_vla_ros.runtime.types.PolicyOutput

Modules: types (the Policy interface), config (RuntimeConfig), loader (load_policy),
manifest (model folder format + validation), providers (ONNX Runtime sessions), onnx_policy /
torch_policy (the backends), staged_policy (the pipeline they share), preprocessing,
tokenization (the instruction tokenizers: training's and the robot's), decoding (the greedy
reasoning loop both backends and the torch model share), telemetry (expert usage),
sample_observations (seeded observations for tests).
Nothing is imported here, so importing the package stays cheap.
"""
