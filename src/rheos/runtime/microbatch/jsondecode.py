"""JSON log values decoded in bulk: one frame per poll, exactly as msgspec decodes each value.

The values of all the record batches a poll returns for a partition are joined by newlines
(vectorised) and read by Arrow's multi-threaded JSON reader (:class:`JsonDecoder`). A batch
whose records do not all have the same fields of scalar types (a field missing or ``null``
somewhere, a nested value, an integer in a float field, a record over several lines) is not
decoded here: the caller decodes it per record with msgspec, so values are exactly those of
stream-first mode.
"""

from __future__ import annotations

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]
import pyarrow.json as pj  # type: ignore[import-untyped, import-not-found, unused-ignore]

from rheos.transport import RecordBatch


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


__all__ = ["JsonDecoder", "arrow_values", "json_frame"]
