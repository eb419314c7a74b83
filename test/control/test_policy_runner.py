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


def test_a_first_command_sent_late_moves_later_and_a_held_one_is_left_alone():
    runner, _ = make_runner()
    lead = runner.config.executor.start_lead
    feed(runner, 1.0)
    cmd = runner.step(lambda: 1.01)
    assert cmd.trajectory.start_time == pytest.approx(1.01 + lead)
    sent = runner.at_send(cmd, 1.31)  # the sender was delayed by 0.3 s: the start moves with it
    assert sent.trajectory.start_time == pytest.approx(1.31 + lead) and sent.output is cmd.output
    np.testing.assert_allclose(sent.trajectory.positions, cmd.trajectory.positions)
    assert runner.executor.trajectory(1.31).start_time == pytest.approx(1.31 + lead)  # the plan moved too
    # a command overtaken by a hold is not re-timed (the node does not send it)
    runner, _ = make_runner()
    feed(runner, 1.0)
    cmd = runner.step(lambda: 1.01)
    runner.set_enabled(False, now=1.05)
    assert runner.at_send(cmd, 1.31) is cmd


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
    runner, _policy = make_runner()
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
    runner, _policy = make_runner(RampPolicy(fail=True))
    feed(runner, 1.0)
    assert runner.step(lambda: 1.0) is None  # never commanded: nothing to stop
    assert runner.counters.inference_errors == 1 and "model exploded" in runner.counters.last_error


def test_an_error_outside_the_model_drops_the_plan():
    runner, _policy = make_runner()
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


# -- every input checked, holds JTC accepts, recovery hysteresis ---------------------------------

from moe_vla_ros.control.input_checks import InputCheckConfig
from moe_vla_ros.control.jtc_rules import JtcParams, check_trajectory
from moe_vla_ros.control.policy_runner import HOLD_REJECTED, HOLD_STALE

ALL_30HZ = {"front": 30.0, "wrist": 30.0, "joints": 30.0}


def deliver(runner, name, stamp, now, q):
    if name == "joints":
        runner.add_joint_state(stamp, JointVector(np.asarray(q, float), None), now)
    else:
        runner.add_image(name, stamp, np.zeros((8, 8, 3), np.uint8), now)


def follower(start=(0.0, 0.0)):
    """An arm that follows the runner's commanded path exactly (at `start` until then)."""
    state = {"q": np.array(start, float)}

    def q(runner, t):
        commanded = runner.executor.state_at(t)
        if commanded is not None:
            state["q"] = commanded[0]
        return state["q"]

    return q


def simulate(runner, t0, t1, rates=ALL_30HZ, q=None, stamp=lambda name, t: t, tick=0.01, skip=None, arm=None):
    """Deliver every input at its rate (stamp(name, t); joint positions q(t), default: an arm
    following the commands from (0, 0)), step every tick. skip(name, t) -> True drops a
    message. Returns [(time, command)] for every command."""
    if arm is None:
        arm = follower() if q is None else (lambda runner, t: q(t))
    next_at = dict.fromkeys(rates, t0)
    commands, t = [], t0
    while t < t1 - 1e-9:
        for name, rate in rates.items():
            if t >= next_at[name] - 1e-9:
                if skip is None or not skip(name, t):
                    deliver(runner, name, stamp(name, t), t, arm(runner, t))
                next_at[name] += 1.0 / rate
        command = runner.step(lambda: t)
        if command is not None:
            commands.append((t, command))
        t = round(t + tick, 9)
    return commands


def jtc_accepts(traj, now):
    verdict = check_trajectory(("a", "b"), traj.start_time, traj.times - traj.start_time, traj.positions,
                               traj.velocities, None, JtcParams(joints=("a", "b")), now)
    return verdict.accepted


def test_published_chunks_end_at_rest_and_jtc_accepts_them():
    runner, _ = make_runner()
    commands = simulate(runner, 1.0, 4.0)
    chunks = [(t, c) for t, c in commands if not c.is_hold]
    assert len(chunks) >= 6
    for t, c in chunks:
        assert np.all(c.trajectory.velocities[-1] == 0.0) and jtc_accepts(c.trajectory, t)


