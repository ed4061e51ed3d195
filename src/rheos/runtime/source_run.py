"""One source while a flow runs: its reader, watermark tracker, event times and statistics."""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

from rheos.connectors.base import Chunk, SourceReader, StallingReader, WatermarkReader
from rheos.errors import EventError
from rheos.flows.steps import SourceStep
from rheos.runtime.compile import ChunkLoop
from rheos.runtime.nodes import Push, where
from rheos.runtime.summary import SourceStats
from rheos.windowing import (
    MAX_WATERMARK,
    MIN_WATERMARK,
    Clock,
    WatermarkTracker,
    timestamp_getter,
)

AUTO_MS_FROM = 100_000_000_000
"""With ``timestamp_unit="auto"``, integers from here up are epoch milliseconds (see
:mod:`rheos.windowing.timestamps`)."""


OWN_BOUND = 2**62
"""The out-of-orderness bound of a source with its own watermark: event times never raise it."""


class SourceRun:
    """One source while running: its reader, tracker, timestamps and statistics."""

    def __init__(
        self, flow: str, step: SourceStep, reader: SourceReader, push: Push, clock: Clock
    ) -> None:
        self.flow = flow
        self.step = step
        self.reader = reader
        self.push = push
        self.clock = clock
        self.tracker = WatermarkTracker(
            step.out_of_orderness_ms, idle_timeout_ms=step.idle_timeout_ms, clock=clock
        )
        self.tracker.declare_partitions(reader.partitions)
        self.single = len(reader.partitions) == 1
        self.stalled: Callable[[], bool] = _never
        """Whether the reader cannot reach its data now (then it is not idle: see
        :class:`~rheos.connectors.base.StallingReader`)."""
        if isinstance(reader, StallingReader):
            self.stalled = lambda: reader.stalled
        self.own_watermark: Callable[[], int] | None = (
            reader.watermark if isinstance(reader, WatermarkReader) else None
        )
        """The reader's own watermark (see :class:`WatermarkReader`): the runner takes it
        after the events read so far were processed, and never from event times."""
        self.bound = step.out_of_orderness_ms if self.own_watermark is None else OWN_BOUND
        self.get_ts = (
            None
            if step.timestamp is None
            else timestamp_getter(step.timestamp, unit=step.timestamp_unit)
        )
        self.top = MIN_WATERMARK
        self.wm = MIN_WATERMARK
        self.done = False
        self.held = False
        """Whether its watermark is held at its lowest until it ends (a bounded run in
        arrival order: :func:`~rheos.runtime.bounded.order_free`)."""
        self.projected = False
        """Whether its reader decodes only the fields the flow reads
        (:mod:`rheos.runtime.projection`)."""
        self.loop: ChunkLoop | None = None
        """The generated chunk loop of a single-partition source (set by the per-event
        executor)."""
        self.ordered_loop: ChunkLoop | None = None
        """The same loop for events in event-time order (a bounded run)."""
        self.stats = SourceStats(step.name)

    def timestamps(self, chunk: Chunk) -> tuple[list[int], list[tuple[int, EventError]]]:
        """Event times of a chunk (from the timestamp spec, the records, or the clock), and
        the events whose time is missing or unparsable: ``(index, error)``."""
        get = self.get_ts
        if get is None:
            if chunk.timestamps is not None:
                return chunk.timestamps, []
            return [self.clock.now_ms()] * len(chunk.values), []
        field = self.step.timestamp
        if chunk.times_of is not None:  # the values are the time field's values only
            only = chunk.values
            if (
                self.step.timestamp_unit in ("ms", "auto")
                and set(map(type, only)) == {int}
                and (self.step.timestamp_unit == "ms" or min(only) >= AUTO_MS_FROM)
            ):
                return only, []
            name = chunk.times_of
            chunk.values = [{name: value} for value in only]  # as events, for the getter
            chunk.times_of = None
        if isinstance(field, str) and self.step.timestamp_unit in ("ms", "auto"):
            # fast path: a field of int epoch milliseconds needs no parsing
            try:
                raw = list(map(itemgetter(field), chunk.values))
            except Exception:
                raw = None
            if (
                raw is not None
                and set(map(type, raw)) == {int}
                and (self.step.timestamp_unit == "ms" or min(raw) >= AUTO_MS_FROM)
            ):
                return raw, []
        return self.times_of(chunk.values, chunk.where)

    def times_of(
        self, values: list[Any], place: Callable[[int], dict[str, Any]]
    ) -> tuple[list[int], list[tuple[int, EventError]]]:
        """Event times of ``values`` from the timestamp spec, and the events whose time is
        missing or unparsable: ``(index, error)``, their time 0 (``place(i)``: where event
        ``i`` was read, for the error). Both runtime modes read times through this."""
        get = self.get_ts
        assert get is not None
        try:
            return [get(v) for v in values], []
        except Exception:
            pass
        out: list[int] = []
        bad: list[tuple[int, EventError]] = []
        for i, value in enumerate(values):  # find the events and say where they are
            try:
                out.append(get(value))
                continue
            except EventError as exc:
                err = EventError(f"{where(self.flow, self.step)}: {exc}", **place(i))
            except Exception as exc:
                err = EventError(
                    f"{where(self.flow, self.step)}: timestamp function raised "
                    f"{type(exc).__name__}: {exc}",
                    **place(i),
                )
                err.__cause__ = exc
            err.step = self.step.name
            bad.append((i, err))
            out.append(0)
        return out, bad

    def current(self) -> int:
        """The source's watermark now: its own, or its tracker's (never below :attr:`wm`)."""
        own = self.own_watermark
        if own is not None:
            return max(self.wm, own())
        return max(self.wm, self.tracker.current())

    def end(self) -> None:
        self.done = True
        for p in self.reader.partitions:
            self.tracker.end_partition(p)
        self.wm = MAX_WATERMARK


def _never() -> bool:
    return False


__all__ = ["AUTO_MS_FROM", "OWN_BOUND", "SourceRun"]
