"""What a source and a sink are to the runtime.

A **source** is a small description object; :meth:`Source.open` returns a
:class:`SourceReader` that hands out :class:`Chunk` objects -- lists of decoded events from one
partition -- until it is exhausted. A **sink** likewise opens a :class:`SinkWriter`.
Opening gets an :class:`OpenContext`: the flow's data directory (and its shared embedded
log), whether the run is bounded, and the flow's clock.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rheos.transport import Log
from rheos.windowing.clock import Clock, SystemClock


@dataclass
class Chunk:
    """Events read together from one partition of a source.

    ``timestamps`` are the records' own times (log records have them) or ``None``;
    ``topic`` and ``offsets`` locate each event for error messages when known; ``raw`` are
    the records' original bytes (log sources), for dead letters. ``rejects`` are the records
    of this stretch that could not become events (``(offset, bytes, error)``: undecodable,
    failing the schema, too large): the runtime applies the flow's bad-event policy to them.
    ``append_time`` is when the records were appended to the log (wall clock, epoch ms; log
    sources only): live metrics measure end-to-end latency from it. ``times_of`` names the
    event-time field when ``values`` hold only that field's values (a bounded run's first
    read, :meth:`RawReader.times_only`).
    """

    partition: int
    values: list[Any]
    timestamps: list[int] | None = None
    topic: str | None = None
    offsets: range | list[int] | None = None
    raw: Sequence[bytes] | None = None
    rejects: list[tuple[int | None, bytes, Exception]] | None = None
    append_time: int | None = None
    times_of: str | None = None
    """Set when :attr:`values` are only each event's value of this field (see
    :meth:`RawReader.times_only`): the events are decoded from :attr:`raw` later."""

    def drop(self, indexes: list[int]) -> None:
        """Remove the events at ``indexes`` (sorted) from every column."""
        gone = set(indexes)
        keep = [i for i in range(len(self.values)) if i not in gone]
        self.values = [self.values[i] for i in keep]
        if self.timestamps is not None:
            self.timestamps = [self.timestamps[i] for i in keep]
        if self.offsets is not None:
            self.offsets = [self.offsets[i] for i in keep]
        if self.raw is not None:
            self.raw = [self.raw[i] for i in keep]

    def where(self, index: int) -> dict[str, Any]:
        """``topic``/``partition``/``offset`` of event ``index`` (for :class:`EventError`)."""
        offset = self.offsets[index] if self.offsets is not None else None
        return {"topic": self.topic, "partition": self.partition, "offset": offset}


@dataclass
class OpenContext:
    """What sources and sinks get when a run opens them."""

    flow: str
    data_dir: str
    bounded: bool = False
    clock: Clock = field(default_factory=SystemClock)
    transactional: bool = False
    """Sinks take part in checkpoints: output becomes visible when a checkpoint commits."""
    epoch: int = 0
    """The flow's replay epoch (log sinks stamp it on every record, see rheos.runtime.replay)."""
    shared: dict[str, Any] = field(default_factory=dict)
    """What the connectors of one run share: Kafka sources list themselves here, and Kafka
    sinks commit their consumer groups' offsets in their transactions."""
    task: int | None = None
    """In a run split into tasks (``workers=N``): the task this run is, 0 to ``tasks - 1``.
    Task ``p`` reads partition ``p`` of every partitioned source and is the only writer of
    partition ``p`` of the topics it writes (see docs/concepts/scale-out.md)."""
    tasks: int = 1
    """How many tasks the flow is split into (1: one run over every partition)."""
    _log: Log | None = None

    @property
    def log(self) -> Log:
        """The flow's embedded log, opened on first use and shared by all connectors."""
        if self._log is None:
            os.makedirs(self.data_dir, exist_ok=True)
            self._log = Log(self.data_dir)
        return self._log

    def close(self) -> None:
        """Close the shared log if it was opened."""
        if self._log is not None:
            close = getattr(self._log, "close", None)
            if close is not None:
                close()
            self._log = None


class SourceReader(Protocol):
    """An open source."""

    partitions: list[int]
    """The partitions this reader reads (declared to the watermark tracker)."""

    def poll(self, timeout: float) -> list[Chunk]:
        """Return the chunks ready now, waiting up to ``timeout`` seconds for some."""
        ...

    @property
    def exhausted(self) -> bool:
        """True once the reader will never return another event."""
        ...

    def commit(self) -> None:
        """Remember the read position (consumer groups); a no-op for most sources."""
        ...

    def close(self) -> None:
        """Release files and readers."""
        ...


@runtime_checkable
class StallingReader(Protocol):
    """A reader that knows when it cannot reach its data (a Kafka consumer whose brokers are
    lost). While it is stalled its silence is not idleness: its partitions do not turn idle
    and its watermark does not follow the clock, so an outage closes no window and events
    delayed by it (a producer's buffer, sent once the brokers are back) are not late."""

    @property
    def stalled(self) -> bool:
        """Whether the reader cannot reach its data now."""
        ...


@runtime_checkable
class SeekableReader(Protocol):
    """A reader whose position can be saved in a checkpoint and restored (log sources)."""

    def positions(self) -> dict[int, int]:
        """The next offset to read, per partition."""
        ...

    def seek(self, positions: dict[int, int]) -> None:
        """Continue from ``positions`` (from :meth:`positions`)."""
        ...


