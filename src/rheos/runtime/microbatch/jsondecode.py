"""JSON log values decoded in bulk: one frame per poll, exactly as msgspec decodes each value.

The values of all the record batches a poll returns for a partition are joined by newlines
(vectorised) and read by Arrow's multi-threaded JSON reader (:class:`JsonDecoder`). A batch
whose records do not all have the same fields of scalar types (a field missing or ``null``
somewhere, a nested value, an integer in a float field, a record over several lines) is not
decoded here: the caller decodes it per record with msgspec, so values are exactly those of
stream-first mode.
"""

from __future__ import annotations

import io
from array import array
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]
import pyarrow.json as pj  # type: ignore[import-untyped, import-not-found, unused-ignore]

from rheos.transport import RecordBatch

PROBE = 2_000
"""Records read (by Arrow) to learn the fields and types before the first large poll."""

SKIP_AFTER_MISS = 8
"""Polls read by Arrow (inferring types) after one Polars could not read exactly."""

REST_AT_MOST = 64
"""Polls decoded per record, at most, without trying, after polls that could not be read in
bulk (the records have a nested value, a null, fields that change): none after the first
such poll, 1 after the second in a row, twice as many after each next one; back to none
once a poll is read in bulk."""

RECHUNK_UP_TO = 20_000
"""Frames read by Polars of at most this many rows are made one piece."""

PIECES = 2
"""Pieces a large poll is cut in, decoded at the same time (this thread and the others)."""

SPLIT_ABOVE = 20_000
"""Records a poll must have for :meth:`JsonDecoder.frame` to decode its pieces in parallel."""

STRUCTS_FROM = 160
"""Bytes a record has on average from which the fields of :meth:`JsonDecoder.project` are
read by msgspec, into structs of those fields only, rather than by Arrow's JSON reader.
Arrow's reader tokenises every field it skips; msgspec skips them faster, on one thread
(``benchmarks/bench_interleaved.py --extra-fields 21 --both-readers`` compares the two)."""


