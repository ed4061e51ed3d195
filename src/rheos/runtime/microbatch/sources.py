"""Sources in micro-batch mode: parts of batches, and the log read columnar.

A :class:`Part` is what one poll of one partition gives: event values (a frame or rows) and
their event times. A JSON log topic is decoded without a per-record Python loop: the values
of the record batches a poll returns for a partition are decoded together by
:class:`~rheos.runtime.microbatch.jsondecode.JsonDecoder` -- exactly as msgspec decodes each
of them, or not at all, and then per record with msgspec, so values are exactly those of
stream-first mode. Small polls (under :data:`BULK_FROM` records) are decoded per record: the
fixed cost of a bulk decode is more than it saves there. The records of a poll and partition
of which one does not decode at all are read again by the stream-first reader
(:class:`~rheos.connectors.log.LogReader`), which gives the good ones as events and the bad
ones as rejects; the next poll is columnar again.
"""

from __future__ import annotations

import itertools
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any

import msgspec
import numpy as np
import polars as pl

from rheos.connectors.base import Chunk, OpenContext
from rheos.connectors.codecs import fields_decoder
from rheos.connectors.log import CONTROL_HEADER, LogSource
from rheos.errors import OffsetOutOfRangeError
from rheos.runtime.microbatch.jsondecode import JsonDecoder
from rheos.transport import Log, RecordBatch

BULK_FROM = 2_000
"""Records a poll must have (for a partition) to be decoded in bulk: below, the fixed cost of
a bulk decode (about 1.5 ms, and the Polars calls after it) is more than msgspec per record
(about 1 µs each); their rows become a frame only if a step asks for one."""

READ_AHEAD = 2
"""Polls read and being decoded ahead (each in a worker thread) while the runner works."""

READ_AHEAD_FROM = 5_000
"""Polls of fewer records are not read ahead: the hand-off to the worker thread, and its
decoding competing for the cores, would cost more than the overlap saves."""


@dataclass
class Part:
    """Events read together from one partition.

    ``chunk.rejects``, when there are some, are the records of this stretch that did not become
    events (undecodable): the runtime applies the bad-event policy to them. A part can hold
    rejects and no event.
    """

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


PEEK = 200
"""Records :func:`decodes_in_bulk` looks at."""


def decodes_in_bulk(data_dir: str, source: LogSource) -> bool:
    """Whether the first records of ``source``'s topic are JSON objects of scalar fields,
    none of them ``null`` -- what :class:`JsonDecoder` reads in bulk when a flow reads whole
    events (a guess from the first :data:`PEEK` records of each partition; True where there
    are none to look at)."""
    try:
        log = Log(data_dir)
        try:
            if not log.has_topic(source.topic):
                return True
            reader = log.reader(source.topic, isolation=source.isolation)
            try:
                batches = reader.poll(0.0, PEEK)
            finally:
                reader.close()
        finally:
            log.close()
    except Exception:  # (the run says what is wrong with the data directory)
        return True
    decode = msgspec.json.decode
    for batch in batches:
        for raw in batch.values():
            try:
                event = decode(raw)
            except msgspec.DecodeError:
                continue  # (a bad record: dead-lettered either way)
            if type(event) is not dict:
                return False
            if any(value is None or isinstance(value, dict | list) for value in event.values()):
                return False
    return True


def _sub(chunk: Chunk | None, a: int, b: int | None) -> Chunk | None:
    if chunk is None:
        return None
    offsets = None if chunk.offsets is None else chunk.offsets[a:b]
    stamps = None if chunk.timestamps is None else chunk.timestamps[a:b]
    raw = None if chunk.raw is None else chunk.raw[a:b]
    return Chunk(chunk.partition, chunk.values[a:b], stamps, chunk.topic, offsets, raw)


def from_chunk(chunk: Chunk) -> Part:
    ts = None if chunk.timestamps is None else np.asarray(chunk.timestamps, dtype=np.int64)
    return Part(chunk.partition, ts, rows=chunk.values, chunk=chunk, append_time=chunk.append_time)


@dataclass(frozen=True)
class _Stretch:
    """Records ``start`` to ``stop - 1`` of a partition, read in one poll, of which one or more
    do not decode: they are read again record by record."""

    partition: int
    start: int
    stop: int


_Read = tuple[list[Part | _Stretch], dict[int, int]]
"""What one read gives: parts and stretches in order, and the reader's positions after it."""


