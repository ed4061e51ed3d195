"""Bounded runs: every source read to its end, its events put in event-time order.

A bounded run (see :mod:`rheos.runtime.runner`) reads each source to its end into an
:class:`Arrival` -- the values and event times in arrival order, in flat lists, with the
chunks they came from -- and puts them in event-time order with one stable sort of positions
(:func:`event_order`), skipped when the source is already in order. Several sources are
ordered together (:func:`merged_order`): by time, sources in flow order on ties, each
source's events in arrival order on ties, as a stable merge of the sources would.

No per-event record is built while reading: a bad event found later (a failing step) is
located back in its chunk through the positions (:meth:`Arrival.locate`).

A flow that no order of its events changes (:func:`order_free`) needs none of this. Its steps
are stateless (sources, ``map``, ``filter``, ``flat_map``, ``with_columns``, ``key_by``,
unions and sinks) or event-time tumbling or calendar windows emitting final rows whose
aggregations add in any order (``count``, ``sum``, ``min``, ``max``, ``mean``, ``first``,
``last``, ``collect``, ``count_distinct``: see ``BoundAggregation.order_free``). (Not
joins: a sorted run closes their windows as it goes, and holds less than all of their
buffers.) Its bounded
run is the streaming loop over the sources read to their ends (the runner's choice), in
arrival order, with the watermark held at its lowest until every source has ended: no event
is late, as in event-time order, and the final watermark then closes every window, in
window order. Nothing is held but the windows' state (less than the events a sort holds),
nothing is sorted, and decoding overlaps with the steps as in a streaming run. The rows are
those of event-time order, up to what a streaming run with no late event takes from arrival
order: the keys of a window in the order their first event arrived, the bits of a sum of
floats.
"""

from __future__ import annotations

import contextlib
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rheos.connectors.base import Chunk, RawReader, SourceReader
from rheos.flows.steps import (
    Graph,
    KeyByStep,
    SinkStep,
    SourceStep,
    Step,
    TransformStep,
    UnionStep,
    WindowStep,
)
from rheos.runtime.repartition import source_stages, stages
from rheos.runtime.source_run import SourceRun
from rheos.windowing.calendars import CalendarWindows
from rheos.windowing.watermarks import Disorder
from rheos.windowing.windows import TumblingWindows


@dataclass
class Arrival:
    """One source's events in arrival order, with the chunks they came from.

    With ``decode`` (a reader whose chunks carry each event's record bytes, see
    :class:`~rheos.connectors.base.RawReader`), :attr:`values` are those bytes and the events
    are decoded again as they are pushed: a decoded event is pushed while it is still in the
    processor's caches, and a bounded run holds compact bytes instead of every event.
    """

    decode: Callable[[list[bytes]], list[Any]] | None = None
    values: list[Any] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    """The position of each chunk's first event in :attr:`values`."""

    def add(self, chunk: Chunk, times: list[int]) -> None:
        if not chunk.values:
            return
        self.starts.append(len(self.values))
        self.chunks.append(chunk)
        if self.decode is not None and chunk.raw is not None:
            self.values.extend(chunk.raw)
            chunk.values = []  # decoded again when pushed (and for a dead letter)
        else:
            if self.decode is not None:  # a chunk without its bytes: decode what is held
                self.values = self.decode(self.values)
                self.decode = None
            self.values.extend(chunk.values)
        self.times.extend(times)

    def events(self, values: list[Any]) -> list[Any]:
        """``values`` of :attr:`values` as events."""
        return values if self.decode is None else self.decode(values)

    def value(self, chunk: Chunk, index: int) -> Any:
        """The event at ``index`` of one of :attr:`chunks`."""
        if chunk.values or chunk.raw is None or self.decode is None:
            return chunk.values[index]
        return self.decode([chunk.raw[index]])[0]

    def locate(self, position: int) -> tuple[Chunk, int]:
        """The chunk of the event at ``position`` and its index there."""
        k = bisect_right(self.starts, position) - 1
        return self.chunks[k], position - self.starts[k]


def read_all(
    reader: SourceReader,
    sift: Callable[[Chunk], list[int]],
    stopped: Callable[[], None] | None = None,
    *,
    hold_bytes: bool = True,
) -> Arrival:
    """Every event of ``reader`` up to its end; ``sift`` gives a chunk's good event times
    (after dropping, and dead-lettering, the chunk's bad events). ``stopped`` is called while
    the reader waits for more (it raises to give up: a repartition topic whose other tasks
    failed). ``hold_bytes``: a reader whose chunks carry the record bytes gives those to
    hold, not the events (see :class:`Arrival`)."""
    bytes_held = hold_bytes and isinstance(reader, RawReader)
    arrival = Arrival(reader.decode_all if bytes_held else None)  # type: ignore[attr-defined]
    while not reader.exhausted:
        if stopped is not None:
            stopped()
        chunks = reader.poll(0.0)
        for chunk in chunks:
            times = sift(chunk)
            arrival.add(chunk, times)
        if not chunks and not reader.exhausted:
            time.sleep(0.001)  # a reader catching up with its end offsets
    return arrival


