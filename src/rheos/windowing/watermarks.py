"""Watermarks: how far event time has progressed on a source.

A watermark ``W`` is a promise: *no future event is expected with a timestamp below W*.
Windows use it to know when they are complete (see :mod:`rheos.windowing.windows`).

Bounded out-of-orderness. A source whose events arrive at most ``B`` milliseconds out of
order has ``W = (max event ts seen) - B``. Before any event ``W`` is :data:`MIN_WATERMARK`
(minus infinity); :data:`MAX_WATERMARK` (plus infinity) means the input has ended.

Out of order. An event is *out of order* when its timestamp is below the largest timestamp
seen before it on the same stream; :class:`Disorder` counts those events and keeps the
largest delay (``max ts before - ts``), for one event at a time, a list or an array of times
(every runtime counts with it; generated loops inline its source, :func:`disorder_source`).
An out-of-order event is not necessarily *late*: lateness is decided by the window operator
against the watermark.

Partitions. A source is read as several partitions. The source's watermark is the minimum, over
its *active* partitions, of ``partition max ts - B``, so a slow partition holds event time back
for the whole source. A partition that has produced nothing yet holds it at
:data:`MIN_WATERMARK`. A partition stops counting when

* it is **ended** (:meth:`WatermarkTracker.end_partition`: exhausted, bounded input); when
  every known partition has ended, the watermark is :data:`MAX_WATERMARK`;
* it is **idle**: with ``idle_timeout_ms`` set, :meth:`WatermarkTracker.poll_idle` marks
  idle each partition that has had no event for at least ``idle_timeout_ms`` of processing
  time (a partition that never produced counts from when it became known). Its next event
  makes it active again. :meth:`WatermarkTracker.mark_idle` marks a partition idle at once.

All partitions idle. If every partition that has not ended is idle, nothing holds the
watermark back, and it follows the processing clock so that windows do not stay open for ever
when a source goes quiet::

    W = max(W_last, max_ts_seen_on_source - B + (now - last_event_processing_time))

where ``W_last`` is the watermark last returned, ``now`` is the clock's time and
``last_event_processing_time`` the clock's time when the source's latest event was observed.
In words: event time is assumed to keep flowing at the speed of the wall clock since the last
event. (A source that never produced an event stays at ``W_last``.)

The watermark never goes backwards: :meth:`WatermarkTracker.current` returns
``max(W_last, computed)``, so an idle partition that wakes up behind the others cannot pull it
back; its events below the watermark are simply late for the consumer.

>>> from rheos.windowing.clock import ManualClock
>>> clock = ManualClock()
>>> tracker = WatermarkTracker(1_000, idle_timeout_ms=5_000, clock=clock)
>>> tracker.declare_partitions([0, 1])
>>> clock.advance(3_000)
>>> tracker.observe(0, 10_000)
False
>>> tracker.current() == MIN_WATERMARK       # partition 1 has produced nothing yet
True
>>> clock.advance(2_000); tracker.poll_idle()  # partition 1 is idle now
>>> tracker.current()
9000
>>> tracker.observe(0, 9_500)                 # out of order, within the bound
True
>>> clock.advance(5_000); tracker.poll_idle()  # everything idle: follow the clock
>>> tracker.current()
14000
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from rheos.durations import Duration, to_ms
from rheos.errors import CheckpointError, ConfigError, FlowDefinitionError
from rheos.windowing.clock import Clock, SystemClock

if TYPE_CHECKING:  # NumPy is needed only by the array form (the micro-batch runtime)
    import numpy as np

MIN_WATERMARK = -(2**63)
"""The watermark before anything is known: minus infinity."""

MAX_WATERMARK = 2**63 - 1
"""The watermark at the end of input: plus infinity; every window finalizes."""

_FORMAT = 1


def combine_watermarks(*watermarks: int) -> int:
    """Watermark of several inputs merged together (a union, a join): their minimum.

    >>> combine_watermarks(5_000, 3_000, MAX_WATERMARK)
    3000
    """
    if not watermarks:
        raise ConfigError("combine_watermarks: needs at least one watermark")
    return min(watermarks)


def disorder_source(ts: str, top: str, late: str, most: str, on_top: Iterable[str] = ()) -> str:
    """Python statements counting the event at time ``ts`` out of order or not: ``top``
    names the largest time so far, ``late`` the count of out-of-order events, ``most`` the
    largest delay; ``on_top`` are statements run when ``ts`` is a new largest time. The one
    source of :meth:`Disorder.observe` and of the loops that inline it."""
    lines = [
        f"if {ts} < {top}:",
        f"    {late} += 1",
        f"    if {top} - {ts} > {most}:",
        f"        {most} = {top} - {ts}",
        "else:",
        f"    {top} = {ts}",
        *("    " + line for line in on_top),
    ]
    return "\n".join(lines)


def _function(head: str, lines: list[str]) -> Callable[..., Any]:
    text = "\n".join("    " + line for line in lines)
    env: dict[str, Any] = {}
    exec(compile(f"def {head}:\n{text}\n", "<rheos disorder>", "exec"), env)
    function: Callable[..., Any] = next(v for k, v in env.items() if k != "__builtins__")
    return function


_observe: Callable[[list[int], int], bool] = _function(
    "observe(c, ts)",
    [
        "c[0] += 1",
        *disorder_source("ts", "c[1]", "c[2]", "c[3]", on_top=["return False"]).splitlines(),
        "return True",
    ],
)
_observe_all: Callable[[list[int], Collection[int]], None] = _function(
    "observe_all(c, times)",
    [
        "top, late, most = c[1], c[2], c[3]",
        "for ts in times:",
        *("    " + line for line in disorder_source("ts", "top", "late", "most").splitlines()),
        "c[0] += len(times)",
        "c[1], c[2], c[3] = top, late, most",
    ],
)


class Disorder:
    """Out-of-order statistics of one stream of event times (see the module docs).

    The counters live in :attr:`cell`, ``[events, largest time, out of order, largest
    delay]``, a list that hot loops index directly.

    >>> d = Disorder()
    >>> d.observe(5), d.observe(3), d.observe(9)
    (False, True, False)
    >>> d.observe_all([8, 10]); d.events, d.out_of_order, d.max_delay_ms
    (5, 2, 2)
    >>> import numpy as np
    >>> d.observe_array(np.array([4, 11, 11])).tolist()  # the largest time before each event
    [10, 10, 11]
    >>> d.out_of_order, d.max_delay_ms, d.top
    (3, 6, 11)
    """

    __slots__ = ("cell",)

    def __init__(self) -> None:
        self.cell = [0, MIN_WATERMARK, 0, 0]

    @property
    def events(self) -> int:
        return self.cell[0]

    @property
    def top(self) -> int:
        """The largest time seen (:data:`MIN_WATERMARK` before any)."""
        return self.cell[1]

    @property
    def out_of_order(self) -> int:
        return self.cell[2]

    @property
    def max_delay_ms(self) -> int:
        return self.cell[3]

    def observe(self, ts: int) -> bool:
        """Count one event at ``ts``; True if it is out of order."""
        return _observe(self.cell, ts)

    def observe_all(self, times: Collection[int]) -> None:
        """Count events at ``times``, in order."""
        _observe_all(self.cell, times)

    def observe_array(self, ts: np.ndarray) -> np.ndarray:
        """Count events at ``ts`` (an int64 array, in order); return the largest time seen
        before each of them."""
        import numpy as np  # an optional dependency: only the micro-batch runtime calls this

        cell = self.cell
        if not len(ts):
            return ts
        top = np.maximum(np.maximum.accumulate(ts), cell[1])
        before = np.concatenate([np.asarray([cell[1]], dtype=np.int64), top[:-1]])
        late = ts < before
        cell[0] += len(ts)
        if late.any():
            cell[2] += int(late.sum())
            cell[3] = max(cell[3], int((before - ts)[late].max()))
        cell[1] = int(top[-1])
        return before

    def __repr__(self) -> str:
        return f"Disorder(events={self.events}, out_of_order={self.out_of_order}, " \
            f"max_delay_ms={self.max_delay_ms})"  # fmt: skip


def _plain_to_hashable(value: Any) -> Any:
    """Undo what msgpack does to tuples (they come back as lists)."""
    if isinstance(value, list):
        return tuple(_plain_to_hashable(v) for v in value)
    return value


def _hashable_to_plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_hashable_to_plain(v) for v in value]
    return value


class _Partition:
    __slots__ = ("ended", "idle", "last_seen_ms", "max_ts")

    def __init__(self, now_ms: int) -> None:
        self.max_ts: int | None = None
        self.ended = False
        self.idle = False
        self.last_seen_ms = now_ms


class WatermarkTracker:
    """The watermark of one source read as several partitions (see the module docs).

    ``out_of_orderness_ms`` is the bound ``B`` (a duration such as ``"5s"`` is accepted too).
    ``idle_timeout_ms`` (default: never) is how long a partition may stay silent before it no
    longer holds the watermark back; ``clock`` is the processing clock (default
    :class:`SystemClock`).
    """

    def __init__(
        self,
        out_of_orderness_ms: Duration,
        *,
        idle_timeout_ms: Duration | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.out_of_orderness_ms = to_ms(out_of_orderness_ms, what="out_of_orderness")
        self.idle_timeout_ms = (
            None if idle_timeout_ms is None else to_ms(idle_timeout_ms, what="idle_timeout")
        )
        if self.idle_timeout_ms == 0:
            raise ConfigError("idle_timeout: must be greater than zero (or None for never)")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._partitions: dict[Hashable, _Partition] = {}
        self.disorder = Disorder()
        """The source's out-of-order statistics (over all its partitions)."""
        self._last_event_ms = self._clock.now_ms()
        # the hot path reads the clock only when idleness can matter
        self._reads_clock = self.idle_timeout_ms is not None
        self._watermark = MIN_WATERMARK

    @property
    def events(self) -> int:
        """Events observed."""
        return self.disorder.events

    @property
    def out_of_order_count(self) -> int:
        """Events whose timestamp was below the largest one seen before them."""
        return self.disorder.out_of_order

    @property
    def max_delay_ms(self) -> int:
        """The largest ``max ts before - ts`` of an out-of-order event."""
        return self.disorder.max_delay_ms

    @property
    def _max_ts(self) -> int | None:
        top = self.disorder.top
        return None if top == MIN_WATERMARK and not self.disorder.events else top

    # -- input ---------------------------------------------------------------------------------

    def declare_partitions(self, partitions: Iterable[Hashable]) -> None:
        """Make partitions known before they produce, so they hold the watermark back."""
        now = self._clock.now_ms()
        for p in partitions:
            if p not in self._partitions:
                self._partitions[p] = _Partition(now)

    def observe(self, partition: Hashable, ts: int) -> bool:
        """Record an event of ``partition`` at event time ``ts``; return True if out of order."""
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition(self._last_event_ms)
        elif part.ended:
            raise FlowDefinitionError(
                f"watermarks: event observed on partition {partition!r} after it was ended"
            )
        if self._reads_clock:
            now = self._clock.now_ms()
            part.last_seen_ms = now
            self._last_event_ms = now
        part.idle = False
        if part.max_ts is None or ts > part.max_ts:
            part.max_ts = ts
        return _observe(self.disorder.cell, ts)

    def observe_array(self, partition: Hashable, ts: np.ndarray) -> np.ndarray:
        """Record events of ``partition`` at event times ``ts`` (an int64 array, in arrival
        order); return the watermark after each of them: what :meth:`current` returns after
        each :meth:`observe`, computed for the whole array at once (the other partitions do
        not change meanwhile).

        >>> import numpy as np
        >>> t = WatermarkTracker(out_of_orderness_ms=10)
        >>> t.declare_partitions([0, 1]); t.observe(1, 50)
        False
        >>> t.observe_array(0, np.array([30, 70, 60, 90])).tolist()  # partition 1 holds at 40
        [20, 40, 40, 40]
        >>> t.out_of_order_count, t.current()  # in arrival order, across partitions: 30, 60
        (2, 40)
        """
        import numpy as np  # an optional dependency: only the micro-batch runtime calls this

        if not len(ts):
            return np.empty(0, dtype=np.int64)
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition(self._last_event_ms)
        elif part.ended:
            raise FlowDefinitionError(
                f"watermarks: event observed on partition {partition!r} after it was ended"
            )
        if self._reads_clock:
            now = self._clock.now_ms()
            part.last_seen_ms = now
            self._last_event_ms = now
        part.idle = False
        self.disorder.observe_array(ts)
        prior = MIN_WATERMARK if part.max_ts is None else part.max_ts
        top = np.maximum(np.maximum.accumulate(ts), prior)
        part.max_ts = int(top[-1])
        low: int | None = None  # the other partitions hold the watermark where they are
        for other in self._partitions.values():
            if other is part or other.ended or other.idle:
                continue
            w = MIN_WATERMARK if other.max_ts is None else other.max_ts - self.out_of_orderness_ms
            if low is None or w < low:
                low = w
        computed = top - self.out_of_orderness_ms
        if low is not None:
            computed = np.minimum(computed, low)
        out = np.maximum.accumulate(
            np.maximum(np.minimum(computed, MAX_WATERMARK), self._watermark)
        )
        self._watermark = int(out[-1])
        return out

    def end_partition(self, partition: Hashable) -> None:
        """Mark ``partition`` exhausted: it no longer holds the watermark back."""
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition(self._clock.now_ms())
        part.ended = True

    def mark_idle(self, partition: Hashable) -> None:
        """Mark ``partition`` idle now, whatever the timeout; its next event wakes it."""
        now = self._clock.now_ms()
        if not self._reads_clock:
            # without a timeout the clock was not read so far: count quiet time from now
            self._reads_clock = True
            self._last_event_ms = now
            for other in self._partitions.values():
                other.last_seen_ms = now
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition(now)
        part.idle = True

    def poll_idle(self) -> None:
        """Mark idle every partition silent for ``idle_timeout_ms`` of processing time."""
        if self.idle_timeout_ms is None:
            return
        now = self._clock.now_ms()
        for part in self._partitions.values():
            if not part.idle and now - part.last_seen_ms >= self.idle_timeout_ms:
                part.idle = True

    # -- output --------------------------------------------------------------------------------

    def current(self) -> int:
        """Return the source's watermark now (never lower than the one returned before)."""
        low: int | None = None
        any_open = False
        for part in self._partitions.values():
            if part.ended:
                continue
            any_open = True
            if part.idle:
                continue
            w = MIN_WATERMARK if part.max_ts is None else part.max_ts - self.out_of_orderness_ms
            if low is None or w < low:
                low = w
        if not self._partitions:
            computed = MIN_WATERMARK
        elif not any_open:
            computed = MAX_WATERMARK
        elif low is not None:
            computed = low
        elif self._max_ts is None:
            computed = MIN_WATERMARK
        else:
            quiet = max(0, self._clock.now_ms() - self._last_event_ms)
            computed = self._max_ts - self.out_of_orderness_ms + quiet
        computed = min(computed, MAX_WATERMARK)
        if computed > self._watermark:
            self._watermark = computed
        return self._watermark

    @property
    def partitions(self) -> dict[Hashable, str]:
        """Each known partition and its state: ``"active"``, ``"idle"`` or ``"ended"``."""
        return {
            p: "ended" if s.ended else "idle" if s.idle else "active"
            for p, s in self._partitions.items()
        }

    # -- checkpoints ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return the tracker's state as plain data (msgpack-able)."""
        return {
            "format": _FORMAT,
            "out_of_orderness_ms": self.out_of_orderness_ms,
            "partitions": [
                [_hashable_to_plain(p), s.max_ts, s.ended] for p, s in self._partitions.items()
            ],
            "max_ts": self._max_ts,
            "watermark": self._watermark,
            "events": self.events,
            "out_of_order_count": self.out_of_order_count,
            "max_delay_ms": self.max_delay_ms,
        }

    def load(self, snapshot: dict[str, Any]) -> None:
        """Replace this tracker's state by ``snapshot``.

        Processing-time state is not kept: after a restore, every partition counts as
        having been seen now (idleness restarts).
        """
        if snapshot.get("format") != _FORMAT:
            raise CheckpointError(f"watermarks: unknown snapshot format {snapshot.get('format')!r}")
        now = self._clock.now_ms()
        self._partitions = {}
        for p, max_ts, ended in snapshot["partitions"]:
            part = _Partition(now)
            part.max_ts = max_ts
            part.ended = bool(ended)
            self._partitions[_plain_to_hashable(p)] = part
        top = snapshot["max_ts"]
        self.disorder.cell[:] = [
            int(snapshot["events"]),
            MIN_WATERMARK if top is None else top,
            int(snapshot["out_of_order_count"]),
            int(snapshot["max_delay_ms"]),
        ]
        self._watermark = int(snapshot["watermark"])
        self._last_event_ms = now
        self._reads_clock = self.idle_timeout_ms is not None

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        *,
        idle_timeout_ms: Duration | None = None,
        clock: Clock | None = None,
    ) -> WatermarkTracker:
        """Build a tracker from :meth:`snapshot` output."""
        tracker = cls(
            int(snapshot["out_of_orderness_ms"]), idle_timeout_ms=idle_timeout_ms, clock=clock
        )
        tracker.load(snapshot)
        return tracker

    def __repr__(self) -> str:
        return (
            f"WatermarkTracker(out_of_orderness_ms={self.out_of_orderness_ms}, "
            f"partitions={len(self._partitions)}, watermark={self._watermark})"
        )


__all__ = [
    "MAX_WATERMARK",
    "MIN_WATERMARK",
    "Disorder",
    "WatermarkTracker",
    "combine_watermarks",
    "disorder_source",
]
