"""PolicyRunner: when it commands, when it holds, and that bad or stale data never reaches a command.

The policy here is a small deterministic Policy implementation (a ramp from the observed state)
so the runner's decisions can be checked exactly; the node tests run the real exported model.
"""

import numpy as np
import pytest

from moe_vla_ros.contract import PolicyContract, SensorContract
from moe_vla_ros.control.chunk_config import ChunkExecutorConfig
from moe_vla_ros.control.joint_state import JointVector
from moe_vla_ros.control.policy_runner import JOINT_STATES, PolicyRunner, RunnerConfig
from moe_vla_ros.control.safety import SafetyLimits
from moe_vla_ros.runtime.types import Observation, Policy, PolicyMetadata, PolicyOutput, Reasoning

CONTRACT = PolicyContract(
    SensorContract(("front", "wrist"), 8, 8, ("a", "b"), control_rate_hz=10.0), chunk_length=8
)


class RampPolicy(Policy):
    """Chunk step k = observed position + 0.01 * (k + 1); records every call."""

    contract = CONTRACT

    def __init__(self, fail: bool = False):
        self.calls: list[tuple[Observation, bool]] = []
        self.resets = 0
        self.fail = fail

    @property
    def metadata(self):
        return PolicyMetadata("ramp", "test", ("CPUExecutionProvider",), False)

    def infer(self, observation, generate_reasoning=True):
        self.calls.append((observation, generate_reasoning))
        if self.fail:
            raise RuntimeError("model exploded")
        steps = 0.01 * np.arange(1, 9)[:, None]  # [H, 1]
        actions = observation.joint_positions[None, :] + steps  # [H, J]
        reasoning = Reasoning("go", np.zeros(4, np.int64), np.zeros(4, np.int64), 1, True, 0.001, observation.stamp)
        return PolicyOutput(actions, observation.stamp, reasoning, generate_reasoning, (), 0.002)

    def reset(self):
        self.resets += 1


def make_runner(policy=None, **overrides):
    policy = policy or RampPolicy()
    cfg = RunnerConfig(
        executor=ChunkExecutorConfig.from_contract(CONTRACT, refill_threshold_s=0.4, max_observation_age_s=0.3),
        input_timeout_s=0.5, startup_grace_s=1.0, default_instruction="reach", **overrides,
    )
    limits = SafetyLimits(("a", "b"), (-1, -1), (1, 1), (1.0, 1.0), (10.0, 10.0))
    runner = PolicyRunner(policy, cfg, limits)
    runner.activate(0.0)
    return runner, policy


def feed(runner, t, q=(0.0, 0.0), now=None):
    now = t if now is None else now
    img = np.zeros((8, 8, 3), np.uint8)
    runner.add_image("front", t, img, now)
    runner.add_image("wrist", t, img, now)
    runner.add_joint_state(t, JointVector(np.array(q, float), np.zeros(2)), now)


def test_commands_from_a_fresh_synchronised_observation():
    runner, policy = make_runner()
    feed(runner, 1.0)
    cmd = runner.step(lambda: 1.01)
    assert cmd is not None and cmd.trajectory is not None
    assert len(policy.calls) == 1 and policy.calls[0][0].stamp == 1.0 and policy.calls[0][1] is True
    assert np.all(np.abs(cmd.trajectory.positions) <= 1.0)
    # Chunk covers 0.8 s: no refill needed right away, and the same observation is never reused.
    assert runner.step(lambda: 1.05) is None
    assert len(policy.calls) == 1
    assert runner.counters.chunks_published == 1 and runner.commanding


def test_refill_uses_newest_observation_and_lower_reasoning_rate():
    runner, policy = make_runner()
    feed(runner, 1.0)
    runner.step(lambda: 1.0)
    feed(runner, 1.3)
    feed(runner, 1.5)  # newest wins
    cmd = runner.step(lambda: 1.5)  # 0.3 s of 0.8 s left < 0.4 s threshold
    assert cmd is not None and policy.calls[-1][0].stamp == 1.5
    assert policy.calls[-1][1] is False  # reasoning period 1 s not over: reuse


