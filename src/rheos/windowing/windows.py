"""Window specifications: which event-time windows an event belongs to.

A window is a half-open interval of event time ``[start, end)`` in epoch milliseconds: an event
at ``ts`` is in it when ``start <= ts < end``. The objects here only *describe* windows (they
are immutable and printable); :class:`rheos.windowing.operator.WindowOperator` executes them.

Tumbling windows, ``tumbling(size, offset=0)``: fixed-size windows that do not overlap, aligned
to the epoch (plus ``offset``): ``start = floor((ts - offset) / size) * size + offset``.

>>> w = tumbling("1m")
>>> w.windows_of(90_000)
((60000, 120000),)
>>> tumbling("1h", offset="15m").windows_of(0)
((-2700000, 900000),)

Sliding windows, ``sliding(size, every)``: windows of ``size`` starting at every multiple of
``every`` (plus ``offset``); an event belongs to every window that contains it, so to
``ceil(size / every)`` or ``floor(size / every)`` of them. ``size >= every > 0`` (``size`` need
not be a multiple of ``every``); ``size == every`` is a tumbling window.

>>> sliding("10s", "5s").windows_of(12_000)
((5000, 15000), (10000, 20000))

Session windows, ``session(gap)``: per key, events closer than ``gap`` belong to the same
session. Each event opens a proto-window ``[ts, ts + gap)``; overlapping proto-windows merge,
so a session is ``[first event ts, last event ts + gap)``. Two events exactly ``gap`` apart
touch without overlapping and stay in separate sessions. An out-of-order event can bridge two
open sessions, which then merge into one.

>>> session("30s")
session(gap='30s')

Calendar windows, ``calendar(unit, tz="UTC", week_start="monday")``: tumbling windows that are
the days, weeks, months, quarters or years of a time zone, so of varying length (see
:mod:`rheos.windowing.calendars`); their results carry a ``period`` label as well.

>>> calendar("month", tz="Europe/Paris").windows_of(0)
((-3600000, 2674800000),)

Completeness and lateness (watermark ``W``, allowed lateness ``L`` in ms, default 0):

* a window is **complete** when ``W >= end``;
* it is **finalized** (final result emitted, state dropped) when ``W >= end + L``;
* an event is **late** for a window that was already finalized when the event arrived.

The formulas are written once, here, as source text (:data:`ALIGN`, :data:`FINALIZED`) and
compiled into :func:`align` and :func:`finalized`, which take Python ints and NumPy arrays
alike; code generated for the hot path inlines the same text (:func:`align_source`,
:func:`finalized_source`). :class:`rheos.windowing.kernel.WindowKernel` applies them to one
window step, for one event and for an array of events.

>>> align(90_000, 60_000, 0), finalized(120_000, 5_000, 125_000)
(60000, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rheos.durations import Duration, format_ms, to_ms
from rheos.errors import ConfigError
from rheos.windowing.calendars import CalendarWindows, calendar

ALIGN = "{ts} - ({ts} - {offset}) % {every}"
"""The start of the cell of the grid ``k * every + offset`` that holds ``ts``: the tumbling
window of ``ts``, or the latest sliding window start at or below it (floor modulo: right for
negative times, in Python and NumPy alike)."""

FIRST = "{last} - (({last} - ({ts} - {size}) - 1) // {every}) * {every}"
"""The earliest start of a sliding window of ``size`` (one every ``every``) that holds ``ts``,
given ``last``, the latest (:data:`ALIGN`)."""

FINALIZED = "{at} + {delta} <= {watermark}"
"""A window is finalized -- and an event for it late -- when the watermark reaches its end
plus the allowed lateness: ``at + delta`` with ``at`` the end and ``delta`` the lateness, or
``at`` the start and ``delta`` size plus lateness."""


def align_source(ts: str, every: int | str, offset: int | str) -> str:
    """:data:`ALIGN` as a Python expression over the names or numbers given (with no
    offset, ``ts - ts % every``: the same value, one operation less)."""
    if isinstance(offset, int) and offset == 0:
        return f"{ts} - {ts} % {every}"
    return ALIGN.format(ts=ts, every=every, offset=offset)


def first_source(last: str, ts: str, size: int | str, every: int | str) -> str:
    """:data:`FIRST` as a Python expression over the names or numbers given."""
    return FIRST.format(last=last, ts=ts, size=size, every=every)


def finalized_source(at: str, delta: int | str, watermark: str) -> str:
    """:data:`FINALIZED` as a Python expression over the names or numbers given."""
    return FINALIZED.format(at=at, delta=delta, watermark=watermark)


def _compiled(name: str, args: str, expression: str) -> Callable[..., Any]:
    env: dict[str, Any] = {}
    exec(compile(f"def {name}({args}):\n    return {expression}\n", f"<rheos {name}>", "exec"), env)
    function: Callable[..., Any] = env[name]
    return function


align: Callable[[Any, int, int], Any] = _compiled(
    "align", "ts, every, offset", align_source("ts", "every", "offset")
)
"""``align(ts, every, offset)``: :data:`ALIGN` (``ts`` an int or an int64 array)."""

finalized: Callable[[Any, int, Any], Any] = _compiled(
    "finalized", "at, delta, watermark", finalized_source("at", "delta", "watermark")
)
"""``finalized(at, delta, watermark)``: :data:`FINALIZED` (ints; arrays: see
:meth:`rheos.windowing.kernel.WindowKernel.late_array`, which keeps the infinities)."""


first_start: Callable[[Any, Any, int, int], Any] = _compiled(
    "first_start", "last, ts, size, every", first_source("last", "ts", "size", "every")
)
"""``first_start(last, ts, size, every)``: :data:`FIRST` (ints or int64 arrays)."""


@dataclass(frozen=True)
class TumblingWindows:
    """Fixed-size, non-overlapping windows; build with :func:`tumbling`."""

    size_ms: int
    offset_ms: int = 0

    def window_start(self, ts: int) -> int:
        """Start of the one window that holds ``ts``."""
        return align(ts, self.size_ms, self.offset_ms)  # type: ignore[no-any-return]

    def windows_of(self, ts: int) -> tuple[tuple[int, int], ...]:
        """The windows ``(start, end)`` that hold ``ts``, by start."""
        start = self.window_start(ts)
        return ((start, start + self.size_ms),)

    def __repr__(self) -> str:
        if self.offset_ms:
            return f"tumbling({format_ms(self.size_ms)!r}, offset={format_ms(self.offset_ms)!r})"
        return f"tumbling({format_ms(self.size_ms)!r})"


@dataclass(frozen=True)
class SlidingWindows:
    """Windows of ``size_ms`` starting every ``every_ms``; build with :func:`sliding`."""

    size_ms: int
    every_ms: int
    offset_ms: int = 0

    def last_start(self, ts: int) -> int:
        """Start of the latest window that holds ``ts``."""
        return align(ts, self.every_ms, self.offset_ms)  # type: ignore[no-any-return]

    def windows_of(self, ts: int) -> tuple[tuple[int, int], ...]:
        """The windows ``(start, end)`` that hold ``ts``, by start."""
        size, every = self.size_ms, self.every_ms
        last = self.last_start(ts)
        return tuple(
            (s, s + size) for s in range(first_start(last, ts, size, every), last + 1, every)
        )

    def __repr__(self) -> str:
        text = f"sliding({format_ms(self.size_ms)!r}, {format_ms(self.every_ms)!r}"
        if self.offset_ms:
            text += f", offset={format_ms(self.offset_ms)!r}"
        return text + ")"


@dataclass(frozen=True)
class SessionWindows:
    """Per-key windows separated by ``gap_ms`` of silence; build with :func:`session`."""

    gap_ms: int

    def windows_of(self, ts: int) -> tuple[tuple[int, int], ...]:
        """The proto-window of an event at ``ts`` (before merging with its neighbours)."""
        return ((ts, ts + self.gap_ms),)

    def __repr__(self) -> str:
        return f"session(gap={format_ms(self.gap_ms)!r})"


WindowSpec = TumblingWindows | SlidingWindows | SessionWindows | CalendarWindows
"""Any window specification."""


def _positive(duration: Duration, what: str) -> int:
    ms = to_ms(duration, what=what)
    if ms <= 0:
        raise ConfigError(f"{what}: must be greater than zero, got {duration!r}")
    return ms


def tumbling(size: Duration, offset: Duration = 0) -> TumblingWindows:
    """Tumbling windows of ``size``, aligned to the epoch plus ``offset``."""
    size_ms = _positive(size, "tumbling window size")
    return TumblingWindows(size_ms, to_ms(offset, what="tumbling window offset") % size_ms)


def sliding(size: Duration, every: Duration, offset: Duration = 0) -> SlidingWindows:
    """Sliding windows of ``size``, one starting every ``every`` (``size >= every``)."""
    size_ms = _positive(size, "sliding window size")
    every_ms = _positive(every, "sliding window every")
    if every_ms > size_ms:
        raise ConfigError(
            f"sliding window: every ({format_ms(every_ms)}) must not exceed "
            f"size ({format_ms(size_ms)}); events would fall between windows"
        )
    return SlidingWindows(size_ms, every_ms, to_ms(offset, what="sliding window offset") % every_ms)


def session(gap: Duration) -> SessionWindows:
    """Session windows that close after ``gap`` without events (per key)."""
    return SessionWindows(_positive(gap, "session gap"))


__all__ = [
    "ALIGN",
    "FINALIZED",
    "FIRST",
    "CalendarWindows",
    "SessionWindows",
    "SlidingWindows",
    "TumblingWindows",
    "WindowSpec",
    "align",
    "align_source",
    "calendar",
    "finalized",
    "finalized_source",
    "first_source",
    "first_start",
    "session",
    "sliding",
    "tumbling",
]