@runtime_checkable
class WatermarkReader(Protocol):
    """A reader that knows its own watermark (a repartition topic's reading end: the lowest
    of its upstream tasks'), instead of the runner deriving one from event times."""

    def watermark(self) -> int:
        """No event read after this call is expected below the returned time (epoch ms)."""
        ...


@runtime_checkable
class ProjectingReader(Protocol):
    """A reader that can decode only some fields of its events (see
    :mod:`rheos.runtime.projection`), its chunks still carrying the record bytes."""

    def project(self, fields: frozenset[str]) -> bool:
        """From now on, decode each event as a dict of only ``fields`` (those it has);
        False (and nothing changes) where this reader cannot. A chunk whose records do
        not all decode that way holds whole events, as before. :meth:`decode` still
        decodes whole events."""
        ...

    def decode(self, value: bytes) -> Any:
        """One record value decoded whole, as without :meth:`project`."""
        ...


@runtime_checkable
class RawReader(Protocol):
    """A reader whose chunks carry each event's record bytes (``Chunk.raw``, log sources)
    and can decode them again: a bounded run holds the bytes, not the events."""

    def decode_all(self, raw: list[bytes]) -> list[Any]:
        """The events of ``raw``, decoded as :meth:`SourceReader.poll` decodes them."""
        ...

    def times_only(self, field: str) -> None:
        """From now on, chunks may hold only the value of ``field`` of each event (their
        :attr:`Chunk.times_of` says so), as long as they carry the record bytes
        (:meth:`decode_all` decodes the whole events later) -- a bounded run reads every
        event for its time first and pushes it later. A chunk whose records do not all
        decode that way holds whole events, as before."""
        ...


@runtime_checkable
class SplittableSource(Protocol):
    """A source outside the embedded log whose topics' partitions can be split into tasks
    (``workers=``): task ``p`` reads partition ``p`` of each of its topics (Kafka sources)."""

    def partition_counts(self, flow: str) -> dict[str, int]:
        """The partition count of each of its topics, asked of the system that keeps them
        (errors name ``flow``)."""
        ...


class Source(Protocol):
    """A source description: ``open`` it to read."""

    def open(self, ctx: OpenContext) -> SourceReader:
        """Start reading."""
        ...


class SinkWriter(Protocol):
    """An open sink."""

    def write(self, value: Any, timestamp: int) -> None:
        """Write one event (``timestamp`` is its event time, epoch ms)."""
        ...

    def flush(self) -> None:
        """Make everything written so far visible downstream."""
        ...

    def close(self) -> None:
        """Flush and release."""
        ...


@runtime_checkable
class TransactionalWriter(Protocol):
    """A sink writer that takes part in checkpoints (exactly-once output).

    The runtime calls, for checkpoint ``id``:

    1. :meth:`prepare` -- make everything written so far durable but not yet visible (or
       return it) and return plain data (msgpack-able) stored *inside* the checkpoint;
    2. the checkpoint commits (one SQLite transaction);
    3. :meth:`commit` -- make it visible. It must be idempotent: after a crash between 2 and
       3, :meth:`recover` repeats it.

    A periodic checkpoint commits in a thread beside the flow, which goes on meanwhile:
    :meth:`write` may be called between :meth:`prepare` and :meth:`commit` of a checkpoint,
    and what it writes then belongs to the next checkpoint, not to this one's commit. The
    next :meth:`prepare` comes only after this one's :meth:`commit` -- unless the checkpoint
    could not be stored (a forked snapshot failed, :mod:`rheos.runtime.snapshot`): then
    :meth:`prepare` comes again, with no :meth:`commit` between, and must cover everything
    since the last commit (what the first one covered too).

    When a run starts, :meth:`recover` gets the restored checkpoint's id and what
    :meth:`prepare` returned for it (``None`` and ``None`` with no checkpoint): discard
    whatever was written after it, and finish its commit if it was not finished.
    """

    def prepare(self, checkpoint: int) -> Any:
        """Flush durably, invisibly; return plain data to keep in the checkpoint."""
        ...

    def commit(self, checkpoint: int) -> None:
        """Make what :meth:`prepare` covered visible (idempotent)."""
        ...

    def recover(self, checkpoint: int | None, prepared: Any) -> None:
        """Go back to the state of ``checkpoint``: drop later output, finish its commit."""
        ...


class Sink(Protocol):
    """A sink description: ``open`` it to write."""

    def open(self, ctx: OpenContext) -> SinkWriter:
        """Start writing."""
        ...


class BaseReader:
    """Defaults for readers: one partition, nothing to commit or close."""

    partitions: list[int] = [0]  # noqa: RUF012 - replaced per instance when it differs
    _done = False

    @property
    def exhausted(self) -> bool:
        return self._done

    def commit(self) -> None:
        return None

    def close(self) -> None:
        return None


class BaseWriter:
    """Defaults for writers: nothing to flush or close."""

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.flush()


__all__ = [
    "BaseReader",
    "BaseWriter",
    "Chunk",
    "OpenContext",
    "ProjectingReader",
    "SeekableReader",
    "Sink",
    "SinkWriter",
    "Source",
    "SourceReader",
    "SplittableSource",
    "StallingReader",
    "TransactionalWriter",
    "WatermarkReader",
]
