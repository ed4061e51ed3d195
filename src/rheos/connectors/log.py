"""Sources and sinks on the embedded log (:mod:`rheos.transport`).

``log_source(topic)`` reads all partitions (or ``partitions=[...]``) from ``start``
(``"beginning"``, ``"end"``, an offset or a datetime), resuming from a consumer ``group``'s
committed offsets when one is given. Values are decoded as ``format`` (JSON by default), one
whole record batch per list comprehension. In a bounded run the reader stops at the end
offsets the topic had when the run started; in a streaming run it never ends.

``log_sink(topic)`` writes each event encoded as ``format``; the topic is created (with
``partitions`` partitions, default 1) if it does not exist. ``key`` names a field or is a
function giving the record key, which also picks the partition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rheos.connectors.base import BaseReader, BaseWriter, Chunk, OpenContext
from rheos.connectors.codecs import check_format, encoder, key_bytes, value_decoder
from rheos.errors import EventError
from rheos.transport import RecordBatch, Start

FLUSH_EVERY = 4096


class LogSource:
    """Reads a topic of the flow's log; build with :func:`log_source`."""

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
    ) -> None:
        check_format(format)
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

    def __repr__(self) -> str:
        extra = f", partitions={self.partitions}" if self.partitions is not None else ""
        extra += f", group={self.group!r}" if self.group else ""
        return f"log_source({self.topic!r}{extra}, format={self.format!r})"


class LogReader(BaseReader):
    """An open :class:`LogSource`."""

    def __init__(self, source: LogSource, ctx: OpenContext) -> None:
        self.source = source
        self.topic = source.topic
        self._decode = value_decoder(source.format, source.schema, as_dict=source.as_dict)
        self._reader = ctx.log.reader(
            source.topic, partitions=source.partitions, start=source.start, group=source.group
        )
        self.partitions = list(self._reader.partitions)
        self._ends: dict[int, int] | None = self._reader.end_offsets() if ctx.bounded else None
        self._check_done()

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
        raw = batch.values()
        dec = self._decode
        try:
            values = [dec(v) for v in raw]
        except Exception:
            values = self._locate_error(batch, raw)
        return Chunk(batch.partition, values, batch.timestamp_list(), self.topic, batch.offsets())

    def _locate_error(self, batch: RecordBatch, raw: list[bytes]) -> list[Any]:
        dec = self._decode
        offsets = batch.offsets()
        out = []
        for i, value in enumerate(raw):
            try:
                out.append(dec(value))
            except Exception as exc:
                text = value[:60]
                raise EventError(
                    f"cannot decode a {self.source.format} value: {exc}: {text!r}",
                    topic=self.topic,
                    partition=batch.partition,
                    offset=offsets[i],
                ) from exc
        return out

    def commit(self) -> None:
        if self.source.group is not None:
            self._reader.commit()

    def close(self) -> None:
        self._reader.close()


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
    """An open :class:`LogSink`: buffers encoded events, appends them in batches."""

    def __init__(self, sink: LogSink, ctx: OpenContext) -> None:
        self.sink = sink
        log = ctx.log
        if not log.has_topic(sink.topic):
            log.create_topic(sink.topic, sink.partitions or 1, exist_ok=True)
        self._producer = log.producer(sink.topic)
        self._encode = encoder(sink.format)
        self._values: list[bytes] = []
        self._keys: list[bytes | None] | None = [] if sink.key is not None else None
        self._times: list[int] = []
        key = sink.key
        self._key_of: Callable[[Any], Any] | None
        if isinstance(key, str):
            field = key

            def by_field(value: Any) -> Any:
                try:
                    return value[field]
                except (KeyError, TypeError, IndexError):
                    raise EventError(
                        f"log_sink {sink.topic!r}: the event has no key field {field!r}"
                    ) from None

            self._key_of = by_field
        else:
            self._key_of = key

    def write(self, value: Any, timestamp: int) -> None:
        self._values.append(self._encode(value))
        self._times.append(timestamp)
        if self._keys is not None and self._key_of is not None:
            self._keys.append(key_bytes(self._key_of(value)))
        if len(self._values) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._values:
            self._producer.append(self._values, keys=self._keys, timestamps=self._times)
            self._values = []
            self._times = []
            if self._keys is not None:
                self._keys = []
        self._producer.flush()

    def close(self) -> None:
        self.flush()
        self._producer.close()


def log_source(
    topic: str,
    *,
    partitions: list[int] | None = None,
    group: str | None = None,
    start: Start = "beginning",
    format: str = "json",
    schema: type | None = None,
    as_dict: bool = True,
) -> LogSource:
    """A source reading ``topic`` of the flow's embedded log (see the module docs)."""
    return LogSource(
        topic,
        partitions=partitions,
        group=group,
        start=start,
        format=format,
        schema=schema,
        as_dict=as_dict,
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


__all__ = ["LogReader", "LogSink", "LogSource", "LogWriter", "log_sink", "log_source"]
