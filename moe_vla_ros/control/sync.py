"""Approximate-time pairing of cameras and joint states by stamp (message_filters is not on PyPI).

Like message_filters' ApproximateTimeSynchronizer, every input keeps a bounded queue of
(stamp, item) and a set is emitted as soon as one message per input can be picked with all
stamps within ``slop_s`` of each other:

* The arriving message is the pivot (a set is complete only once its last member arrives, so
  every possible set is examined exactly when it becomes possible). From every other input the
  message nearest in stamp to the pivot is taken among those that keep the whole set within the
  slop; if several windows fit, the one whose members are nearest to the pivot wins, then the
  newest.
* After a set is emitted, each input drops everything up to the message it contributed: the
  emitted ones are *matched*, the older ones *superseded* (never used; normal for an input
  that is faster than the others). A message whose stamp is not newer than the last one
  emitted for its input is *late* and dropped. A full queue evicts its oldest message
  (*overflowed*: the other inputs are missing or outside the slop).

Emitted sets therefore have strictly increasing stamps per input. Time is passed in (stamps in
seconds), nothing reads a clock. Pure Python/numpy: no rclpy.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from moe_vla_ros.errors import BadInputError


class SyncError(BadInputError):
    """Bad synchroniser configuration or input (unknown input name, non-finite stamp)."""


@dataclass(frozen=True)
class SyncConfig:
    """Settings of an :class:`ApproximateTimeSync`.

    Attributes:
        input_names: the inputs to pair, e.g. ("wrist_camera", "joint_states"); unique, >= 1.
        slop_s: largest allowed difference between the stamps of one set, seconds; >= 0.
        queue_size: messages kept per input while waiting for partners; >= 1.
    """

    input_names: tuple[str, ...]
    slop_s: float = 0.05
    queue_size: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.input_names, str):
            raise SyncError(f"input_names must be a list of names, got the string {self.input_names!r}")
        names = tuple(str(n) for n in self.input_names)
        if not names or any(not n for n in names):
            raise SyncError(f"input_names must be non-empty names, got {list(names)}")
        if len(set(names)) != len(names):
            raise SyncError(f"input_names has duplicates: {list(names)}")
        object.__setattr__(self, "input_names", names)
        if not (math.isfinite(self.slop_s) and self.slop_s >= 0.0):
            raise SyncError(f"slop_s must be a finite number >= 0, got {self.slop_s!r}")
        if int(self.queue_size) != self.queue_size or self.queue_size < 1:
            raise SyncError(f"queue_size must be an integer >= 1, got {self.queue_size!r}")


@dataclass(frozen=True)
class SyncedSet:
    """One message per input, stamps within the slop.

    Attributes:
        stamps: input name -> stamp (seconds).
        items: input name -> the item passed to :meth:`ApproximateTimeSync.add`.
    """

    stamps: dict[str, float]
    items: dict[str, Any]

    @property
    def oldest_stamp(self) -> float:
        return min(self.stamps.values())

    @property
    def newest_stamp(self) -> float:
        return max(self.stamps.values())

    @property
    def spread_s(self) -> float:
        return self.newest_stamp - self.oldest_stamp


@dataclass
class InputCounters:
    """What happened to the messages of one input (see the module docstring for the terms)."""

    received: int = 0
    matched: int = 0
    superseded: int = 0
    overflowed: int = 0
    late: int = 0

    @property
    def dropped(self) -> int:
        """Messages never used in a set: superseded + overflowed + late."""
        return self.superseded + self.overflowed + self.late


@dataclass
class _Queue:
    stamps: list[float] = field(default_factory=list)  # sorted ascending
    items: list[Any] = field(default_factory=list)


class ApproximateTimeSync:
    """Pairs messages of several inputs whose stamps lie within a slop (see module docstring)."""

    def __init__(self, config: SyncConfig) -> None:
        self.config = config
        self.counters: dict[str, InputCounters] = {n: InputCounters() for n in config.input_names}
        self._queues: dict[str, _Queue] = {}
        self._last_emitted: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        """Drop every queued message (counters are kept) and forget the last emitted stamps."""
        self._queues = {n: _Queue() for n in self.config.input_names}
        self._last_emitted = {}

    @property
    def dropped(self) -> int:
        """Messages of all inputs never used in a set."""
        return sum(c.dropped for c in self.counters.values())

    def queued(self, name: str) -> int:
        """Messages of `name` currently waiting for partners."""
        return len(self._queue(name).stamps)

    def _queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise SyncError(f"unknown input {name!r}; inputs are {list(self.config.input_names)}") from None

    def add(self, name: str, stamp: float, item: Any) -> SyncedSet | None:
        """Queue one message of input `name`; return the set it completes, if any."""
        queue = self._queue(name)
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise SyncError(f"stamp of {name!r} must be finite, got {stamp!r}")
        counters = self.counters[name]
        counters.received += 1
        last = self._last_emitted.get(name)
        if last is not None and stamp <= last:
            counters.late += 1
            return None
        position = bisect.bisect_right(queue.stamps, stamp)
        queue.stamps.insert(position, stamp)
        queue.items.insert(position, item)
        chosen = self._best_partners(name, stamp)
        result = None
        if chosen is not None:
            chosen[name] = position
            result = self._emit(chosen)
        if len(queue.stamps) > self.config.queue_size:
            del queue.stamps[0], queue.items[0]
            counters.overflowed += 1
        return result

    def _best_partners(self, pivot_name: str, pivot_stamp: float) -> dict[str, int] | None:
        """Queue index per other input of the best set around the pivot, or None."""
        slop = self.config.slop_s
        others = [n for n in self.config.input_names if n != pivot_name]
        candidates: dict[str, list[float]] = {}
        for name in others:
            stamps = self._queues[name].stamps
            lo = bisect.bisect_left(stamps, pivot_stamp - slop)
            hi = bisect.bisect_right(stamps, pivot_stamp + slop)
            if lo == hi:
                return None
            candidates[name] = stamps[lo:hi]
        # The set's oldest stamp is the pivot's or one of the candidates' below it; each gives a
        # window [low, low + slop] that must hold one message of every input.
        lows = {pivot_stamp} | {s for ss in candidates.values() for s in ss if s < pivot_stamp}
        best: tuple[float, float] | None = None
        best_pick: dict[str, int] | None = None
        for low in lows:
            high = low + slop
            pick: dict[str, int] = {}
            cost = 0.0
            for name in others:
                stamps = self._queues[name].stamps
                lo = bisect.bisect_left(stamps, low)
                hi = bisect.bisect_right(stamps, high)
                if lo == hi:
                    break
                index = _nearest(stamps, lo, hi, pivot_stamp)
                pick[name] = index
                cost += abs(stamps[index] - pivot_stamp)
            else:
                score = (cost, -low)
                if best is None or score < best:
                    best, best_pick = score, pick
        return best_pick

    def _emit(self, pick: dict[str, int]) -> SyncedSet:
        stamps: dict[str, float] = {}
        items: dict[str, Any] = {}
        for name in self.config.input_names:
            queue, index = self._queues[name], pick[name]
            stamps[name], items[name] = queue.stamps[index], queue.items[index]
            counters = self.counters[name]
            counters.matched += 1
            counters.superseded += index
            del queue.stamps[: index + 1], queue.items[: index + 1]
            self._last_emitted[name] = stamps[name]
        return SyncedSet(stamps, items)


def _nearest(stamps: list[float], lo: int, hi: int, target: float) -> int:
    """Index in stamps[lo:hi] nearest to `target` (the newer one on a tie)."""
    best = lo
    for i in range(lo + 1, hi):
        if abs(stamps[i] - target) <= abs(stamps[best] - target):
            best = i
    return best
