"""Settings of the action-chunk executor (see :mod:`moe_vla_ros.control.chunking`).

Pure Python: no rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from moe_vla_ros.contract import PolicyContract
from moe_vla_ros.control.blending import BLEND_MODES
from moe_vla_ros.errors import BadInputError
from moe_vla_ros.validation import (
    require_bool,
    require_choice,
    require_int,
    require_non_negative,
    require_number,
    require_positive,
)


@dataclass(frozen=True)
class ChunkExecutorConfig:
    """Settings of an :class:`ActionChunkExecutor`.

    Attributes:
        num_joints: J, joints per step.
        control_period_s: dt, seconds between chunk steps (1 / control_rate_hz); > 0.
        chunk_length: H, steps per chunk; chunks of another length are refused.
        refill_threshold_steps: request the next chunk when at most this many steps remain;
            in [0, chunk_length). Set at most one of this and `refill_threshold_s`; with
            neither, half a chunk.
        refill_threshold_s: the same in seconds; in [0, chunk duration).
        blend: how the new chunk takes over the overlap, one of blending.BLEND_MODES.
        blend_steps: most steps blended at a seam (fewer when the overlap is shorter); >= 1.
        exponential_rate: rate of the "exponential" blend; > 0.
        max_observation_age_s: a chunk whose observation is older than this at accept time
            is stale and rejected; > 0.
        max_clock_skew_s: how far in the future an observation stamp may lie (clock offset
            between machines) before the chunk is rejected; >= 0.
        execution_lead_s: targets due within this time after `now` are treated as already
            sent (transport time to the controller) and never changed, nor is the first target
            after them, the one the controller is heading to; >= 0.
        start_lead_s: a plan that starts anew (nothing executing: activation, after a hold or a
            finished plan, a realignment) begins this long after `now` instead: the arm is at
            rest (or held) meanwhile, and a trajectory that reaches the controller late (a
            loaded machine or network) still starts with its first spline segment within the
            limits. None: `execution_lead_s`; else >= `execution_lead_s`.
        max_tracking_error_rad: when the measured position at the observation time differs
            from the plan by more than this, the plan is dropped and the new chunk starts from
            the measured state (the arm did not follow); None disables the check. (The
            runner's input checks hold on a larger tracking error: InputCheckConfig.)
        hold_rest_s: a hold (`ActionChunkExecutor.brake`) stays at rest where it stopped until
            at least this long after its arrival: rest points (the stop's final position,
            velocity 0, on the period grid) follow the stop, so a hold that reaches the
            controller late is still accepted (joint_trajectory_controller refuses a stamped
            trajectory whose last point is already in the past, control/jtc_rules.py rule 6,
            and the arm would go on with the running chunk); >= 0, 0: the hold ends where the
            stop does.
        allow_nonzero_end_velocity: False (default): every planned trajectory ends at rest:
            after the last chunk target the plan brakes to zero velocity within the
            acceleration limit (safety.braking_path), and the last point's velocity is exactly 0,
            as joint_trajectory_controller requires unless its
            `allow_nonzero_velocity_at_trajectory_end` is true. True: the plan ends at the last
            chunk target with the velocity of its last interval (only for controllers that allow it).
    """

    num_joints: int
    control_period_s: float
    chunk_length: int = 16
    refill_threshold_steps: int | None = None
    refill_threshold_s: float | None = None
    blend: str = "smoothstep"
    blend_steps: int = 4
    exponential_rate: float = 3.0
    max_observation_age_s: float = 1.0
    max_clock_skew_s: float = 0.05
    execution_lead_s: float = 0.0
    start_lead_s: float | None = None
    max_tracking_error_rad: float | None = None
    hold_rest_s: float = 0.0
    allow_nonzero_end_velocity: bool = False

    def __post_init__(self) -> None:
        require_int("num_joints", self.num_joints, 1)
        require_int("chunk_length", self.chunk_length, 1)
        require_positive("control_period_s", self.control_period_s)
        if self.refill_threshold_steps is not None and self.refill_threshold_s is not None:
            raise BadInputError(
                f"set refill_threshold_steps ({self.refill_threshold_steps!r}) or refill_threshold_s "
                f"({self.refill_threshold_s!r}), not both"
            )
        if self.refill_threshold_steps is not None:
            require_int("refill_threshold_steps", self.refill_threshold_steps, 0, self.chunk_length, high_open=True)
        if self.refill_threshold_s is not None:
            require_non_negative("refill_threshold_s", self.refill_threshold_s)
            if self.refill_threshold_s >= self.chunk_length * self.control_period_s:
                raise BadInputError(
                    f"refill_threshold_s must be shorter than a chunk "
                    f"({self.chunk_length * self.control_period_s} s), got {self.refill_threshold_s!r}"
                )
        require_choice("blend", self.blend, BLEND_MODES)
        require_int("blend_steps", self.blend_steps, 1)
        require_positive("exponential_rate", self.exponential_rate)
        require_positive("max_observation_age_s", self.max_observation_age_s)
        require_non_negative("max_clock_skew_s", self.max_clock_skew_s)
        require_non_negative("execution_lead_s", self.execution_lead_s)
        if self.start_lead_s is not None:
            require_number("start_lead_s", self.start_lead_s, self.execution_lead_s)
        if self.max_tracking_error_rad is not None:
            require_positive("max_tracking_error_rad", self.max_tracking_error_rad)
        require_non_negative("hold_rest_s", self.hold_rest_s)
        require_bool("allow_nonzero_end_velocity", self.allow_nonzero_end_velocity)

    @property
    def start_lead(self) -> float:
        """Seconds from `now` to the start of a plan that starts anew."""
        return self.execution_lead_s if self.start_lead_s is None else float(self.start_lead_s)

    @property
    def refill_threshold(self) -> float:
        """The refill threshold in seconds."""
        if self.refill_threshold_s is not None:
            return float(self.refill_threshold_s)
        steps = self.chunk_length // 2 if self.refill_threshold_steps is None else self.refill_threshold_steps
        return steps * self.control_period_s

    @classmethod
    def from_contract(cls, contract: PolicyContract, **overrides) -> ChunkExecutorConfig:
        """Joints, period and chunk length from the policy contract; other fields from `overrides`."""
        return cls(
            num_joints=contract.sensors.num_joints,
            control_period_s=contract.sensors.control_period_s,
            chunk_length=contract.chunk_length,
            **overrides,
        )
