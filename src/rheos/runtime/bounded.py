"""Bounded runs: every source read to its end, its events put in event-time order.

A bounded run (see :mod:`rheos.runtime.runner`) reads each source to its end into an
:class:`Arrival` -- the values and event times in arrival order, in flat lists, with the
chunks they came from -- and puts them in event-time order with one stable sort of positions
(:func:`event_order`), skipped when the source is already in order. Several sources are
ordered together (:func:`merged_order`): by time, sources in flow order on ties, each
source's events in arrival order on ties, as a stable merge of the sources would.

No per-event record is built while reading: a bad event found later (a failing step) is
located back in its chunk through the positions (:meth:`Arrival.locate`).

A flow whose steps are all stateless (:func:`order_free`: sources, ``map``, ``filter``,
``flat_map``, ``with_columns``, unions and sinks; no ``key_by``, window, join or ``process``)
gives the same results in any order: its bounded run is the streaming loop over the sources
read to their ends (the runner's choice), nothing held or sorted, the events in arrival
order as a streaming run gives them.
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
from rheos.flows.steps import Graph, SinkStep, SourceStep, TransformStep, UnionStep
from rheos.runtime.repartition import source_stages
from rheos.runtime.source_run import SourceRun
from rheos.windowing.watermarks import Disorder


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
    """Whether no step of ``graph`` depends on the order of its events: none keeps state
    or time (see the module docs)."""
    stateless = (SourceStep, TransformStep, UnionStep, SinkStep)
    return all(isinstance(step, stateless) for step in graph.steps)


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
    "disorder",
    "event_order",
    "merged_order",
    "progress_bar",
    "read_all",
    "run_stages",
    "sort_times",
]
