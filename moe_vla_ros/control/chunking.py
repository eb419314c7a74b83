"""Asynchronous execution of action chunks (like LeRobot async inference / openpi's chunk broker).

The policy predicts a chunk of H joint-position targets from an observation stamped
``obs_time``; step k targets ``obs_time + (k+1) * dt``. Inference takes time, so the next
chunk must be requested before the current one runs out (:meth:`ActionChunkExecutor.
needs_refill`), and by the time it arrives its first steps are already in the past.

:meth:`ActionChunkExecutor.accept` merges a new chunk into the plan being executed:

1. rejects it if it has NaN/inf, is older than ``max_observation_age_s`` (stale), stamped in
   the future, not newer than the executing chunk, or entirely in the past;
2. drops the steps that are in the past (at or before the arrival time ``now +
   execution_lead_s``, when the trajectory reaches the controller) and keeps the next point of
   the executing plan, the one the controller is heading to, so a new trajectory never moves
   it (a chunk takes effect from the point after); the plan keeps its fixed control grid, so
   the new chunk is sampled on it (linear interpolation). With nothing executing (a *fresh*
   plan: start, after a finished plan or a realignment) the plan's grid starts at the arrival,
   ``now + start_lead_s`` (a longer lead than a seam's: a late trajectory still starts gently):
   row 0 is the measured state extrapolated to the arrival (measured velocity, or rest), the
   first point is one control period after it, and the chunk is sampled on that grid, so the
   latency never turns into a jump (the safety filter starts from that point velocity with a
   gentle first step, so the controller's first cubic keeps the limit even when the trajectory
   arrives somewhat late). A plan that finished before now while the observation was taken
   starts from its end at rest (the measured velocity is stale then);
3. blends the first overlapping steps with the plan being executed (:mod:`.blending`), so
   the path moves over from the old chunk to the new one gradually instead of jumping;
4. runs the optional :class:`~moe_vla_ros.control.safety.SafetyFilter` over the new part of
   the plan, starting from the position and the already published point velocity of the point
   the controller is heading to (or from the measured joint state when nothing is executing),
   so the spline joint_trajectory_controller executes keeps the velocity and acceleration limits
   across every seam (every point keeps the velocity it was published with);
5. unless ``allow_nonzero_end_velocity``, appends the filter's stop after the last chunk target
   (without a filter: :func:`~moe_vla_ros.control.safety.braking_path`, one period): the plan
   ends at rest, as joint_trajectory_controller requires. The tail is only executed when no new
   chunk arrives in time; refill timing and blending use the chunk's own end.

:meth:`ActionChunkExecutor.brake` replaces the plan by a stop: from the commanded spline state at
the arrival time (or a given position at rest when nothing is planned) to rest with uniform
deceleration within the limit (near a position limit: the filter's stop from the point the
controller is heading to); the runner publishes it as a hold.

:meth:`ActionChunkExecutor.trajectory` returns the points still to execute, time-stamped on the
control grid with velocities consistent with the positions, ready for a JointTrajectory;
:meth:`ActionChunkExecutor.send_from` is the same right before sending a newly accepted chunk (a
fresh plan from rest whose sending was delayed moves later, keeping its whole start lead).
Chunk ids increase monotonically (across resets) so reasoning traces can name the chunk they
led to. Time is passed in (``now``, seconds); nothing reads a clock. Pure numpy: no rclpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from moe_vla_ros.control.blending import blend_weights, resample_chunk
from moe_vla_ros.control.chunk_config import ChunkExecutorConfig
from moe_vla_ros.control.safety import (
    FIRST_STEP_SHARE,
    SEAM_FIRST_STEP_SHARE,
    SafetyFilter,
    SafetyReport,
    braking_path,
    point_velocities,
)

_EPS = 1e-9  # tolerance (in control steps) when placing times on the grid


@dataclass(frozen=True)
class AcceptResult:
    """Outcome of :meth:`ActionChunkExecutor.accept`.

    Attributes:
        chunk_id: id given to the chunk (also when rejected), monotonic.
        accepted: whether the chunk now drives the plan.
        reason: why it was rejected ("" when accepted).
        skipped_steps: chunk steps due before the first plan point the chunk changes (in the
            past, or the point the controller is already heading to).
        blended_steps: plan steps where old and new chunk were blended.
        realigned: the plan was dropped because the arm did not follow it.
        safety: the safety filter's report (None without a filter or when rejected earlier).
    """

    chunk_id: int
    accepted: bool
    reason: str = ""
    skipped_steps: int = 0
    blended_steps: int = 0
    realigned: bool = False
    safety: SafetyReport | None = None


@dataclass(frozen=True)
class PlannedTrajectory:
    """Points still to execute; point i is due at ``start_time + (i+1) * dt``.

    Attributes:
        start_time: seconds; the JointTrajectory header stamp (one period before point 0).
        dt: control period, seconds.
        positions: float64 [n, J], rad.
        velocities: float64 [n, J], rad/s, consistent with `positions`.
        chunk_id: id of the newest chunk in the plan (-1 for a hold).
        is_hold: the plan is a stop (ActionChunkExecutor.brake), not a policy chunk.
    """

    start_time: float
    dt: float
    positions: np.ndarray
    velocities: np.ndarray
    chunk_id: int
    is_hold: bool = False

    @property
    def times(self) -> np.ndarray:
        """Absolute due time of every point: float64 [n]."""
        return self.start_time + self.dt * np.arange(1, len(self.positions) + 1)


@dataclass(frozen=True)
class _Plan:
    """The commanded path on the control grid ``anchor + n * dt``.

    Row 0 (grid index `offset`) is where the path started or the oldest point kept; it is in
    the past or already sent, and never published again. The last `stop_rows` rows are the
    braking tail after the last chunk target (0 when the plan may end moving).
    """

    anchor: float  # grid origin, seconds
    offset: int  # grid index of positions[0]
    positions: np.ndarray  # [N, J]
    velocity0: np.ndarray  # [J] velocity of the interval that ends at row 0
    chunk_id: int
    obs_time: float
    stop_rows: int = 0
    is_hold: bool = False
    velocities: np.ndarray | None = None  # [N, J] point velocity of each row, as published
    movable: bool = False  # a fresh plan from rest not sent yet: its start may move later (send_from)

    @property
    def chunk_end_row(self) -> int:
        """Row of the last chunk target (before the braking tail)."""
        return len(self.positions) - 1 - self.stop_rows

    def time_of_row(self, row: float, dt: float) -> float:
        return self.anchor + (self.offset + row) * dt


class ActionChunkExecutor:
    """Holds the plan built from action chunks and hands out what to execute (module docstring).

    Args:
        config: executor settings.
        safety_filter: applied to every merged plan; None trusts the chunks as they are.
    """

    def __init__(self, config: ChunkExecutorConfig, safety_filter: SafetyFilter | None = None) -> None:
        if safety_filter is not None and safety_filter.limits.num_joints != config.num_joints:
            raise ValueError(
                f"safety filter has {safety_filter.limits.num_joints} joints, executor {config.num_joints}"
            )
        self.config = config
        self.safety_filter = safety_filter
        self._plan: _Plan | None = None
        self._takeover = False  # the next chunk replaces the plan without blending (new instruction)
        self._next_id = 0
        self.accepted_count = 0
        self.rejected_count = 0

    # -- state -----------------------------------------------------------------------------
    @property
    def active_chunk_id(self) -> int | None:
        """Id of the newest chunk in the plan, None when nothing (or only a hold) is planned."""
        return None if self._plan is None or self._plan.is_hold else self._plan.chunk_id

    @property
    def holding(self) -> bool:
        """The plan is a stop from :meth:`brake`."""
        return self._plan is not None and self._plan.is_hold

    def _end_time(self, plan: _Plan) -> float:
        """Time of the plan's last point (at rest unless allow_nonzero_end_velocity)."""
        return plan.time_of_row(len(plan.positions) - 1, self.config.control_period_s)

    def _chunk_end_time(self, plan: _Plan) -> float:
        """Time of the last chunk target (before the braking tail)."""
        return plan.time_of_row(plan.chunk_end_row, self.config.control_period_s)

    def remaining_s(self, now: float) -> float:
        """Seconds of chunk targets left after `now` (the braking tail not counted; 0 when
        nothing or only a hold is planned)."""
        if self._plan is None or self._plan.is_hold:
            return 0.0
        return max(0.0, self._chunk_end_time(self._plan) - now)

    def needs_refill(self, now: float, expected_latency_s: float = 0.0) -> bool:
        """True when the next inference should start: nothing (or only a hold) planned, a new
        instruction waits for its first chunk, or the chunk targets left after `now` plus
        `expected_latency_s` (e.g. LatencyEstimator.expected()) are within the threshold.
        """
        plan = self._plan
        if plan is None or plan.is_hold or self._takeover or self._chunk_end_time(plan) <= now:
            return True
        return self.remaining_s(now) - expected_latency_s <= self.config.refill_threshold + 1e-9

    def state_at(self, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Commanded (position [J], velocity [J]) at time `t`: linear between grid points,
        holding the last point after the end; None before the plan starts or without a plan."""
        plan, dt = self._plan, self.config.control_period_s
        if plan is None or t < plan.time_of_row(0, dt) - _EPS * dt:
            return None
        last = len(plan.positions) - 1
        position = max(0.0, (t - plan.time_of_row(0, dt)) / dt)
        if position >= last:
            return plan.positions[last].copy(), np.zeros(self.config.num_joints)
        below = int(math.floor(position))
        frac = position - below
        a, b = plan.positions[below], plan.positions[below + 1]
        return a + (b - a) * frac, (b - a) / dt

    def _spline_state(self, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Commanded (position [J], velocity [J]) at `t` on the cubic spline through the plan's
        points and point velocities (what joint_trajectory_controller executes); before the
        plan's first row that row's state, after its last row the last point at rest; None
        without a plan."""
        plan, dt = self._plan, self.config.control_period_s
        if plan is None:
            return None
        velocities = plan.velocities if plan.velocities is not None else np.zeros_like(plan.positions)
        position = (t - plan.time_of_row(0, dt)) / dt
        if position <= 0.0:
            return plan.positions[0].copy(), velocities[0].copy()
        last = len(plan.positions) - 1
        if position >= last:
            return plan.positions[last].copy(), np.zeros(self.config.num_joints)
        k = int(math.floor(position))
        u = position - k
        p0, p1, v0, v1 = plan.positions[k], plan.positions[k + 1], velocities[k] * dt, velocities[k + 1] * dt
        h00, h10, h01, h11 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u, -2 * u**3 + 3 * u**2, u**3 - u**2
        d00, d10, d01, d11 = 6 * u**2 - 6 * u, 3 * u**2 - 4 * u + 1, -6 * u**2 + 6 * u, 3 * u**2 - 2 * u
        q = h00 * p0 + h10 * v0 + h01 * p1 + h11 * v1
        v = (d00 * p0 + d10 * v0 + d01 * p1 + d11 * v1) / dt
        return q, v

    def reset(self) -> None:
        """Drop the plan (deactivation, activation); chunk ids keep increasing. The next chunk
        starts a fresh plan from the measured state."""
        self._plan = None
        self._takeover = False

    def take_over(self) -> None:
        """A new instruction: the next accepted chunk replaces the plan from the first point
        after the one the controller is heading to, without blending the old chunk in (the
        motion stays continuous: the safety filter starts from the commanded state at the seam).
        `needs_refill` is True until then."""
        self._takeover = self._plan is not None

    def brake(self, now: float, position: np.ndarray | None = None) -> PlannedTrajectory | None:
        """Replace the plan by a stop and return it (a hold the controller accepts).

        The stop starts at the arrival time ``now + execution_lead_s`` from the commanded state
        there (the plan's state; a fresh plan that has not started yet: its start state), and
        brakes to rest within the acceleration limit (safety.braking_path; without a limit in
        one control period); the last point has velocity 0 and is at least one period and at
        least `config.hold_rest_s` after the arrival (rest points where the stop ended: a hold
        that reaches the controller late is still accepted). Without a plan it holds `position`
        [J] (the last trusted measurement) at rest.
        Returns None when there is neither a plan nor a position: nothing is known to hold at.
        """
        cfg, dt = self.config, self.config.control_period_s
        arrival = now + cfg.execution_lead_s
        state = self._spline_state(arrival)
        if state is None:
            if position is None:
                self._plan = None
                return None
            q0 = np.asarray(position, dtype=np.float64).reshape(-1)  # [J]
            if q0.shape != (cfg.num_joints,) or not np.isfinite(q0).all():
                raise ValueError(f"hold position must be {cfg.num_joints} finite values, got {q0.tolist()}")
            v0 = np.zeros(cfg.num_joints)
        else:
            q0, v0 = state
        lower = upper = None
        a_max = np.full(cfg.num_joints, np.inf)
        if self.safety_filter is not None:
            limits = self.safety_filter.limits
            a_max = limits.arrays["max_acceleration"]
            if limits.has_position_limits:
                lower, upper = limits.arrays["lower"], limits.arrays["upper"]
        tail, tail_v = braking_path(q0, v0, dt, a_max, lower, upper)  # [K, J] each
        plan = self._plan
        if state is not None and plan is not None and plan.velocities is not None and self.safety_filter is not None:
            raw, _ = braking_path(q0, v0, dt, a_max)
            if np.any(raw != tail):
                # the uniform stop would run into a position limit: keep the point the controller
                # is heading to and stop from there as the plan's own stops do (within the limits)
                k = int(math.floor((arrival - plan.time_of_row(0, dt)) / dt + _EPS)) + 1
                if 1 <= k < len(plan.positions):
                    stop_q, stop_v = self.safety_filter.stop_path(plan.positions[k], plan.velocities[k], dt)
                    positions = np.concatenate([plan.positions[: k + 1], stop_q], axis=0)
                    velocities = np.concatenate([plan.velocities[: k + 1], stop_v], axis=0)
                    velocities[-1] = 0.0
                    rest = self._rest_rows(plan.time_of_row(len(positions) - 1, dt), arrival)
                    positions, velocities = _append_rest(positions, velocities, rest)
                    self._plan = replace(plan, positions=positions, velocities=velocities, chunk_id=-1,
                                         obs_time=-math.inf, stop_rows=len(stop_q) + rest, is_hold=True)
                    self._takeover = False
                    return self.trajectory(now)
        positions = np.concatenate([q0[None, :], tail], axis=0)  # [K + 1, J]
        velocities = np.concatenate([v0[None, :], tail_v], axis=0)  # [K + 1, J]
        rest = self._rest_rows(arrival + len(tail) * dt, arrival)
        positions, velocities = _append_rest(positions, velocities, rest)  # [K + 1 + R, J] each
        self._plan = _Plan(arrival, 0, positions, v0.copy(), -1, -math.inf, len(tail) + rest, True, velocities)
        self._takeover = False
        return self.trajectory(now)

    def _rest_rows(self, stop_end: float, arrival: float) -> int:
        """Rest points a hold whose stop ends at `stop_end` needs to last until
        ``arrival + hold_rest_s`` (config.hold_rest_s)."""
        dt = self.config.control_period_s
        return max(0, math.ceil((arrival + self.config.hold_rest_s - stop_end) / dt - _EPS))

    # -- accept ----------------------------------------------------------------------------
    def _rejected(self, chunk_id: int, reason: str, safety: SafetyReport | None = None) -> AcceptResult:
        self.rejected_count += 1
        return AcceptResult(chunk_id, False, reason, safety=safety)

    def accept(
        self,
        chunk: np.ndarray,
        obs_time: float,
        now: float,
        *,
        current_position: np.ndarray,
        current_velocity: np.ndarray | None = None,
    ) -> AcceptResult:
        """Merge a chunk predicted from the observation at `obs_time` into the plan.

        Args:
            chunk: [H, J] joint-position targets, step k due at obs_time + (k+1)*dt.
            obs_time: stamp of the observation the chunk was predicted from, seconds.
            now: current time, seconds.
            current_position: [J] measured joint positions at `obs_time` (used to start a plan
                when nothing is executing, and for the tracking check).
            current_velocity: [J] measured velocities, or None (rest); used to start a plan.

        Raises:
            ValueError: `chunk` or the state has the wrong shape (a contract mismatch).
        """
        cfg, dt = self.config, self.config.control_period_s
        chunk_id = self._next_id
        self._next_id += 1
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.shape != (cfg.chunk_length, cfg.num_joints):
            raise ValueError(f"chunk must have shape {(cfg.chunk_length, cfg.num_joints)}, got {chunk.shape}")
        measured = np.asarray(current_position, dtype=np.float64).reshape(-1)  # [J]
        if measured.shape != (cfg.num_joints,):
            raise ValueError(f"current_position must have shape ({cfg.num_joints},), got {measured.shape}")
        reason = self._rejection_reason(chunk, measured, obs_time, now)
        if reason:
            return self._rejected(chunk_id, reason)
        plan = self._plan
        step_times = obs_time + dt * np.arange(1, cfg.chunk_length + 1)  # [H]
        realigned = False
        start_state = None
        if plan is not None and self._end_time(plan) < now:
            if obs_time <= self._end_time(plan):
                # observed while the plan still ran: the measured velocity is stale; the
                # controller holds the plan's last point at rest
                start_state = plan.positions[-1].copy(), np.zeros(cfg.num_joints)
            plan = None  # finished at rest: start again from the measurement
        if plan is not None and not plan.is_hold and cfg.max_tracking_error_rad is not None:
            commanded = self.state_at(obs_time)
            if commanded is not None and np.abs(commanded[0] - measured).max() > cfg.max_tracking_error_rad:
                plan, realigned = None, True

        # arrival at the controller; a plan that starts anew starts later (start_lead_s)
        commit = now + (cfg.execution_lead_s if plan is not None else cfg.start_lead)
        skipped = int(np.count_nonzero(step_times <= commit + _EPS * dt))
        if skipped == cfg.chunk_length:
            reason = f"all {cfg.chunk_length} steps are in the past (latency {now - obs_time:.3f} s)"
            return self._rejected(chunk_id, reason)
        if plan is None:
            if start_state is not None and not realigned:
                fresh = self._fresh_plan(chunk, step_times, commit, commit, *start_state)
            else:
                fresh = self._fresh_plan(chunk, step_times, obs_time, commit, measured, current_velocity)
            if fresh is None:
                reason = (
                    f"no step is a control period after the arrival at {commit:.3f} s "
                    f"(latency {now - obs_time:.3f} s)"
                )
                return self._rejected(chunk_id, reason)
            candidate, first, blended = fresh
        else:
            merged = self._merge(plan, chunk, step_times, commit, blend=not (self._takeover or plan.is_hold))
            if merged is None:
                return self._rejected(chunk_id, "chunk covers no control step after now")
            candidate, first, blended = merged
        positions = candidate.positions

        velocities = candidate.velocities  # [N, J]; rows before `first` as published

        safety = None
        if self.safety_filter is not None:
            filtered = self.safety_filter.filter(
                positions[first:], dt, positions[first - 1], velocities[first - 1], point_velocity=True,
                stop=not cfg.allow_nonzero_end_velocity,
                first_step_share=FIRST_STEP_SHARE if plan is None else SEAM_FIRST_STEP_SHARE,
            )
            safety = filtered.report
            if not safety.accepted:
                return self._rejected(chunk_id, "safety: " + safety.reason, safety)
            positions[first:] = filtered.positions
            velocities[first:] = filtered.velocities
            stop_q, stop_v = filtered.stop_positions, filtered.stop_velocities
            candidate = replace(
                candidate,
                positions=np.concatenate([positions, stop_q], axis=0),
                velocities=np.concatenate([velocities, stop_v], axis=0),
                stop_rows=len(stop_q),
            )
        else:  # no limits: central differences, the stop after the last target in one period
            candidate = self._with_stop(candidate)
            rows = candidate.positions
            velocities = np.concatenate([velocities, np.zeros((len(rows) - len(velocities), cfg.num_joints))])
            velocities[first:] = point_velocities(rows[first - 1], rows[first:], dt)
            if candidate.stop_rows > 0:
                velocities[-1] = 0.0
            candidate = replace(candidate, velocities=velocities)

        first_time = candidate.time_of_row(first, dt)
        skipped = int(np.count_nonzero(step_times < first_time - _EPS * dt))  # never used by the plan
        from_rest = plan is None and not np.any(candidate.velocities[0])  # a fresh plan from rest
        candidate = replace(candidate, chunk_id=chunk_id, obs_time=float(obs_time), is_hold=False, movable=from_rest)
        self._plan = self._pruned(candidate, now)
        self._takeover = False
        self.accepted_count += 1
        return AcceptResult(chunk_id, True, "", skipped, blended, realigned, safety)

    def _rejection_reason(self, chunk: np.ndarray, measured: np.ndarray, obs_time: float, now: float) -> str:
        """Why a chunk cannot be used at all ("" when it can)."""
        cfg = self.config
        if not np.isfinite(measured).all():
            return f"non-finite current position {measured.tolist()}"
        if not np.isfinite(chunk).all():
            step, joint = np.argwhere(~np.isfinite(chunk))[0]
            return f"non-finite target at step {step}, joint index {joint}"
        age = now - obs_time
        if age > cfg.max_observation_age_s:
            return f"stale: observation is {age:.3f} s old (max {cfg.max_observation_age_s} s)"
        if age < -cfg.max_clock_skew_s:
            return f"observation stamp is {-age:.3f} s in the future: clocks disagree"
        if self._plan is not None and obs_time <= self._plan.obs_time:
            return (
                f"observation at {obs_time:.3f} s is not newer than the executing chunk's "
                f"({self._plan.obs_time:.3f} s)"
            )
        return ""

    def _velocity_into(self, plan: _Plan, row: int) -> np.ndarray:
        """Velocity [J] of the interval of `plan` that ends at `row`."""
        if row == 0:
            return plan.velocity0
        return (plan.positions[row] - plan.positions[row - 1]) / self.config.control_period_s

    def _fresh_plan(
        self,
        chunk: np.ndarray,
        step_times: np.ndarray,
        obs_time: float,
        commit: float,
        measured: np.ndarray,
        measured_velocity: np.ndarray | None,
    ) -> tuple[_Plan, int, int] | None:
        """A plan on a grid anchored at the arrival `commit`: row 0 is the measured state (at
        `obs_time`) extrapolated with the measured velocity (or at rest) to the arrival, the
        rows after it the chunk sampled at commit + k*dt up to its last step (the first point
        one period after the arrival). Returns (plan, first new row, blended), or None when the
        chunk ends less than a period after the arrival."""
        j, dt = self.config.num_joints, self.config.control_period_s
        velocity0 = np.zeros(j)
        if measured_velocity is not None:
            velocity0 = np.asarray(measured_velocity, dtype=np.float64).reshape(-1)
        if velocity0.shape != (j,):
            raise ValueError(f"current_velocity must have shape ({j},), got {velocity0.shape}")
        if not np.isfinite(velocity0).all():
            velocity0 = np.zeros(j)  # unknown velocity: plan as from rest; the filter limits the start
        count = int(math.floor((step_times[-1] - commit) / dt + _EPS))  # grid points within the chunk
        if count < 1:
            return None
        grid_times = commit + dt * np.arange(1, count + 1)  # [M]
        sampled = resample_chunk(chunk, step_times, grid_times)  # [M, J]
        start = measured + velocity0 * max(0.0, commit - obs_time)  # [J] at the arrival
        positions = np.concatenate([start[None, :], sampled], axis=0)  # [1 + M, J]
        velocities = np.zeros_like(positions)  # [1 + M, J]: row 0 the measured point velocity
        velocities[0] = velocity0
        return _Plan(float(commit), 0, positions, velocity0, -1, math.nan, velocities=velocities), 1, 0

    def _with_stop(self, plan: _Plan) -> _Plan:
        """`plan` [N, J] with a braking tail after its last row (unless the config allows
        ending in motion): from the last interval's velocity to rest within the acceleration
        limit. A plan whose last interval is already at rest gets no tail."""
        cfg, dt = self.config, self.config.control_period_s
        if cfg.allow_nonzero_end_velocity:
            return replace(plan, stop_rows=0)
        velocity = self._velocity_into(plan, len(plan.positions) - 1)  # [J]
        if not np.any(velocity != 0.0):
            return replace(plan, stop_rows=0)
        a_max, lower, upper = np.full(cfg.num_joints, np.inf), None, None
        if self.safety_filter is not None:
            limits = self.safety_filter.limits
            a_max = limits.arrays["max_acceleration"]
            if limits.has_position_limits:
                lower, upper = limits.arrays["lower"], limits.arrays["upper"]
        tail, _ = braking_path(plan.positions[-1], velocity, dt, a_max, lower, upper)  # [K, J]
        return replace(plan, positions=np.concatenate([plan.positions, tail], axis=0), stop_rows=len(tail))

    def _merge(
        self, plan: _Plan, chunk: np.ndarray, step_times: np.ndarray, commit: float, blend: bool = True
    ) -> tuple[_Plan, int, int] | None:
        """The plan up to and including the first point due after the commit time (the point the
        controller is heading to keeps its position, so replacing the trajectory moves nothing
        the controller is already interpolating towards), then the new chunk on the plan's grid,
        blended over the overlap with the old chunk targets (not its braking tail; nothing when
        `blend` is False). Returns (plan, first new row, blended steps), or None when the chunk
        covers no grid point after that."""
        cfg, dt = self.config, self.config.control_period_s
        t0 = plan.time_of_row(0, dt)
        first = max(
            1,
            int(math.floor((commit - t0) / dt + _EPS)) + 2,  # after the first point due after commit
            int(math.ceil((step_times[0] - t0) / dt - _EPS)),  # ... that the chunk covers
        )
        last = int(math.floor((step_times[-1] - t0) / dt + _EPS))
        if last < first:
            return None
        grid_times = t0 + dt * np.arange(first, last + 1)  # [M]
        new = resample_chunk(chunk, step_times, grid_times)  # [M, J]
        n_old = len(plan.positions)
        head = plan.positions[:first]  # [first, J]
        old_velocities = plan.velocities if plan.velocities is not None else np.zeros_like(plan.positions)
        head_velocities = old_velocities[:first]  # [first, J]
        if first > n_old:  # the plan ends (at rest) before the chunk starts: hold its last point meanwhile
            hold = np.repeat(plan.positions[-1:], first - n_old, axis=0)
            head = np.concatenate([head, hold], axis=0)
            head_velocities = np.concatenate([head_velocities, np.zeros_like(hold)], axis=0)
        overlap = max(0, min(plan.chunk_end_row, last) - first + 1) if blend else 0
        weights = blend_weights(cfg.blend, min(cfg.blend_steps, overlap), cfg.exponential_rate)  # [m]
        m = len(weights)
        old = plan.positions[first : first + m]  # [m, J]
        new[:m] = old + weights[:, None] * (new[:m] - old)
        positions = np.concatenate([head, new], axis=0)  # [last + 1, J]
        velocities = np.concatenate([head_velocities, np.zeros_like(new)], axis=0)  # new rows set by the caller
        return replace(plan, positions=positions, velocities=velocities, stop_rows=0), first, m

    def _pruned(self, plan: _Plan, now: float) -> _Plan:
        """Drop rows older than the history still needed (tracking check, seam velocity)."""
        dt = self.config.control_period_s
        keep_s = max(self.config.max_observation_age_s, 2.0 * dt)
        drop = int(math.floor((now - keep_s - plan.time_of_row(0, dt)) / dt))
        drop = min(drop, plan.chunk_end_row)
        if drop <= 0:
            return plan
        return replace(
            plan,
            offset=plan.offset + drop,
            positions=plan.positions[drop:].copy(),
            velocity0=self._velocity_into(plan, drop),
            velocities=None if plan.velocities is None else plan.velocities[drop:].copy(),
        )

    # -- output ----------------------------------------------------------------------------
    def send_from(self, now: float) -> PlannedTrajectory | None:
        """The trajectory to send at `now` (call it right before sending what `accept` planned).

        A plan that starts anew from rest and of which nothing has been sent yet keeps its start
        lead: when it is sent more than execution_lead_s after it was planned (a loaded machine
        delayed the sender), its grid moves later so that it begins ``now + start_lead_s`` (the
        arm rests meanwhile; every target moves by the same delay). Otherwise, and for every
        later call, this is :meth:`trajectory`.
        """
        plan, cfg = self._plan, self.config
        if plan is not None and plan.movable:
            start = plan.time_of_row(0, cfg.control_period_s)
            planned_at = start - cfg.start_lead
            delay = now + cfg.start_lead - start
            if now - planned_at > cfg.execution_lead_s + 1e-9 and delay > 0.0:
                plan = replace(plan, anchor=plan.anchor + delay)
            self._plan = replace(plan, movable=False)
        return self.trajectory(now)

    def trajectory(self, now: float) -> PlannedTrajectory | None:
        """Points due after ``now + execution_lead_s``, or None when the plan is used up. The last
        point's velocity is exactly 0 when the plan ends at rest (braking tail, hold, or a last
        interval without motion); it is the last interval's velocity only with
        allow_nonzero_end_velocity."""
        plan, dt = self._plan, self.config.control_period_s
        if plan is None:
            return None
        commit = now + self.config.execution_lead_s
        first = max(1, int(math.floor((commit - plan.time_of_row(0, dt)) / dt + _EPS)) + 1)
        if first >= len(plan.positions):
            return None
        positions = plan.positions[first:].copy()  # [n, J]
        velocities = plan.velocities[first:].copy()  # [n, J] as planned (the spline's point velocities)
        if plan.stop_rows > 0 or plan.is_hold:
            velocities[-1] = 0.0  # the stop's end: at rest
        return PlannedTrajectory(
            plan.time_of_row(first - 1, dt), dt, positions, velocities, plan.chunk_id, plan.is_hold
        )


def _append_rest(positions: np.ndarray, velocities: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """`positions`, `velocities` [N, J] (the last row at rest) followed by `rows` copies of the
    last position at velocity 0: [N + rows, J] each."""
    if rows <= 0:
        return positions, velocities
    rest_q = np.repeat(positions[-1:], rows, axis=0)  # [rows, J]
    return np.concatenate([positions, rest_q], axis=0), np.concatenate([velocities, np.zeros_like(rest_q)], axis=0)


def is_hold_profile(points: Sequence, num_joints: int) -> bool:
    """Whether a trajectory with these points (objects with `positions` and `velocities`, e.g.
    trajectory_msgs/JointTrajectoryPoint) is a hold of the node, not a policy command: a stop to
    rest (`ActionChunkExecutor.brake`: each moving joint's speed falls strictly from point to
    point to exactly 0 at the last point (the landing may flip the sign of a small remainder); a
    joint at rest stays at rest; when
    every velocity is 0 the positions do not change either), or no points at
    all (what older nodes sent). A point without one velocity per joint is no hold. A policy chunk
    moves, so it does not match unless the policy itself commands only braking."""
    if len(points) == 0:
        return True
    rows = [list(p.velocities) for p in points]
    if any(len(r) != num_joints for r in rows):
        return False
    v = np.array(rows, dtype=np.float64)  # [N, J]
    if not np.all(v[-1] == 0.0):
        return False
    if not v.any():  # at rest throughout: a hold only if it stays in place
        q = np.array([list(p.positions) for p in points], dtype=np.float64)  # [N, J]
        return bool(np.abs(q - q[0]).max(initial=0.0) <= 1e-12)
    speed = np.where(np.abs(v) < 1e-9, 0.0, np.abs(v))  # rad/s; below 1e-9: at rest (rounding)
    slowing = np.where(speed[:-1] > 0.0, np.diff(speed, axis=0) < -1e-12, speed[1:] == 0.0)  # [N-1, J]
    return bool(slowing.all())
