"""The two ends of a repartition topic: where a flow split into tasks moves events between them.

A flow split into ``T`` tasks (see :mod:`rheos.runtime.repartition`) sends the events of a
``key_by`` through the internal topic ``<flow>.<step>.repartition`` of the embedded log, so
that all events of a key meet in one task. The topic has ``T * T`` partitions, so that each
has one writer: task ``u`` writes partition ``u * T + d`` with the events whose key hashes
to task ``d`` (murmur2 of the key's bytes, as the log's partitioner), and task ``d`` reads
the partitions ``u * T + d`` of every ``u``.

Records. An event is one record: its value encoded by
:mod:`~rheos.connectors.repartition_codec` (never pickled), its event time the record's
timestamp, no key and no headers. A **watermark record** carries the headers
``rheos-control: watermark`` and ``rheos-watermark: <epoch ms>``: task ``u`` promises that
its later records in that partition are (as far as its own sources know) not earlier. Task
``u`` writes one into each of its ``T`` partitions when the watermark of the sources its
events come from has advanced (at most every :data:`MARK_EVERY_MS`, when its sinks flush), at
each checkpoint, and at its end: ``MAX_WATERMARK`` is the **end marker**.

Watermarks. The reading task's watermark for this source is the minimum over the upstream
tasks of the last watermark record seen from each (a
:class:`~rheos.windowing.WatermarkTracker` over the upstream tasks), so a partition without
events still advances through watermark records. With the upstream sources'
``idle_timeout``, an upstream task silent that long (no record at all: it is not running)
stops holding it back, exactly as an idle partition of a source. The source is exhausted
once every upstream task's end marker was read. An end marker does not raise the watermark
by itself: a task killed while it drains may come back with more events, and those must not
be late for it (an upstream task that wrote one and then more records runs again).

Exactly once. The writing end is transactional in every run: in a checkpointed run its
records become visible to the reading tasks when the checkpoint that covers them commits,
and a recovering task cuts off what it wrote after its checkpoint (its partitions are its
alone); in a run without checkpoints it commits whenever it flushes and cuts off, when it
opens, what a crashed run left uncommitted. The reading end reads committed records only;
its positions are in its task's checkpoint (and in the consumer group
``<flow>.repartition``, which a run without checkpoints resumes from).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rheos.connectors.base import BaseReader, BaseWriter, Chunk, OpenContext
from rheos.connectors.codecs import key_bytes
from rheos.connectors.log import CONTROL_HEADER
from rheos.connectors.repartition_codec import UnencodableError, decode, decode_all, encode
from rheos.errors import ConfigError, EventError, RecordTooLargeError
from rheos.transport import RecordBatch
from rheos.transport.partition import read_committed
from rheos.transport.partitioner import partition_for_key
from rheos.windowing import MAX_WATERMARK, MIN_WATERMARK, WatermarkTracker

WATERMARK_HEADER = "rheos-watermark"
WATERMARK_CONTROL = b"watermark"
WATERMARK_OF = "rheos.watermark_of"
"""The key of :attr:`OpenContext.shared` under which the runner gives the writing end a
function: the names of source steps -> the lowest of their watermarks now."""
MARK_EVERY_MS = 100
"""Watermark records are written at most this often, by the flow's clock (the end marker,
and those of a checkpoint, at once)."""
FLUSH_EVERY = 4096
GROUP_COMMIT_EVERY_S = 5.0
"""How often a checkpointed run stores a reading end's positions in the consumer group."""
TARGETS_KEPT = 100_000
"""The writing end remembers the task of this many keys (then starts again)."""


def repartition_topic(flow: str, step: str) -> str:
    """The name of the repartition topic in front of step ``step`` of flow ``flow``."""
    return f"{flow}.{step}.repartition"


def repartition_group(flow: str) -> str:
    """The consumer group the reading ends of flow ``flow`` commit their positions to."""
    return f"{flow}.repartition"


