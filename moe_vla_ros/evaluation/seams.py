"""Chunk seams: the one definition both evaluators score (closed loop in the simulator, bags).

Pure numpy on `CommandRecord`s (times in s, positions in contract units, J joints, dt the
control period).

- Executed path: the setpoint a joint_trajectory_controller follows from the published
  trajectories. A trajectory takes over at max(header stamp, receipt) from the setpoint there,
  moves linearly to its points (points already due are skipped) and holds the last one; an
  empty trajectory (a hold) holds where the setpoint is (`ExecutedPath`, `command_path`).
- A seam is a trajectory that replaces a non-empty one. With tau the new trajectory's first
  point and x_k the executed path at tau + k dt:
    position jump     max |new(t) - old(t)| over the new trajectory's first `window` points,
                      `old` continued as the controller would (held after its end);
    velocity jump     max |v_{k+1} - v_k|, v_k = (x_k - x_{k-1}) / dt, k = -1 .. window-1;
    acceleration jump max |a_k - a_{k-1}|, a_k = (v_{k+1} - v_k) / dt, same k.
  The same velocity / acceleration changes at grid points away from seams are the baseline. A
  seam whose takeover comes after the old trajectory's last point is starved (the arm paused).
- With `SeamLimits` (per-joint velocity and acceleration limits), each seam's jumps are also
  compared per joint with what the arm can do in one control period: position jump against
  max_velocity * dt, velocity jump against max_acceleration * dt; a ratio above 1 is a jerk the
  limits do not allow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moe_vla_ros.evaluation.records import CommandRecord
from moe_vla_ros.evaluation.stats import summary_stats

DEFAULT_WINDOW_STEPS = 2  # control steps after a seam scored as the seam
_EPS = 1e-6


@dataclass(frozen=True)
class SeamLimits:
    """Per-joint limits [J] and the control period dt: one period's worth of motion bounds a seam."""

    max_velocity: tuple[float, ...]
    max_acceleration: tuple[float, ...]
    dt: float

    def __post_init__(self) -> None:
        v, a = np.asarray(self.max_velocity, float), np.asarray(self.max_acceleration, float)
        if v.shape != a.shape or v.ndim != 1 or v.size == 0 or not (np.all(v > 0) and np.all(a > 0)):
            raise ValueError(f"limits must be positive vectors of one length, got {list(v)} and {list(a)}")
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be > 0, got {self.dt!r}")

    @property
    def position_bound(self) -> np.ndarray:
        return np.asarray(self.max_velocity, float) * self.dt

    @property
    def velocity_bound(self) -> np.ndarray:
        return np.asarray(self.max_acceleration, float) * self.dt


# -- the executed path ------------------------------------------------------------------------
def takeover_s(command: CommandRecord) -> float:
    """When a published trajectory takes over: max(header stamp, receipt)."""
    return max(command.start_s, command.received_s)


@dataclass(frozen=True)
class _Segment:
    switch_s: float  # when it takes over
    knot_times: np.ndarray  # [n + 1]
    knot_positions: np.ndarray  # [n + 1, J]

    def sample(self, t: np.ndarray) -> np.ndarray:
        """Positions [K, J] at times `t` (linear, clamped: holds its last knot)."""
        return np.stack([np.interp(t, self.knot_times, self.knot_positions[:, j])
                         for j in range(self.knot_positions.shape[1])], axis=1)


def _segments(commands: Sequence[CommandRecord], initial: np.ndarray | None) -> list[_Segment]:
    """One segment per command in takeover order; each starts where the previous one was."""
    segments: list[_Segment] = []
    for c in sorted(commands, key=takeover_s):
        switch = takeover_s(c)
        if segments:
            here = segments[-1].sample(np.array([switch]))[0]
        elif initial is not None:
            here = np.asarray(initial, dtype=np.float64)
        elif not c.is_hold:
            here = c.positions[0]
        else:
            continue  # a hold before any command holds nothing known
        keep = c.times_s >= switch - _EPS
        times = np.concatenate([[switch], c.times_s[keep]])
        positions = np.concatenate([here[None, :], c.positions[keep]], axis=0)
        if times.size > 1 and times[1] <= switch + _EPS:  # a point due right at the takeover replaces the start
            times, positions = times[1:], positions[1:]
        segments.append(_Segment(switch, times, positions))
    return segments


