"""The embedded log: a data directory of topics, with producers and readers.

>>> import tempfile
>>> log = Log(tempfile.mkdtemp())
>>> _ = log.create_topic("quotes", partitions=2)
>>> with log.producer("quotes") as p:
...     _ = p.append([b'{"symbol": "ACME", "price": 10.5}'], keys=[b"ACME"])
>>> [r.value for r in log.reader("quotes").read()]
[b'{"symbol": "ACME", "price": 10.5}']

Many processes may open the same data directory: any number of readers, and one writer per
partition at a time (a second one gets :class:`~rheos.errors.PartitionLockedError`). Inside a
process, producers of the same partition share one writer, and readers are woken as soon as a
record is appended; readers in other processes notice within about two milliseconds.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Literal

import msgspec

from rheos.durations import Duration
from rheos.errors import (
    ConfigError,
    LogClosedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    TopicExistsError,
    TopicNotFoundError,
)
from rheos.transport.format import Headers, Record, RecordBatch
from rheos.transport.groups import GroupOffsets
from rheos.transport.partition import (
    PartitionCursor,
    PartitionWriter,
    now_ms,
    oversize_record,
    read_committed,
    write_committed,
)
from rheos.transport.partitioner import partition_for_key
from rheos.transport.segment import index_path, list_segments, load_index, segment_path
from rheos.transport.segment import timeindex_path as _timeindex_path
from rheos.transport.topics import (
    Durability,
    TopicConfig,
    check_topic_name,
    default_data_dir,
    read_config,
    write_config,
)

Start = Literal["beginning", "end"] | int | datetime | Mapping[int, int]
"""Where a reader starts: the beginning, the end, an offset (every partition), offsets per
partition, or a time (the first record at or after it)."""

Isolation = Literal["committed", "uncommitted"]

TAIL_POLL_S = 0.002
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class _Shared:
    """What producers and readers of one data directory share inside a process."""

    lock = threading.Lock()
    writers: dict[Path, tuple[PartitionWriter, threading.Lock, int]] = {}  # noqa: RUF012
    signals: dict[Path, threading.Condition] = {}  # noqa: RUF012

    @classmethod
    def signal(cls, topic_dir: Path) -> threading.Condition:
        topic_dir = topic_dir.resolve()  # one key however the data dir was spelled
        with cls.lock:
            cond = cls.signals.get(topic_dir)
            if cond is None:
                cond = cls.signals[topic_dir] = threading.Condition()
            return cond


class _Flusher:
    """A background thread that fsyncs writers with an interval durability policy."""

    def __init__(self) -> None:
        self.writers: dict[PartitionWriter, tuple[int, threading.Lock]] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, writer: PartitionWriter, interval_ms: int, lock: threading.Lock) -> None:
        with self.lock:
            self.writers[writer] = (interval_ms, lock)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="rheos-fsync", daemon=True)
                self.thread.start()

    def remove(self, writer: PartitionWriter) -> None:
        with self.lock:
            self.writers.pop(writer, None)

    def _run(self) -> None:
        last: dict[PartitionWriter, float] = {}
        while True:
            time.sleep(0.005)
            now = time.monotonic()
            with self.lock:
                items = list(self.writers.items())
            for writer, (interval_ms, lock) in items:
                if now - last.get(writer, 0.0) >= interval_ms / 1000:
                    with lock, contextlib.suppress(OSError, ValueError):
                        writer.sync()
                    last[writer] = now


_FLUSHER = _Flusher()


class Log:
    """A data directory of topics. Cheap to open; safe to open in many processes at once."""

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.topics_dir = self.data_dir / "topics"
        self.topics_dir.mkdir(parents=True, exist_ok=True)
        self._groups: GroupOffsets | None = None

    def __repr__(self) -> str:
        return f"Log({str(self.data_dir)!r})"

    # -- topics -----------------------------------------------------------------------------

    def topic_dir(self, name: str) -> Path:
        return self.topics_dir / check_topic_name(name)

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        *,
        retention_ms: Duration | None = None,
        retention_bytes: int | None = None,
        segment_bytes: int | None = None,
        max_record_bytes: int | None = None,
        durability: str | Durability | None = None,
        exist_ok: bool = False,
    ) -> TopicConfig:
        """Create a topic with a fixed number of partitions.

        With ``exist_ok=True`` an existing topic is kept as it is (its settings win).
        """
        config = TopicConfig.build(
            name,
            partitions,
            retention_ms=retention_ms,
            retention_bytes=retention_bytes,
            segment_bytes=segment_bytes,
            max_record_bytes=max_record_bytes,
            durability=durability,
        )
        folder = self.topic_dir(name)
        try:
            folder.mkdir()
        except FileExistsError:
            if (folder / "topic.json").exists():
                if exist_ok:
                    return self.config(name)
                raise TopicExistsError("the topic already exists", topic=name) from None
        for p in range(partitions):
            (folder / str(p)).mkdir(exist_ok=True)
            first = segment_path(folder / str(p), 0)
            for path in (first, index_path(first), _timeindex_path(first)):
                path.touch()
        write_config(folder / "topic.json", config)
        return config

    def config(self, name: str) -> TopicConfig:
        path = self.topic_dir(name) / "topic.json"
        try:
            return read_config(path)
        except FileNotFoundError:
            raise TopicNotFoundError("no such topic", topic=name) from None
        except msgspec.DecodeError as exc:
            raise TopicNotFoundError(f"topic.json is unreadable: {exc}", topic=name) from exc

    def has_topic(self, name: str) -> bool:
        return (self.topic_dir(name) / "topic.json").exists()

    def partitions(self, name: str) -> int:
        return self.config(name).partitions

    def topic_names(self) -> list[str]:
        return sorted(p.name for p in self.topics_dir.iterdir() if (p / "topic.json").exists())

    def delete_topic(self, name: str, *, missing_ok: bool = False) -> None:
        """Delete a topic and its data. Producers and readers of it must be closed first.

        A missing topic raises :class:`TopicNotFoundError`, unless ``missing_ok``."""
        folder = self.topic_dir(name)
        if not (folder / "topic.json").exists():
            if missing_ok:
                return
            raise TopicNotFoundError("no such topic", topic=name)
        trash = self.topics_dir / f".deleted-{name}-{time.time_ns()}"
        folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        self.groups.delete_topic(name)

    def describe(self, name: str) -> list[PartitionInfo]:
        """Per partition: first and next offset, bytes on disk, segments and time range."""
        config = self.config(name)
        out = []
        for p in range(config.partitions):
            folder = self.topic_dir(name) / str(p)
            cursor = PartitionCursor(folder, name, p)
            try:
                bases = list_segments(folder)
                size = sum(segment_path(folder, b).stat().st_size for b in bases)
                start, end = cursor.start_offset(), cursor.end_offset()
                first_ts = max_ts = None
                if end > start:
                    cursor.seek(start)
                    batches = cursor.read(1)
                    first_ts = batches[0].timestamps[batches[0].start] if batches else None
                    for base in reversed(bases):
                        seg = segment_path(folder, base)
                        index = load_index(seg, seg.stat().st_size)
                        if index is not None and index.max_ts is not None:
                            max_ts = index.max_ts
                            break
            finally:
                cursor.close()
            out.append(PartitionInfo(p, start, end, size, len(bases), first_ts, max_ts))
        return out

    def enforce_retention(self, name: str | None = None) -> int:
        """Delete whole segments past the retention limits; return how many were deleted.

        The newest segment of a partition is never deleted. Age counts from a segment's last
        append (its file time), so replaying old events does not make them expire at once.
        """
        names = [name] if name is not None else self.topic_names()
        deleted = 0
        for topic in names:
            config = self.config(topic)
            if config.retention_ms is None and config.retention_bytes is None:
                continue
            for p in range(config.partitions):
                deleted += _enforce(self.topic_dir(topic) / str(p), config)
        return deleted

    # -- producing and reading --------------------------------------------------------------

    def producer(
        self,
        topic: str,
        *,
        durability: str | Durability | None = None,
        create_partitions: int | None = None,
        transactional: bool = False,
    ) -> Producer:
        """A producer for ``topic``; with ``create_partitions`` the topic is created if missing.

        A ``transactional`` producer's records stay invisible to committed readers until
        :meth:`Producer.commit`; :meth:`Producer.rollback_to` discards an uncommitted tail.
        """
        if create_partitions is not None and not self.has_topic(topic):
            self.create_topic(topic, create_partitions, exist_ok=True)
        return Producer(self, topic, durability=durability, transactional=transactional)

    def reader(
        self,
        topic: str,
        *,
        partitions: Sequence[int] | None = None,
        start: Start = "beginning",
        group: str | None = None,
        isolation: Isolation = "committed",
    ) -> Reader:
        """A reader of ``topic`` (all partitions unless ``partitions`` is given).

        With ``group``, partitions the group has committed resume from there; the others
        start at ``start``. :meth:`Reader.commit` stores the reader's positions.

        ``isolation="committed"`` (the default) serves only records a transactional producer
        has committed (all records, on topics never written transactionally);
        ``"uncommitted"`` serves everything written, at the lowest latency, including records
        a crashed transactional writer will discard when it recovers.
        """
        return Reader(
            self, topic, partitions=partitions, start=start, group=group, isolation=isolation
        )

    @property
    def groups(self) -> GroupOffsets:
        if self._groups is None:
            self._groups = GroupOffsets(self.data_dir / "groups.sqlite")
        return self._groups

    def close(self) -> None:
        if self._groups is not None:
            self._groups.close()
            self._groups = None


class PartitionInfo(msgspec.Struct, frozen=True):
    """What :meth:`Log.describe` reports for one partition."""

    partition: int
    start_offset: int
    next_offset: int
    size_bytes: int
    segments: int
    first_timestamp: int | None
    max_timestamp: int | None


def _enforce(folder: Path, config: TopicConfig) -> int:
    bases = list_segments(folder)
    sealed = bases[:-1]
    sizes = {b: segment_path(folder, b).stat().st_size for b in bases}
    total = sum(sizes.values())
    cutoff = time.time() - (config.retention_ms or 0) / 1000
    deleted = 0
    for base in sealed:
        path = segment_path(folder, base)
        too_old = config.retention_ms is not None and path.stat().st_mtime < cutoff
        too_big = config.retention_bytes is not None and total > config.retention_bytes
        if not (too_old or too_big):
            break
        for p in (path, index_path(path), _timeindex_path(path)):
            p.unlink(missing_ok=True)
        total -= sizes[base]
        deleted += 1
    return deleted


class Producer:
    """Appends records to a topic. Use as a context manager, or call :meth:`close`.

    :meth:`append` writes at once and returns where records went; :meth:`send` buffers one
    record and :meth:`flush` writes the buffer. A record is acknowledged (durable under the
    topic's durability policy) once the call that wrote it returns.
    """

    def __init__(
        self,
        log: Log,
        topic: str,
        *,
        durability: str | Durability | None = None,
        transactional: bool = False,
    ) -> None:
        self.log = log
        self.topic = topic
        self.transactional = transactional
        self.config = log.config(topic)
        self.durability = Durability.parse(durability or self.config.durability)
        # resolved: producers of one partition share its writer however the data dir was spelled
        self._folder = log.topic_dir(topic).resolve()
        self._signal = _Shared.signal(self._folder)
        self._writers: dict[int, tuple[PartitionWriter, threading.Lock]] = {}
        self._rr = 0
        self._buffer: dict[int, list[tuple[bytes, int, bytes | None, Headers | None]]] = {}
        self._buffered = 0
        self.linger_records = 10_000
        self._closed = False

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _writer(self, partition: int) -> tuple[PartitionWriter, threading.Lock]:
        got = self._writers.get(partition)
        if got is not None:
            return got
        if self._closed:
            raise LogClosedError("the producer is closed", topic=self.topic)
        if not 0 <= partition < self.config.partitions:
            raise OffsetOutOfRangeError(
                f"no partition {partition}; the topic has {self.config.partitions}",
                topic=self.topic,
            )
        folder = self._folder / str(partition)
        with _Shared.lock:
            shared = _Shared.writers.get(folder)
            if shared is None:
                writer = PartitionWriter(
                    folder,
                    self.topic,
                    partition,
                    segment_bytes=self.config.segment_bytes,
                    max_record_bytes=self.config.max_record_bytes,
                    fsync_every_batch=self.durability.mode == "batch",
                )
                shared = (writer, threading.Lock(), 0)
            writer, lock, refs = shared
            _Shared.writers[folder] = (writer, lock, refs + 1)
        if self.durability.mode == "batch":
            writer.fsync_every_batch = True
        elif self.durability.mode == "interval":
            _FLUSHER.add(writer, self.durability.interval_ms, lock)
        self._writers[partition] = (writer, lock)
        if self.transactional and read_committed(folder) is None:
            write_committed(folder, writer.next_offset)  # what exists before is committed
        return writer, lock

    def _append_partition(
        self,
        partition: int,
        values: Sequence[bytes],
        timestamps: Sequence[int],
        keys: Sequence[bytes | None] | None,
        headers: Sequence[Headers | None] | None,
    ) -> int:
        writer, lock = self._writer(partition)
        with lock:
            rolls = writer.rolls
            first = writer.append(values, timestamps, keys, headers)
            rolled = writer.rolls != rolls
        if rolled and (self.config.retention_ms or self.config.retention_bytes):
            _enforce(self._folder / str(partition), self.config)  # a roll is a good moment
        with self._signal:
            self._signal.notify_all()
        return first

    def append(
        self,
        values: Sequence[bytes],
        *,
        keys: Sequence[bytes | None] | None = None,
        timestamps: Sequence[int] | None = None,
        headers: Sequence[Headers | None] | None = None,
        partition: int | None = None,
    ) -> list[tuple[int, int, int]]:
        """Append ``values`` now; return ``(partition, first offset, count)`` per partition.

        ``keys`` choose partitions (murmur2 of the key); records without a key, and all
        records when no keys are given, go round-robin; ``partition`` overrides both.
        ``timestamps`` default to the append time.
        """
        n = len(values)
        for what, column in (("keys", keys), ("timestamps", timestamps), ("headers", headers)):
            if column is not None and len(column) != n:
                raise ConfigError(
                    f"topic {self.topic!r}: append of {n} values with {len(column)} {what}; "
                    "give one per value"
                )
        if n == 0:
            return []
        ts: Sequence[int] = timestamps if timestamps is not None else [now_ms()] * n
        parts = self.config.partitions
        if partition is None and parts > 1:
            self._check_sizes(values, keys)  # before any partition is written
        if partition is not None or parts == 1:
            p = 0 if partition is None else partition
            return [(p, self._append_partition(p, values, ts, keys, headers), n)]
        if keys is None:
            out = []
            for j in range(min(parts, n)):
                p = (self._rr + j) % parts
                sub = slice(j, None, parts)
                vals = values[sub]
                hs = headers[sub] if headers is not None else None
                out.append((p, self._append_partition(p, vals, ts[sub], None, hs), len(vals)))
            self._rr = (self._rr + n) % parts
            return sorted(out)
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            if key is None:
                p = self._rr
                self._rr = (self._rr + 1) % parts
            else:
                p = partition_for_key(key, parts)
            groups.setdefault(p, []).append(i)
        out = []
        for p, idx in sorted(groups.items()):
            out.append(
                (
                    p,
                    self._append_partition(
                        p,
                        [values[i] for i in idx],
                        [ts[i] for i in idx],
                        [keys[i] for i in idx],
                        [headers[i] for i in idx] if headers is not None else None,
                    ),
                    len(idx),
                )
            )
        return out

    def _check_sizes(self, values: Sequence[bytes], keys: Sequence[bytes | None] | None) -> None:
        limit = self.config.max_record_bytes
        found = oversize_record(values, keys, limit)
        if found is not None:
            i, size = found
            raise RecordTooLargeError(
                f"record {i} of the append is {size} bytes, over the topic's "
                f"max_record_bytes of {limit}; nothing of this append was written",
                topic=self.topic,
            )

    def send(
        self,
        value: bytes,
        *,
        key: bytes | None = None,
        timestamp: int | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """Buffer one record; it is written by :meth:`flush` (or when the buffer fills)."""
        parts = self.config.partitions
        if partition is None:
            if key is not None:
                partition = partition_for_key(key, parts)
            else:
                partition = self._rr
                self._rr = (self._rr + 1) % parts
        ts = now_ms() if timestamp is None else timestamp
        self._buffer.setdefault(partition, []).append((value, ts, key, headers))
        self._buffered += 1
        if self._buffered >= self.linger_records:
            self.flush()

    def flush(self) -> None:
        """Write every buffered record; when it returns they are acknowledged."""
        buffer, self._buffer, self._buffered = self._buffer, {}, 0
        for p, rows in sorted(buffer.items()):
            values = [r[0] for r in rows]
            ts = [r[1] for r in rows]
            keys = [r[2] for r in rows] if any(r[2] is not None for r in rows) else None
            hs = [r[3] for r in rows] if any(r[3] for r in rows) else None
            self._append_partition(p, values, ts, keys, hs)

    def positions(self, partitions: Sequence[int] | None = None) -> dict[int, int]:
        """The next offset of each partition (taking the writer of each one)."""
        parts = range(self.config.partitions) if partitions is None else partitions
        return {p: self._writer(p)[0].next_offset for p in parts}

    def commit(self, upto: Mapping[int, int] | None = None) -> dict[int, int]:
        """Flush, make durable, and mark everything written so far as committed -- or, with
        ``upto``, the records before those offsets (the rest stays uncommitted).

        Returns the committed offsets per partition written by this producer.
        """
        if not self.transactional:
            raise ConfigError("commit() needs a producer opened with transactional=True")
        self.flush()
        out = {}
        for p, (writer, lock) in self._writers.items():
            if upto is not None and p not in upto:
                continue  # opened since: nothing of it is covered
            with lock:
                writer.sync()
                mark = writer.next_offset if upto is None else min(upto[p], writer.next_offset)
                write_committed(self._folder / str(p), mark)
                out[p] = mark
        with self._signal:
            self._signal.notify_all()
        return out

    def rollback_to(self, offsets: Mapping[int, int]) -> None:
        """Discard records at or after ``offsets[p]`` in each partition, and mark the rest
        committed: how a recovering transactional writer drops its uncommitted tail."""
        if not self.transactional:
            raise ConfigError("rollback_to() needs a producer opened with transactional=True")
        self._buffer, self._buffered = {}, 0
        for p, offset in offsets.items():
            writer, lock = self._writer(p)
            with lock:
                writer.truncate_to(offset)
                write_committed(self._folder / str(p), offset)

    def close(self) -> None:
        if self._closed:
            return
        try:
            if not self.transactional:
                self.flush()
        finally:
            self._closed = True
            for partition, (writer, _lock) in self._writers.items():
                folder = self._folder / str(partition)
                with _Shared.lock:
                    w, lock, refs = _Shared.writers[folder]
                    if refs <= 1:
                        del _Shared.writers[folder]
                        _FLUSHER.remove(writer)
                        writer.close()
                    else:
                        _Shared.writers[folder] = (w, lock, refs - 1)
            self._writers.clear()


class Reader:
    """Reads a topic's partitions forward. Not thread-safe; one reader per thread."""

    def __init__(
        self,
        log: Log,
        topic: str,
        *,
        partitions: Sequence[int] | None = None,
        start: Start = "beginning",
        group: str | None = None,
        isolation: Isolation = "committed",
    ) -> None:
        if isolation not in ("committed", "uncommitted"):
            raise ConfigError(f"isolation must be 'committed' or 'uncommitted', not {isolation!r}")
        self.log = log
        self.topic = topic
        self.group = group
        self.isolation = isolation
        config = log.config(topic)
        self.partitions = list(range(config.partitions)) if partitions is None else list(partitions)
        for p in self.partitions:
            if not 0 <= p < config.partitions:
                raise OffsetOutOfRangeError(
                    f"no partition {p}; the topic has {config.partitions}", topic=topic
                )
        folder = log.topic_dir(topic)
        self._signal = _Shared.signal(folder)
        self._cursors = {p: PartitionCursor(folder / str(p), topic, p) for p in self.partitions}
        for cursor in self._cursors.values():
            cursor.committed_only = isolation == "committed"
        self._next = 0
        self._closed = False
        committed = log.groups.committed(group, topic) if group is not None else {}
        for p, cursor in self._cursors.items():
            if p in committed:
                cursor.seek(max(committed[p], cursor.start_offset()))
            else:
                self._seek_start(cursor, start)

    @staticmethod
    def _seek_start(cursor: PartitionCursor, start: Start) -> None:
        if start == "beginning":
            cursor.seek(cursor.start_offset())
        elif start == "end":
            cursor.seek(cursor.end_offset())
        elif isinstance(start, datetime):
            when = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
            # exact integer ms, rounded up: a float timestamp() * 1000 can land 1 ms early
            cursor.seek_time(-((_EPOCH - when) // _MS))
        elif isinstance(start, Mapping):
            cursor.seek(start.get(cursor.partition, cursor.start_offset()))
        elif isinstance(start, int):
            cursor.seek(start)
        else:
            raise OffsetOutOfRangeError(f"cannot start at {start!r}", topic=cursor.topic)

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def poll(self, timeout: float = 0.0, max_records: int = 10_000) -> list[RecordBatch]:
        """Return new batches (about ``max_records`` at most), waiting up to ``timeout`` seconds
        for the first one. Partitions are served in turn."""
        if self._closed:
            raise LogClosedError("the reader is closed", topic=self.topic)
        deadline = time.monotonic() + timeout
        while True:
            out = self._poll_once(max_records)
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            with self._signal:
                self._signal.wait(min(remaining, TAIL_POLL_S))

    def _poll_once(self, max_records: int) -> list[RecordBatch]:
        out: list[RecordBatch] = []
        got = 0
        parts = self.partitions
        n = len(parts)
        budget = max(64 * 1024, max_records * 64)
        for j in range(n):
            cursor = self._cursors[parts[(self._next + j) % n]]
            batches = cursor.read(budget)
            for b in batches:
                out.append(b)
                got += len(b)
            if got >= max_records:
                self._next = (self._next + j + 1) % n
                break
        else:
            self._next = (self._next + 1) % max(n, 1)
        return out

    def read(self) -> Iterator[Record]:
        """Yield every record available now, then stop."""
        while batches := self.poll():
            for batch in batches:
                yield from batch.records()

    def follow(self, timeout: float | None = None) -> Iterator[Record]:
        """Yield records as they arrive; stop after ``timeout`` seconds with nothing new
        (never, if ``timeout`` is None)."""
        while True:
            batches = self.poll(timeout=0.1 if timeout is None else timeout)
            if not batches and timeout is not None:
                return
            for batch in batches:
                yield from batch.records()

    def positions(self) -> dict[int, int]:
        """The next offset this reader will return, per partition."""
        return {p: c.next_offset for p, c in self._cursors.items()}

    def end_offsets(self) -> dict[int, int]:
        """The end of what this reader can read now, per partition: the next offset to be
        written, or the committed mark for a committed reader of a transactional topic."""
        out = {}
        for p, c in self._cursors.items():
            end = c.end_offset()
            limit = c.committed_limit()
            out[p] = end if limit is None else min(end, limit)
        return out

    def seek(self, partition: int, offset: int) -> None:
        self._cursors[partition].seek(offset)

    def lag(self) -> dict[int, int]:
        """Records written but not yet read, per partition."""
        ends = self.end_offsets()
        return {p: max(0, ends[p] - c.next_offset) for p, c in self._cursors.items()}

    def commit(self, offsets: Mapping[int, int] | None = None) -> None:
        """Store this reader's positions (or ``offsets``) as the group's committed offsets."""
        if self.group is None:
            raise LogClosedError("commit needs a reader opened with group=", topic=self.topic)
        self.log.groups.commit(self.group, self.topic, offsets or self.positions())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for cursor in self._cursors.values():
                cursor.close()
