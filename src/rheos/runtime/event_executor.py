"""The per-event executor (stream-first): one event at a time through fused push functions.

Event time. Each source has a :class:`~rheos.windowing.WatermarkTracker` over its
partitions (bounded out-of-orderness, idle timeout); the **flow watermark** is the minimum over
the sources (an exhausted source no longer counts). It is re-computed after every event that
can raise it -- just before that event is pushed, which cannot make the event itself late
-- and every stateful node is advanced as soon as it rises, so an event is late exactly when
its window was finalized by the events read before it. A finite source (iterable, file)
ends its partitions when exhausted; when every source is exhausted the watermark becomes
``MAX_WATERMARK``, which closes every window.

The run loop, its stop and its checkpoints are the :class:`~rheos.runtime.runner.Runner`'s
(see :mod:`rheos.runtime.executor`); this executor reads one source's poll and pushes its
chunks (:meth:`EventExecutor.read`), each through the source's generated chunk loop
(:func:`rheos.runtime.compile.source_loop`, which calls back :attr:`EventExecutor.due`,
:meth:`EventExecutor.advance_flow` and :meth:`EventExecutor.event_failed`).

Bounded mode (:meth:`EventExecutor.run_bounded`) reads every source to its end first (log
topics: to their end offsets when the run starts), orders all events by event time
(stably), and pushes them with a perfect watermark (each event's time: nothing earlier is
still to come), so no event is late and arrival order does not change any result; the final
watermark then closes every window.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from rheos.connectors.base import (
    Chunk,
    OpenContext,
    ProjectingReader,
    RawReader,
    SeekableReader,
)
from rheos.flows.steps import SourceStep
from rheos.runtime.bounded import (
    Arrival,
    disorder,
    merged_order,
    progress_bar,
    read_all,
    run_stages,
    sort_times,
)
from rheos.runtime.build import Compiled
from rheos.runtime.compile import BAD_EVENT_ERRORS, compile_flow
from rheos.runtime.executor import (
    FLUSH_EVERY_S,
    IDLE_WAIT_S,
    RunParts,
    flush_writers,
)
from rheos.runtime.metrics import FlowMetrics
from rheos.runtime.nodes import ProcessNode, WindowNode, coarsen_sessions
from rheos.runtime.projection import project_source, whole
from rheos.runtime.source_run import SourceRun
from rheos.windowing import MAX_WATERMARK, MIN_WATERMARK

BOUNDED_SLICE = 10_000
"""A bounded run pushes its ordered events this many at a time (progress ticks between)."""
BOUNDED_GC_THRESHOLD = 50_000
"""The garbage collector's first threshold while a bounded run pushes (Python's is 700)."""


class EventExecutor:
    """Pushes a run's events one at a time (see the module docs and
    :class:`~rheos.runtime.executor.Executor`)."""

    name = "stream-first"
    idle_wait_s = IDLE_WAIT_S
    flush_every_s = FLUSH_EVERY_S

    def __init__(self) -> None:
        self.sources: list[SourceRun] = []
        self.compiled: Compiled | None = None
        self.flow_wm = MIN_WATERMARK
        self.timed = False
        """Whether any node needs the watermark (else it is only tracked for statistics)."""
        self.due = MIN_WATERMARK + 1
        """The lowest flow watermark at which some node has something to do."""
        self.discarded = False
        self.metrics: FlowMetrics | None = None
        self.sample: Callable[[], None] | None = None
        self._at: Callable[[int], _Place] | None = None
        """Where event ``i`` of the events being pushed comes from: its chunk, index there,
        event time and value (for :meth:`event_failed`)."""
        self._proc_nodes: list[WindowNode] = []
        self._src: SourceRun | None = None
        """The source of the events being pushed."""
        self.i = 0
        """The index of the event being pushed, where its source is projected (set by the
        chunk loops: :meth:`whole_event`)."""

    def prepare(self, parts: RunParts, ctx: OpenContext, late_topic: str | None) -> Compiled:
        """Compile the flow (:attr:`compiled`) and open its sources (:attr:`sources`)."""
        self.graph = parts.graph
        self.clock = parts.clock
        self.bad = parts.bad
        self.lifecycle = parts.lifecycle
        self.compiled = compile_flow(
            self.graph, ctx, default_late_topic=late_topic, now=self.clock.now_ms
        )
        self._open_sources(ctx)
        return self.compiled

    def _open_sources(self, ctx: OpenContext) -> None:
        assert self.compiled is not None
        for step in self.graph.steps:
            if isinstance(step, SourceStep):
                reader = step.source.open(ctx)
                run = SourceRun(
                    self.graph.name, step, reader, self.compiled.entries[step.id], self.clock
                )
                run.loop = self.compiled.loops[step.id]
                run.ordered_loop = self.compiled.ordered_loops.get(step.id)
                self.sources.append(run)
                run.projected = project_source(
                    self.graph, step, reader, self.compiled.nodes, self.whole_event
                )

    def whole_event(self, event: Any) -> Any:
        """The whole event behind ``event``, what the projected event being pushed became (a
        late one): its record decoded again, under ``event``'s fields (:func:`whole`);
        ``event`` itself where there is no such record."""
        src, at = self._src, self._at
        if src is None or at is None or not isinstance(src.reader, ProjectingReader):
            return event
        chunk, i, _, _ = at(self.i)
        if chunk.raw is None:
            return event
        return whole(src.reader.decode(chunk.raw[i]), event)

    def wire_watermark(self) -> None:
        """Give the nodes the flow watermark (a dead-letter replay: no more)."""
        assert self.compiled is not None
        self.timed = bool(self.compiled.nodes)
        for node in self.compiled.nodes:
            node.flow_watermark = self.current_watermark

    def wire(self) -> None:
        """Connect the stateful nodes to the executor (after a checkpoint was restored)."""
        assert self.compiled is not None
        self.wire_watermark()
        for node in self.compiled.nodes:
            if isinstance(node, ProcessNode):
                node.lower_due = self._lower_due

    # -- streaming ------------------------------------------------------------------------------
    def start(self) -> None:
        assert self.compiled is not None
        self._proc_nodes = [
            n for n in self.compiled.nodes if isinstance(n, WindowNode) and n.processing_time
        ]

    def read(self, src: SourceRun, timeout: float, room: int | None) -> int:
        chunks = src.reader.poll(timeout)
        got = 0
        used = 0
        for n, chunk in enumerate(chunks):
            if room is not None and used >= room:
                self._unread(src, chunks[n:], 0)  # read but not processed
                break
            if room is not None and used + len(chunk.values) > room:
                keep = room - used
                self._unread(src, chunks[n:], keep)
                chunk.values = chunk.values[:keep]
                if chunk.timestamps is not None:
                    chunk.timestamps = chunk.timestamps[:keep]
                if chunk.raw is not None:
                    chunk.raw = chunk.raw[:keep]
                if chunk.offsets is not None:
                    if chunk.rejects and keep < len(chunk.offsets):
                        cut = chunk.offsets[keep]
                        chunk.rejects = [r for r in chunk.rejects if (r[0] or 0) < cut]
                    chunk.offsets = chunk.offsets[:keep]
            got += self._chunk(src, chunk)
            used += len(chunk.values)
            if room is not None and used >= room and n + 1 < len(chunks):
                self._unread(src, chunks[n + 1 :], 0)
                break
        return got

    def settle(self) -> int:
        return 0  # nothing is held back: every event read was pushed

    def holds(self, src: SourceRun) -> bool:
        return False

    def processing(self, now: Callable[[], int]) -> None:
        for node in self._proc_nodes:
            node.advance_processing(now())

    def _unread(self, src: SourceRun, chunks: list[Chunk], keep: int) -> None:
        """Chunks (the first one from event ``keep`` on) were read but will not be processed:
        seek back to them, so that a checkpoint records exactly what was processed."""
        reader = src.reader
        if not isinstance(reader, SeekableReader):
            self.discarded = True  # read but not processed: do not commit groups
            return
        back: dict[int, int] = {}
        for j, chunk in enumerate(chunks):
            start = keep if j == 0 else 0
            if chunk.offsets is not None and start < len(chunk.offsets):
                back.setdefault(chunk.partition, chunk.offsets[start])
        if back:
            reader.seek(back)
        self.discarded = True

    def _flush(self) -> None:
        flush_writers(self.compiled)

    def finish(self) -> None:
        self._finish()

    def _finish(self) -> None:
        """The final watermark: close every window, fire every timer.

        Nodes see the final watermark while they finish (``ctx.watermark`` in ``on_timer``,
        late records), also when a streaming run is drained with its sources still open, as
        in the last round of a micro-batch run."""
        assert self.compiled is not None
        self.flow_wm = MAX_WATERMARK
        for node in self.compiled.nodes:  # all first: finishing nodes push to later ones
            node.flow_watermark = _final_watermark
        for node in self.compiled.nodes:
            node.finish()

    def current_watermark(self) -> int:
        """The flow watermark: the minimum of the sources' watermarks."""
        sources = self.sources
        if len(sources) == 1:
            return sources[0].wm
        return min(s.wm for s in sources)

    def _lower_due(self, due: int) -> None:
        if due < self.due:
            self.due = due

    def advance_flow(self) -> None:
        """Raise the flow watermark; advance the nodes once it reaches one's next due point."""
        w = self.current_watermark()
        if w > self.flow_wm:
            self.flow_wm = w
        if w >= self.due:
            assert self.compiled is not None
            due = MAX_WATERMARK
            for node in self.compiled.nodes:
                node.advance(w)
                if node.next_due < due:
                    due = node.next_due
            self.due = due

    def _chunk(self, src: SourceRun, chunk: Chunk) -> int:
        """Push one chunk's events, raising the watermark as they go; return the count."""
        if not chunk.values and not chunk.rejects:
            return 0
        tss = self._sift(src, chunk)
        values = chunk.values
        if not values:
            return 1  # something was read
        self._at = _in_chunk(chunk, tss)
        self._src = src
        push = src.push
        timed = self.timed and not src.held
        stats = src.stats
        stats.events += len(values)
        if src.single and src.loop is not None:
            src.loop(values, tss, src, self)
            src.tracker.observe(chunk.partition, max(tss))  # keeps idleness and max ts
        else:
            observe, current, part = src.tracker.observe, src.tracker.current, chunk.partition
            bound, wm = src.bound, src.wm
            track = src.projected
            for i, (v, t) in enumerate(zip(values, tss, strict=True)):
                if track:
                    self.i = i
                observe(part, t)
                if timed and t - bound > wm:
                    w = current()
                    if w > wm:
                        wm = src.wm = w
                        if wm >= self.due:
                            self.advance_flow()
                try:
                    push(None, v, t)
                except BAD_EVENT_ERRORS as exc:
                    self.event_failed(src, i, exc)
            stats.out_of_order = src.tracker.out_of_order_count
            stats.max_delay_ms = src.tracker.max_delay_ms
        if src.own_watermark is None and not src.held:
            w = src.tracker.current()
            if w > src.wm:
                src.wm = w
        self.advance_flow()
        if self.metrics is not None:
            self.metrics.after_chunk(chunk.append_time)
        return len(values)

    def push_chunk(self, src: SourceRun, chunk: Chunk) -> int:
        """Push one chunk of ``src`` (a dead letter sent back), raising the watermark."""
        return self._chunk(src, chunk)

    # -- bad events -----------------------------------------------------------------------------
    def event_failed(self, src: SourceRun, index: int, exc: Exception) -> None:
        """Event ``index`` of the events being pushed is bad: apply the policy."""
        assert self._at is not None
        chunk, i, t, value = self._at(index)
        self._dead_letter(src, chunk, i, t, value, exc)

    def _dead_letter(
        self, src: SourceRun, chunk: Chunk, i: int, t: int, value: Any, exc: Exception
    ) -> None:
        self.bad.dead_letter(src, chunk, i, t, value, exc)

    def _sift(self, src: SourceRun, chunk: Chunk) -> list[int]:
        return self.bad.sift(src, chunk)

    def _waiting(self, src: SourceRun) -> Callable[[], None]:
        return self.lifecycle.waiting(src)

    # -- bounded ------------------------------------------------------------------------------
    def run_bounded(self, progress: bool | None) -> None:
        self._run_bounded(progress)

    def _run_bounded(self, progress: bool | None) -> None:
        """Read every source to its end, then push its events in event-time order; a
        repartitioned graph (see :mod:`rheos.runtime.repartition`) stage by stage: the
        flow's sources first, whose repartition topics then get their end markers, then the
        sources reading those topics (to every upstream task's end marker)."""
        run_stages(
            self.graph,
            self.sources,
            lambda group, timed: self._bounded_stage(group, progress, timed),
            self._flush,
            self._finish,
        )

    def _bounded_stage(self, sources: list[SourceRun], progress: bool | None, timed: bool) -> None:
        """Push the events of ``sources`` (read to their ends) in event-time order; nodes
        advance with them only if ``timed`` (nodes lie behind the last stage's sources)."""
        arrivals = [self._read_all(src) for src in sources]
        assert self.compiled is not None
        for node in self.compiled.nodes:  # steps reading it see the minimum until the end
            node.flow_watermark = _min_watermark
        coarsen_sessions(self.compiled.nodes)
        total = sum(len(arrival.values) for arrival in arrivals)
        # What was read (lists of millions of items) lives until the end: out of the garbage
        # collector's way, or every full collection walks it; and collections less often, as
        # the millions of objects that this many events make mostly die young.
        threshold = gc.get_threshold()
        gc.freeze()
        if threshold[0]:
            gc.set_threshold(max(threshold[0], BOUNDED_GC_THRESHOLD), *threshold[1:])
        try:
            with progress_bar(self.graph.name, total, progress) as tick:
                self._push_all(sources, arrivals, tick, timed)
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()

    def _read_all(self, src: SourceRun) -> Arrival:
        check = self._waiting(src) if src.own_watermark is not None else None
        field = src.step.timestamp
        # each event decoded whole when it is pushed (a projected source's events are small:
        # held decoded)
        if not src.projected and isinstance(field, str) and isinstance(src.reader, RawReader):
            src.reader.times_only(field)
        arrival = read_all(
            src.reader, lambda chunk: self._sift(src, chunk), check, hold_bytes=not src.projected
        )
        stats = src.stats
        stats.events = len(arrival.values)
        late, most = disorder(arrival.times)
        stats.out_of_order += late
        stats.max_delay_ms = max(stats.max_delay_ms, most)
        return arrival

    def _push_all(
        self,
        sources: list[SourceRun],
        arrivals: list[Arrival],
        tick: Callable[[int], Any] | None,
        timed: bool,
    ) -> None:
        if len(arrivals) == 1:
            self._push_sorted(sources[0], arrivals[0], tick)
        else:
            self._push_merged(sources, arrivals, tick, timed)

    def _push_sorted(
        self, src: SourceRun, arrival: Arrival, tick: Callable[[int], Any] | None
    ) -> None:
        """One source's events in event-time order through its generated chunk loop, each
        event's time the watermark (nothing earlier is still to come)."""
        values, times = arrival.values, arrival.times
        order = None
        if src.stats.out_of_order:
            order, times = sort_times(times)
            values = list(map(values.__getitem__, order))
        loop = src.ordered_loop or src.loop
        assert loop is not None
        src.bound = 0
        self._src = src
        for a in range(0, len(values), BOUNDED_SLICE):
            self._at = _in_order(arrival, order, times, a)
            events = arrival.events(values[a : a + BOUNDED_SLICE])
            loop(events, times[a : a + BOUNDED_SLICE], src, self)
            if tick is not None:
                tick(min(a + BOUNDED_SLICE, len(values)))

    def _push_merged(
        self,
        sources: list[SourceRun],
        arrivals: list[Arrival],
        tick: Callable[[int], Any] | None,
        timed: bool,
    ) -> None:
        """Several sources' events in one event-time order, each event's time the flow
        watermark; held record bytes are decoded slice by slice, as they are pushed."""
        assert self.compiled is not None
        order, times, owners = merged_order(arrivals)
        held = [v for arrival in arrivals for v in arrival.values]
        starts = [0]
        for arrival in arrivals:
            starts.append(starts[-1] + len(arrival.values))
        pushes = [src.push for src in sources]
        nodes = self.compiled.nodes if timed else []
        wm = MIN_WATERMARK
        for a in range(0, len(order), BOUNDED_SLICE):
            positions = order[a : a + BOUNDED_SLICE]
            values = _events_at(arrivals, held, owners, positions)
            self._at = _merged_at(arrivals, starts, owners, times, positions, values)
            for k, (j, v) in enumerate(zip(positions, values, strict=True)):
                self.i, self._src = k, sources[owners[j]]
                t = times[j]
                if t > wm and nodes:  # sorted input: no event below t is still to come
                    wm = t
                    if wm >= self.due:
                        self.flow_wm = wm
                        due = MAX_WATERMARK
                        for node in nodes:
                            node.advance(wm)
                            if node.next_due < due:
                                due = node.next_due
                        self.due = due
                try:
                    pushes[owners[j]](None, v, t)
                except BAD_EVENT_ERRORS as exc:
                    owner = owners[j]
                    chunk, i = arrivals[owner].locate(j - starts[owner])
                    self._dead_letter(sources[owner], chunk, i, t, v, exc)
            if tick is not None:
                tick(min(a + BOUNDED_SLICE, len(order)))