@pytest.mark.parametrize(
    "bad, reason",
    [
        (np.degrees([0.1, 0.2]), "joint_states rejected: b at 11.46 rad outside [-1.0, 1.0]+0.05"),
        ((1.5, 0.2), "joint_states rejected: a at 1.5 rad outside [-1.0, 1.0]+0.05"),  # 0.5 rad past its limit
    ],
)
def test_out_of_limit_joint_state_while_executing_holds_and_no_command_is_computed_from_it(bad, reason):
    runner, policy = make_runner()
    assert simulate(runner, 1.0, 1.5, arm=follower((0.1, 0.2))) and runner.commanding
    calls = len(policy.calls)
    commanded = runner.executor.state_at(1.5)[0]
    runner.add_joint_state(1.5, JointVector(np.array(bad, float), None), 1.5)
    hold = runner.step(lambda: 1.5)
    assert hold.is_hold and hold.hold_reason == reason
    # the stop starts from the commanded state (0.1 rad/s: < 0.01 rad on), never from the rejected measurement
    assert np.abs(hold.trajectory.positions - commanded).max() < 0.01 and jtc_accepts(hold.trajectory, 1.5)
    later = simulate(runner, 1.5, 3.0, q=lambda t: bad)  # the bad state goes on (with good cameras)
    assert later == [] and len(policy.calls) == calls and not runner.commanding
    assert runner.hold_reason(3.0) == reason
    c = runner.counters
    assert c.rejected_by_reason["joint_states/out_of_limits"] == 1 + 45 and c.holds_by_reason == {HOLD_REJECTED: 1}


def test_joint_state_in_degrees_without_position_limits_is_rejected_as_a_jump():
    limits = SafetyLimits.from_optional(("a", "b"), max_velocity=1.0, max_acceleration=10.0)
    assert not limits.has_position_limits
    cfg = RunnerConfig(ChunkExecutorConfig.from_contract(CONTRACT, refill_threshold_s=0.4, max_observation_age_s=0.3),
                       default_instruction="reach")
    runner = PolicyRunner(RampPolicy(), cfg, limits)
    runner.activate(0.0)
    assert simulate(runner, 1.0, 1.5, arm=follower((0.1, 0.2))) and runner.commanding
    hold = simulate(runner, 1.5, 1.6, q=lambda t: np.degrees([0.1, 0.2]))
    assert len(hold) == 1 and hold[0][1].is_hold and hold[0][0] == pytest.approx(1.5)
    reason = hold[0][1].hold_reason  # the last good joint state was 0.03 s earlier
    assert reason == "joint_states rejected: b jumped 11.21 rad in 0.030 s (max 0.065 rad: 1.5 x 1.0 rad/s + 0.02)"


def test_frozen_joint_states_while_the_plan_moves_hold():
    runner, _ = make_runner(input_checks=InputCheckConfig(frozen_after_s=0.3, frozen_min_motion_rad=0.01))
    commands = simulate(runner, 1.0, 2.5, q=lambda t: (0.0, 0.0))  # the joint state never changes
    first, holds = commands[0][0], [(t, c) for t, c in commands if c.is_hold]
    assert len(holds) == 1 and "frozen joint states" in holds[0][1].hold_reason
    assert 0.3 <= holds[0][0] - first <= 0.45  # detected once the plan moved 0.01 rad for 0.3 s
    assert runner.counters.rejected_by_reason["joint_states/frozen"] >= 1


def test_unfollowed_commands_hold():
    runner, _ = make_runner(input_checks=InputCheckConfig(max_tracking_error_rad=0.05))
    # the plan moves +0.1 rad/s, the arm -0.05 rad/s: 0.05 rad apart after ~0.33 s
    commands = simulate(runner, 1.0, 2.5, q=lambda t: (-0.05 * (t - 1.0), 0.0))
    holds = [(t, c) for t, c in commands if c.is_hold]
    assert len(holds) == 1 and "the arm does not follow" in holds[0][1].hold_reason
    assert holds[0][0] - commands[0][0] <= 0.5
    assert runner.counters.holds_by_reason == {HOLD_REJECTED: 1}


