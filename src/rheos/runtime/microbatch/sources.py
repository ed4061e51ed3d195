"""Sources in micro-batch mode: parts of batches, and the log read columnar.

A :class:`Part` is what one poll of one partition gives: event values (a frame or rows) and
their event times. A JSON log topic is decoded without a per-record Python loop: the values of
all the record batches a poll returns for a partition become one Arrow array without a
per-record copy, are joined by newlines and read by Arrow's multi-threaded JSON reader
(:class:`JsonDecoder`). A batch whose records do not all have the same fields of scalar types
(a field missing or ``null`` somewhere, a nested value, an integer in a float field, a record
over several lines) is decoded per record with msgspec instead, so values are exactly those of
stream-first mode.
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import polars as pl

from rheos.connectors.base import Chunk, OpenContext
from rheos.connectors.log import CONTROL_HEADER, LogSource
from rheos.errors import EventError
from rheos.runtime.microbatch.jsondecode import JsonDecoder
from rheos.transport import RecordBatch


@dataclass
class Part:
    """Events read together from one partition."""

    partition: int
    ts: np.ndarray | None
    """Record times (log) or None; the runner turns them into event times."""
    rows: list[Any] | None = None
    frame: pl.DataFrame | None = None
    chunk: Chunk | None = None
    append_time: int | None = None

    def __len__(self) -> int:
        if self.frame is not None:
            return self.frame.height
        assert self.rows is not None
        return len(self.rows)

    def get_rows(self) -> list[Any]:
        if self.rows is None:
            assert self.frame is not None
            self.rows = self.frame.to_dicts()
        return self.rows

    def head(self, n: int) -> Part:
        return Part(
            self.partition,
            None if self.ts is None else self.ts[:n],
            None if self.rows is None else self.rows[:n],
            None if self.frame is None else self.frame.head(n),
            _sub(self.chunk, 0, n),
            self.append_time,
        )

    def tail(self, n: int) -> Part:
        return Part(
            self.partition,
            None if self.ts is None else self.ts[n:],
            None if self.rows is None else self.rows[n:],
            None if self.frame is None else self.frame.slice(n),
            _sub(self.chunk, n, None),
            self.append_time,
        )


def _sub(chunk: Chunk | None, a: int, b: int | None) -> Chunk | None:
    if chunk is None:
        return None
    offsets = None if chunk.offsets is None else chunk.offsets[a:b]
    stamps = None if chunk.timestamps is None else chunk.timestamps[a:b]
    return Chunk(chunk.partition, chunk.values[a:b], stamps, chunk.topic, offsets)


def from_chunk(chunk: Chunk) -> Part:
    ts = None if chunk.timestamps is None else np.asarray(chunk.timestamps, dtype=np.int64)
    return Part(chunk.partition, ts, rows=chunk.values, chunk=chunk)


class ColumnarLogReader:
    """A :class:`~rheos.connectors.log.LogSource` read as columnar parts (JSON dicts).

    Each poll reads up to ``max_records`` records (the batch size) and decodes the record
    batches of one partition together: one Arrow read per partition and poll.

    **Read-ahead.** When a poll returns events, the next read and decode start at once in a
    worker thread, and run while the runner processes these (Arrow's JSON reader and Polars
    release the GIL). Nothing else changes: events are returned in the same order, a record
    that does not decode raises when its poll returns, and :meth:`positions` and
    :meth:`commit` cover only the events returned so far.
    """

    def __init__(
        self, source: LogSource, ctx: OpenContext, max_records: int, *, read_ahead: bool = True
    ) -> None:
        self.source = source
        self.topic = source.topic
        self._decode = msgspec.json.Decoder().decode
        self._json = JsonDecoder()
        self._reader = ctx.log.reader(
            source.topic,
            partitions=source.partitions,
            start=source.start,
            group=source.group,
            isolation=source.isolation,
        )
        self.partitions = list(self._reader.partitions)
        self.max_records = max_records
        self._ends: dict[int, int] | None = self._reader.end_offsets() if ctx.bounded else None
        self._positions = self._reader.positions()
        """The next offset after the events returned so far, per partition."""
        self._pool = ThreadPoolExecutor(1, "rheos-read-ahead") if read_ahead else None
        self._ahead: Future[tuple[list[Part], dict[int, int]]] | None = None
        self._done = False
        self._check_done()

    @staticmethod
    def accepts(source: Any) -> bool:
        return (
            isinstance(source, LogSource)
            and source.format == "json"
            and source.schema is None
            and source.as_dict
            and source.max_record_bytes is None
        )

    def _check_done(self) -> None:
        if self._ends is not None:
            pos = self._positions
            self._done = all(pos[p] >= end for p, end in self._ends.items())

    @property
    def exhausted(self) -> bool:
        return self._done

    def positions(self) -> dict[int, int]:
        """The next offset to return, per partition (read-ahead not included)."""
        return dict(self._positions)

    def poll(self, timeout: float) -> list[Part]:
        if self._done:
            return []
        parts: list[Part] = []
        if self._ahead is not None:
            parts, positions = self._take()
        if not parts:
            parts, positions = self._read(timeout)
        self._positions = positions
        self._check_done()
        if parts and not self._done and self._pool is not None:
            self._ahead = self._pool.submit(self._read, 0.0)
        return parts

    def _take(self) -> tuple[list[Part], dict[int, int]]:
        assert self._ahead is not None
        ahead, self._ahead = self._ahead, None
        return ahead.result()

    def _read(self, timeout: float) -> tuple[list[Part], dict[int, int]]:
        """Read and decode (in the worker thread when reading ahead)."""
        parts = []
        run: list[RecordBatch] = []
        for batch in self._reader.poll(timeout, self.max_records):
            if self._ends is not None:
                end = self._ends[batch.partition]
                if batch.first_offset >= end:
                    continue
                if batch.next_offset > end:
                    batch = batch.slice(0, end - batch.first_offset)
            if run and run[-1].partition != batch.partition:
                parts.append(self._part(run))
                run = []
            run.extend(_events(batch))
        if run:
            parts.append(self._part(run))
        return [p for p in parts if len(p)], self._reader.positions()

    def _part(self, batches: list[RecordBatch]) -> Part:
        partition = batches[0].partition
        append_time = batches[-1].append_time
        stamps = [np.frombuffer(b.timestamps, dtype=np.int64)[b.start : b.stop] for b in batches]
        ts = stamps[0] if len(stamps) == 1 else np.concatenate(stamps)
        offsets: range | list[int] = batches[0].offsets()
        if len(batches) > 1:
            if all(a.next_offset == b.first_offset for a, b in itertools.pairwise(batches)):
                offsets = range(batches[0].first_offset, batches[-1].next_offset)
            else:
                offsets = [o for b in batches for o in b.offsets()]
        frame = self._json.frame(batches)
        if frame is not None:
            place = Chunk(partition, [], None, self.topic, offsets)
            return Part(partition, ts, frame=frame, chunk=place, append_time=append_time)
        values = []
        decode = self._decode
        for i, raw in enumerate(v for b in batches for v in b.values()):
            try:
                values.append(decode(raw))
            except Exception as exc:
                raise EventError(
                    f"cannot decode a json value: {exc}: {raw[:60]!r}",
                    topic=self.topic,
                    partition=partition,
                    offset=offsets[i],
                ) from exc
        chunk = Chunk(partition, values, None, self.topic, offsets)
        return Part(partition, ts, rows=values, chunk=chunk, append_time=append_time)

    def _settle(self) -> None:
        """Wait for the read-ahead and drop it (the reader is not shared between threads)."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            ahead.exception()  # a decoding error in events never returned is not raised

    def commit(self) -> None:
        if self.source.group is not None:
            self._settle()
            self._reader.commit(self._positions)

    def close(self) -> None:
        self._settle()
        if self._pool is not None:
            self._pool.shutdown()
        self._reader.close()


def _events(batch: RecordBatch) -> list[RecordBatch]:
    """``batch`` without its control records (epoch markers are not events), as slices."""
    if not batch.has_headers:
        return [batch]
    control = [i for i, h in enumerate(batch.headers()) if any(k == CONTROL_HEADER for k, _ in h)]
    if not control:
        return [batch]
    out = []
    at = 0
    for i in [*control, len(batch)]:
        if i > at:
            out.append(batch.slice(at, i))
        at = i + 1
    return out


__all__ = ["ColumnarLogReader", "Part", "from_chunk"]