def _open_topic(ctx: OpenContext, topic: str, tasks: int) -> None:
    """Create the topic unless it exists (tasks opening it at once, in threads or processes,
    take turns through a lock file in the flow's folder), and check its partitions."""
    log = ctx.log
    folder = Path(ctx.data_dir) / "flows" / ctx.flow
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "repartition.lock", "ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        log.create_topic(topic, tasks * tasks, exist_ok=True)
    have = log.partitions(topic)
    if have != tasks * tasks:
        raise ConfigError(
            f"flow {ctx.flow!r}: the repartition topic {topic!r} has {have} partitions, made "
            f"for another number of tasks than {tasks} (it needs {tasks * tasks}); delete it "
            "(rheos topic delete) once every task has read it to the end, or keep the number "
            "of tasks"
        )


def _task(ctx: OpenContext, tasks: int, topic: str) -> int:
    task = ctx.task if ctx.task is not None else 0
    if ctx.tasks != tasks or not 0 <= task < tasks:
        raise ConfigError(
            f"flow {ctx.flow!r}: the repartition topic {topic!r} is for {tasks} tasks, but "
            f"this run is task {ctx.task} of {ctx.tasks}: run the graph "
            "repartitioned(graph, tasks) made for this number of tasks"
        )
    return task


class RepartitionSink:
    """The writing end, after the input of the step ``step`` (a ``key_by``, or a global
    window when ``key`` is ``None``: every event to task 0)."""

    def __init__(
        self,
        topic: str,
        *,
        tasks: int,
        step: str,
        key: str | Callable[[Any], Any] | None,
        upstream: tuple[str, ...],
    ) -> None:
        self.topic = topic
        self.tasks = tasks
        self.step = step
        self.key = key
        self.upstream = upstream
        """The source steps this end's events come from (their watermark is its own)."""

    def open(self, ctx: OpenContext) -> RepartitionWriter:
        return RepartitionWriter(self, ctx)

    def __repr__(self) -> str:
        return f"repartition_sink({self.topic!r}, tasks={self.tasks})"


