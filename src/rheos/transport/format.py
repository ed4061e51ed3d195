"""The on-disk batch format, and :class:`RecordBatch`, its decoded form.

A batch is the unit of writing, framing and checking. Every column is a packed array, so a
whole batch is encoded and decoded without a Python loop per record (the micro-batch runtime
hands these arrays straight to Arrow)::

    offset  size         field
    0       4            length        u32, bytes that follow this field
    4       4            crc           u32, CRC-32C (Castagnoli) of every byte after this field
    8       1            magic         0xB1 (format version 1)
    9       1            flags         bit 0: keys present, bit 1: headers present
    10      2            reserved      0
    12      8            base_offset   i64, offset of the first record
    20      4            count         u32, records in the batch (>= 1)
    24      8            min_ts        i64, smallest record timestamp (epoch ms)
    32      8            max_ts        i64, largest record timestamp
    40      8            append_time   i64, wall clock when the batch was appended (epoch ms)
    48      8*count      timestamps    i64[count]
            4*(count+1)  value_ends    u32[count+1], value i is data[ends[i]:ends[i+1]]
            (if keys)    key_ends      u32[count+1]; key_null u8[count] (1 = no key)
            (if headers) header_ends   u32[count+1]
            ...          values, then keys, then headers (msgpack list of [name, value])

All integers are little-endian.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from itertools import accumulate, repeat
from typing import Any, NamedTuple, overload

import msgspec
from crc32c import crc32c

from rheos.errors import CorruptLogError

MAGIC = 0xB1
FLAG_KEYS = 1
FLAG_HEADERS = 2

HEADER = struct.Struct("<IIBBHqIqqq")
HEADER_SIZE = HEADER.size  # 48
LENGTH = struct.Struct("<I")
_BODY_START = 8  # the CRC covers everything from here on
_LITTLE = sys.byteorder == "little"

Headers = Sequence[tuple[str, bytes]]


class Record(NamedTuple):
    """One record read from the log."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class BatchHeader(NamedTuple):
    """The fixed-size header of a batch, as read from disk."""

    length: int
    crc: int
    magic: int
    flags: int
    base_offset: int
    records: int
    min_ts: int
    max_ts: int
    append_time: int

    @property
    def size(self) -> int:
        """Total bytes of the framed batch."""
        return self.length + 4

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.records


def parse_header(buf: bytes | memoryview, pos: int = 0) -> BatchHeader:
    length, crc, magic, flags, _res, base, count, min_ts, max_ts, append_time = HEADER.unpack_from(
        buf, pos
    )
    return BatchHeader(length, crc, magic, flags, base, count, min_ts, max_ts, append_time)


def _u32(values: Sequence[int] | Iterator[int]) -> array[int]:
    arr = array("I", values)
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        arr.byteswap()
    return arr


def _i64(values: Sequence[int] | Iterator[int]) -> array[int]:
    arr = array("q", values)
    if not _LITTLE:  # pragma: no cover
        arr.byteswap()
    return arr


def _ends(items: Sequence[bytes]) -> array[int]:
    return _u32(accumulate(map(len, items), initial=0))


def encode_headers(headers: Headers) -> bytes:
    return msgspec.msgpack.encode([[name, bytes(value)] for name, value in headers])


def decode_headers(data: bytes | memoryview) -> tuple[tuple[str, bytes], ...]:
    if not data:
        return ()
    items = msgspec.msgpack.decode(data)
    return tuple((str(name), bytes(value)) for name, value in items)


JOIN_LIMIT = 128 * 1024
"""Values totalling less than this are joined into one buffer; larger batches are written as
separate buffers (``writev``), so big appends never allocate (and page-fault) a copy."""


