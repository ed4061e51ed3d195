"""Sources and sinks on the embedded log (:mod:`rheos.transport`).

``log_source(topic)`` reads all partitions (or ``partitions=[...]``) from ``start``
(``"beginning"``, ``"end"``, an offset or a datetime), resuming from a consumer ``group``'s
committed offsets when one is given. Values are decoded as ``format`` (JSON by default), one
whole record batch per list comprehension. In a bounded run the reader stops at the end
offsets the topic had when the run started; in a streaming run it never ends.

``log_sink(topic)`` writes each event encoded as ``format``; the topic is created (with
``partitions`` partitions, default 1) if it does not exist. ``key`` names a field or is a
function giving the record key, which also picks the partition.

Exactly once. In a run with checkpoints the sink writes through a transactional producer:
its records become visible to *committed* readers (the default of :func:`log_source` and
``rheos consume``) only when the checkpoint that covers them completes, and a recovering run
cuts off whatever was written after its checkpoint. Every record carries the header
``rheos-epoch`` (see :mod:`rheos.runtime.replay`). ``isolation="uncommitted"`` reads records
as soon as they are written -- the lowest latency, but including records a crash will take
back (and, after a crash, the same results written again).

A flow split across workers (``workers=``, docs/concepts/scale-out.md) runs as tasks: task
``p`` reads partition ``p`` of each source and writes partition ``p`` of each sink topic (the
topic is created with a partition per task), so that each partition has one transactional
writer.

Records carrying the header ``rheos-control`` (epoch markers written by a replay) are not
events: sources skip them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from rheos.connectors.base import BaseReader, BaseWriter, Chunk, OpenContext
from rheos.connectors.codecs import (
    check_format,
    encoder,
    fields_decoder,
    key_bytes,
    key_getter,
    lines_decoder,
    sift,
    value_decoder,
)
from rheos.errors import ConfigError, RecordTooLargeError
from rheos.transport import RecordBatch, Start
from rheos.transport.format import BatchValues
from rheos.transport.log import Isolation, Reader
from rheos.transport.partition import read_committed

CONTROL_HEADER = "rheos-control"
EPOCH_HEADER = "rheos-epoch"

FLUSH_EVERY = 4096


class LogSource:
    """Reads a topic of the flow's log; build with :func:`log_source`."""

    seekable = True
    """Its positions can be checkpointed and restored."""

    def __init__(
        self,
        topic: str,
        *,
        partitions: list[int] | None = None,
        group: str | None = None,
        start: Start = "beginning",
        format: str = "json",
        schema: type | None = None,
        as_dict: bool = True,
        max_records: int = 10_000,
        isolation: Isolation = "committed",
        max_record_bytes: int | None = None,
    ) -> None:
        check_format(format)
        self.isolation: Isolation = isolation
        self.max_record_bytes = max_record_bytes
        self.topic = topic
        self.partitions = None if partitions is None else list(partitions)
        self.group = group
        self.start = start
        self.format = format
        self.schema = schema
        self.as_dict = as_dict
        self.max_records = max_records

    def open(self, ctx: OpenContext) -> LogReader:
        return LogReader(self, ctx)

    def log_reader(self, ctx: OpenContext) -> Reader:
        """A reader of the log at what this source names: its topic, partitions, start,
        consumer group and isolation (the records undecoded). Task ``p`` of a flow split
        across workers (``ctx.task``) reads partition ``p`` only."""
        partitions = self.partitions
        if ctx.task is not None:
            if partitions is not None:
                raise ConfigError(
                    f"flow {ctx.flow!r}: log_source({self.topic!r}, partitions={partitions}) "
                    "cannot be split across workers (each task reads one partition of every "
                    "source); leave partitions= out"
                )
            partitions = [ctx.task]
        return ctx.log.reader(
            self.topic,
            partitions=partitions,
            start=self.start,
            group=self.group,
            isolation=self.isolation,
        )

    def __repr__(self) -> str:
        extra = f", partitions={self.partitions}" if self.partitions is not None else ""
        extra += f", group={self.group!r}" if self.group else ""
        return f"log_source({self.topic!r}{extra}, format={self.format!r})"