class ColumnarLogReader:
    """A :class:`~rheos.connectors.log.LogSource` read as columnar parts (JSON dicts).

    Each poll returns at most ``max_records`` records (the batch size): the log returns whole
    record batches, and what is over is kept for the next poll (``exact=False``: whole record
    batches, about ``max_records``, as the stream-first reader reads them). The records of one
    partition in a poll are decoded together.

    **Read-ahead.** When a poll returns events, the next read and decode start at once in a
    worker thread, and run while the runner processes these (the decoders and Polars release
    the GIL). Nothing else changes: events are returned in the same order, and
    :meth:`positions` and :meth:`commit` cover only the events returned so far. By default
    (``read_ahead=None``) polls under :data:`READ_AHEAD_FROM` records are not read ahead.

    **Bad records.** When a record does not decode, the records of its partition in that poll
    (a stretch) are read again, record by record, by the stream-first reader: its
    parts hold the good records as rows and the bad ones as ``chunk.rejects``, with the same
    error, topic, partition and offset as in stream-first mode. Only that stretch is read so;
    the other partitions of the poll, and the polls after it, are decoded in bulk.
    """

    def __init__(
        self,
        source: LogSource,
        ctx: OpenContext,
        max_records: int,
        *,
        read_ahead: bool | None = None,
        exact: bool = True,
    ) -> None:
        self.source = source
        self.topic = source.topic
        self._ctx = ctx
        self._whole: Callable[[bytes], Any] = msgspec.json.Decoder().decode
        self._decode: Callable[[bytes], Any] = self._whole
        first = self._bulk = JsonDecoder()
        self._decoders: SimpleQueue[JsonDecoder] = SimpleQueue()
        self._decoders.put(first)
        for _ in range(READ_AHEAD):  # (what they learn of the records, shared)
            self._decoders.put(JsonDecoder(like=first))
        self._reader = source.log_reader(ctx)
        self.partitions = list(self._reader.partitions)
        self.max_records = max_records
        self._ends: dict[int, int] | None = self._reader.end_offsets() if ctx.bounded else None
        self._positions = self._reader.positions()
        """The next offset after the events returned so far, per partition."""
        self.exact = exact
        """Whether a poll returns ``max_records`` records at most (else: whole record batches
        of the log, about ``max_records``, as the stream-first reader does)."""
        self._left: list[RecordBatch] = []
        """Record batches read from the log but not taken yet (past ``max_records``)."""
        if read_ahead is None:
            read_ahead = max_records >= READ_AHEAD_FROM
        self._pool = ThreadPoolExecutor(READ_AHEAD, "rheos-read-ahead") if read_ahead else None
        self._ahead: deque[Future[_Read]] = deque()
        self._turn = threading.Condition()
        self._tickets = self._served = 0
        """Reads ahead are given tickets in order, and read the log in that order."""
        self._done = False
        self._check_done()

    def project(self, fields: frozenset[str]) -> bool:
        """Decode only ``fields`` of each record (see :mod:`rheos.runtime.projection`): in
        bulk (:meth:`JsonDecoder.project`), and record by record into dicts of those."""
        only = fields_decoder("json", fields)
        if only is None:  # pragma: no cover - JSON always projects
            return False
        self._decode = only
        self._bulk.project(fields)  # (and the decoders made like it)
        return True

    def decode(self, value: bytes) -> Any:
        """One record value decoded whole."""
        return self._whole(value)

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

    def seek(self, positions: dict[int, int]) -> None:
        """Continue from ``positions`` (a checkpoint's, or the first events read but not
        processed); partitions not in ``positions`` continue after the events returned so far.
        The read-ahead is dropped."""
        self._settle()
        self._left = []
        for p in self.partitions:
            self._reader.seek(p, int(positions.get(p, self._positions[p])))
        self._positions = self._reader.positions()
        self._check_done()

    def poll(self, timeout: float) -> list[Part]:
        if self._done:
            return []
        got: list[Part | _Stretch] = []
        while self._ahead and not got:
            got, positions = self._ahead.popleft().result()
        if not got:  # (nothing read ahead: wait for new records, as without reading ahead)
            runs, positions = self._fetch(timeout)
            got = self._decode_runs(runs)
        parts = []
        for x in got:
            parts.extend(self._per_record(x) if isinstance(x, _Stretch) else [x])
        self._positions = positions
        self._check_done()
        if got and not self._done and self._pool is not None:
            while len(self._ahead) < READ_AHEAD:
                self._ahead.append(self._pool.submit(self._read_ahead, self._tickets))
                self._tickets += 1
        return parts

    def _read_ahead(self, ticket: int) -> _Read:
        """Read (in turn: tickets are taken in poll order) and decode, in a worker thread."""
        with self._turn:
            self._turn.wait_for(lambda: self._served == ticket)
            try:
                runs, positions = self._fetch(0.0)
            finally:
                self._served += 1
                self._turn.notify_all()
        return self._decode_runs(runs), positions

    def _fetch(self, timeout: float) -> tuple[list[list[RecordBatch]], dict[int, int]]:
        """The next records from the log, at most ``max_records``, as runs of one partition,
        and the positions after them (what the log returned past them is kept: ``_left``)."""
        runs: list[list[RecordBatch]] = []
        run: list[RecordBatch] = []
        for batch in self._take_batches(timeout):
            if run and run[-1].partition != batch.partition:
                runs.append(run)
                run = []
            run.extend(_events(batch))
        if run:
            runs.append(run)
        positions = self._reader.positions()
        for batch in reversed(self._left):
            positions[batch.partition] = batch.first_offset
        return runs, positions

    def _decode_runs(self, runs: list[list[RecordBatch]]) -> list[Part | _Stretch]:
        """The runs decoded (in a worker thread when reading ahead), each decoding with a
        JSON decoder of its own (they keep buffers)."""
        json = self._decoders.get()
        try:
            got = [self._part(run, json) for run in runs]
        finally:
            self._decoders.put(json)
        return [x for x in got if isinstance(x, _Stretch) or len(x)]

    def _take_batches(self, timeout: float) -> list[RecordBatch]:
        """Record batches (sliced) of ``max_records`` records at most: first those left from
        the last read, then new ones from the log (whole ones unless :attr:`exact`)."""
        room = self.max_records if self.exact else 2**62
        have = sum(map(len, self._left))
        fresh = []
        if have < self.max_records:
            wait = 0.0 if have else timeout
            fresh = self._reader.poll(wait, self.max_records - have)
        out: list[RecordBatch] = []
        left: list[RecordBatch] = []
        for batch in [*self._left, *fresh]:
            if self._ends is not None:
                end = self._ends[batch.partition]
                if batch.first_offset >= end:
                    continue
                if batch.next_offset > end:
                    batch = batch.slice(0, end - batch.first_offset)
            if room <= 0:
                left.append(batch)
            elif len(batch) > room:
                out.append(batch.slice(0, room))
                left.append(batch.slice(room))
                room = 0
            else:
                out.append(batch)
                room -= len(batch)
        self._left = left
        return out

    def _part(self, batches: list[RecordBatch], json: JsonDecoder) -> Part | _Stretch:
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
        n = len(ts)
        frame = json.frame(batches) if n >= BULK_FROM else None
        if frame is not None:
            place = Chunk(partition, [], None, self.topic, offsets)
            return Part(partition, ts, frame=frame, chunk=place, append_time=append_time)
        decode = self._decode
        raw = [value for b in batches for value in b.values()]
        try:
            values = [decode(value) for value in raw]
        except Exception:  # one or more do not decode: read again per record
            return _Stretch(partition, batches[0].first_offset, batches[-1].next_offset)
        chunk = Chunk(partition, values, None, self.topic, offsets, raw)
        return Part(partition, ts, rows=values, chunk=chunk, append_time=append_time)

    def _per_record(self, stretch: _Stretch) -> list[Part]:
        """The records of ``stretch`` read as stream-first mode reads them: parts of the good
        ones, with the bad ones as rejects (in the main thread, between two reads)."""
        p, stop = stretch.partition, stretch.stop
        again = LogSource(
            self.topic,
            partitions=[p],
            start={p: stretch.start},
            isolation=self.source.isolation,
            max_records=stop - stretch.start,
        ).open(self._ctx)
        parts = []
        try:
            while again.positions()[p] < stop:
                chunks = again.poll(0.0)
                if not chunks:
                    raise OffsetOutOfRangeError(
                        f"records {stretch.start} to {stop - 1} were read but are gone",
                        topic=self.topic,
                        partition=p,
                    )
                for chunk in chunks:
                    chunk = _before(chunk, stop)
                    if chunk.values or chunk.rejects:
                        parts.append(from_chunk(chunk))
        finally:
            again.close()
        return parts

    def _settle(self) -> None:
        """Wait for the read-ahead and drop it."""
        while self._ahead:
            self._ahead.popleft().exception()  # (an error in what is not returned is not raised)

    def commit(self) -> None:
        if self.source.group is not None:
            self._settle()
            self._reader.commit(self._positions)

    def close(self) -> None:
        self._settle()
        if self._pool is not None:
            self._pool.shutdown()
        while not self._decoders.empty():
            self._decoders.get().close()
        self._reader.close()


def _before(chunk: Chunk, stop: int) -> Chunk:
    """``chunk`` without its events and rejects at or after offset ``stop``."""
    assert chunk.offsets is not None
    n = bisect_left(chunk.offsets, stop)
    rejects = chunk.rejects
    if rejects is not None:
        rejects = [r for r in rejects if r[0] is not None and r[0] < stop]
    if n == len(chunk.offsets) and rejects == chunk.rejects:
        return chunk
    return Chunk(
        chunk.partition,
        chunk.values[:n],
        None if chunk.timestamps is None else chunk.timestamps[:n],
        chunk.topic,
        chunk.offsets[:n],
        None if chunk.raw is None else chunk.raw[:n],
        rejects,
        chunk.append_time,
    )


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