def encode_batch_parts(
    base_offset: int,
    values: Sequence[bytes],
    timestamps: Sequence[int],
    keys: Sequence[bytes | None] | None,
    headers: Sequence[Headers | None] | None,
    append_time: int,
) -> tuple[list[bytes], BatchHeader]:
    """Encode one batch as a list of buffers whose concatenation is the framed batch."""
    count = len(values)
    flags = 0
    ts = timestamps if isinstance(timestamps, array) else _i64(timestamps)
    value_ends = _ends(values)
    body: list[bytes] = [ts.tobytes(), value_ends.tobytes()]
    tail: list[bytes] = []
    if keys is not None:
        flags |= FLAG_KEYS
        plain = [k if k is not None else b"" for k in keys]
        body.append(_ends(plain).tobytes())
        body.append(bytes(k is None for k in keys))
        tail.append(b"".join(plain))
    if headers is not None:
        flags |= FLAG_HEADERS
        encoded = [encode_headers(h) if h else b"" for h in headers]
        body.append(_ends(encoded).tobytes())
        tail.append(b"".join(encoded))
    min_ts = min(ts)
    max_ts = max(ts)
    head_tail = struct.pack(
        "<BBHqIqqq", MAGIC, flags, 0, base_offset, count, min_ts, max_ts, append_time
    )
    crc = crc32c(head_tail)
    for part in body:
        crc = crc32c(part, crc)
    total_values = value_ends[-1]
    if total_values < JOIN_LIMIT:
        value_parts: list[bytes] = [b"".join(values)]
    else:
        value_parts = list(values)
    for part in value_parts:
        crc = crc32c(part, crc)
    for part in tail:
        crc = crc32c(part, crc)
    length = 4 + len(head_tail) + sum(map(len, body)) + total_values + sum(map(len, tail))
    prefix = LENGTH.pack(length) + LENGTH.pack(crc) + head_tail
    header = BatchHeader(length, crc, MAGIC, flags, base_offset, count, min_ts, max_ts, append_time)
    return [prefix, *body, *value_parts, *tail], header


def encode_batch(
    base_offset: int,
    values: Sequence[bytes],
    timestamps: Sequence[int],
    keys: Sequence[bytes | None] | None,
    headers: Sequence[Headers | None] | None,
    append_time: int,
) -> bytes:
    """Encode one batch as bytes. ``values`` and ``timestamps`` have one entry per record."""
    parts, _ = encode_batch_parts(base_offset, values, timestamps, keys, headers, append_time)
    return b"".join(parts)


def check_crc(buf: bytes | memoryview, pos: int, header: BatchHeader) -> bool:
    view = memoryview(buf)[pos + _BODY_START : pos + header.size]
    return crc32c(view) == header.crc