JOIN_FROM = 64
"""Records a batch must have to be decoded in one call (:meth:`LogReader._joined`): below,
joining their text costs more than it saves."""


class LogReader(BaseReader):
    """An open :class:`LogSource`."""

    def __init__(self, source: LogSource, ctx: OpenContext) -> None:
        self.source = source
        self.topic = source.topic
        self._decode = value_decoder(source.format, source.schema, as_dict=source.as_dict)
        self._reader = source.log_reader(ctx)
        self.partitions = list(self._reader.partitions)
        self._ends: dict[int, int] | None = self._reader.end_offsets() if ctx.bounded else None
        self._times: Callable[[list[bytes]], list[Any]] | None = None
        """Decodes only the event-time field (see :meth:`times_only`), else None."""
        self._time_field: str | None = None
        self._hot = self._decode
        """What decodes records into chunks: :attr:`_decode`, or only the fields a flow
        reads (:meth:`project`)."""
        self._lines = lines_decoder(source.format, source.schema)
        """:attr:`_hot` over a whole record batch at once (JSON), or None."""
        self._check_done()

    def times_only(self, field: str) -> None:
        """Decode only ``field`` of each JSON record into the chunks, as plain values (a
        bounded run reads every event for its time, then decodes it whole from its bytes when
        it pushes it: JSON is still parsed whole, but only one value is built). Records
        without the field, or not a JSON object, make their chunk decode whole, as before:
        errors are reported the same."""
        source = self.source
        if source.format != "json" or source.schema is not None:
            return
        only = msgspec.defstruct("EventTime", [("time", Any)], rename={"time": field})
        decode = msgspec.json.Decoder(only).decode

        def times(raw: list[bytes]) -> list[Any]:
            return [decode(v).time for v in raw]  # type: ignore[attr-defined]

        self._times = times
        self._time_field = field

    def project(self, fields: frozenset[str]) -> bool:
        """Decode only ``fields`` of each record (JSON and MessagePack objects without a
        schema; see :class:`~rheos.connectors.base.ProjectingReader`)."""
        only = fields_decoder(self.source.format, fields, self.source.schema)
        if only is None:
            return False
        self._hot = only
        self._lines = lines_decoder(self.source.format, self.source.schema, fields)
        return True

    def _check_done(self) -> None:
        if self._ends is not None:
            pos = self._reader.positions()
            self._done = all(pos[p] >= end for p, end in self._ends.items())

    def poll(self, timeout: float) -> list[Chunk]:
        if self._done:
            return []
        batches = self._reader.poll(timeout, self.source.max_records)
        chunks = []
        ends = self._ends
        for batch in batches:
            if ends is not None:
                end = ends[batch.partition]
                if batch.first_offset >= end:
                    continue
                if batch.next_offset > end:
                    batch = batch.slice(0, end - batch.first_offset)
            chunks.append(self._chunk(batch))
        if ends is not None:
            self._check_done()
        return chunks

    def _chunk(self, batch: RecordBatch) -> Chunk:
        chunk = self._joined(batch)
        if chunk is not None:
            return chunk
        raw = batch.values()
        offsets: range | list[int] = batch.offsets()
        timestamps = batch.timestamp_list()
        if batch.has_headers:
            keep = [i for i, h in enumerate(batch.headers()) if not _is_control(h)]
            if len(keep) < len(raw):
                raw = [raw[i] for i in keep]
                offsets = [offsets[i] for i in keep]
                timestamps = [timestamps[i] for i in keep]
        dec = self._hot
        limit = self.source.max_record_bytes
        try:
            if limit is not None and raw and max(map(len, raw)) > limit:
                raise RecordTooLargeError("a record is over max_record_bytes")
            values = None
            times_of = None
            if self._times is not None and raw:
                try:
                    values = self._times(raw)
                    times_of = self._time_field
                except (msgspec.DecodeError, msgspec.ValidationError):
                    values = None  # some record is not an object with the field: decode whole
            if values is None:
                values = [dec(v) for v in raw]
        except Exception:
            chunk = self._sift(batch.partition, raw, list(offsets), timestamps)
        else:
            chunk = Chunk(batch.partition, values, timestamps, self.topic, offsets, raw)
            chunk.times_of = times_of
        chunk.append_time = batch.append_time
        return chunk

    def _joined(self, batch: RecordBatch) -> Chunk | None:
        """The chunk of a batch of JSON records decoded in one call, over their text joined
        by newlines (no Python object per record but its event; each record's bytes are
        sliced out only if asked for: :class:`~rheos.transport.format.BatchValues`), or None
        to decode record by record: a small batch, control records, a size limit, a record
        holding a newline, or any record that does not decode (then the record-by-record
        path finds which, and says why)."""
        lines = self._lines
        if (
            lines is None
            or len(batch) < JOIN_FROM
            or batch.has_headers
            or self._times is not None
            or self.source.max_record_bytes is not None
        ):
            return None
        text = batch.joined_values()
        if text is None:
            return None
        try:
            values = lines(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if len(values) != len(batch):  # (a record of blanks only: not a line)
            return None
        timestamps = batch.timestamp_list()
        raw = BatchValues(batch)  # (each record's bytes sliced out when asked for)
        chunk = Chunk(batch.partition, values, timestamps, self.topic, batch.offsets(), raw)
        chunk.append_time = batch.append_time
        return chunk

    def _sift(
        self, partition: int, raw: list[bytes], offsets: list[int], timestamps: list[int]
    ) -> Chunk:
        """The chunk of a stretch with bad records: the good ones, and the rejects."""
        where = (self.topic, partition)
        fmt, limit = self.source.format, self.source.max_record_bytes
        return sift(self._decode, fmt, where, raw, offsets, timestamps, limit)

    def decode(self, value: bytes) -> Any:
        """Decode one record value as this source does (dead-letter replay)."""
        limit = self.source.max_record_bytes
        if limit is not None and len(value) > limit:
            raise RecordTooLargeError(
                f"the record is {len(value)} bytes, over the source's max_record_bytes of {limit}",
                topic=self.topic,
            )
        return self._decode(value)

    def decode_all(self, raw: list[bytes]) -> list[Any]:
        """Decode record values that decoded once already (a bounded run holds the bytes)."""
        dec = self._hot
        return [dec(v) for v in raw]

    def positions(self) -> dict[int, int]:
        """The next offset to read, per partition."""
        return self._reader.positions()

    def seek(self, positions: dict[int, int]) -> None:
        """Continue from ``positions`` (a checkpoint's)."""
        for p, offset in positions.items():
            if p in self.partitions:
                self._reader.seek(p, offset)
        self._check_done()

    def backlog(self) -> dict[int, tuple[int, int]]:
        """Per partition: the next offset to read and the end of what can be read now (their
        difference is the consumer lag)."""
        positions = self._reader.positions()
        ends = self._reader.end_offsets()
        return {p: (positions[p], ends.get(p, positions[p])) for p in positions}

    def commit(self) -> None:
        if self.source.group is not None:
            self._reader.commit()

    def close(self) -> None:
        self._reader.close()


def _is_control(headers: tuple[tuple[str, bytes], ...]) -> bool:
    return any(name == CONTROL_HEADER for name, _ in headers)


class LogSink:
    """Writes to a topic of the flow's log; build with :func:`log_sink`."""

    def __init__(
        self,
        topic: str,
        *,
        key: str | Callable[[Any], Any] | None = None,
        partitions: int | None = None,
        format: str = "json",
    ) -> None:
        check_format(format)
        self.topic = topic
        self.key = key
        self.partitions = partitions
        self.format = format

    def open(self, ctx: OpenContext) -> LogWriter:
        return LogWriter(self, ctx)

    def __repr__(self) -> str:
        key = f", key={self.key!r}" if isinstance(self.key, str) else ""
        return f"log_sink({self.topic!r}{key}, format={self.format!r})"


class LogWriter(BaseWriter):
    """An open :class:`LogSink`: buffers encoded events, appends them in batches.

    In a checkpointed run (``ctx.transactional``) it is a
    :class:`~rheos.connectors.base.TransactionalWriter`: appends are flushed but stay
    uncommitted until :meth:`commit`. Otherwise a topic that was ever written transactionally
    is committed at every :meth:`flush` (so committed readers keep seeing it).
    """

    def __init__(self, sink: LogSink, ctx: OpenContext) -> None:
        self.sink = sink
        log = ctx.log
        self._partition = ctx.task
        """Task ``p`` of a flow split across workers writes partition ``p`` only: the one
        writer of that partition, so its transactions stay exactly once."""
        if ctx.task is None:
            if not log.has_topic(sink.topic):
                log.create_topic(sink.topic, sink.partitions or 1, exist_ok=True)
        else:
            ensure_task_topic(log, sink.topic, ctx.tasks, flow=ctx.flow, wanted=sink.partitions)
        self._in_checkpoints = ctx.transactional
        self._auto_commit = not ctx.transactional and _has_committed_mark(ctx, sink.topic)
        transactional = self._in_checkpoints or self._auto_commit
        self._producer = log.producer(sink.topic, transactional=transactional)
        self._limit = self._producer.config.max_record_bytes
        self._encode = encoder(sink.format)
        self._values: list[bytes] = []
        self._keys: list[bytes | None] | None = [] if sink.key is not None else None
        self._times: list[int] = []
        self._epoch = ((EPOCH_HEADER, str(ctx.epoch).encode()),)
        self._headers: list[Any] | None = [] if self._in_checkpoints else None
        self._prepared: dict[int, dict[int, int]] = {}
        """The positions each prepared checkpoint covers, until it commits."""
        self._key_of = key_getter(sink.key, f"log_sink {sink.topic!r}")

    def write(self, value: Any, timestamp: int) -> None:
        """Buffer one event. An event this sink cannot write -- no key field, a record over
        the topic's ``max_record_bytes`` -- raises here, before anything of it is buffered,
        so the run can dead-letter it and go on."""
        encoded = self._encode(value)
        key = None
        if self._keys is not None and self._key_of is not None:
            key = key_bytes(self._key_of(value))
        size = len(encoded) + (len(key) if key is not None else 0)
        if size > self._limit:
            raise RecordTooLargeError(
                f"log_sink {self.sink.topic!r}: the output record is {size} bytes, over the "
                f"topic's max_record_bytes of {self._limit}",
                topic=self.sink.topic,
            )
        self._values.append(encoded)
        self._times.append(timestamp)
        if self._keys is not None:
            self._keys.append(key)
        if self._headers is not None:
            self._headers.append(self._epoch)
        if len(self._values) >= FLUSH_EVERY:
            self._append()

    def _append(self) -> None:
        if self._values:
            self._producer.append(
                self._values,
                keys=self._keys,
                timestamps=self._times,
                headers=self._headers,
                partition=self._partition,
            )
            self._values = []
            self._times = []
            if self._keys is not None:
                self._keys = []
            if self._headers is not None:
                self._headers = []

    def flush(self) -> None:
        self._append()
        self._producer.flush()
        if self._auto_commit:
            self._producer.commit()

    # -- checkpoints (TransactionalWriter) ----------------------------------------------------
    def prepare(self, checkpoint: int) -> dict[str, Any]:
        self._append()
        self._producer.flush()
        mine = None if self._partition is None else [self._partition]
        positions = self._producer.positions(mine)
        self._prepared[checkpoint] = positions
        return {"topic": self.sink.topic, "positions": positions}

    def commit(self, checkpoint: int) -> None:
        """Commit what :meth:`prepare` covered -- not what was written since, which belongs
        to the next checkpoint (a periodic checkpoint is written while the flow goes on)."""
        positions = self._prepared.pop(checkpoint, None)
        self._producer.commit(upto=positions)

    def recover(self, checkpoint: int | None, prepared: Any) -> None:
        if prepared is None:  # nothing of this sink in the checkpoint: keep what is committed
            positions = _committed_marks(self._producer.log, self.sink.topic)
        else:
            positions = prepared["positions"]
        mine = self._partition
        self._producer.rollback_to(
            {int(p): int(o) for p, o in positions.items() if mine is None or int(p) == mine}
        )

    def close(self) -> None:
        if self._in_checkpoints:
            self._append()
            self._producer.flush()  # uncommitted: the next checkpoint or recovery decides
        else:
            self.flush()
        self._producer.close()


def ensure_task_topic(
    log: Any, topic: str, tasks: int, *, flow: str, wanted: int | None = None
) -> None:
    """Create ``topic`` with a partition per task (``tasks``, or ``wanted`` if more) where it
    is missing; refuse an existing one with fewer partitions than ``tasks``: task ``p`` of a
    flow split across workers writes partition ``p``."""
    if not log.has_topic(topic):
        log.create_topic(topic, max(tasks, wanted or 1), exist_ok=True)
        return
    have = log.partitions(topic)
    if have < tasks:
        raise ConfigError(
            f"flow {flow!r} runs as {tasks} tasks (its sources have {tasks} partitions) and "
            f"each task writes its own partition of topic {topic!r}, which has {have}: "
            f"recreate it with {tasks} partitions (rheos topic delete/create), or write to "
            "another topic"
        )


def _has_committed_mark(ctx: OpenContext, topic: str) -> bool:
    return bool(_committed_marks(ctx.log, topic))


def _committed_marks(log: Any, topic: str) -> dict[int, int]:
    """The committed mark of each partition of ``topic`` that has one."""
    folder = log.topic_dir(topic)
    out = {}
    for p in range(log.partitions(topic)):
        mark = read_committed(folder / str(p))
        if mark is not None:
            out[p] = mark
    return out


def log_source(
    topic: str,
    *,
    partitions: list[int] | None = None,
    group: str | None = None,
    start: Start = "beginning",
    format: str = "json",
    schema: type | None = None,
    as_dict: bool = True,
    isolation: Isolation = "committed",
    max_record_bytes: int | None = None,
) -> LogSource:
    """A source reading ``topic`` of the flow's embedded log (see the module docs).

    ``isolation="committed"`` (default) reads what transactional writers -- flows with
    checkpoints -- have committed; ``"uncommitted"`` reads everything at once, including
    output a crashed flow will take back. Records over ``max_record_bytes`` are bad events.
    """
    return LogSource(
        topic,
        partitions=partitions,
        group=group,
        start=start,
        format=format,
        schema=schema,
        as_dict=as_dict,
        isolation=isolation,
        max_record_bytes=max_record_bytes,
    )


def log_sink(
    topic: str,
    *,
    key: str | Callable[[Any], Any] | None = None,
    partitions: int | None = None,
    format: str = "json",
) -> LogSink:
    """A sink appending to ``topic`` of the flow's embedded log (created if missing)."""
    return LogSink(topic, key=key, partitions=partitions, format=format)


__all__ = [
    "CONTROL_HEADER",
    "EPOCH_HEADER",
    "LogReader",
    "LogSink",
    "LogSource",
    "LogWriter",
    "ensure_task_topic",
    "log_sink",
    "log_source",
]