@pytest.mark.parametrize(
    "name, stamp, code",
    [
        ("front", lambda t: t - 1.0, "stamp_too_old"),
        ("front", lambda t: t + 0.3, "stamp_in_future"),
        ("wrist", lambda t: 0.0, "stamp_zero"),
        ("joints", lambda t: 0.0, "stamp_zero"),
        ("joints", lambda t: 1.9, "stamp_not_newer"),  # a frozen stamp (then too old)
    ],
)
def test_bad_stamps_hold_with_a_reason_within_the_input_timeout(name, stamp, code):
    runner, _ = make_runner()
    simulate(runner, 1.0, 2.0)
    assert runner.commanding
    commands = simulate(runner, 2.0, 4.0, stamp=lambda n, t: stamp(t) if n == name else t)
    holds = [(t, c) for t, c in commands if c.is_hold]
    assert len(holds) == 1 and holds[0][0] <= 2.0 + 0.5 and commands[-1] == holds[0]  # nothing after it
    key = "joint_states" if name == "joints" else f"camera/{name}"
    reason = runner.hold_reason(4.0)
    assert reason.startswith(f"stale {key} ({key} rejected: ") and not runner.commanding
    assert runner.counters.rejected_by_reason[f"{key}/{code}"] >= 1
    assert runner.counters.holds_by_reason == {HOLD_STALE: 1}


def test_slow_camera_gives_at_most_one_hold_resume_cycle():
    """A camera at 1.9 Hz against a 0.5 s input timeout: stale for 26 ms of every 526 ms."""
    rates = {"front": 1.9, "wrist": 30.0, "joints": 30.0}
    runner, _ = make_runner(recovery_s=0.0)  # no hysteresis: it cycles
    commands = simulate(runner, 1.0, 9.0, rates=rates)
    cycling = sum(c.is_hold for _, c in commands)
    assert cycling >= 10
    runner, _ = make_runner()  # recovery_s = 1.0
    commands = simulate(runner, 1.0, 9.0, rates=rates)
    holds = [t for t, c in commands if c.is_hold]
    resumes = [t for t, c in commands if not c.is_hold and holds and t > holds[0]]
    assert len(holds) <= 1 and len(resumes) <= 1
    assert "recovering" in runner.hold_reason(9.0) and "stale camera/front" in runner.hold_reason(9.0)


def test_commanding_resumes_only_after_every_input_was_good_for_recovery_s():
    runner, _ = make_runner()
    skip = lambda name, t: name == "joints" and 2.0 <= t < 2.7
    commands = simulate(runner, 1.0, 3.2, skip=skip)
    assert runner.hold_reason(3.2).startswith("recovering: inputs good for 0.50 of 1.0 s after: stale joint_states")
    commands += simulate(runner, 3.2, 5.0, arm=follower(runner.executor.state_at(3.2)[0]))
    holds = [t for t, c in commands if c.is_hold]
    resumed = [t for t, c in commands if not c.is_hold and t > 2.5]
    assert len(holds) == 1 and holds[0] == pytest.approx(1.0 + 29 / 30 + 0.5, abs=0.01)  # last at 1.967, +0.5 s
    assert resumed and 2.7 + 1.0 <= resumed[0] <= 2.7 + 1.0 + 0.05  # joints back at 2.7, 1 s good


def test_estop_returns_a_braking_hold_at_once_and_only_once():
    runner, _ = make_runner()
    simulate(runner, 1.0, 1.62, arm=follower((0.1, 0.2)))
    commanded = runner.executor.state_at(1.62)[0]
    hold = runner.set_enabled(False, now=1.62)
    assert hold.is_hold and hold.hold_reason == "disabled" and jtc_accepts(hold.trajectory, 1.62)
    traj = hold.trajectory
    assert traj.start_time == pytest.approx(1.62) and traj.times[-1] - 1.62 <= 0.1 + 1e-9  # stopped in a period
    assert np.abs(traj.positions[-1] - commanded).max() <= 0.1 * 0.1  # 0.1 rad/s: < 0.01 rad further
    assert runner.step(lambda: 1.63) is None and simulate(runner, 1.63, 2.0) == []
    assert runner.set_enabled(False, now=2.0) is None  # already holding
    runner.set_enabled(True)
    resumed = simulate(runner, 2.0, 2.1)
    assert resumed and not resumed[0][1].is_hold and resumed[0][0] == pytest.approx(2.0)  # no recovery after an e-stop