def run_stages(
    graph: Graph,
    sources: list[SourceRun],
    stage: Callable[[list[SourceRun], bool], None],
    flush: Callable[[], None],
    finish: Callable[[], None],
) -> None:
    """A bounded run, stage by stage (both executors): ``stage(group, timed)`` reads a group
    of sources to their ends and pushes their events in event-time order -- the nodes
    advancing with them only in the last stage (``timed``), behind which they lie. A graph
    without repartition topics is one stage; a repartitioned one (see
    :mod:`rheos.runtime.repartition`) runs the flow's sources first, whose repartition
    topics then get their end markers (``flush``), then the sources reading those topics
    (to every upstream task's end marker). ``finish`` closes every window at the end."""
    groups = source_stages(graph, sources)
    for n, group in enumerate(groups):
        last = n == len(groups) - 1
        stage(group, last)
        for src in group:
            src.end()
        if not last:
            flush()
    finish()


def order_free(graph: Graph) -> bool:
    """Whether no step of ``graph`` depends on the order of its events (see the module
    docs): each is stateless, or a window :func:`order_free_window`."""
    stateless = (SourceStep, TransformStep, KeyByStep, UnionStep, SinkStep)
    return all(isinstance(step, stateless) or order_free_window(step) for step in graph.steps)


def in_arrival_order(graph: Graph) -> bool:
    """Whether a bounded run of ``graph`` takes the events in arrival order (the runner's
    streaming loop, see the module docs): it is :func:`order_free` and not split into stages
    by repartition topics."""
    return order_free(graph) and len(set(stages(graph).values())) <= 1


def order_free_window(step: Step) -> bool:
    """Whether ``step`` is a window that gives the same rows in any order of its events, none
    late, and whose state held to the end stays small: event-time tumbling or calendar
    windows, final rows only, aggregations that add in any order. (Not sliding windows: each
    event is in several, held to the end they could take more memory than the events; nor
    sessions: a key's sessions held open to the end make every event search them all.)"""
    if not isinstance(step, WindowStep) or step.time != "event" or step.emit != "final":
        return False
    if not isinstance(step.spec, TumblingWindows | CalendarWindows):
        return False
    return all(getattr(agg, "order_free", False) for agg in step.aggregations.values())


def backlog(readers: list[Any]) -> int:
    """The records ``readers`` have left to read, as far as they tell (0: unknown)."""
    left = 0
    for reader in readers:
        ask = getattr(reader, "backlog", None)
        if ask is not None:
            left += sum(end - position for position, end in ask().values())
    return left


@contextlib.contextmanager
def progress_bar(flow: str, total: int, show: bool | None) -> Iterator[Callable[[int], Any] | None]:
    """A progress bar over the ``total`` events a bounded run pushes, when ``show`` (``None``:
    when standard output is a terminal): yields ``tick(done)``, or ``None`` without a bar."""
    if not total or not (sys.stdout.isatty() if show is None else show):
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"flow {flow}", total=total)
        yield lambda done: bar.update(task, completed=done)


def disorder(times: list[int]) -> tuple[int, int]:
    """How many events come after a later one, and by how much at most (ms)."""
    counter = Disorder()
    counter.observe_all(times)
    return counter.out_of_order, counter.max_delay_ms


def event_order(times: list[int]) -> list[int]:
    """Positions in event-time order (stable)."""
    return sort_times(times)[0]


def sort_times(times: list[int]) -> tuple[list[int], list[int]]:
    """Positions in event-time order (stable), and the times in that order: with NumPy
    when it is installed (a radix sort of int64: several times faster than ``sorted`` with
    a key), else in Python; times outside int64 take Python's way."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - NumPy comes with the micro-batch extra
        pass
    else:
        try:
            array = np.asarray(times, dtype=np.int64)
        except OverflowError:
            pass
        else:
            positions = np.argsort(array, kind="stable")
            return positions.tolist(), array[positions].tolist()
    order = sorted(range(len(times)), key=times.__getitem__)
    return order, [times[i] for i in order]


def merged_order(arrivals: list[Arrival]) -> tuple[list[int], list[int], list[int]]:
    """Positions of every source's events, one list in event-time order (stable), as
    ``(order, times, owners)`` over the concatenated arrivals: ``times`` and ``owners``
    (the source's index) are by concatenated position."""
    times: list[int] = []
    owners: list[int] = []
    for index, arrival in enumerate(arrivals):
        times.extend(arrival.times)
        owners.extend([index] * len(arrival.times))
    return event_order(times), times, owners


__all__ = [
    "Arrival",
    "backlog",
    "disorder",
    "event_order",
    "in_arrival_order",
    "merged_order",
    "order_free",
    "progress_bar",
    "read_all",
    "run_stages",
    "sort_times",
]
