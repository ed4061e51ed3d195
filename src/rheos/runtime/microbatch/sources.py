"""Sources in micro-batch mode: parts of batches, and the log read columnar.

A :class:`Part` is what one poll of one partition gives: event values (a frame or rows) and
their event times. A JSON log topic is decoded without a per-record Python loop: the record
batch's value buffer and its offsets become an Arrow string array without a copy
(:func:`json_frame`), and Polars decodes it in bulk. A batch whose records do not all have
the same fields of scalar types (a field missing or ``null`` somewhere, a nested value) is
decoded per record with msgspec instead, so values are exactly those of stream-first mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]

from rheos.connectors.base import Chunk, OpenContext
from rheos.connectors.log import LogSource
from rheos.errors import EventError
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


def arrow_values(batch: RecordBatch) -> pa.Array:
    """The batch's values as an Arrow ``binary`` array sharing the batch's buffers."""
    ends = np.frombuffer(batch.value_ends, dtype=np.uint32)[batch.start : batch.stop + 1]
    if len(ends) and ends[-1] >= 2**31:
        offsets = pa.py_buffer(ends.astype(np.int64))
        kind = pa.large_binary()
    else:
        offsets = pa.py_buffer(ends.view(np.int32))
        kind = pa.binary()
    data = pa.py_buffer(batch.value_data)
    return pa.Array.from_buffers(kind, len(batch), [None, offsets, data])


def json_frame(batch: RecordBatch) -> pl.DataFrame | None:
    """Decode a batch of JSON objects in bulk; None unless every record has the same scalar
    fields with no ``null`` (then decode per record)."""
    if not len(batch):
        return None
    try:
        text = pl.Series(arrow_values(batch)).cast(pl.String)
        decoded = text.str.json_decode(infer_schema_length=None)
    except Exception:
        return None
    if not isinstance(decoded.dtype, pl.Struct):
        return None
    frame = decoded.struct.unnest()
    for column in frame.columns:
        series = frame.get_column(column)
        if series.dtype.is_nested() or series.dtype == pl.Null or series.null_count():
            return None
    # Polars unifies a field's types over the batch (1 and "a" become strings): check that the
    # first and last records decode to the same fields and types as msgspec gives them
    ends = batch.value_ends
    for i in {0, len(batch) - 1}:
        at = batch.start + i
        try:
            plain = msgspec.json.decode(batch.value_data[ends[at] : ends[at + 1]])
        except Exception:
            return None
        row = frame.row(i, named=True)
        if not isinstance(plain, dict) or list(plain) != list(row):
            return None
        if any(type(plain[k]) is not type(row[k]) for k in row):
            return None
    return frame


class ColumnarLogReader:
    """A :class:`~rheos.connectors.log.LogSource` read as columnar parts (JSON dicts)."""

    def __init__(self, source: LogSource, ctx: OpenContext, max_records: int) -> None:
        self.source = source
        self.topic = source.topic
        self._decode = msgspec.json.Decoder().decode
        self._reader = ctx.log.reader(
            source.topic, partitions=source.partitions, start=source.start, group=source.group
        )
        self.partitions = list(self._reader.partitions)
        self.max_records = max_records
        self._ends: dict[int, int] | None = self._reader.end_offsets() if ctx.bounded else None
        self._done = False
        self._check_done()

    @staticmethod
    def accepts(source: Any) -> bool:
        return (
            isinstance(source, LogSource)
            and source.format == "json"
            and source.schema is None
            and source.as_dict
        )

    def _check_done(self) -> None:
        if self._ends is not None:
            pos = self._reader.positions()
            self._done = all(pos[p] >= end for p, end in self._ends.items())

    @property
    def exhausted(self) -> bool:
        return self._done

    def poll(self, timeout: float) -> list[Part]:
        if self._done:
            return []
        parts = []
        for batch in self._reader.poll(timeout, self.max_records):
            if self._ends is not None:
                end = self._ends[batch.partition]
                if batch.first_offset >= end:
                    continue
                if batch.next_offset > end:
                    batch = batch.slice(0, end - batch.first_offset)
            parts.append(self._part(batch))
        self._check_done()
        return parts

    def _part(self, batch: RecordBatch) -> Part:
        ts = np.frombuffer(batch.timestamps, dtype=np.int64)[batch.start : batch.stop]
        frame = json_frame(batch)
        if frame is not None:
            place = Chunk(batch.partition, [], None, self.topic, batch.offsets())
            return Part(
                batch.partition, ts, frame=frame, chunk=place, append_time=batch.append_time
            )
        values = []
        for i, raw in enumerate(batch.values()):
            try:
                values.append(self._decode(raw))
            except Exception as exc:
                raise EventError(
                    f"cannot decode a json value: {exc}: {raw[:60]!r}",
                    topic=self.topic,
                    partition=batch.partition,
                    offset=batch.first_offset + i,
                ) from exc
        chunk = Chunk(batch.partition, values, None, self.topic, batch.offsets())
        return Part(batch.partition, ts, rows=values, chunk=chunk, append_time=batch.append_time)

    def commit(self) -> None:
        if self.source.group is not None:
            self._reader.commit()

    def close(self) -> None:
        self._reader.close()


__all__ = ["ColumnarLogReader", "Part", "arrow_values", "from_chunk", "json_frame"]