def test_no_hold_is_published_before_the_runner_commands():
    """Nothing of ours executes yet: the controller holds already, so a bad input before the
    first command is reported (hold_reason, counters) but returns no hold command."""
    runner, _ = make_runner()
    commands = simulate(runner, 1.0, 1.5, q=lambda t: (2.0, 0.0))
    assert commands == [] and runner.hold_reason(1.5).startswith("joint_states rejected: a at 2 rad outside")
    assert runner.hold(1.5, "deactivated") is None


def test_requested_hold_and_error_hold_brake_from_the_plan():
    runner, _ = make_runner()
    simulate(runner, 1.0, 1.3)
    hold = runner.hold(1.3, "deactivated")
    assert hold.is_hold and hold.hold_reason == "deactivated" and runner.counters.holds_by_reason == {"requested": 1}
    simulate(runner, 1.3, 1.5)
    assert runner.commanding
    hold = runner.record_error("publish failed", now=1.5)
    assert hold.is_hold and jtc_accepts(hold.trajectory, 1.5) and runner.counters.inference_errors == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"recovery_s": -1.0}, "recovery_s must be a number >= 0, got -1.0"),
        ({"input_timeout_s": 0.0}, "input_timeout_s must be a number > 0, got 0.0"),
        ({"sync_slop_s": float("nan")}, "sync_slop_s must be a number > 0, got nan"),
        ({"input_checks": {"max_stamp_age_s": 1.0}}, "input_checks must be an InputCheckConfig, got dict"),
        ({"max_unread_words": -2}, "max_unread_words must be an integer >= -1, got -2"),
        ({"max_unread_words": 1.5}, "max_unread_words must be an integer >= -1, got 1.5"),
    ],
)
def test_runner_config_validation_names_the_bad_value(change, message):
    with pytest.raises(ValueError, match=message):
        RunnerConfig(ChunkExecutorConfig.from_contract(CONTRACT), **change)


class VocabularyPolicy(RampPolicy):
    """RampPolicy whose model knows a few words (Policy.read_instruction)."""

    VOCABULARY = {"reach", "push", "the", "red", "cube"}

    def read_instruction(self, text):
        from moe_vla_ros.runtime.tokenization import InstructionReading

        words = text.split()
        return InstructionReading(len(words), tuple(w for w in words if w not in self.VOCABULARY))


def test_an_instruction_the_model_cannot_read_holds_and_says_which_words():
    runner, policy = make_runner(VocabularyPolicy())
    feed(runner, 1.0)
    assert runner.step(lambda: 1.0).trajectory is not None  # "reach": known
    runner.set_instruction("please grab the crimson cube")
    feed(runner, 1.1)
    hold = runner.step(lambda: 1.1)
    assert hold.is_hold
    assert hold.hold_reason == ("instruction 'please grab the crimson cube' not understood: 3 of 5 words unknown "
                                "to the model: 'please', 'grab', 'crimson' (at most 0 allowed)")
    assert runner.hold_state(1.1)[0] == "unread_instruction" and runner.counters.holds_by_reason == {"unread_instruction": 1}
    calls = len(policy.calls)
    feed(runner, 1.2)
    assert runner.step(lambda: 1.2) is None and len(policy.calls) == calls  # no inference while it holds
    runner.set_instruction("reach the red cube")  # a readable instruction lifts the hold
    assert runner.instruction_problem == ""
    feed(runner, 1.3)
    assert runner.step(lambda: 1.3).trajectory is not None


@pytest.mark.parametrize("limit, holds", [(-1, False), (0, True), (1, True), (2, False)])
def test_max_unread_words_sets_how_many_unknown_words_are_tolerated(limit, holds):
    runner, _policy = make_runner(VocabularyPolicy(), max_unread_words=limit)
    runner.set_instruction("please reach the pink cube")  # 2 unknown words
    assert bool(runner.instruction_problem) is holds


def test_an_unreadable_default_instruction_holds_from_the_start():
    policy = VocabularyPolicy()
    cfg = RunnerConfig(executor=ChunkExecutorConfig.from_contract(CONTRACT), default_instruction="grab it")
    runner = PolicyRunner(policy, cfg)
    assert runner.instruction_problem.startswith("instruction 'grab it' not understood: 2 of 2 words unknown")


def test_policies_that_cannot_tell_are_not_checked():
    runner, _policy = make_runner()  # RampPolicy: Policy.read_instruction -> None
    runner.set_instruction("zzz qqq")
    assert runner.instruction_problem == ""
