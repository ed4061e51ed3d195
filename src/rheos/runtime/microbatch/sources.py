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
import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]
import pyarrow.json as pj  # type: ignore[import-untyped, import-not-found, unused-ignore]

from rheos.connectors.base import Chunk, OpenContext
from rheos.connectors.log import CONTROL_HEADER, LogSource
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


class JsonDecoder:
    """Decodes the values of log batches, JSON objects, into one frame -- exactly as
    ``msgspec.json`` decodes each of them, or not at all (see :meth:`frame`).

    The records are joined by newlines (vectorised) and read by Arrow's multi-threaded
    JSON reader, which infers the types from *every* record: a field that only later records
    have is not dropped (its column has nulls and the batch goes per record). Fields Arrow
    would read as timestamps are read as strings, as msgspec gives them (remembered for the
    next batches).
    """

    def __init__(self) -> None:
        self.strings: dict[str, pa.DataType] = {}
        self._decode = msgspec.json.Decoder().decode
        self._text = np.empty(0, dtype=np.uint8)
        self._keep = np.empty(0, dtype=bool)

    def frame(self, batches: list[RecordBatch]) -> pl.DataFrame | None:
        """One frame of the records of ``batches``, in order; None (decode per record) unless
        it is exact: every record a JSON object with the same fields, each of one scalar type,
        no ``null``, in one line of valid UTF-8; records whose float fields hold whole numbers
        are decoded again with msgspec to check the number was not written as an integer."""
        n = sum(map(len, batches))
        if not n or not all(map(_plain_objects, batches)):
            return None
        records = self._lines(batches, n)
        try:
            strings = records.cast(pa.large_string())  # valid UTF-8 (Arrow's JSON reader
            table = self._read(records.buffers()[2])  # does not check)
        except (pa.ArrowException, ValueError):
            return None
        if table is None or table.num_rows != n or not table.num_columns:
            return None
        floats = []
        for name, kind in zip(table.column_names, table.schema.types, strict=True):
            column = table.column(name)
            if column.null_count or not any(ok(kind) for ok in _SCALAR_TYPES):
                return None
            if pa.types.is_float64(kind):
                data = np.concatenate([_floats(c) for c in column.chunks])
                if not np.isfinite(data).all():
                    return None  # NaN and Infinity are not JSON: msgspec rejects them
                floats.append((name, np.flatnonzero(data == np.trunc(data))))
        try:
            if floats and not self._floats_are_floats(batches, floats):
                return None
            first = self._decode(_raw(batches, 0))
        except msgspec.DecodeError:
            return None
        # the columns in the order of the first record's fields, which every record must have
        if not isinstance(first, dict) or sorted(first) != sorted(table.column_names):
            return None
        names = list(first)
        if not _in_order(pl.Series(strings), names):
            return None
        frame = pl.from_arrow(table.select(names), rechunk=False)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _lines(self, batches: list[RecordBatch], n: int) -> pa.Array:
        """The records, each followed by a newline, in one buffer (reused from call to call:
        Arrow's JSON reader copies what it reads), as an Arrow ``large_binary`` array."""
        sizes = [int(b.value_ends[b.stop]) - int(b.value_ends[b.start]) + len(b) for b in batches]
        total = sum(sizes)
        if len(self._text) < total:
            self._text = np.empty(total + total // 2, dtype=np.uint8)
            self._keep = np.empty(len(self._text), dtype=bool)
        starts = np.empty(n + 1, dtype=np.int64)
        at = i = 0
        for batch, size in zip(batches, sizes, strict=True):
            ends = np.frombuffer(batch.value_ends, dtype=np.uint32)[batch.start : batch.stop + 1]
            ends = ends.astype(np.int64)
            m = len(batch)
            first = int(ends[0])
            breaks = ends[1:] - first + np.arange(m)  # where the newlines go
            keep = self._keep[at : at + size]
            keep[:] = True
            keep[breaks] = False
            line = self._text[at : at + size]
            line[keep] = np.frombuffer(batch.value_data, np.uint8, size - m, first)
            line[breaks] = ord("\n")
            starts[i : i + m] = breaks - ends[1:] + ends[:-1] + at
            at += size
            i += m
        starts[n] = at
        text = pa.py_buffer(self._text[:at])
        return pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(starts), text])

    def _read(self, text: pa.Buffer) -> pa.Table | None:
        size = text.size
        block = max(1 << 16, min(1 << 20, size // 4 + 1))  # several blocks: parallel parsing
        options = pj.ReadOptions(use_threads=True, block_size=block)
        parse = pj.ParseOptions(
            explicit_schema=pa.schema(list(self.strings.items())) if self.strings else None
        )
        table = pj.read_json(pa.BufferReader(text), read_options=options, parse_options=parse)
        temporal = [
            name
            for name, kind in zip(table.column_names, table.schema.types, strict=True)
            if pa.types.is_temporal(kind)
        ]
        if temporal:  # read as strings, as msgspec does
            self.strings.update((name, pa.string()) for name in temporal)
            return self._read(text)
        return table

    def _floats_are_floats(
        self, batches: list[RecordBatch], floats: list[tuple[str, np.ndarray]]
    ) -> bool:
        """Whether the float fields with whole values were written as floats (``2.0``, not
        ``2``: Arrow reads both as a float column; msgspec gives ``int`` for ``2``)."""
        rows = np.unique(np.concatenate([idx for _, idx in floats]))
        names = [name for name, _ in floats]
        decode = self._decode
        for i in rows.tolist():
            value = decode(_raw(batches, i))
            if not isinstance(value, dict):
                return False
            for name in names:
                if type(value.get(name)) is not float:
                    return False
        return True


def _is_string(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


_SCALAR_TYPES = (pa.types.is_int64, pa.types.is_float64, pa.types.is_boolean, _is_string)


def _plain_objects(batch: RecordBatch) -> bool:
    """Whether every value of ``batch`` is one line starting with ``{`` and ending with ``}``:
    then the joined lines hold as many JSON objects as the batch has records, or fail."""
    ends = np.frombuffer(batch.value_ends, dtype=np.uint32)[batch.start : batch.stop + 1]
    data = batch.value_data
    first, last = int(ends[0]), int(ends[-1])
    if data.find(b"\n", first, last) >= 0 or data.find(b"\r", first, last) >= 0:
        return False
    ends = ends.astype(np.int64)
    view = np.frombuffer(data, dtype=np.uint8)
    return bool(
        (np.diff(ends) >= 2).all()
        and (view[ends[:-1]] == ord("{")).all()
        and (view[ends[1:] - 1] == ord("}")).all()
    )


def _in_order(records: pl.Series, names: list[str]) -> bool:
    """Whether every record (a JSON object with exactly the fields ``names``, each once, no
    nested value) has its fields in the order of ``names``, written ``"name":``.

    ``"name":`` occurs in such a record only as that field's name: inside a string a quote is
    escaped, and a string followed by a colon is a field name. So the first occurrence of each
    is the field, and their positions must grow.
    """
    marks = [msgspec.json.encode(name).decode() + ":" for name in names]
    text = pl.col("r")
    ok = text.str.starts_with("{" + marks[0])
    if len(marks) >= 3:  # (each field once: with the first in place, two fields have one order)
        finds = [text.str.find(m, literal=True).alias(f"f{j}") for j, m in enumerate(marks[1:])]
        for j in range(1, len(finds)):
            ok = ok & (pl.col(f"f{j}") > pl.col(f"f{j - 1}"))
        # (the finds as columns first: Polars runs them in parallel)
        query = pl.DataFrame({"r": records}).lazy().with_columns(finds)
        return bool(query.select(ok.fill_null(False).all()).collect().item())
    return bool(pl.DataFrame({"r": records}).select(ok.fill_null(False).all()).item())


def _floats(chunk: pa.Array) -> np.ndarray:
    """A float64 array without nulls as numpy, without a copy (``to_numpy`` imports pandas)."""
    data = np.frombuffer(chunk.buffers()[1], dtype=np.float64)
    return data[chunk.offset : chunk.offset + len(chunk)]


def _raw(batches: list[RecordBatch], i: int) -> bytes:
    """The value of record ``i`` of ``batches`` (counted over all of them)."""
    for batch in batches:
        if i < len(batch):
            at = batch.start + i
            ends = batch.value_ends
            return batch.value_data[ends[at] : ends[at + 1]]
        i -= len(batch)
    raise IndexError(i)


def json_frame(batch: RecordBatch) -> pl.DataFrame | None:
    """Decode a batch of JSON objects in bulk, or None (see :meth:`JsonDecoder.frame`)."""
    return JsonDecoder().frame([batch])


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


__all__ = ["ColumnarLogReader", "JsonDecoder", "Part", "arrow_values", "from_chunk", "json_frame"]
