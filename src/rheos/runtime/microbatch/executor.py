"""The per-batch executor (micro-batch): sources hand over batches, every step runs a batch.

A source batch holds up to ``batch_size`` events, or what arrived within ``batch_interval``
(whichever comes first). Its event times give, vectorised, the source watermark after each
event (a cumulative maximum minus the out-of-orderness bound; multi-partition sources compute
it per event through their tracker) and so the flow watermark each event sees: the
:class:`~rheos.runtime.microbatch.stateful.Round` the plan runs with. Run control (the run
loop, stop, ``stop_after``, ``timeout``, ``drain``, signals, commits, checkpoints, the summary)
is the :class:`~rheos.runtime.runner.Runner`'s, as in stream-first mode: it hands this
executor one source's poll at a time (:meth:`BatchExecutor.read`), which queues the parts
read and runs them as a round when ``batch_size`` events are queued, when ``batch_interval``
has passed, or before a stop or a checkpoint (:meth:`BatchExecutor.settle`).

Bounded mode reads every source to its end, orders all events by event time (stably, sources
in flow order on ties) and runs them in rounds of ``batch_size`` with the perfect watermark,
as the stream-first runtime does event by event.

Faults and operations are those of stream-first mode. A bad event -- a record that does not
decode (the records of its poll and partition are read again record by record, as in
stream-first mode; the next poll is columnar again), a missing or unparsable timestamp, or a
per-event step (``map``, ``filter``, ``flat_map``, ``inspect``, ``key_by``) whose function
raises -- is given to the flow's ``on_error`` policy alone, with the same dead-letter
record as in stream-first mode; the rest of its batch goes on. Checkpoints are taken between
two rounds (after :meth:`Plan.run_round` returns, every event read so far has reached its sinks
or its state; queued events are run first), with the stream-first
:class:`~rheos.runtime.checkpointing.Checkpointer`; live metrics are sampled after a round when
due.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import polars as pl

from rheos.connectors.base import Chunk, OpenContext, SeekableReader
from rheos.errors import EventError
from rheos.flows.steps import Graph, SourceStep
from rheos.runtime.bounded import in_arrival_order, progress_bar, run_stages
from rheos.runtime.build import Compiled
from rheos.runtime.executor import IDLE_WAIT_S, RunParts, flow_watermark, flush_writers
from rheos.runtime.metrics import FlowMetrics
from rheos.runtime.microbatch.batch import ROWS_BELOW, Batch
from rheos.runtime.microbatch.kafka import ColumnarKafkaReader
from rheos.runtime.microbatch.plan import Plan
from rheos.runtime.microbatch.sources import ColumnarLogReader, Part, from_chunk
from rheos.runtime.microbatch.stateful import Round
from rheos.runtime.nodes import WindowNode, coarsen_sessions
from rheos.runtime.projection import project_source, whole
from rheos.runtime.runner import Runner
from rheos.runtime.source_run import AUTO_MS_FROM, SourceRun
from rheos.state import DEFAULT_KEEP
from rheos.windowing import MAX_WATERMARK, MIN_WATERMARK, Clock

DEFAULT_BATCH_SIZE = 10_000
DEFAULT_INTERVAL_MS = 50
BOUNDED_BATCH_SIZE = 100_000
"""The batch size of a bounded run when none is given: it has no latency to keep low, and
fewer, larger rounds cost less per event (results do not depend on batch boundaries)."""


class BatchExecutor:
    """Runs a run's events a batch at a time (see the module docs and
    :class:`~rheos.runtime.executor.Executor`)."""

    name = "micro-batch"
    flush_every_s = 0.0

    def __init__(
        self,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_interval_ms: int = DEFAULT_INTERVAL_MS,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.batch_interval_s = batch_interval_ms / 1000
        self.idle_wait_s = min(IDLE_WAIT_S, self.batch_interval_s) or IDLE_WAIT_S
        self.sources: list[SourceRun] = []
        self.compiled: Compiled | None = None
        self.flow_wm = MIN_WATERMARK
        self.discarded = False
        self.metrics: FlowMetrics | None = None
        self.sample: Callable[[], None] | None = None
        self.plan: Plan | None = None
        self._flow_now = MIN_WATERMARK
        self._ctx: OpenContext | None = None
        self._bad_at: Callable[[int], tuple[SourceRun, Part, int, int]] | None = None
        """The source event behind a position of the round running (for bad events)."""
        self._pending: dict[int, list[Part]] = {}
        """Per source (by ``id``): the parts read and not yet run (streaming)."""
        self._since: dict[int, float] = {}
        """Per source (by ``id``): when the first of its queued parts was read."""
        self._proc_nodes: list[WindowNode] = []
        self._eager = False
        self._progress: bool | None = None
        """Whether a bounded run shows a progress bar (``None``: on a terminal)."""

    def prepare(self, parts: RunParts, ctx: OpenContext, late_topic: str | None) -> Compiled:
        self.graph = parts.graph
        self.clock = parts.clock
        self.bad = parts.bad
        self.lifecycle = parts.lifecycle
        self._ctx = ctx
        self.plan = Plan(self.graph, ctx, default_late_topic=late_topic, now=self.clock.now_ms)
        self.compiled = self.plan.compiled
        self._open_parts(ctx)
        return self.compiled

    def wire(self) -> None:
        assert self.plan is not None
        self.plan.on_bad = self._bad_in_step
        self._flow_now = max(self._flow_now, self.flow_wm)  # restored from a checkpoint

    def run_bounded(self, progress: bool | None) -> None:
        self._progress = progress
        self._bounded()

    def _open_parts(self, ctx: OpenContext) -> None:
        sorted_run = ctx.bounded and not in_arrival_order(self.graph)
        for step in self.graph.steps:
            if isinstance(step, SourceStep):
                if ColumnarLogReader.accepts(step.source) and sorted_run:
                    # (whole record batches of the log: the rounds are cut after ordering)
                    size = max(self.batch_size, ROWS_BELOW)
                    reader: Any = ColumnarLogReader(step.source, ctx, size, exact=False)
                elif ColumnarLogReader.accepts(step.source):
                    reader = ColumnarLogReader(step.source, ctx, self.batch_size)
                elif ColumnarKafkaReader.accepts(step.source):
                    reader = ColumnarKafkaReader(step.source, ctx, self.batch_size)
                else:
                    reader = step.source.open(ctx)
                src = SourceRun(self.graph.name, step, reader, _none, self.clock)
                self.sources.append(src)
                assert self.compiled is not None
                src.projected = project_source(
                    self.graph, step, reader, self.compiled.nodes, self._whole_event
                )

    def _whole_event(self, event: Any) -> Any:
        """The whole event behind ``event``, a late source event of the round running: its
        record decoded again, under ``event``'s fields (:func:`whole`; see
        :func:`~rheos.runtime.projection.project_source`)."""
        if self._bad_at is None or self.plan is None:
            return event
        pos = self.plan.cur[0]
        if pos % 3 != 2:
            return event
        src, part, i, _ = self._bad_at(pos)
        decode = getattr(src.reader, "decode", None)
        if decode is None:  # pragma: no cover - a projected reader decodes whole too
            return event
        raw = self._raw(src, part, i)
        return event if raw is None else whole(decode(raw), event)

    def _rejects(self, src: SourceRun, chunk: Chunk) -> None:
        self.bad.rejects(src, chunk)

    def _waiting(self, src: SourceRun) -> Callable[[], None]:
        return self.lifecycle.waiting(src)

    def _flush(self) -> None:
        flush_writers(self.compiled)

    def current_watermark(self) -> int:
        """The flow watermark: the minimum of the sources' watermarks."""
        return flow_watermark(self.sources)

    def _poll(self, src: SourceRun, timeout: float) -> list[Part]:
        """The parts of one poll, with their rejects (records that did not decode: the
        columnar reader reads them record by record, as stream-first mode) dead-lettered."""
        reader = src.reader
        if isinstance(reader, ColumnarLogReader | ColumnarKafkaReader):
            parts = reader.poll(timeout)
        else:
            parts = [from_chunk(chunk) for chunk in reader.poll(timeout)]
        for part in parts:
            if part.chunk is not None and part.chunk.rejects:
                self._rejects(src, part.chunk)
        return [part for part in parts if len(part)]

    # -- bad events -----------------------------------------------------------------------------
    def _raw(self, src: SourceRun, part: Part, i: int) -> bytes | None:
        """The original bytes of event ``i`` of ``part`` (log sources), for its dead letter."""
        chunk = part.chunk
        if chunk is None or chunk.offsets is None:
            return None
        if chunk.raw is not None and len(chunk.raw) == len(chunk.offsets):
            return chunk.raw[i]
        if chunk.topic is None or self._ctx is None:
            return None
        offset = chunk.offsets[i]
        isolation: Any = getattr(src.step.source, "isolation", "committed")
        with self._ctx.log.reader(
            chunk.topic,
            partitions=[part.partition],
            start={part.partition: offset},
            isolation=isolation,
        ) as reader:  # a bad event is rare: read its record again
            for batch in reader.poll(0.0, 1):
                for record in batch.records():
                    if record.offset == offset:
                        return record.value
        return None

    def _bad_event(
        self,
        exc: Exception,
        src: SourceRun,
        part: Part,
        i: int,
        *,
        step: str | None = None,
        event_time: int | None = None,
    ) -> None:
        dead = self.bad.dead
        assert dead is not None
        dead.handle(
            exc,
            source=src.step.name,
            step=step,
            raw=self._raw(src, part, i),
            value=part.get_rows()[i],
            event_time=event_time,
            **_place(part, i),
        )

    def _bad_in_step(self, step: Any, pos: int, exc: Exception, row: Any) -> None:
        """An event failed in a per-event step: the source event behind it is bad."""
        assert self._bad_at is not None
        src, part, i, t = self._bad_at(pos)
        self._bad_event(exc, src, part, i, event_time=t)

    def _good_times(self, src: SourceRun, part: Part) -> tuple[Part, np.ndarray]:
        """The part without its events whose time is missing or unparsable (dead-lettered
        alone), and the event times of the rest."""
        ts, bad = self._event_times(src, part)
        if not bad:
            return part, ts
        for i, exc in bad:
            self._bad_event(exc, src, part, i, step=src.step.name)
        keep = np.ones(len(part), dtype=bool)
        keep[[i for i, _ in bad]] = False
        return _keep(part, keep), ts[keep]

    # -- event times and watermarks -----------------------------------------------------------
    def _event_times(
        self, src: SourceRun, part: Part
    ) -> tuple[np.ndarray, list[tuple[int, EventError]]]:
        step = src.step
        field = step.timestamp
        if field is None:
            if part.ts is not None:
                return part.ts, []
            return np.full(len(part), self.clock.now_ms(), dtype=np.int64), []
        if (
            isinstance(field, str)
            and step.timestamp_unit in ("ms", "auto")
            and part.frame is not None
        ):
            frame = part.frame
            if field in frame.columns and frame.schema[field] == pl.Int64:
                ts = frame.get_column(field).to_numpy()
                if step.timestamp_unit == "ms" or ts.min() >= AUTO_MS_FROM:
                    return ts, []
        return _times(self.graph.name, src, part)

    def _source_watermarks(self, src: SourceRun, part: Part, ts: np.ndarray) -> np.ndarray:
        """The source watermark after each event of ``part`` (updates ``src`` and its stats).

        A source with its own watermark keeps it through the part (the runner takes the new
        one once every event read is run, see :meth:`Runner._raise_own`)."""
        stats = src.stats
        stats.events += len(ts)
        if src.own_watermark is not None:
            return np.full(len(ts), src.wm, dtype=np.int64)
        if src.single:
            top = np.maximum(np.maximum.accumulate(ts), src.top)
            before = np.concatenate([np.asarray([src.top], dtype=np.int64), top[:-1]])
            late = ts < before
            if late.any():
                stats.out_of_order += int(late.sum())
                stats.max_delay_ms = max(stats.max_delay_ms, int((before - ts)[late].max()))
            src.top = int(top[-1])
            wm = np.maximum(top - src.bound, src.wm) if src.bound else np.maximum(top, src.wm)
            src.wm = int(wm[-1])
            src.tracker.observe(part.partition, src.top)
        else:
            wm = np.maximum(src.tracker.observe_array(part.partition, ts), src.wm)
            src.wm = int(wm[-1])
            stats.out_of_order = src.tracker.out_of_order_count
            stats.max_delay_ms = src.tracker.max_delay_ms
        end = src.tracker.current()
        if end > src.wm:
            src.wm = end
        if src.held:  # (a bounded run in arrival order: the watermark stays at its lowest)
            src.wm = MIN_WATERMARK
            return np.full(len(ts), MIN_WATERMARK, dtype=np.int64)
        return wm

    def _others(self, src: SourceRun) -> int:
        others = [s.wm for s in self.sources if s is not src]
        return min(others) if others else MAX_WATERMARK

    # -- rounds ---------------------------------------------------------------------------------
    def _round(self, src: SourceRun, part: Part) -> int:
        """One source batch through the plan; returns the number of events."""
        if not len(part):
            return 0
        part, ts = self._good_times(src, part)
        n = len(part)
        if not n:
            return 0
        others = self._others(src)
        wm = np.minimum(self._source_watermarks(src, part, ts), others)
        wm = np.append(wm, min(src.wm, others))
        wm = np.maximum(wm, self._flow_now)  # the flow watermark never goes back
        batch = Batch(np.arange(n, dtype=np.int64) * 3 + 2, ts, frame=part.frame, rows=part.rows)

        def bad_at(pos: int) -> tuple[SourceRun, Part, int, int]:
            i = min(max(pos // 3, 0), n - 1)
            return src, part, i, int(ts[i])

        self._bad_at = bad_at
        self._run(Round(wm, self._flow_now), {src.step.id: batch})
        metrics = self.metrics
        if metrics is not None:
            metrics.after_chunk(part.append_time)
            if time.monotonic() >= metrics.next_sample and self.sample is not None:
                self.sample()
        return n

    def _run(self, rnd: Round, batches: dict[int, Batch]) -> None:
        assert self.plan is not None
        self.plan.run_round(batches, rnd)
        self._flow_now = int(rnd.wm[-1])
        self.flow_wm = max(self.flow_wm, self._flow_now)

    def advance_flow(self) -> None:
        """A round without events at the current flow watermark."""
        w = self.current_watermark()
        if w > self._flow_now:
            self._run(Round(np.asarray([w], dtype=np.int64), self._flow_now), {})

    def finish(self) -> None:
        self._finish()

    def _finish(self) -> None:
        self._run(
            Round(np.asarray([MAX_WATERMARK], dtype=np.int64), self._flow_now, final=True), {}
        )

    # -- streaming ------------------------------------------------------------------------------
    def start(self) -> None:
        assert self.plan is not None
        self._proc_nodes = self.plan.processing_nodes()
        # processing time is the clock when a step runs: with processing-time windows, each
        # poll is its own batch, so events are not held back from the clock they arrived at
        self._eager = bool(self._proc_nodes)
        self._pending = {id(s): [] for s in self.sources}
        self._since = {}

    def read(self, src: SourceRun, timeout: float, room: int | None) -> int:
        """Queue one poll's parts of ``src`` (at most ``room`` events); run the queue in
        rounds of ``batch_size``, and the rest when it is due (see the module docs)."""
        parts = self._poll(src, timeout)
        queue = self._pending[id(src)]
        since = self._since
        got = 0
        # the flow's input held in the other sources' queues counts against ``room`` too: it
        # is run before the run stops (stop_after counts every source's events, as
        # stream-first mode, which runs each event as it is read)
        others = 0 if room is None else self._held_input(src)
        for k, part in enumerate(parts):
            if room is not None:
                left = room - got - sum(map(len, queue)) - others
                if left <= 0:
                    self._unread_parts(src, parts[k:])  # read but not processed
                    break
                if len(part) > left:
                    self._unread_parts(src, [part.tail(left), *parts[k + 1 :]])
                    part = part.head(left)
            if queue and queue[-1].partition != part.partition:
                got += self._flush_queue(src, queue)
            if not queue:
                since[id(src)] = time.monotonic()
            queue.append(part)
            while sum(map(len, queue)) >= self.batch_size:
                got += self._flush_queue(src, queue, self.batch_size)
        exhausted = src.reader.exhausted
        stop_now = room is not None and got + sum(map(len, queue)) + others >= room
        due = queue and time.monotonic() - since.get(id(src), 0) >= self.batch_interval_s
        if queue and (exhausted or stop_now or due or self._eager or not parts):
            got += self._flush_queue(src, queue)
        return got

    def _held_input(self, src: SourceRun) -> int:
        """Events of the flow's own sources other than ``src`` read and not run yet."""
        return sum(
            len(part)
            for other in self.sources
            if other is not src and other.own_watermark is None
            for part in self._pending.get(id(other), ())
        )

    def settle(self) -> int:
        got = 0
        for src in self.sources:
            queue = self._pending.get(id(src))
            if queue:
                got += self._flush_queue(src, queue)
        return got

    def holds(self, src: SourceRun) -> bool:
        return bool(self._pending.get(id(src)))

    def processing(self, now: Callable[[], int]) -> None:
        now_ms = now()
        for node in self._proc_nodes:
            node.advance_processing(now_ms)
        if self._proc_nodes:
            self._processing_round()

    def _unread_parts(self, src: SourceRun, parts: list[Part]) -> None:
        """Parts were read but will not be processed: seek back to them (as stream-first
        mode does), so that a checkpoint records exactly what was processed."""
        self.discarded = True
        reader = src.reader
        if not isinstance(reader, SeekableReader):
            return
        back: dict[int, int] = {}
        for part in parts:
            chunk = part.chunk
            if chunk is not None and chunk.offsets is not None and len(chunk.offsets):
                back.setdefault(part.partition, chunk.offsets[0])
        if back:
            reader.seek(back)

    def _flush_queue(self, src: SourceRun, queue: list[Part], limit: int | None = None) -> int:
        """Run the queued parts (up to ``limit`` events) as one round."""
        take: list[Part] = []
        count = 0
        while queue and (limit is None or count < limit):
            part = queue.pop(0)
            if limit is not None and count + len(part) > limit:
                queue.insert(0, part.tail(limit - count))
                part = part.head(limit - count)
            take.append(part)
            count += len(part)
        return self._round(src, _concat(take)) if take else 0

    def _processing_round(self) -> None:
        """Send what processing-time windows emitted downstream."""
        self._run(Round(np.asarray([self._flow_now], dtype=np.int64), self._flow_now), {})

    # -- bounded --------------------------------------------------------------------------------
    def _bounded(self) -> None:
        """Every source read to its end, its events in event-time order, in rounds; a
        repartitioned graph stage by stage (:func:`rheos.runtime.bounded.run_stages`)."""
        assert self.compiled is not None
        coarsen_sessions(self.compiled.nodes)
        run_stages(self.graph, self.sources, self._columnar_stage, self._flush, self._finish)

    def _columnar_stage(self, sources: list[SourceRun], timed: bool) -> None:
        """The events of ``sources`` in event-time order, in rounds: with the perfect
        watermark if ``timed``, else with none (no node lies behind these sources alone)."""
        ts_parts: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        kept: list[Part] = []
        mine: list[list[Part]] = [[] for _ in sources]
        where_from: list[np.ndarray] = []  # per event: its part in ``kept``, and index there
        for index, src in enumerate(sources):
            stopped = self._waiting(src) if src.own_watermark is not None else None
            while not src.reader.exhausted:
                if stopped is not None:
                    stopped()
                parts = self._poll(src, 0.0)
                for part in parts:
                    part, ts = self._good_times(src, part)
                    if not len(part):
                        continue
                    self._source_watermarks(src, part, ts)  # statistics, as stream-first
                    ts_parts.append(ts)
                    owners.append(np.full(len(ts), index, dtype=np.int64))
                    where_from.append(np.full(len(ts), len(kept), dtype=np.int64))
                    kept.append(part)
                    mine[index].append(part)
                if not parts and not src.reader.exhausted:
                    time.sleep(0.001)
        if kept:
            ts_all = np.concatenate(ts_parts)
            owner = np.concatenate(owners)
            order = np.lexsort((owner, ts_all))  # by time, then source, stable
            ts_all, owner = ts_all[order], owner[order]
            part_of = np.concatenate(where_from)[order]
            index_of = np.concatenate([np.arange(len(p), dtype=np.int64) for p in kept])[order]
            values = _in_order(mine, order, owner)
            with progress_bar(self.graph.name, len(ts_all), self._progress) as tick:
                self._bounded_rounds(
                    sources, ts_all, owner, values, kept, part_of, index_of, timed, tick
                )

    def _bounded_rounds(
        self,
        sources: list[SourceRun],
        ts_all: np.ndarray,
        owner: np.ndarray,
        values: list[_Ordered],
        kept: list[Part],
        part_of: np.ndarray,
        index_of: np.ndarray,
        timed: bool = True,
        tick: Callable[[int], Any] | None = None,
    ) -> None:
        """The ordered events in rounds of ``batch_size``, with the perfect watermark (or,
        not ``timed``, the lowest one)."""
        assert self.plan is not None
        single = len(sources) == 1
        taken = [0] * len(sources)
        wm_all = np.maximum.accumulate(ts_all)
        if not timed:
            wm_all = np.full(len(ts_all), MIN_WATERMARK, dtype=np.int64)
        start = MIN_WATERMARK
        for a in range(0, len(ts_all), self.batch_size):
            b = min(a + self.batch_size, len(ts_all))
            wm = np.append(np.maximum(wm_all[a:b], start), max(int(wm_all[b - 1]), start))
            local = np.arange(b - a, dtype=np.int64) * 3 + 2
            batches = {}
            for index, src in enumerate(sources):
                ours = None if single else owner[a:b] == index
                count = b - a if ours is None else int(ours.sum())
                if count:
                    got = values[index].take(taken[index], count)
                    taken[index] += count
                    pos = local if ours is None else local[ours]
                    times = ts_all[a:b] if ours is None else ts_all[a:b][ours]
                    batches[src.step.id] = Batch(pos, times, frame=got[0], rows=got[1])

            def bad_at(pos: int, a: int = a, b: int = b) -> tuple[SourceRun, Part, int, int]:
                j = a + min(max(pos // 3, 0), b - a - 1)
                part = kept[int(part_of[j])]
                return sources[int(owner[j])], part, int(index_of[j]), int(ts_all[j])

            self._bad_at = bad_at
            self.plan.run_round(batches, Round(wm, start, reads_min=True))
            start = int(wm[-1])
            if tick is not None:
                tick(b)
        self._flow_now = start


class _Ordered:
    """One source's events in event-time order: a frame when its parts concatenate, else
    rows; :meth:`take` hands out consecutive stretches."""

    def __init__(self, frame: pl.DataFrame | None, rows: list[Any] | None) -> None:
        self.frame = frame
        self.rows = rows

    def take(self, a: int, n: int) -> tuple[pl.DataFrame | None, list[Any] | None]:
        if self.frame is not None:
            return self.frame.slice(a, n), None
        assert self.rows is not None
        return None, self.rows[a : a + n]


def _in_order(mine: list[list[Part]], order: np.ndarray, owner: np.ndarray) -> list[_Ordered]:
    """Each source's events in the order ``order`` (positions in the sources' concatenated
    parts, ``owner`` the source of each) puts them."""
    out = []
    first = 0
    for index, parts in enumerate(mine):
        n = sum(map(len, parts))
        ours = order if len(mine) == 1 else order[owner == index] - first
        first += n
        frame = None
        if parts and all(p.frame is not None for p in parts):
            try:  # (parts whose columns differ in type stay rows: no type is changed)
                frame = pl.concat([p.frame for p in parts if p.frame is not None], rechunk=True)
            except Exception:
                frame = None
        if frame is not None:
            out.append(_Ordered(frame.select(pl.all().gather(ours)), None))
        else:
            rows = [r for p in parts for r in p.get_rows()]
            out.append(_Ordered(None, [rows[i] for i in ours.tolist()]))
    return out


def _times(
    flow: str, src: SourceRun, part: Part
) -> tuple[np.ndarray, list[tuple[int, EventError]]]:
    """Event times from the source's timestamp spec, per event, and the events whose time is
    missing or unparsable: ``(index, error)`` (their time is 0), as stream-first mode
    (:meth:`SourceRun.times_of`)."""
    times, bad = src.times_of(part.get_rows(), partial(_place, part))
    return np.asarray(times, dtype=np.int64), bad


def _place(part: Part, i: int) -> dict[str, Any]:
    """``topic``/``partition``/``offset`` of event ``i`` of ``part`` (when known)."""
    return part.chunk.where(i) if part.chunk is not None else {}


def _keep(part: Part, keep: np.ndarray) -> Part:
    """``part`` with the events where ``keep`` is true."""
    idx = np.flatnonzero(keep).tolist()
    chunk = part.chunk
    if chunk is not None:
        n = len(keep)
        values = [chunk.values[i] for i in idx] if len(chunk.values) == n else []
        offsets = None if chunk.offsets is None else [chunk.offsets[i] for i in idx]
        raw = None
        if chunk.raw is not None and len(chunk.raw) == n:
            raw = [chunk.raw[i] for i in idx]
        chunk = Chunk(chunk.partition, values, None, chunk.topic, offsets, raw)
    return Part(
        part.partition,
        None if part.ts is None else part.ts[keep],
        rows=None if part.rows is None else [part.rows[i] for i in idx],
        frame=None if part.frame is None else part.frame.filter(pl.Series(keep)),
        chunk=chunk,
        append_time=part.append_time,
    )


def _concat(parts: list[Part]) -> Part:
    if len(parts) == 1:
        return parts[0]
    ts = None
    if all(p.ts is not None for p in parts):
        ts = np.concatenate([p.ts for p in parts if p.ts is not None])
    if all(p.frame is not None for p in parts):
        try:
            frame = pl.concat([p.frame for p in parts if p.frame is not None])
            return Part(parts[0].partition, ts, frame=frame, append_time=parts[-1].append_time)
        except Exception:
            pass
    rows = [r for p in parts for r in p.get_rows()]
    chunk = None
    if all(p.chunk is not None and p.chunk.offsets is not None for p in parts):
        chunks = [p.chunk for p in parts if p.chunk is not None and p.chunk.offsets is not None]
        offsets = [o for c in chunks for o in c.offsets or ()]
        chunk = Chunk(parts[0].partition, rows, None, chunks[0].topic, offsets)
    return Part(parts[0].partition, ts, rows=rows, chunk=chunk, append_time=parts[-1].append_time)


def _none(key: Any, value: Any, ts: int) -> None:
    return None


def MicroBatchRunner(
    graph: Graph,
    *,
    data_dir: str | None = None,
    clock: Clock | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_interval_ms: int = DEFAULT_INTERVAL_MS,
    checkpoint_interval_ms: int | None = None,
    keep: int = DEFAULT_KEEP,
    metrics: bool = True,
    task: int | None = None,
    tasks: int = 1,
) -> Runner:
    """A :class:`~rheos.runtime.runner.Runner` of ``graph`` in micro-batch mode (its executor
    a :class:`BatchExecutor`); use ``Flow.run(mode="micro-batch")`` rather than this."""
    return Runner(
        graph,
        executor=BatchExecutor(batch_size=batch_size, batch_interval_ms=batch_interval_ms),
        data_dir=data_dir,
        clock=clock,
        checkpoint_interval_ms=checkpoint_interval_ms,
        keep=keep,
        metrics=metrics,
        task=task,
        tasks=tasks,
    )


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_INTERVAL_MS",
    "BatchExecutor",
    "MicroBatchRunner",
]