class JsonDecoder:
    """Decodes the values of log batches, JSON objects, into one frame -- exactly as
    ``msgspec.json`` decodes each of them, or not at all (see :meth:`frame`).

    The records are joined by newlines (vectorised) and read by Arrow's multi-threaded
    JSON reader, which infers the types from *every* record: a field that only later records
    have is not dropped (its column has nulls and the batch goes per record). Fields Arrow
    would read as timestamps are read as strings, as msgspec gives them (remembered for the
    next batches).
    """

    def __init__(self, *, split_above: int = SPLIT_ABOVE, like: JsonDecoder | None = None) -> None:
        self.strings: dict[str, pa.DataType] = {} if like is None else like.strings
        """Fields read as strings (Arrow would read them as timestamps)."""
        self._learned: list[pl.Schema | None] = [None] if like is None else like._learned
        """(what :attr:`schema` is: shared by the decoders made ``like`` this one)"""
        self._only: list[Any] = [None, None] if like is None else like._only
        """With :meth:`project`: the fields to read, and their Arrow schema once learned
        (shared by the decoders made ``like`` this one)."""
        self._decode = msgspec.json.Decoder().decode
        self._text = np.empty(0, dtype=np.uint8)
        self._keep = np.empty(0, dtype=bool)
        self.split_above = split_above
        self._others: list[JsonDecoder] = []
        self.known_reads = 0
        """Polls read with the types of earlier records (by Polars), and checked."""
        self.inferred_reads = 0
        """Polls read inferring the types (by Arrow)."""
        self._skip = 0
        self._rest = self._misses = 0
        """Polls left to decode per record; polls in a row not read in bulk."""
        self._pool: ThreadPoolExecutor | None = None
        self._struct: list[Any] = [None, None]
        """The fields :meth:`_structs` reads, and its decoder of them."""

    @property
    def schema(self) -> pl.Schema | None:
        """The fields (in order) and types of the records last decoded by Arrow (learned by
        this decoder or one made ``like`` it)."""
        return self._learned[0]

    @schema.setter
    def schema(self, schema: pl.Schema | None) -> None:
        self._learned[0] = schema

    def frame(self, batches: list[RecordBatch]) -> pl.DataFrame | None:
        """One frame of the records of ``batches``, in order; None (decode per record) unless
        it is exact: every record a JSON object with the same fields, each of one scalar type,
        no ``null``, in one line of valid UTF-8; records whose float fields hold whole numbers
        are decoded again with msgspec to check the number was not written as an integer.

        Over ``split_above`` records, :data:`PIECES` pieces are decoded at the same time (this
        thread and others: most of the work releases the GIL) and their frames joined -- if
        they have the same columns, in the same order, of the same types.
        """
        n = sum(map(len, batches))
        if n <= self.split_above or self._wide(batches, n):
            return self._frame(batches, n)  # (msgspec holds the GIL: read on one thread)
        runs = _pieces(batches, n, PIECES)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(PIECES - 1, "rheos-json")
            self._others = [JsonDecoder(split_above=2**62, like=self) for _ in range(PIECES - 1)]
        later = [
            self._pool.submit(d.frame, run) for d, run in zip(self._others, runs[1:], strict=True)
        ]
        try:
            frames = [self._frame(runs[0], sum(map(len, runs[0])))]
        finally:
            frames += [f.result() for f in later]
        first = frames[0]
        if first is None or any(f is None or f.schema != first.schema for f in frames):
            return None
        return pl.concat(frames, rechunk=False)  # type: ignore[type-var]

    def project(self, fields: frozenset[str]) -> None:
        """Read only ``fields`` of each record, into a frame of those columns (see
        :meth:`_projected`): the records may have any other fields, nested values and
        nulls among them."""
        self._only[:] = [fields, None]

    def _wide(self, batches: list[RecordBatch], n: int) -> bool:
        """Whether the fields of :meth:`project` are read by msgspec (see :data:`STRUCTS_FROM`)."""
        if self._only[0] is None:
            return False
        size = sum(int(b.value_ends[b.stop]) - int(b.value_ends[b.start]) for b in batches)
        return size >= STRUCTS_FROM * n

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def values_frame(self, values: list[bytes]) -> pl.DataFrame | None:
        """:meth:`frame` of records given one value each (a Kafka poll's). Where only some
        fields are read of records of :data:`STRUCTS_FROM` bytes or more, the values are
        joined by newlines in one copy and read by msgspec (:meth:`_structs`); otherwise
        they make a record batch for :meth:`frame`."""
        n = len(values)
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
        if self._only[0] is None or int(lengths.sum()) < STRUCTS_FROM * n:
            ends = array("I", accumulate(lengths.tolist(), initial=0))
            stamps = array("q", bytes(8 * n))  # (not read)
            return self.frame([RecordBatch("", 0, 0, 0, stamps, ends, b"".join(values))])
        return self._guarded(lambda: self._joined(values, lengths))

    def _joined(self, values: list[bytes], lengths: np.ndarray) -> pl.DataFrame | None:
        """:meth:`_structs` of ``values`` (of ``lengths`` bytes) joined by newlines, if each
        starts with ``{`` and ends with ``}``. msgspec reads the text as values apart, a value
        may span lines; but none spans two records: the next record's ``{`` cannot follow a
        ``}`` inside an object. So each record holds one object or more, or the text fails:
        as many objects as records, and each record is exactly one."""
        n = len(values)
        text = b"\n".join([*values, b""])
        view = np.frombuffer(text, dtype=np.uint8)
        ends = np.cumsum(lengths + 1) - 1  # (the newline after each value)
        if not ((view[ends - lengths] == ord("{")) & (view[ends - 1] == ord("}"))).all():
            return None
        schema = self._only[1] or self._learn(values[0])
        return None if schema is None else self._structs(text, n, schema)

    def _frame(self, batches: list[RecordBatch], n: int) -> pl.DataFrame | None:
        return self._guarded(lambda: self._bulk(batches, n))

    def _guarded(self, read: Callable[[], pl.DataFrame | None]) -> pl.DataFrame | None:
        """``read()`` -- unless earlier polls could not be read in bulk (see
        :data:`REST_AT_MOST`)."""
        if self._rest:
            self._rest -= 1
            return None
        frame = read()
        if frame is None:
            self._misses += 1
            if self._misses >= 2:
                self._rest = min(2 ** (self._misses - 2), REST_AT_MOST)
        else:
            self._misses = 0
        return frame

    def _bulk(self, batches: list[RecordBatch], n: int) -> pl.DataFrame | None:
        if not n or not all(map(_plain_objects, batches)):
            return None
        if self._only[0] is not None:
            return self._projected(batches, n)
        if self.schema is None and self._skip == 0 and n >= 4 * PROBE:
            # learn the fields and types from the first records (Arrow, inferring), then read
            # them all the faster way
            head = _pieces(batches, n, -(-n // PROBE))[0]
            m = sum(map(len, head))
            self._inferred(head, self._lines(head, m), m)
        records = self._lines(batches, n)
        if self.schema is not None and self._skip == 0:
            frame = self._known(batches, records, n, self.schema)
            if frame is not None:
                return frame
            self._skip = SKIP_AFTER_MISS  # (data this path does not fit: not tried for a while)
        elif self._skip:
            self._skip -= 1
        return self._inferred(batches, records, n)

    def _known(
        self, batches: list[RecordBatch], records: pa.Array, n: int, schema: pl.Schema
    ) -> pl.DataFrame | None:
        """The records read by Polars with the fields and types of earlier records -- kept
        only if every record is laid out exactly as those were (:func:`_laid_out`, strict).

        Read with a schema, Polars ignores fields it does not name and writes numbers into a
        string column as text; the layout check rules both out (and so a null, a nested value,
        a field twice or out of order). Polars itself rejects invalid UTF-8, NaN, a string or
        a float where an integer is, an integer beyond 64 bits.
        """
        try:
            frame = pl.read_ndjson(io.BytesIO(memoryview(records.buffers()[2])), schema=schema)
        except (pl.exceptions.PolarsError, ValueError):
            return None
        if frame.height != n or any(frame.null_count().row(0)):
            return None
        if not self._exact_floats(batches, frame):
            return None
        if not _laid_out(self._text, _offsets(records), frame, strict=True).all():
            return None
        self.known_reads += 1
        # (Polars reads in pieces, one per thread; on a small frame, every later operation
        # pays for them more than one copy costs)
        return frame.rechunk() if n <= RECHUNK_UP_TO else frame

    def _projected(self, batches: list[RecordBatch], n: int) -> pl.DataFrame | None:
        """Only the fields of :meth:`project`, read by Arrow's JSON reader with their types
        (learned from a record decoded by msgspec: an ``int``, a ``float``, a ``str`` or a
        ``bool`` each) and every other field skipped.

        Given the types, Arrow's reader is strict where msgspec would give something else: a
        number in a string field, a float (``1.0``, ``1e3``) or an integer beyond 64 bits in an
        integer field, a string or a boolean in a number field, a field twice in a record all
        fail the read (the poll is then decoded per record); a field missing or ``null``
        somewhere is a null, refused here. What it reads alike and msgspec does not: an
        integer in a float field (checked by :meth:`_exact_floats`), ``NaN`` (refused there
        too), invalid UTF-8 (checked first). Nested fields of the same name are not read.
        """
        schema = self._only[1] or self._learn(_raw(batches, 0))
        if schema is None:
            return None
        records = self._lines(batches, n)
        if self._wide(batches, n):
            return self._structs(memoryview(records.buffers()[2]), n, schema)
        size = int(records.buffers()[1].size)
        block = max(1 << 16, min(1 << 20, size // 4 + 1))
        options = pj.ReadOptions(use_threads=True, block_size=block)
        parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        try:
            records.cast(pa.large_string())  # valid UTF-8 (Arrow's JSON reader does not check)
            text = pa.BufferReader(records.buffers()[2])
            table = pj.read_json(text, read_options=options, parse_options=parse)
        except (pa.ArrowException, ValueError):
            self._only[1] = None  # (the types may have changed: learned again next time)
            return None
        if table.num_rows != n or any(column.null_count for column in table.columns):
            return None
        frame = pl.from_arrow(table, rechunk=False)
        assert isinstance(frame, pl.DataFrame)
        if frame.columns != schema.names or not self._exact_floats(batches, frame):
            return None
        return frame.rechunk() if n <= RECHUNK_UP_TO else frame

    def _learn(self, first: bytes) -> pa.Schema | None:
        """The Arrow types of the fields of :meth:`project`, from the first record (decoded
        by msgspec): an ``int``, a ``float``, a ``str`` or a ``bool`` each; None if one is
        missing there or of another type."""
        try:
            record = self._decode(first)
        except msgspec.DecodeError:
            return None
        if not isinstance(record, dict):
            return None
        fields = self._only[0]
        named = [(name, _ARROW.get(type(value))) for name, value in record.items()]
        named = [(name, kind) for name, kind in named if name in fields]
        if len(named) != len(fields) or any(kind is None for _, kind in named):
            return None  # a field not in the first record, or not a scalar there
        schema = self._only[1] = pa.schema(named)
        return schema

    def _structs(self, text: bytes | memoryview, n: int, schema: pa.Schema) -> pl.DataFrame | None:
        """The fields of ``schema`` read by msgspec into structs of those fields only (every
        other field skipped), then into columns: the values msgspec gives stream-first mode's
        projection (:func:`rheos.connectors.codecs.fields_decoder`), each column kept if all
        its values are of the type ``schema`` gives (an ``int`` in a float field, a ``null``, a
        field missing, an integer beyond 64 bits, invalid JSON or UTF-8: None)."""
        if self._struct[0] != schema.names:
            kind = msgspec.defstruct(
                "Fields",
                [(f"f{i}", Any) for i in range(len(schema.names))],
                rename={f"f{i}": name for i, name in enumerate(schema.names)},
                gc=False,
            )
            self._struct[:] = [schema.names, msgspec.json.Decoder(kind).decode_lines]
        try:
            rows = self._struct[1](text)
        except msgspec.DecodeError:
            return None
        if len(rows) != n:
            return None
        columns = []
        for i, (name, kind) in enumerate(zip(schema.names, schema.types, strict=True)):
            values = list(map(attrgetter(f"f{i}"), rows))
            python, polars = _KINDS[kind]
            if set(map(type, values)) != {python}:
                self._only[1] = None  # (the types may have changed: learned again next time)
                return None
            try:
                columns.append(pl.Series(name, values, dtype=polars, strict=True))
            except (TypeError, OverflowError, pl.exceptions.PolarsError):
                return None
        return pl.DataFrame(columns)

    def _inferred(
        self, batches: list[RecordBatch], records: pa.Array, n: int
    ) -> pl.DataFrame | None:
        """The records read by Arrow's JSON reader, which infers the types from every record."""
        try:
            strings = records.cast(pa.large_string())  # valid UTF-8 (Arrow's JSON reader
            table = self._read(records.buffers()[2])  # does not check)
        except (pa.ArrowException, ValueError):
            return None
        if table is None or table.num_rows != n or not table.num_columns:
            return None
        for column in table.columns:
            if column.null_count or not any(ok(column.type) for ok in _SCALAR_TYPES):
                return None
        try:
            first = self._decode(_raw(batches, 0))
        except msgspec.DecodeError:
            return None
        # the columns in the order of the first record's fields, which every record must have
        if not isinstance(first, dict) or sorted(first) != sorted(table.column_names):
            return None
        names = list(first)
        frame = pl.from_arrow(table.select(names), rechunk=False)
        assert isinstance(frame, pl.DataFrame)
        if frame.columns != names:  # (Polars renames a field named "")
            return None
        if not self._exact_floats(batches, frame):
            return None
        laid_out = _laid_out(self._text, _offsets(records), frame, strict=False)
        if not laid_out.all() and not _in_order(pl.Series(strings).filter(~laid_out), names):
            return None
        self.schema = frame.schema
        self.inferred_reads += 1
        return frame

    def _exact_floats(self, batches: list[RecordBatch], frame: pl.DataFrame) -> bool:
        """No NaN or infinity (not JSON: msgspec rejects them) in a float column, and the
        float fields with whole values written as floats (``2.0``, not ``2``: both read as a
        float; msgspec gives ``int`` for ``2``), checked by decoding those records again."""
        floats = []
        for name, kind in frame.schema.items():
            if kind == pl.Float64:
                data = frame.get_column(name).to_numpy()
                if not np.isfinite(data).all():
                    return False
                floats.append((name, np.flatnonzero(data == np.trunc(data))))
        try:
            return not floats or self._floats_are_floats(batches, floats)
        except msgspec.DecodeError:
            return False

    def _lines(self, batches: list[RecordBatch], n: int) -> pa.Array:
        """The records, each followed by a newline, in one buffer (reused from call to call:
        Arrow's JSON reader copies what it reads), as an Arrow ``large_binary`` array."""
        sizes = [int(b.value_ends[b.stop]) - int(b.value_ends[b.start]) + len(b) for b in batches]
        total = sum(sizes)
        if len(self._text) < total + _SLACK:
            self._text = np.empty(total + total // 2 + _SLACK, dtype=np.uint8)
            self._keep = np.empty(len(self._text), dtype=bool)
        starts = np.empty(n + 1, dtype=np.int64)
        at = i = 0
        for batch, size in zip(batches, sizes, strict=True):
            m = len(batch)
            at_line = batch.write_lines(self._text[at : at + size], self._keep[at : at + size])
            starts[i : i + m] = at_line + at
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


_TYPES = [
    (int, pa.int64(), pl.Int64),
    (float, pa.float64(), pl.Float64),
    (str, pa.string(), pl.String),
    (bool, pa.bool_(), pl.Boolean),
]
"""The types a field read by :meth:`JsonDecoder.project` may have: Python, Arrow, Polars."""
_ARROW = {python: arrow for python, arrow, _ in _TYPES}
_KINDS = {arrow: (python, polars) for python, arrow, polars in _TYPES}


def _pieces(batches: list[RecordBatch], n: int, k: int) -> list[list[RecordBatch]]:
    """``batches`` cut in ``k`` runs of about ``n / k`` records each (batches cut by slices)."""
    runs: list[list[RecordBatch]] = []
    run: list[RecordBatch] = []
    room = want = -(-n // k)
    for batch in batches:
        while len(batch) > room:
            run.append(batch.slice(0, room))
            batch = batch.slice(room)
            runs.append(run)
            run, room = [], want
        if len(batch):
            run.append(batch)
            room -= len(batch)
    runs.append(run)
    return (runs + [[] for _ in range(k)])[:k]


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


_SLACK = 16
"""Bytes past the text's end, so that an 8-byte word can be read at any of its positions."""


def _laid_out(
    text: np.ndarray, offsets: np.ndarray, frame: pl.DataFrame, *, strict: bool
) -> np.ndarray:
    """Which records are laid out exactly as ``{"f0":v0,"f1":v1,...}``, the fields those of
    ``frame`` in its order and the values its own -- checked without searching the text.

    From the lengths of the values (digits of an integer, bytes of a string plus its quotes,
    ``true``/``false``, a float's shortest repr) the position of each ``,"name":`` is computed
    and compared with the text, 8 bytes at a time: from the record's start for the fields up
    to the first float, from its end for the fields after it (whose length is not needed). A
    ``"name":`` found where it should be is that field (in a string a quote is escaped), so
    the record has those fields in that order. A record that does not match (other spacing,
    escapes, another number format, another order) is False.

    ``strict`` also proves there is no other field, when ``frame`` may have been read ignoring
    fields: between two names found, a value of exactly its length -- an integer, ``true`` or
    ``false`` cannot be written shorter, nor can a string (escapes only lengthen it), which
    must start with a quote -- and no quote in a float's text (``1e5`` is shorter than
    ``100000.0``: a field could hide in the difference, but not without a quote).
    """
    n = frame.height
    starts, ends = offsets[:-1], offsets[1:] - 1  # (a newline ends each record)
    size = int(offsets[-1])
    words = np.ndarray((size + _SLACK - 7,), dtype="<u8", buffer=text, strides=(1,))
    lengths: list[np.ndarray | None] = []
    quoted: list[bool] = []
    floats: list[bool] = []
    for kind, column in zip(frame.dtypes, frame.get_columns(), strict=True):
        quoted.append(kind == pl.String)
        floats.append(kind == pl.Float64)
        if kind == pl.Int64:
            lengths.append(_int_lengths(column.to_numpy()))
        elif kind == pl.Boolean:
            lengths.append(np.where(column.to_numpy(), 4, 5))
        elif kind == pl.Float64 and all(x is not None for x in lengths):
            lengths.append(None)  # the text between its name and the next one
        elif kind == pl.Float64:
            lengths.append(column.cast(pl.String).str.len_bytes().to_numpy().astype(np.int64))
        else:
            lengths.append(column.str.len_bytes().to_numpy().astype(np.int64) + 2)
    marks = [(b"," + msgspec.json.encode(name) + b":") for name in frame.columns]
    marks[0] = b"{" + marks[0][1:]
    ok = np.ones(n, dtype=bool)
    at = starts.copy()
    for mark, length, quote, real in zip(marks, lengths, quoted, floats, strict=True):
        ok &= _matches(words, at, mark, size)  # (from the start)
        at += len(mark)
        if strict and quote:
            ok &= text[np.minimum(at, size - 1)] == ord('"')
        if length is None:
            break
        if strict and real:
            ok &= _no_quote(words, at, length, size)
        at += length
    else:
        ended: np.ndarray = ok & (at == ends - 1) & (text[np.minimum(at, size - 1)] == ord("}"))
        return ended
    value = at  # of the float of unknown length
    ok &= text[ends - 1] == ord("}")
    at = ends - 1
    unknown = next(i for i, x in enumerate(lengths) if x is None)
    for i in range(len(marks) - 1, unknown, -1):  # from the end
        length = lengths[i]
        assert length is not None
        if strict and quoted[i]:
            ok &= text[np.clip(at - length, 0, size - 1)] == ord('"')
        if strict and floats[i]:
            ok &= _no_quote(words, at - length, length, size)
        at = at - length - len(marks[i])
        ok &= _matches(words, at, marks[i], size)
    if strict:
        ok &= _no_quote(words, value, at - value, size)
    return ok


def _int_lengths(values: np.ndarray) -> np.ndarray:
    """The number of characters of each integer written in JSON (digits and sign) -- through
    a float, so a few integers beyond 2**53 may be given one too many or too few (their
    records are then not recognised as laid out; nothing else depends on it)."""
    low, high = int(values.min()), int(values.max())
    if low >= 0 and len(str(low)) == len(str(high)):  # (all as long: timestamps, ids)
        return np.full(len(values), len(str(low)), dtype=np.int64)
    magnitude = np.maximum(np.abs(values).astype(np.float64), 1.0)
    digits: np.ndarray = np.log10(magnitude).astype(np.int64)
    return digits + 1 + (values < 0)


def _matches(words: np.ndarray, at: np.ndarray, mark: bytes, size: int) -> np.ndarray:
    """Whether ``mark`` is at each position ``at`` of the text (of ``size`` bytes).

    A position outside the text is moved to its first or last possible one, where the mark
    cannot be: a mark starts with ``,`` unless it is the first field's (only ever looked for
    at a record's start), and ends with ``:``, where the text (``{`` first) ends with a
    newline."""
    at = np.clip(at, 0, size - len(mark))
    ok: np.ndarray | None = None
    for i in range(0, len(mark), 8):
        piece = mark[i : i + 8]
        word = words[at + i] if i else words[at]
        if len(piece) < 8:
            word &= np.uint64((1 << (8 * len(piece))) - 1)
        same = word == np.uint64(int.from_bytes(piece, "little"))
        ok = same if ok is None else ok & same
    assert ok is not None
    return ok


_BYTE_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(9)], dtype=np.uint64)
_QUOTES = np.uint64(0x2222222222222222)
_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)
_LONGEST_FLOAT = 24
"""Characters of the longest shortest-repr of a float (``-2.2250738585072014e-308``)."""


def _no_quote(words: np.ndarray, at: np.ndarray, length: np.ndarray, size: int) -> np.ndarray:
    """Whether the ``length`` bytes from each ``at`` hold no quote (and are at most
    :data:`_LONGEST_FLOAT`): 8 at a time, a zero byte of ``word ^ 0x22..`` found with the
    classic ``(x - 0x01..) & ~x & 0x80..`` test."""
    ok = (length >= 1) & (length <= _LONGEST_FLOAT) & (at >= 0)
    last = len(words) - 1
    for j in range(0, _LONGEST_FLOAT, 8):
        valid = np.clip(length - j, 0, 8)
        if not valid.any():
            break
        x = (words[np.clip(at + j, 0, last)] ^ _QUOTES) | ~_BYTE_MASKS[valid]
        ok &= ((x - _ONES) & ~x & _HIGHS) == 0
    return ok


def _offsets(records: pa.Array) -> np.ndarray:
    """Where each record starts in the text (and, last, where the text ends)."""
    n = len(records)
    return np.frombuffer(records.buffers()[1], dtype=np.int64)[records.offset :][: n + 1]


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


def _raw(batches: list[RecordBatch], i: int) -> bytes:
    """The value of record ``i`` of ``batches`` (counted over all of them)."""
    for batch in batches:
        if i < len(batch):
            at = batch.start + i
            ends = batch.value_ends
            return batch.value_data[ends[at] : ends[at + 1]]
        i -= len(batch)
    raise IndexError(i)


__all__ = ["JsonDecoder"]