class RecordBatch:
    """A decoded batch: columns as packed arrays, records materialised only on demand.

    ``timestamps`` is an ``array('q')``; ``value_ends`` an ``array('I')`` such that value ``i``
    is ``value_data[value_ends[i]:value_ends[i + 1]]``. :meth:`values` returns the list of
    values; :meth:`records` yields :class:`Record` objects; ``to_arrow`` lives in the
    micro-batch runtime.
    """

    __slots__ = (
        "_header_data",
        "_header_ends",
        "_key_data",
        "_key_ends",
        "_key_null",
        "append_time",
        "base_offset",
        "partition",
        "start",
        "stop",
        "timestamps",
        "topic",
        "value_data",
        "value_ends",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        base_offset: int,
        append_time: int,
        timestamps: array[int],
        value_ends: array[int],
        value_data: bytes,
        key_ends: array[int] | None = None,
        key_null: bytes | None = None,
        key_data: bytes = b"",
        header_ends: array[int] | None = None,
        header_data: bytes = b"",
        start: int = 0,
        stop: int | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.base_offset = base_offset
        self.append_time = append_time
        self.timestamps = timestamps
        self.value_ends = value_ends
        self.value_data = value_data
        self._key_ends = key_ends
        self._key_null = key_null
        self._key_data = key_data
        self._header_ends = header_ends
        self._header_data = header_data
        self.start = start
        self.stop = len(timestamps) if stop is None else stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __repr__(self) -> str:
        return (
            f"RecordBatch(topic={self.topic!r}, partition={self.partition}, "
            f"offsets={self.first_offset}..{self.next_offset - 1})"
        )

    @property
    def first_offset(self) -> int:
        return self.base_offset + self.start

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.stop

    @property
    def has_keys(self) -> bool:
        return self._key_ends is not None

    @property
    def has_headers(self) -> bool:
        return self._header_ends is not None

    def slice(self, start: int, stop: int | None = None) -> RecordBatch:
        """Records ``start`` to ``stop`` of this batch (positions relative to this view)."""
        new_start = min(self.start + start, self.stop)
        new_stop = self.stop if stop is None else min(self.start + stop, self.stop)
        return RecordBatch(
            self.topic,
            self.partition,
            self.base_offset,
            self.append_time,
            self.timestamps,
            self.value_ends,
            self.value_data,
            self._key_ends,
            self._key_null,
            self._key_data,
            self._header_ends,
            self._header_data,
            new_start,
            max(new_start, new_stop),
        )

    def offsets(self) -> range:
        return range(self.first_offset, self.next_offset)

    def timestamp_list(self) -> list[int]:
        return self.timestamps[self.start : self.stop].tolist()

    def values(self) -> list[bytes]:
        ends = self.value_ends
        data = self.value_data
        starts = ends[self.start : self.stop]
        stops = ends[self.start + 1 : self.stop + 1]
        return list(map(data.__getitem__, map(slice, starts, stops)))

    def joined_values(self) -> bytes | None:
        """The values one after the other, each followed by a newline (the text of
        newline-delimited JSON) -- or None when one line could hold other than one value: a
        value holding a newline, empty or starting with blanks (a blank line is no value);
        also without NumPy (the micro-batch extra), which joins them without a Python
        object per value."""
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - NumPy comes with the micro-batch extra
            return None
        n = len(self)
        ends = self.value_ends
        first, last = ends[self.start], ends[self.stop]
        data = self.value_data
        if data.find(b"\n", first, last) >= 0:
            return None
        bounds = np.frombuffer(ends, dtype=np.uint32)[self.start : self.stop + 1].astype(np.intp)
        body = np.frombuffer(data, dtype=np.uint8, count=last - first, offset=first)
        if (bounds[1:] == bounds[:-1]).any() or np.isin(body[bounds[:-1] - first], _BLANKS).any():
            return None
        text = np.empty(last - first + n, dtype=np.uint8)
        self.write_lines(text, np.empty(len(text), dtype=bool))
        return text.tobytes()

    def write_lines(self, text: Any, keep: Any) -> Any:
        """Write the values into ``text`` (a NumPy array of bytes as long as the values plus
        one byte each), each followed by a newline, with ``keep`` (booleans, as long) for
        scratch; return where each value starts in ``text``."""
        import numpy as np

        ends = np.frombuffer(self.value_ends, dtype=np.uint32)[self.start : self.stop + 1]
        ends = ends.astype(np.intp)
        first, last = int(ends[0]), int(ends[-1])
        breaks = ends[1:] - first + np.arange(len(self))  # where the newlines go
        keep[:] = True
        keep[breaks] = False
        text[keep] = np.frombuffer(self.value_data, np.uint8, last - first, first)
        text[breaks] = 10
        return breaks - (ends[1:] - ends[:-1])

    def keys(self) -> list[bytes | None]:
        if self._key_ends is None or self._key_null is None:
            return [None] * len(self)
        ends = self._key_ends
        data = self._key_data
        raw = list(
            map(data.__getitem__, map(slice, ends[self.start : self.stop], ends[self.start + 1 :]))
        )
        nulls = self._key_null[self.start : self.stop]
        if any(nulls):
            return [None if n else k for k, n in zip(raw, nulls, strict=False)]
        return list(raw)

    def headers(self) -> list[tuple[tuple[str, bytes], ...]]:
        if self._header_ends is None:
            return [()] * len(self)
        ends = self._header_ends
        data = self._header_data
        return [decode_headers(data[ends[i] : ends[i + 1]]) for i in range(self.start, self.stop)]

    def records(self) -> Iterator[Record]:
        headers = self.headers() if self._header_ends is not None else repeat(())
        columns = zip(
            repeat(self.topic),
            repeat(self.partition),
            self.offsets(),
            self.timestamp_list(),
            self.keys(),
            self.values(),
            headers,
        )
        return map(tuple.__new__, repeat(Record), columns)


_BLANKS = list(b" \t\r\n")
"""The bytes JSON takes as blanks."""


class BatchValues(Sequence[bytes]):
    """The values of a :class:`RecordBatch`, each sliced out of the batch when it is asked
    for: the record bytes a chunk keeps for its odd dead letter or late event, without a
    Python object per record."""

    __slots__ = ("_batch",)

    def __init__(self, batch: RecordBatch) -> None:
        self._batch = batch

    def __len__(self) -> int:
        return len(self._batch)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        batch = self._batch
        if isinstance(index, slice):
            return batch.values()[index]
        n = len(batch)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("record index out of range")
        at = batch.start + index
        return batch.value_data[batch.value_ends[at] : batch.value_ends[at + 1]]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._batch.values())


