"""load_policy: a model folder + RuntimeConfig -> a ready Policy (ONNX Runtime, torch or Triton backend).

    from moe_vla_ros.runtime.loader import load_policy
    policy = load_policy("models/demo", RuntimeConfig(), expected_contract=node_sensor_contract)

Everything that can be wrong with a model folder (missing or modified files, unreadable ONNX,
unsupported or inconsistent opset, graph I/O that does not match the manifest) raises
ModelLoadError here; a contract that differs from `expected_contract` raises ContractError
naming both values. The torch and Triton backends (and tritonclient) are imported only when asked for.

The "triton" backend (cfg.triton: TritonConfig) returns a TritonPolicy: the folder gives tokenizer,
normalisation and contract, the server the stage numerics. Before connecting, a deadline that is
not shorter than the model's control period is refused (TritonConfigError); at load every served
model is checked against the folder's manifest, so a wrong contract or an unreachable server
fails here with an error naming the server's url and what differs (ModelLoadError,
ServerUnavailableError). With `cfg.triton.fallback_onboard` the folder's ONNX Runtime policy is
loaded too (same providers, formulation, precision; on-target verification as configured) and
both are returned as a FallbackPolicy (runtime/triton_policy.py).

With `cfg.verify_on_target` (ONNX Runtime backend) the loaded variant is run on the folder's
golden observations on the providers it actually got (runtime/golden.py) and held to its own
export gate. A variant that misses it is closed and the next one is tried, each miss recorded
with its reason: the requested precision, then fp32 of the same formulation, then (formulation
"auto" only) fp32 of the other formulations; a fallback that cannot even be loaded (e.g. sparse
graphs under TensorRT) is skipped with its reason. When none passes the load is refused
(ModelLoadError listing every reason). A golden file whose sha256 differs from the manifest's is
refused (GoldenError), never skipped; a folder without golden outputs (exported before they
existed) loads with verification "unavailable". The outcome is in `policy.metadata.verification`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

from moe_vla_ros.contract import SensorContract
from moe_vla_ros.runtime.config import RuntimeConfig
from moe_vla_ros.runtime.golden import GoldenError, load_golden, target_gate, verify_on_target
from moe_vla_ros.runtime.manifest import ModelLoadError
from moe_vla_ros.runtime.types import Policy

__all__ = ["GoldenError", "ModelLoadError", "load_policy"]

logger = logging.getLogger(__name__)


def load_policy(
    model_dir: str | os.PathLike,
    cfg: RuntimeConfig | None = None,
    expected_contract: SensorContract | None = None,
) -> Policy:
    """Load the policy in `model_dir` with the backend named by `cfg.backend` (see RuntimeConfig)."""
    cfg = cfg or RuntimeConfig()
    if cfg.backend == "triton":
        return _load_triton(Path(model_dir), cfg, expected_contract)
    if cfg.backend == "torch":
        from moe_vla_ros.runtime.torch_policy import TorchPolicy

        return TorchPolicy.load(model_dir, cfg, expected_contract)
    from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy

    if not cfg.verify_on_target:
        return OnnxRuntimePolicy.load(model_dir, cfg, expected_contract)
    return _load_verified(Path(model_dir), cfg, expected_contract)


def _load_triton(model_dir: Path, cfg: RuntimeConfig, expected_contract: SensorContract | None) -> Policy:
    """TritonPolicy (checked against the server), in a FallbackPolicy when asked (module docstring)."""
    from moe_vla_ros.runtime.manifest import read_manifest
    from moe_vla_ros.runtime.triton_policy import FallbackPolicy, TritonPolicy

    triton = cfg.triton
    contract = read_manifest(model_dir, verify_checksums=False).contract  # the full check comes with the load
    triton.check_deadline(contract.sensors.control_rate_hz)
    remote = TritonPolicy.load(model_dir, triton, cfg, expected_contract)
    if not triton.fallback_onboard:
        return remote
    try:
        onboard = load_policy(model_dir, dataclasses.replace(cfg, backend="onnxruntime"), expected_contract)
    except BaseException:
        remote.close()
        raise
    logger.info("Triton server %s with the onboard fallback %s on %s", triton.url, onboard.metadata.backend,
                ",".join(onboard.metadata.execution_providers))
    return FallbackPolicy(remote, onboard, retry_primary_s=triton.retry_primary_s)


def _load_verified(model_dir: Path, cfg: RuntimeConfig, expected_contract: SensorContract | None) -> Policy:
    """load + on-target verification with fallback (see the module docstring)."""
    from moe_vla_ros.runtime.onnx_policy import OnnxRuntimePolicy

    start = time.perf_counter()
    policy = OnnxRuntimePolicy.load(model_dir, cfg, expected_contract)
    manifest = policy.manifest
    requested = f"{policy.metadata.formulation}/{cfg.precision}"
    try:
        golden = load_golden(model_dir, manifest)
    except GoldenError:
        policy.close()
        raise
    if golden is None:
        note = f"{model_dir} has no golden outputs (exported before on-target verification): not verified"
        logger.warning(note)
        policy.update_metadata(verification={"status": "unavailable", "variant": requested, "requested": requested,
                                              "fallbacks": [], "summary": note, "seconds": 0.0,
                                              "load_seconds": time.perf_counter() - start})
        return policy
    tie_margin = manifest.verification.get("tie_margin")
    chain = _fallback_chain(manifest, policy.metadata.formulation, cfg)
    misses: list[str] = []
    verify_seconds = 0.0
    for i, (formulation, precision) in enumerate(chain):
        variant = f"{formulation}/{precision}"
        if i > 0:
            try:
                policy = OnnxRuntimePolicy.load(
                    model_dir, dataclasses.replace(cfg, formulation=formulation, precision=precision), expected_contract
                )
            except ModelLoadError as e:
                misses.append(f"{variant} cannot be loaded: {e}")
                continue
        gate = target_gate(manifest, formulation, precision, policy.metadata.execution_providers, cfg.trt_fp16)
        result = verify_on_target(policy, golden, gate, tie_margin)
        verify_seconds += result.seconds
        providers = ",".join(policy.metadata.execution_providers)
        if result.passed:
            seconds = time.perf_counter() - start
            m = result.metrics
            detail = (f"{variant} on {providers}: max action error {m['max_action_error']:.2g} rad "
                      f"(gate {gate['max_action_error']:.2g}), router agreement {m['router_agreement']:.3f}, "
                      f"reasoning {m['reasoning_agreement']:.2f} over {m['observations']} golden observations")
            if misses:
                summary = f"FALLBACK to {detail}; refused: " + "; ".join(misses)
                logger.warning("on-target verification: %s", summary)
            else:
                summary = f"passed: {detail}"
                logger.info("on-target verification %s (%.2f s, with loading %.2f s)", summary, verify_seconds, seconds)
            policy.update_metadata(verification={
                "status": "fallback" if misses else "passed", "variant": variant, "requested": requested,
                "fallbacks": list(misses), "metrics": dict(m), "thresholds": dict(gate),
                "seconds": verify_seconds, "load_seconds": seconds, "summary": summary,
            })
            return policy
        misses.append(f"{variant} on {providers} missed its gate against the golden outputs: {result.reason}")
        policy.close()
    raise ModelLoadError(f"{model_dir}: no variant passed on-target verification: " + "; ".join(misses))


def _fallback_chain(manifest, formulation: str, cfg: RuntimeConfig) -> list[tuple[str, str]]:
    """(formulation, precision) to try in order: the loaded variant, fp32 of its formulation, then
    (formulation "auto") fp32 of the other formulations."""
    chain = [(formulation, cfg.precision)]
    if cfg.precision != "fp32":
        chain.append((formulation, "fp32"))
    if cfg.formulation == "auto":
        chain += [(f, "fp32") for f in manifest.formulations() if f != formulation]
    return chain
