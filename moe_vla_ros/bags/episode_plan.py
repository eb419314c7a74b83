"""Second step of bag -> dataset conversion: cut the streams into episodes on the control grid.

`plan_episodes()` takes the time series of `demo_streams.load_demo_streams()` and decides, for
every step of every episode, the joint positions, the action, the reasoning text and WHICH
image of each camera it uses (by message index); the pixels are decoded afterwards. The rules
(see also to_dataset.py):

- one episode per run of constant, non-empty instruction text, cut further wherever a step
  cannot be built; steps are 1/control_rate apart from the first joint state of the span;
- joint positions: linear interpolation, invalid across a gap longer than `max_gap_s`;
- action at t: the target at t + 1/control_rate, from the trajectory commands when there are
  any, else the interpolated joint positions at that time;
- images: the nearest within `image_slop_s`, per camera;
- reasoning: newest trace stamped in [span start, t] whose instruction is empty or the span's.

Pure numpy.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from moe_vla_ros.bags.demo_streams import DemoStreams
from moe_vla_ros.bags.resample import (
    interpolate_joint_positions,
    latest_at_or_before,
    nearest_within,
    sample_trajectories,
    valid_runs,
)
from moe_vla_ros.contract import SensorContract


@dataclass
class PlannedEpisode:
    """One episode's steps before its images are decoded.

    Attributes:
        instruction: the episode's instruction.
        start_ns: time of step 0.
        joint_position: float64 [T, J] observed positions (contract order).
        action: float64 [T, J] joint-position targets.
        reasoning: [T] reasoning text per step.
        image_index: camera -> int64 [T] index of the image (within its topic) each step uses.
        images: camera -> uint8 [T, H, W, 3], filled while the images are decoded.
        missing: images still to be filled in.
    """

    instruction: str
    start_ns: int
    joint_position: np.ndarray
    action: np.ndarray
    reasoning: list[str]
    image_index: dict[str, np.ndarray]
    images: dict[str, np.ndarray] = field(default_factory=dict)
    missing: int = 0

    def __len__(self) -> int:
        return int(self.action.shape[0])


def instruction_spans(instructions: list[tuple[int, str]], end_ns: int) -> list[tuple[int, int, str]]:
    """[start, stop) spans of constant instruction text; spans of empty text are left out."""
    spans: list[tuple[int, int, str]] = []
    for t, text in sorted(instructions, key=lambda x: x[0]):
        if spans and spans[-1][2] == text:
            continue
        if spans:
            spans[-1] = (spans[-1][0], t, spans[-1][2])
        spans.append((t, end_ns + 1, text))
    return [s for s in spans if s[2] and s[1] > s[0]]


def _reasoning_for(streams: DemoStreams, grid: np.ndarray, start: int, stop: int, text: str) -> list[str]:
    keep = [
        i for i, t in enumerate(streams.reasoning_times_ns.tolist())
        if start <= t < stop and streams.reasoning_instructions[i] in ("", text)
    ]
    if not keep:
        return [""] * grid.size
    which = latest_at_or_before(streams.reasoning_times_ns[keep], grid)  # [K]
    return [streams.reasoning_texts[keep[w]] if w >= 0 else "" for w in which.tolist()]


def plan_episodes(
    streams: DemoStreams,
    contract: SensorContract,
    *,
    image_slop_s: float,
    max_gap_s: float,
    min_episode_steps: int,
) -> tuple[list[PlannedEpisode], Counter]:
    """Episodes (in time order) and the count of grid steps left out, by reason."""
    period_ns = 1e9 / contract.control_rate_hz
    max_gap_ns, slop_ns = int(max_gap_s * 1e9), int(image_slop_s * 1e9)
    times, positions = streams.joint_times_ns, streams.joint_positions  # [N], [N, J]
    dropped: Counter = Counter()
    episodes: list[PlannedEpisode] = []
    if times.size == 0:
        return episodes, dropped

    def state_at(t_ns: int) -> np.ndarray | None:
        q, ok = interpolate_joint_positions(times, positions, np.array([t_ns]), max_gap_ns)
        return q[0] if ok[0] else None

    for span_start, span_stop, text in instruction_spans(streams.instructions, int(times[-1])):
        first = int(np.searchsorted(times, span_start, side="left"))
        if first >= times.size or times[first] >= span_stop:
            continue
        stop = min(span_stop - 1, int(times[-1]))
        count = int(math.floor((stop - times[first]) / period_ns)) + 1
        grid = times[first] + np.round(np.arange(count) * period_ns).astype(np.int64)  # [K]
        state, valid = interpolate_joint_positions(times, positions, grid, max_gap_ns)  # [K, J], [K]
        dropped["joint state gap"] += int((~valid).sum())
        next_t = grid + int(round(period_ns))  # [K] when the action's target is due
        if streams.commands:
            action, has_action = sample_trajectories(streams.commands, next_t, state_at)
            reason = "no active trajectory command"
        else:
            action, has_action = interpolate_joint_positions(times, positions, next_t, max_gap_ns)
            reason = "no next joint state"
        dropped[reason] += int((valid & ~has_action).sum())
        valid &= has_action
        image_index = {}
        for cam, stream in streams.cameras.items():
            image_index[cam] = nearest_within(stream.stamps_ns, grid, slop_ns)  # [K]
            no_image = valid & (image_index[cam] < 0)
            dropped[f"no {cam} image within slop"] += int(no_image.sum())
            valid &= ~no_image
        texts = _reasoning_for(streams, grid, span_start, span_stop, text)
        for a, b in valid_runs(valid):
            if b - a < min_episode_steps:
                dropped["episode shorter than min_episode_steps"] += b - a
                continue
            episodes.append(
                PlannedEpisode(
                    instruction=text,
                    start_ns=int(grid[a]),
                    joint_position=state[a:b],
                    action=action[a:b],
                    reasoning=texts[a:b],
                    image_index={cam: idx[a:b] for cam, idx in image_index.items()},
                    missing=(b - a) * len(streams.cameras),
                )
            )
    return episodes, +dropped