class ExecutedPath:
    """The executed path of a run (module docstring), built once and sampled at any times."""

    def __init__(self, commands: Sequence[CommandRecord], initial: np.ndarray | None = None) -> None:
        self.segments = _segments(commands, initial)
        self.switches = np.array([s.switch_s for s in self.segments])

    def sample(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(float64 [K, J] positions; bool [K], False before the first takeover)."""
        t = np.asarray(times_s, dtype=np.float64)
        if not self.segments:
            return np.full((t.size, 0), np.nan), np.zeros(t.size, dtype=bool)
        which = np.searchsorted(self.switches, t, side="right") - 1  # [K]
        out = np.full((t.size, self.segments[0].knot_positions.shape[1]), np.nan)
        for i in np.unique(which[which >= 0]):
            rows = which == i
            out[rows] = self.segments[i].sample(t[rows])
        return out, which >= 0


def command_path(
    commands: Sequence[CommandRecord], times_s: np.ndarray, initial: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The executed path at `times_s` (float64 [K, J]; bool [K], False before the first takeover)."""
    return ExecutedPath(commands, initial).sample(times_s)


# -- seams ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeamJumps:
    """The raw measurements of one or more runs (pooled with `pooled`).

    Attributes:
        position, velocity: float64 [S, J] largest jump per seam and joint.
        acceleration: float64 [S] largest acceleration jump per seam (over joints).
        starved_s: float64 [G] how long each starved seam's arm paused.
        baseline_velocity, baseline_acceleration: changes away from seams (max over joints).
    """

    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    starved_s: np.ndarray
    baseline_velocity: np.ndarray
    baseline_acceleration: np.ndarray

    @staticmethod
    def pooled(runs: Sequence[SeamJumps]) -> SeamJumps:
        """The seams of several runs (episodes) together."""
        joints = max((r.position.shape[1] for r in runs), default=0)
        parts = [r for r in runs if r.position.size] or [_no_seams(joints)]
        return SeamJumps(
            np.concatenate([r.position for r in parts]), np.concatenate([r.velocity for r in parts]),
            *(np.concatenate([getattr(r, f) for r in runs] or [np.zeros(0)])
              for f in ("acceleration", "starved_s", "baseline_velocity", "baseline_acceleration")),
        )


def _no_seams(joints: int) -> SeamJumps:
    return SeamJumps(np.zeros((0, joints)), np.zeros((0, joints)), *(np.zeros(0) for _ in range(4)))


def seam_jumps(commands: Sequence[CommandRecord], period_s: float, window: int = DEFAULT_WINDOW_STEPS,
               initial: np.ndarray | None = None) -> SeamJumps:
    """Position / velocity / acceleration jumps at the chunk seams of one run and the baseline
    away from them (module docstring)."""
    dt = period_s
    pos_jumps, vel_jumps, acc_jumps, starved = [], [], [], []
    seam_zones: list[tuple[float, float]] = []
    ordered = sorted(commands, key=takeover_s)
    path = ExecutedPath(ordered, initial)
    for prev, new in zip(ordered, ordered[1:]):
        if prev.is_hold or new.is_hold:
            continue
        takeover = takeover_s(new)
        ahead = new.times_s > takeover - _EPS
        if not ahead.any():
            continue
        if takeover > prev.times_s[-1] + _EPS:
            starved.append(takeover - prev.times_s[-1])
        tau = float(new.times_s[ahead][0])
        old = _segments([prev], initial)[0]
        first = new.times_s[ahead][:window]
        jump = np.abs(new.positions[ahead][:window] - old.sample(first))  # [w, J]
        grid = tau + dt * np.arange(-3, window + 1)  # k = -3 .. window
        x, _ = path.sample(grid)  # [window + 4, J]
        v = np.diff(x, axis=0) / dt  # [window + 3, J]: v_k, k = -2 .. window
        a = np.diff(v, axis=0) / dt  # [window + 2, J]: a_k = (v_{k+1} - v_k) / dt, k = -2 .. window - 1
        dv = np.abs(np.diff(v, axis=0))[1:]  # [window + 1, J]: v_{k+1} - v_k, k = -1 .. window - 1
        da = np.abs(np.diff(a, axis=0))  # [window + 1, J]: a_k - a_{k-1}, k = -1 .. window - 1
        pos_jumps.append(jump.max(axis=0))
        vel_jumps.append(dv.max(axis=0))
        acc_jumps.append(float(da.max()))
        seam_zones.append((tau - 2 * dt, tau + window * dt))
    if not pos_jumps:
        joints = next((c.positions.shape[1] for c in ordered if not c.is_hold), 0)
        pos_jumps_arr, vel_jumps_arr = np.zeros((0, joints)), np.zeros((0, joints))
    else:
        pos_jumps_arr, vel_jumps_arr = np.stack(pos_jumps), np.stack(vel_jumps)
    baseline = _baseline(ordered, path, dt, seam_zones)
    return SeamJumps(pos_jumps_arr, vel_jumps_arr, np.asarray(acc_jumps, dtype=np.float64),
                     np.asarray(starved, dtype=np.float64), *baseline)


def summarize_seams(jumps: SeamJumps, limits: SeamLimits | None = None) -> dict:
    """The seam report: counts and statistics of the largest jump per seam (over joints) and,
    with `limits`, the per-joint jumps against one control period's worth of motion."""
    out = {
        "count": int(jumps.position.shape[0]),
        "position_jump": summary_stats(jumps.position.max(axis=1, initial=0.0)),
        "velocity_jump": summary_stats(jumps.velocity.max(axis=1, initial=0.0)),
        "acceleration_jump": summary_stats(jumps.acceleration),
        "starved": {"count": int(jumps.starved_s.size), "total_s": float(jumps.starved_s.sum())},
        "baseline_velocity_change": summary_stats(jumps.baseline_velocity),
        "baseline_acceleration_change": summary_stats(jumps.baseline_acceleration),
    }
    if limits is not None:
        out["limits"] = _against_limits(jumps, limits)
    return out


def seam_metrics(commands: Sequence[CommandRecord], period_s: float, window: int = DEFAULT_WINDOW_STEPS,
                 initial: np.ndarray | None = None, limits: SeamLimits | None = None) -> dict:
    """`summarize_seams` of one run's `seam_jumps`."""
    return summarize_seams(seam_jumps(commands, period_s, window, initial), limits)


def _against_limits(jumps: SeamJumps, limits: SeamLimits) -> dict:
    """Per-joint bounds, the largest jump / bound ratios and the fraction of seams within bounds."""
    out: dict = {"position_bound": limits.position_bound.tolist(), "velocity_bound": limits.velocity_bound.tolist()}
    pos, vel = jumps.position, jumps.velocity  # [S, J] each
    if pos.shape[0] == 0:
        return out | {"max_position_ratio": None, "max_velocity_ratio": None, "within_bounds": None}
    if pos.shape[1] != len(limits.max_velocity):
        raise ValueError(f"trajectories have {pos.shape[1]} joints, limits {len(limits.max_velocity)}")
    pr, vr = (pos / limits.position_bound).max(axis=1), (vel / limits.velocity_bound).max(axis=1)  # [S]
    return out | {"max_position_ratio": float(pr.max()), "max_velocity_ratio": float(vr.max()),
                  "within_bounds": float(np.mean((pr <= 1.0) & (vr <= 1.0)))}


def _baseline(ordered: Sequence[CommandRecord], path: ExecutedPath, dt: float,
              zones: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """|velocity change| and |acceleration change| (max over joints) at grid points of the
    executed path that are neither near a seam nor near a hold."""
    commanded = [c for c in ordered if not c.is_hold]
    if not commanded:
        return np.zeros(0), np.zeros(0)
    t0, t1 = float(commanded[0].times_s[0]), max(float(c.times_s[-1]) for c in commanded)
    grid = t0 + dt * np.arange(int(math.floor((t1 - t0) / dt + _EPS)) + 1)
    if grid.size < 4:
        return np.zeros(0), np.zeros(0)
    x, valid = path.sample(grid)
    v = np.diff(x, axis=0) / dt  # [n - 1, J] per interval
    a = np.diff(v, axis=0) / dt  # [n - 2, J] at grid[1:-1]
    dv = np.abs(np.diff(v, axis=0)).max(axis=1)  # [n - 2] velocity change at grid[1:-1]
    da = np.abs(np.diff(a, axis=0)).max(axis=1)  # [n - 3] acceleration change at grid[2:-1]
    points = grid[1:-1]
    keep = np.ones(points.size, dtype=bool)
    holds = [takeover_s(c) for c in ordered if c.is_hold]
    for lo, hi in zones + [(h - 3 * dt, h + 3 * dt) for h in holds]:
        keep &= ~((points >= lo - _EPS) & (points <= hi + _EPS))
    keep &= valid[:-2] & valid[1:-1] & valid[2:]
    return dv[keep], da[keep[1:]]