def _events_at(
    arrivals: list[Arrival], held: list[Any], owners: list[int], positions: list[int]
) -> list[Any]:
    """The events at ``positions`` of the concatenated arrivals (``held``: their values),
    each source's held record bytes decoded together."""
    values = [held[j] for j in positions]
    for index, arrival in enumerate(arrivals):
        if arrival.decode is None:
            continue
        mine = [k for k, j in enumerate(positions) if owners[j] == index]
        for k, event in zip(mine, arrival.decode([values[k] for k in mine]), strict=True):
            values[k] = event
    return values


def _merged_at(
    arrivals: list[Arrival],
    starts: list[int],
    owners: list[int],
    times: list[int],
    positions: list[int],
    values: list[Any],
) -> Callable[[int], _Place]:
    """Event ``k`` of a slice of several sources' events in event-time order."""

    def at(k: int) -> _Place:
        j = positions[k]
        owner = owners[j]
        chunk, index = arrivals[owner].locate(j - starts[owner])
        return chunk, index, times[j], values[k]

    return at


_Place = tuple[Chunk, int, int, Any]
"""An event being pushed: its chunk, index there, event time and value."""


def _in_chunk(chunk: Chunk, tss: list[int]) -> Callable[[int], _Place]:
    """Event ``i`` of a chunk being pushed."""

    def at(i: int) -> _Place:
        return chunk, i, tss[i], chunk.values[i]

    return at


def _in_order(
    arrival: Arrival, order: list[int] | None, times: list[int], first: int
) -> Callable[[int], _Place]:
    """Event ``i`` of the slice from ``first`` of a source's events in event-time order."""

    def at(i: int) -> _Place:
        position = first + i
        chunk, index = arrival.locate(position if order is None else order[position])
        return chunk, index, times[position], arrival.value(chunk, index)

    return at


def _min_watermark() -> int:
    return MIN_WATERMARK


def _final_watermark() -> int:
    return MAX_WATERMARK


__all__ = ["BOUNDED_GC_THRESHOLD", "BOUNDED_SLICE", "EventExecutor"]
