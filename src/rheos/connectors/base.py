"""What a source and a sink are to the runtime.

A **source** is a small description object; :meth:`Source.open` returns a
:class:`SourceReader` that hands out :class:`Chunk` objects -- lists of decoded events from one
partition -- until it is exhausted. A **sink** likewise opens a :class:`SinkWriter`.
Opening gets an :class:`OpenContext`: the flow's data directory (and its shared embedded
log), whether the run is bounded, and the flow's clock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from rheos.transport import Log
from rheos.windowing.clock import Clock, SystemClock


@dataclass
class Chunk:
    """Events read together from one partition of a source.

    ``timestamps`` are the records' own times (log records have them) or ``None``;
    ``topic`` and ``offsets`` locate each event for error messages when known.
    """

    partition: int
    values: list[Any]
    timestamps: list[int] | None = None
    topic: str | None = None
    offsets: range | list[int] | None = None

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
    "Sink",
    "SinkWriter",
    "Source",
    "SourceReader",
]