def test_stale_inputs_hold_once_and_never_command():
    runner, policy = make_runner()
    feed(runner, 1.0)
    assert runner.step(lambda: 1.0).trajectory is not None
    hold = runner.step(lambda: 2.0)  # inputs 1 s old > 0.5 s timeout
    assert hold is not None and hold.is_hold and "stale" in hold.hold_reason
    assert hold.trajectory.is_hold and np.all(hold.trajectory.velocities[-1] == 0.0)  # a stop JTC accepts
    assert runner.step(lambda: 2.1) is None  # the hold is published once per transition
    assert len(policy.calls) == 1 and not runner.commanding


def test_old_observation_is_not_used():
    runner, policy = make_runner()
    feed(runner, 1.0, now=1.4)  # received now, but stamped 0.4 s ago > max age 0.3 s
    assert runner.step(lambda: 1.4) is None
    assert policy.calls == []


def test_nan_joint_state_and_malformed_image_are_rejected():
    runner, policy = make_runner()
    img = np.zeros((8, 8, 3), np.uint8)
    runner.add_image("front", 1.0, img, 1.0)
    runner.add_image("wrist", 1.0, img, 1.0)
    runner.add_joint_state(1.0, JointVector(np.array([np.nan, 0.0]), None), 1.0)
    runner.add_image("front", 1.0, np.zeros((4, 4, 3), np.uint8), 1.0)
    assert runner.step(lambda: 1.0) is None
    assert policy.calls == []
    assert runner.counters.rejected_inputs == 2
    assert runner.counters.errors_by_input[JOINT_STATES] == 1


def test_new_instruction_replaces_the_plan_at_once_and_forces_reasoning():
    runner, policy = make_runner()
    feed(runner, 1.0)
    runner.step(lambda: 1.0)
    runner.set_instruction("push the red cube left")
    assert policy.resets == 2  # activate + instruction
    assert runner.executor.needs_refill(1.1)  # the old plan no longer waits for its refill threshold
    feed(runner, 1.1)
    cmd = runner.step(lambda: 1.1)
    assert cmd is not None and policy.calls[-1][1] is True
    assert policy.calls[-1][0].instruction == "push the red cube left"
    assert cmd.accept.blended_steps == 0  # the old task's chunk is not blended into the new one


def test_no_instruction_and_estop_hold():
    runner, policy = make_runner()
    runner.set_instruction("")
    feed(runner, 1.0)
    assert runner.step(lambda: 1.0) is None and runner.hold_reason(1.0) == "no instruction"
    runner.set_instruction("reach")
    feed(runner, 1.1)
    assert runner.step(lambda: 1.1).trajectory is not None
    runner.set_enabled(False)
    feed(runner, 1.2)
    hold = runner.step(lambda: 1.2)
    assert hold.is_hold and hold.hold_reason == "disabled"


def test_inference_failure_holds_and_is_counted():
    runner, policy = make_runner(RampPolicy(fail=True))
    feed(runner, 1.0)
    assert runner.step(lambda: 1.0) is None  # never commanded: nothing to stop
    assert runner.counters.inference_errors == 1 and "model exploded" in runner.counters.last_error


def test_an_error_outside_the_model_drops_the_plan():
    runner, policy = make_runner()
    feed(runner, 1.0)
    assert runner.step(lambda: 1.0).trajectory is not None and runner.commanding
    runner.record_error("publish failed")
    assert not runner.commanding and runner.executor.trajectory(1.0) is None
    assert runner.counters.inference_errors == 1 and runner.counters.last_error == "publish failed"


def test_reasoning_disabled_never_asks_for_reasoning():
    runner, policy = make_runner(reasoning_period_s=None)
    feed(runner, 1.0)
    runner.step(lambda: 1.0)
    assert policy.calls[-1][1] is False


def test_limits_must_match_model_joints():
    with pytest.raises(ValueError, match="safety limits joints"):
        PolicyRunner(RampPolicy(), RunnerConfig(ChunkExecutorConfig.from_contract(CONTRACT)),
                     SafetyLimits(("x", "y"), (-1, -1), (1, 1), (1, 1), (1, 1)))
