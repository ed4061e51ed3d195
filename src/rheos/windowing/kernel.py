"""The event-time kernel of one window step: which windows, whether late, when to advance.

Both runtime modes ask one :class:`WindowKernel` -- the stream-first runtime one event at a
time, the micro-batch runtime for a whole array of events -- so they assign events to the same
windows and call the same events late by construction. The formulas themselves are written
once, in :mod:`rheos.windowing.windows` (:data:`~rheos.windowing.windows.ALIGN`,
:data:`~rheos.windowing.windows.FINALIZED`); the kernel applies them to a window
specification and an allowed lateness, and hands their source text to generated code.

* one event: :meth:`~WindowKernel.windows` (the windows ``(start, end)`` of an event time),
  :meth:`~WindowKernel.late` (is window ``[start, end)`` finalized at a watermark);
* an array of events: :meth:`~WindowKernel.windows_array`, :meth:`~WindowKernel.late_array`;
* generated code: :meth:`~WindowKernel.start_source`,
  :meth:`~WindowKernel.first_start_source`, :meth:`~WindowKernel.late_source`;
* the schedule: :meth:`~WindowKernel.next_change`, the lowest watermark above one at which a
  window can finalize (the runtime does not advance the operator in between).

>>> from rheos.windowing import sliding
>>> k = WindowKernel(sliding("10s", "5s"), allowed_lateness_ms=1_000)
>>> k.windows(12_000)
((5000, 15000), (10000, 20000))
>>> k.late(15_000, 16_000), k.late(20_000, 16_000)
(True, False)
>>> k.next_change(16_000)
21000
>>> import numpy as np
>>> owner, starts, ends = k.windows_array(np.array([12_000, 3_000]))
>>> owner.tolist(), starts.tolist(), k.late_array(ends, np.array([16_000] * 4)).tolist()
([0, 0, 1, 1], [5000, 10000, -5000, 0], [True, False, True, True])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rheos.windowing.watermarks import MAX_WATERMARK, MIN_WATERMARK
from rheos.windowing.windows import (
    CalendarWindows,
    SessionWindows,
    SlidingWindows,
    TumblingWindows,
    WindowSpec,
    align,
    align_source,
    finalized,
    finalized_source,
    first_source,
    first_start,
)

if TYPE_CHECKING:  # NumPy is needed only by the array forms (the micro-batch runtime)
    import numpy as np

Windows = tuple[tuple[int, int], ...]


class WindowKernel:
    """Window assignment and lateness of ``spec`` with ``allowed_lateness_ms``."""

    def __init__(self, spec: WindowSpec, allowed_lateness_ms: int = 0) -> None:
        self.spec = spec
        self.lateness = allowed_lateness_ms
        self.calendar = spec if isinstance(spec, CalendarWindows) else None
        self.session = isinstance(spec, SessionWindows)
        self.sliding = isinstance(spec, SlidingWindows)
        self.tumbling = isinstance(spec, TumblingWindows | CalendarWindows)
        """One window per event, by time alone (calendar windows are tumbling periods)."""
        self.size = (
            spec.gap_ms
            if isinstance(spec, SessionWindows)
            else 0
            if isinstance(spec, CalendarWindows)
            else spec.size_ms
        )
        """Window size (the gap of sessions; 0 for calendar periods, whose sizes vary)."""
        self.every = spec.every_ms if isinstance(spec, SlidingWindows) else self.size
        self.offset = 0 if isinstance(spec, SessionWindows | CalendarWindows) else spec.offset_ms
        self.windows: Callable[[int], Windows] = spec.windows_of
        """``windows(ts)``: the windows ``(start, end)`` that hold ``ts``, by start (of a
        session: the event's proto-window)."""

    # -- one event -----------------------------------------------------------------------------

    def late(self, end: int, watermark: int) -> bool:
        """Whether window ``[start, end)`` is finalized at ``watermark`` (so an event for it
        is late): ``end + allowed lateness <= watermark``."""
        return finalized(end, self.lateness, watermark)  # type: ignore[no-any-return]

    def end_of(self, start: int) -> int:
        """The end of the window that starts at ``start`` (not for sessions)."""
        if self.calendar is not None:
            return self.calendar.window_end(start)
        return start + self.size

    # -- an array of events --------------------------------------------------------------------

    def windows_array(self, ts: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """:meth:`windows` of every time in ``ts`` (int64): ``(owner, starts, ends)``, one
        entry per (event, window) pair, ``owner`` the event's index (None when every event
        has one window: ``starts[i]`` is event ``i``'s)."""
        import numpy as np  # an optional dependency: only the micro-batch runtime calls this

        if self.calendar is not None:
            starts, ends = self.calendar.windows_of_array(ts)
            return None, starts, ends
        if self.session:
            return None, ts, ts + self.size
        size, every = self.size, self.every
        last = align(ts, every, self.offset)
        if not self.sliding:
            return None, last, last + size
        first = first_start(last, ts, size, every)
        counts = (last - first) // every + 1
        owner = np.repeat(np.arange(len(ts)), counts)
        k = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
        starts = first[owner] + k * every
        return owner, starts, starts + size

    def late_array(self, ends: np.ndarray, watermarks: np.ndarray) -> np.ndarray:
        """:meth:`late` of every window end in ``ends`` at the watermark beside it (int64
        arrays; the infinite watermarks stay infinite, nothing overflows)."""
        import numpy as np

        lateness = self.lateness
        if not lateness:
            return ends <= watermarks
        low = MIN_WATERMARK + lateness
        bound = np.where(watermarks <= low, MIN_WATERMARK, watermarks - lateness)
        return ends <= bound

    # -- generated code ------------------------------------------------------------------------

    def start_source(self, ts: str) -> str:
        """Python source of the start of the window of ``ts`` -- of a sliding window, the
        latest start at or below ``ts`` (fixed-size windows): the formula of
        :func:`~rheos.windowing.windows.align`, constants inlined."""
        if self.session or self.calendar is not None:
            raise TypeError(f"start_source: {self.spec!r} is not of fixed-size windows")
        return align_source(ts, self.every, self.offset)

    def first_start_source(self, last: str, ts: str) -> str:
        """Python source of the earliest start of a sliding window that holds ``ts``, given
        ``last`` (:meth:`start_source`): :func:`~rheos.windowing.windows.first_start`."""
        return first_source(last, ts, self.size, self.every)

    def late_source(self, start: str, watermark: str) -> str:
        """Python source of :meth:`late` for the window that starts at ``start`` (fixed-size
        windows: size plus lateness folded into one constant)."""
        return finalized_source(start, self.size + self.lateness, watermark)

    def late_end_source(self, end: str, watermark: str) -> str:
        """Python source of :meth:`late` for the window that ends at ``end``."""
        return finalized_source(end, self.lateness, watermark)

    # -- the schedule --------------------------------------------------------------------------

    def next_change(self, watermark: int) -> int:
        """The lowest watermark above ``watermark`` at which a window can finalize -- and an
        event become late -- that could not at ``watermark``: tumbling and sliding windows
        change only at ``k * every + offset + size + lateness``, calendar windows at the end
        of a period plus the lateness; sessions (which end anywhere) at every rise."""
        if watermark >= MAX_WATERMARK:
            return MAX_WATERMARK
        lateness = self.lateness
        if self.calendar is not None:
            end = self.calendar.next_boundary(watermark - lateness)
            return watermark + 1 if end is None else end + lateness
        if self.session:
            return watermark + 1
        every = self.every
        phase = (self.offset + self.size + lateness) % every
        return align(watermark, every, phase) + every  # type: ignore[no-any-return]


__all__ = ["WindowKernel", "Windows"]