class RepartitionWriter(BaseWriter):
    """An open :class:`RepartitionSink` (a
    :class:`~rheos.connectors.base.TransactionalWriter`): see the module docs."""

    def __init__(self, sink: RepartitionSink, ctx: OpenContext) -> None:
        self.sink = sink
        self.flow = ctx.flow
        tasks = sink.tasks
        self.task = _task(ctx, tasks, sink.topic)
        _open_topic(ctx, sink.topic, tasks)
        self.mine = [self.task * tasks + d for d in range(tasks)]
        self._producer = ctx.log.producer(sink.topic, transactional=True)
        self._limit = self._producer.config.max_record_bytes
        self._in_checkpoints = ctx.transactional
        self._shared = ctx.shared
        self._buffers: list[tuple[list[bytes], list[int]]] = [([], []) for _ in range(tasks)]
        self._buffered = 0
        self._mark = MIN_WATERMARK
        self._clock = ctx.clock
        self._marked_at: int | None = None
        self._prepared: dict[int, dict[int, int]] = {}
        self._key_of = self._key_function(sink.key)
        self._targets: dict[Any, int] = {}
        if not self._in_checkpoints:  # what a crashed run left uncommitted is not ours
            self._producer.rollback_to(self._committed())

    def _key_function(self, key: str | Callable[[Any], Any] | None) -> Callable[[Any], Any]:
        where = f"flow {self.flow!r}, step {self.sink.step!r}"
        if key is None:
            return lambda value: None
        if isinstance(key, str):
            field = key

            def by_field(value: Any) -> Any:
                try:
                    return value[field]
                except (KeyError, TypeError, IndexError):
                    text = repr(value)
                    text = text if len(text) <= 80 else text[:77] + "..."
                    raise EventError(
                        f"{where}: the event has no key field {field!r}: {text}"
                    ) from None

            return by_field
        fn = key

        def by_function(value: Any) -> Any:
            try:
                return fn(value)
            except Exception as exc:
                raise EventError(
                    f"{where}: the key function raised {type(exc).__name__}: {exc}"
                ) from exc

        return by_function

    def _target(self, key: Any) -> int:
        """The task of ``key``: murmur2 of its bytes (remembered for the keys seen lately)."""
        try:
            return self._targets[key]
        except KeyError:
            pass
        except TypeError:  # a key that cannot be a dict key (a list)
            return self._hash(key)
        if len(self._targets) >= TARGETS_KEPT:
            self._targets.clear()
        target = self._targets[key] = self._hash(key)
        return target

    def _hash(self, key: Any) -> int:
        data = key_bytes(key)
        return 0 if data is None else partition_for_key(data, self.sink.tasks)

    def _committed(self) -> dict[int, int]:
        folder = self._producer.log.topic_dir(self.sink.topic)
        out = {}
        for p in self.mine:
            mark = read_committed(folder / str(p))
            out[p] = mark if mark is not None else self._producer.positions([p])[p]
        return out

    def write(self, value: Any, timestamp: int) -> None:
        """Buffer one event for the task its key hashes to. An event that has no key, or
        cannot be encoded, raises :class:`~rheos.errors.EventError` naming the flow and
        step, before anything of it is buffered: it becomes a dead letter."""
        target = self._target(self._key_of(value))
        try:
            data = encode(value)
        except UnencodableError as exc:
            raise EventError(
                f"flow {self.flow!r}, step {self.sink.step!r}: the event cannot go through "
                f"the repartition topic {self.sink.topic!r}: {exc}",
                topic=self.sink.topic,
            ) from None
        if len(data) > self._limit:
            raise RecordTooLargeError(
                f"flow {self.flow!r}, step {self.sink.step!r}: the event is {len(data)} bytes "
                f"encoded, over the repartition topic's max_record_bytes of {self._limit}",
                topic=self.sink.topic,
            )
        values, times = self._buffers[target]
        values.append(data)
        times.append(timestamp)
        self._buffered += 1
        if self._buffered >= FLUSH_EVERY:
            self._append()

    def _append(self) -> None:
        if not self._buffered:
            return
        for d, (values, times) in enumerate(self._buffers):
            if values:
                self._producer.append(values, timestamps=times, partition=self.mine[d])
                self._buffers[d] = ([], [])
        self._buffered = 0

    def upstream_watermark(self) -> int:
        """The watermark of the sources this end's events come from (the runner's)."""
        of = self._shared.get(WATERMARK_OF)
        return MIN_WATERMARK if of is None else int(of(self.sink.upstream))

    def _write_mark(self, *, force: bool) -> None:
        """Append a watermark record to each partition of this task when the upstream
        watermark advanced (throttled unless ``force`` or it is the end marker)."""
        wm = self.upstream_watermark()
        if wm <= self._mark:
            return
        now = self._clock.now_ms()
        recent = self._marked_at is not None and now - self._marked_at < MARK_EVERY_MS
        if recent and not force and wm != MAX_WATERMARK:
            return
        self._append()
        headers = ((CONTROL_HEADER, WATERMARK_CONTROL), (WATERMARK_HEADER, str(wm).encode()))
        for p in self.mine:
            self._producer.append([b""], timestamps=[0], headers=[headers], partition=p)
        self._mark = wm
        self._marked_at = now

    def flush(self) -> None:
        self._append()
        self._write_mark(force=False)
        if not self._in_checkpoints:
            self._producer.commit()

    # -- checkpoints (TransactionalWriter) ----------------------------------------------------
    def prepare(self, checkpoint: int) -> dict[str, Any]:
        self._append()
        self._write_mark(force=True)
        self._producer.flush()
        positions = self._producer.positions(self.mine)
        self._prepared[checkpoint] = positions
        return {"topic": self.sink.topic, "positions": positions}

    def commit(self, checkpoint: int) -> None:
        positions = self._prepared.pop(checkpoint, None)
        if positions is not None:
            self._producer.commit(upto=positions)

    def recover(self, checkpoint: int | None, prepared: Any) -> None:
        if prepared is None:  # nothing of this end in the checkpoint: keep what is committed
            positions = self._committed()
        else:
            positions = {int(p): int(o) for p, o in prepared["positions"].items()}
        self._producer.rollback_to({p: o for p, o in positions.items() if p in self.mine})

    def close(self) -> None:
        try:
            self._append()
            if self._in_checkpoints:
                self._producer.flush()  # uncommitted: the next checkpoint or recovery decides
            else:
                self._write_mark(force=True)
                self._producer.commit()
        finally:
            self._producer.close()