def decode_batch(
    buf: bytes | memoryview, pos: int, header: BatchHeader, topic: str, partition: int
) -> RecordBatch:
    """Decode the batch at ``buf[pos:]`` whose header was already parsed and CRC-checked."""
    n = header.records
    cur = pos + HEADER_SIZE
    end = pos + header.size
    view = memoryview(buf)
    try:
        timestamps = array("q")
        timestamps.frombytes(view[cur : cur + 8 * n])
        cur += 8 * n
        value_ends = array("I")
        value_ends.frombytes(view[cur : cur + 4 * (n + 1)])
        cur += 4 * (n + 1)
        key_ends = key_null = header_ends = None
        if header.flags & FLAG_KEYS:
            key_ends = array("I")
            key_ends.frombytes(view[cur : cur + 4 * (n + 1)])
            cur += 4 * (n + 1)
            key_null = bytes(view[cur : cur + n])
            cur += n
        if header.flags & FLAG_HEADERS:
            header_ends = array("I")
            header_ends.frombytes(view[cur : cur + 4 * (n + 1)])
            cur += 4 * (n + 1)
        if not _LITTLE:  # pragma: no cover
            for arr in (timestamps, value_ends, key_ends, header_ends):
                if arr is not None:
                    arr.byteswap()
        value_data = bytes(view[cur : cur + value_ends[-1]])
        cur += value_ends[-1]
        key_data = b""
        if key_ends is not None:
            key_data = bytes(view[cur : cur + key_ends[-1]])
            cur += key_ends[-1]
        header_data = b""
        if header_ends is not None:
            header_data = bytes(view[cur : cur + header_ends[-1]])
            cur += header_ends[-1]
    except (ValueError, IndexError) as exc:
        raise CorruptLogError(
            f"batch framing is inconsistent: {exc}",
            topic=topic,
            partition=partition,
            offset=header.base_offset,
        ) from exc
    if cur != end or len(timestamps) != n:
        raise CorruptLogError(
            "batch sections do not add up to its length",
            topic=topic,
            partition=partition,
            offset=header.base_offset,
        )
    return RecordBatch(
        topic,
        partition,
        header.base_offset,
        header.append_time,
        timestamps,
        value_ends,
        value_data,
        key_ends,
        key_null,
        key_data,
        header_ends,
        header_data,
    )


__all__ = [
    "HEADER_SIZE",
    "BatchHeader",
    "Record",
    "RecordBatch",
    "check_crc",
    "decode_batch",
    "encode_batch",
    "parse_header",
]
