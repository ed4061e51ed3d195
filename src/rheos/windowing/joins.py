"""Joins of two keyed streams in event time: interval joins and window joins.

Both are *inner* joins of a left and a right stream on the key, driven by one watermark (the
minimum of the two inputs' watermarks, see :func:`rheos.windowing.combine_watermarks`).

Interval join, :class:`IntervalJoinOperator` ``(lower_ms, upper_ms)``: a left event ``a`` and a
right event ``b`` of the same key pair when ``a.ts + lower <= b.ts <= a.ts + upper``
(``lower <= upper``; both may be negative). Each pair is emitted exactly once, as soon as its
second event arrives, as ``(left, right)``; pairs of one event come in the arrival order of
its partners. Events wait in a buffer for partners still to come; at watermark ``W``

* a left event is dropped when ``a.ts + upper < W`` (no right event at or after ``W`` can pair);
* a right event is dropped when ``b.ts - lower < W``.

An event whose timestamp is below the watermark (``ts < W``) may have missed partners that
were already dropped: it is *late*. It still pairs with the partners still buffered, and the
result says so (``result.late``), and :attr:`IntervalJoinOperator.late_events` counts it.
When the input is out of order by no more than the watermark's bound, no event is late and
the pairs are exactly those of a batch join.

>>> join = IntervalJoinOperator(0, 1_000)
>>> join.process_left("k", "click", 5_000)
[]
>>> join.process_right("k", "buy", 5_600)
[('click', 'buy')]
>>> join.advance(6_500)     # the click (5000 + 1000 < 6500) can no longer pair
>>> r = join.process_right("k", "late buy", 5_900); (list(r), r.late)
([], True)

Window join, :class:`WindowJoinOperator` ``(spec)``: both sides are put in the windows of
``spec`` (tumbling, sliding or session -- a session is made of the events of both sides) per
key; when a window is finalized it emits every pair of a left and a right event of that key
and window, left events in event-time order, then right events in event-time order (ties by
arrival), as rows ``{"key", "window_start", "window_end", "left": a, "right": b}``. A window
with events on one side only emits nothing (inner join). Finalization, lateness and row order
are those of :class:`rheos.windowing.operator.WindowOperator`.

>>> from rheos.windowing.windows import tumbling
>>> wj = WindowJoinOperator(tumbling("10s"))
>>> _ = wj.process_left("k", "a1", 1_000); _ = wj.process_right("k", "b1", 2_000)
>>> wj.advance(10_000)
[{'key': 'k', 'window_start': 0, 'window_end': 10000, 'left': 'a1', 'right': 'b1'}]

Buffered events are part of the snapshots, so they must be plain data (msgpack-able).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import timedelta
from heapq import heappop, heappush
from operator import itemgetter
from typing import Any

from rheos.durations import Duration, to_ms
from rheos.errors import CheckpointError, ConfigError
from rheos.windowing.aggregations import BoundAggregation
from rheos.windowing.kernel import WindowKernel
from rheos.windowing.operator import (
    LateInfo,
    ProcessResult,
    Row,
    WindowOperator,
    copy_plain,
    key_from_plain,
    key_to_plain,
)
from rheos.windowing.watermarks import MIN_WATERMARK
from rheos.windowing.windows import WindowSpec

_FORMAT = 1
_LEFT, _RIGHT = 0, 1


def _signed_ms(value: Duration, what: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, timedelta):
        return round(value.total_seconds() * 1000)
    if isinstance(value, str) and value.strip().startswith("-"):
        return -to_ms(value.strip()[1:], what=what)
    return to_ms(value, what=what)


class JoinResult(list[tuple[Any, Any]]):
    """The pairs ``(left, right)`` an event completed; ``late`` is True if it was late."""

    late: bool = False


class IntervalJoinOperator:
    """Pairs events of two streams whose times are within an interval (see the module docs)."""

    def __init__(self, lower_ms: Duration, upper_ms: Duration) -> None:
        self.lower_ms = _signed_ms(lower_ms, "interval join lower bound")
        self.upper_ms = _signed_ms(upper_ms, "interval join upper bound")
        if self.lower_ms > self.upper_ms:
            raise ConfigError(
                f"interval join: lower bound ({self.lower_ms} ms) is above "
                f"upper bound ({self.upper_ms} ms)"
            )
        self._watermark = MIN_WATERMARK
        # key -> ([left [ts, event], ...], [right [ts, event], ...]) in arrival order
        self._buffers: dict[Hashable, tuple[list[list[Any]], list[list[Any]]]] = {}
        self._expiry: list[tuple[int, int, Hashable]] = []
        self._pushes = 0
        self.late_events = 0
        """Events that arrived behind the watermark (they may have missed partners)."""
        self._changed: set[Hashable] = set()

    @property
    def watermark(self) -> int:
        """The watermark the operator was last advanced to."""
        return self._watermark

    @property
    def buffered(self) -> int:
        """Events waiting for partners."""
        return sum(len(left) + len(right) for left, right in self._buffers.values())

    def _drop_at(self, side: int, ts: int) -> int:
        """The lowest watermark at which an event of ``side`` at ``ts`` is dropped."""
        return ts + self.upper_ms + 1 if side == _LEFT else ts - self.lower_ms + 1

    def _process(self, side: int, key: Hashable, event: Any, ts: int) -> JoinResult:
        result = JoinResult()
        if ts < self._watermark:
            result.late = True
            self.late_events += 1
        buffers = self._buffers.get(key)
        if side == _LEFT:
            low, high = ts + self.lower_ms, ts + self.upper_ms
            if buffers is not None:
                for other_ts, other in buffers[_RIGHT]:
                    if low <= other_ts <= high:
                        result.append((event, other))
        else:
            low, high = ts - self.upper_ms, ts - self.lower_ms
            if buffers is not None:
                for other_ts, other in buffers[_LEFT]:
                    if low <= other_ts <= high:
                        result.append((other, event))
        drop_at = self._drop_at(side, ts)
        if drop_at > self._watermark:
            if buffers is None:
                buffers = self._buffers[key] = ([], [])
            buffers[side].append([ts, event])
            self._pushes += 1
            heappush(self._expiry, (drop_at, self._pushes, key))
            self._changed.add(key)
        return result

    def process_left(self, key: Hashable, event: Any, ts: int) -> JoinResult:
        """Add a left event; return the pairs it completes (``.late`` tells if it was late)."""
        return self._process(_LEFT, key, event, ts)

    def process_right(self, key: Hashable, event: Any, ts: int) -> JoinResult:
        """Add a right event; return the pairs it completes (``.late`` tells if it was late)."""
        return self._process(_RIGHT, key, event, ts)

    def advance(self, watermark: int) -> None:
        """Move event time to ``watermark`` and drop events that can no longer pair."""
        if watermark <= self._watermark:
            return
        self._watermark = watermark
        keys: dict[Hashable, None] = {}
        while self._expiry and self._expiry[0][0] <= watermark:
            keys[heappop(self._expiry)[2]] = None
        for key in keys:
            buffers = self._buffers.get(key)
            if buffers is None:
                continue
            left = [e for e in buffers[_LEFT] if e[0] + self.upper_ms >= watermark]
            right = [e for e in buffers[_RIGHT] if e[0] - self.lower_ms >= watermark]
            self._changed.add(key)
            if left or right:
                self._buffers[key] = (left, right)
            else:
                del self._buffers[key]

    def changed_keys(self) -> set[Hashable]:
        """Keys whose buffers changed since :meth:`clear_changed`."""
        return set(self._changed)

    def clear_changed(self) -> None:
        """Forget which keys changed."""
        self._changed.clear()

    def take_changed(self) -> set[Hashable]:
        """Hand over the keys changed so far and start an empty set (constant time)."""
        taken, self._changed = self._changed, set()
        return taken

    def merge_changed(self, taken: set[Hashable]) -> None:
        """Count ``taken`` (from :meth:`take_changed`) as changed again."""
        self._changed |= taken

    def snapshot(self) -> dict[str, Any]:
        """The operator's state as plain data."""
        return {
            "format": _FORMAT,
            "lower_ms": self.lower_ms,
            "upper_ms": self.upper_ms,
            "watermark": self._watermark,
            "late_events": self.late_events,
            "keys": [
                [key_to_plain(k), copy_plain(left), copy_plain(right)]
                for k, (left, right) in self._buffers.items()
            ],
        }

    def load(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the state by ``snapshot`` (from :meth:`snapshot`)."""
        if snapshot.get("format") != _FORMAT:
            raise CheckpointError(
                f"interval join: unknown snapshot format {snapshot.get('format')!r}"
            )
        if (snapshot["lower_ms"], snapshot["upper_ms"]) != (self.lower_ms, self.upper_ms):
            raise CheckpointError(
                f"interval join: the snapshot is of bounds ({snapshot['lower_ms']}, "
                f"{snapshot['upper_ms']}), not ({self.lower_ms}, {self.upper_ms})"
            )
        self._watermark = int(snapshot["watermark"])
        self.late_events = int(snapshot["late_events"])
        self._buffers = {}
        self._expiry = []
        self._changed.clear()
        for plain_key, left, right in snapshot["keys"]:
            key = key_from_plain(plain_key)
            self._buffers[key] = (copy_plain(left), copy_plain(right))
            for side, entries in ((_LEFT, left), (_RIGHT, right)):
                for ts, _ in entries:
                    self._pushes += 1
                    heappush(self._expiry, (self._drop_at(side, ts), self._pushes, key))

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any]) -> IntervalJoinOperator:
        """A new operator holding the state of ``snapshot``."""
        op = cls(int(snapshot["lower_ms"]), int(snapshot["upper_ms"]))
        op.load(snapshot)
        return op


class _BothSides(BoundAggregation):
    """Keeps the events of both sides of a window join: ``[[left...], [right...]]``."""

    kind = "join"

    def init(self) -> list[Any]:
        return [[], []]

    def add_value(self, acc: Any, value: Any, ts: int, seq: int) -> Any:
        side, payload = value
        acc[side].append([ts, seq, payload])
        return acc

    def merge(self, a: Any, b: Any) -> Any:
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, acc: Any) -> Any:
        left, right = acc
        if not left or not right:  # (an inner join: no pairs)
            return []
        return [(a, b) for a in _in_time_order(left) for b in _in_time_order(right)]


def _in_time_order(entries: list[list[Any]]) -> list[Any]:
    """The payloads of ``[ts, seq, payload]`` entries by time, then arrival (sorted only
    when their times are not already in order: entries are kept in arrival order)."""
    if any(entries[i][0] > entries[i + 1][0] for i in range(len(entries) - 1)):
        entries = sorted(entries, key=_TIME_SEQ)
    return [e[2] for e in entries]


_TIME_SEQ = itemgetter(0, 1)


class WindowJoinOperator:
    """Inner join of two streams per key and window (see the module docs)."""

    def __init__(self, spec: WindowSpec, *, allowed_lateness_ms: Duration = 0) -> None:
        self.spec = spec
        self._op = WindowOperator(
            spec, {"pairs": _BothSides()}, allowed_lateness_ms=allowed_lateness_ms
        )

    @property
    def kernel(self) -> WindowKernel:
        """The windows' kernel: when they finalize, and when events become late."""
        return self._op.kernel

    @property
    def watermark(self) -> int:
        """The watermark the operator was last advanced to."""
        return self._op.watermark

    @property
    def late_events(self) -> int:
        """Events that missed at least one window."""
        return self._op.late_events

    @property
    def state_size(self) -> int:
        """Open (key, window) states held."""
        return self._op.state_size

    def _process(self, side: int, key: Hashable, event: Any, ts: int) -> ProcessResult:
        result = self._op.process(key, (side, event), ts)
        late = result.late
        if late is None:  # (final mode: no rows either)
            return result
        return ProcessResult([], LateInfo(late.key, late.ts, event, late.windows))

    def process_left(self, key: Hashable, event: Any, ts: int) -> ProcessResult:
        """Add a left event; ``late`` reports the windows it missed, if any."""
        return self._process(_LEFT, key, event, ts)

    def process_right(self, key: Hashable, event: Any, ts: int) -> ProcessResult:
        """Add a right event; ``late`` reports the windows it missed, if any."""
        return self._process(_RIGHT, key, event, ts)

    def advance(self, watermark: int) -> list[Row]:
        """Move event time to ``watermark``; return the pairs of the windows it finalizes."""
        rows: list[Row] = []
        for window in self._op.advance(watermark):
            for a, b in window["pairs"]:
                rows.append(
                    {
                        "key": window["key"],
                        "window_start": window["window_start"],
                        "window_end": window["window_end"],
                        "left": a,
                        "right": b,
                    }
                )
        return rows

    def changed_keys(self) -> set[Hashable]:
        """Keys whose state changed since :meth:`clear_changed`."""
        return self._op.changed_keys()

    def clear_changed(self) -> None:
        """Forget which keys changed."""
        self._op.clear_changed()

    def take_changed(self) -> set[Hashable]:
        """Hand over the keys changed so far and start an empty set (constant time)."""
        return self._op.take_changed()

    def merge_changed(self, taken: set[Hashable]) -> None:
        """Count ``taken`` (from :meth:`take_changed`) as changed again."""
        self._op.merge_changed(taken)

    def snapshot_key(self, key: Hashable) -> dict[str, Any] | None:
        """The state of ``key`` as plain data, or None."""
        return self._op.snapshot_key(key)

    def restore_key(self, key: Hashable, data: dict[str, Any] | None) -> None:
        """Replace the state of ``key`` by ``data`` from :meth:`snapshot_key`."""
        self._op.restore_key(key, data)

    def snapshot(self, *, include_keys: bool = True) -> dict[str, Any]:
        """The operator's state as plain data."""
        return self._op.snapshot(include_keys=include_keys)

    def load(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the state by ``snapshot`` (from :meth:`snapshot`)."""
        self._op.load(snapshot)

    @classmethod
    def restore(
        cls, spec: WindowSpec, snapshot: Mapping[str, Any], *, allowed_lateness_ms: Duration = 0
    ) -> WindowJoinOperator:
        """A new operator holding the state of ``snapshot``."""
        op = cls(spec, allowed_lateness_ms=allowed_lateness_ms)
        op.load(snapshot)
        return op


__all__ = ["IntervalJoinOperator", "JoinResult", "WindowJoinOperator"]