class RepartitionSource:
    """The reading end, in front of step ``step`` (see the module docs)."""

    seekable = True
    """Its positions can be checkpointed and restored."""

    def __init__(
        self,
        topic: str,
        *,
        tasks: int,
        step: str,
        stage: int,
        idle_timeout_ms: int | None,
        max_records: int = 10_000,
    ) -> None:
        self.topic = topic
        self.tasks = tasks
        self.step = step
        self.stage = stage
        """How many repartition topics lie between the flow's own sources and this one
        (1 for the first): a bounded run reads its sources stage by stage."""
        self.idle_timeout_ms = idle_timeout_ms
        self.max_records = max_records

    def open(self, ctx: OpenContext) -> RepartitionReader:
        return RepartitionReader(self, ctx)

    def __repr__(self) -> str:
        return f"repartition_source({self.topic!r}, tasks={self.tasks})"


class RepartitionReader(BaseReader):
    """An open :class:`RepartitionSource`: events, and the watermark of its upstream
    tasks (:meth:`watermark`)."""

    def __init__(self, source: RepartitionSource, ctx: OpenContext) -> None:
        self.source = source
        self.topic = source.topic
        tasks = source.tasks
        self.task = _task(ctx, tasks, source.topic)
        _open_topic(ctx, source.topic, tasks)
        self.partitions = [u * tasks + self.task for u in range(tasks)]
        self._reader = ctx.log.reader(
            source.topic,
            partitions=self.partitions,
            start="beginning",
            group=repartition_group(ctx.flow),
            isolation="committed",
        )
        self._tracker = WatermarkTracker(0, idle_timeout_ms=source.idle_timeout_ms, clock=ctx.clock)
        self._tracker.declare_partitions(range(tasks))
        self._marks = [MIN_WATERMARK] * tasks
        self._ended = [False] * tasks
        self._in_checkpoints = ctx.transactional
        self._group_committed = time.monotonic()

    # -- reading ------------------------------------------------------------------------------
    def poll(self, timeout: float) -> list[Chunk]:
        if self._done:
            return []
        chunks = []
        for batch in self._reader.poll(timeout, self.source.max_records):
            upstream = batch.partition // self.source.tasks
            if batch.has_headers:
                chunks.extend(self._mixed(batch, upstream))
            elif len(batch):
                self._heard(upstream)
                chunks.append(self._chunk(batch.partition, batch.values(), batch, None))
        self._done = all(self._ended) and self._caught_up()
        return chunks

    def _caught_up(self) -> bool:
        """Whether nothing committed is left to read: an end marker followed by more records
        (a task killed while it drained, then run again) does not end its upstream task."""
        positions = self._reader.positions()
        return all(positions[p] >= end for p, end in self._reader.end_offsets().items())

    def _heard(self, upstream: int) -> None:
        """A record from ``upstream``: it is running (not idle; a new run if it had ended)."""
        self._ended[upstream] = False
        self._tracker.observe(upstream, self._marks[upstream])

    def _mixed(self, batch: RecordBatch, upstream: int) -> list[Chunk]:
        """A batch with watermark records: its events, each run of them a chunk."""
        chunks: list[Chunk] = []
        values: list[bytes] = []
        offsets: list[int] = []
        times: list[int] = []
        for record in batch.records():
            headers = dict(record.headers)
            if CONTROL_HEADER not in headers:
                values.append(record.value)
                offsets.append(record.offset)
                times.append(record.timestamp)
                continue
            if values:
                self._heard(upstream)
                chunks.append(self._chunk(batch.partition, values, offsets, times))
                values, offsets, times = [], [], []
            mark = headers.get(WATERMARK_HEADER)
            if headers[CONTROL_HEADER] == WATERMARK_CONTROL and mark is not None:
                self._watermark_record(upstream, int(mark))
        if values:
            self._heard(upstream)
            chunks.append(self._chunk(batch.partition, values, offsets, times))
        return chunks

    def _watermark_record(self, upstream: int, mark: int) -> None:
        """A watermark record. An end marker ends ``upstream`` for :attr:`exhausted` but
        leaves the watermark where its last watermark record put it: a task killed while it
        drains comes back with more events, which must not be late for having ended."""
        if mark >= MAX_WATERMARK:
            self._ended[upstream] = True
            return
        self._ended[upstream] = False
        if mark > self._marks[upstream]:
            self._marks[upstream] = mark
        self._tracker.observe(upstream, self._marks[upstream])

    def _chunk(
        self,
        partition: int,
        raw: list[bytes],
        where: RecordBatch | list[int],
        times: list[int] | None,
    ) -> Chunk:
        if isinstance(where, RecordBatch):
            offsets: range | list[int] = where.offsets()
            times = where.timestamp_list()
        else:
            offsets = where
        assert times is not None
        try:
            values = decode_all(raw)
        except Exception:
            return self._sift(partition, raw, list(offsets), times)
        return Chunk(partition, values, times, self.topic, offsets)

    def _sift(
        self, partition: int, raw: list[bytes], offsets: list[int], times: list[int]
    ) -> Chunk:
        """A stretch with a record that does not decode (a damaged or foreign record)."""
        chunk = Chunk(partition, [], [], self.topic, [], None, [])
        assert chunk.timestamps is not None and isinstance(chunk.offsets, list)
        assert chunk.rejects is not None
        for value, offset, ts in zip(raw, offsets, times, strict=True):
            try:
                decoded = decode(value)
            except Exception as exc:
                err = EventError(
                    f"repartition topic {self.topic!r}: a record does not decode: {exc}",
                    topic=self.topic,
                    partition=partition,
                    offset=offset,
                )
                chunk.rejects.append((offset, value, err))
                continue
            chunk.values.append(decoded)
            chunk.timestamps.append(ts)
            chunk.offsets.append(offset)
        return chunk

    def watermark(self) -> int:
        """The lowest watermark of the upstream tasks (idle ones aside, see the module
        docs); the runner ends the source once all have ended (:attr:`exhausted`)."""
        self._tracker.poll_idle()
        return self._tracker.current()

    # -- positions ------------------------------------------------------------------------------
    def positions(self) -> dict[int, int]:
        return self._reader.positions()

    def seek(self, positions: dict[int, int]) -> None:
        for p, offset in positions.items():
            if p in self.partitions:
                self._reader.seek(p, offset)

    def backlog(self) -> dict[int, tuple[int, int]]:
        """Per partition: the next offset to read and the end of what is committed (their
        difference is the lag behind the upstream tasks)."""
        positions = self._reader.positions()
        ends = self._reader.end_offsets()
        return {p: (positions[p], ends.get(p, positions[p])) for p in positions}

    def commit(self) -> None:
        """Store the positions in the consumer group: at every call in a run without
        checkpoints (it ends with one), at most every :data:`GROUP_COMMIT_EVERY_S` in a
        checkpointed run (its positions are in its checkpoints; the group is where a later
        run without a checkpoint starts), so that tasks do not queue on the group store."""
        now = time.monotonic()
        if self._in_checkpoints and now - self._group_committed < GROUP_COMMIT_EVERY_S:
            return
        self._group_committed = now
        self._reader.commit()

    def close(self) -> None:
        self._reader.close()


__all__ = [
    "MARK_EVERY_MS",
    "WATERMARK_HEADER",
    "WATERMARK_OF",
    "RepartitionReader",
    "RepartitionSink",
    "RepartitionSource",
    "RepartitionWriter",
    "repartition_group",
    "repartition_topic",
]
