"""A sink that receives Polars frames: whole batches in micro-batch mode, without turning the
events into dicts (in stream-first mode, the events buffered since the last flush)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from rheos.connectors.base import OpenContext


class FrameSink:
    """Calls ``fn(frame)`` with each batch of results; build with :func:`frame_sink`."""

    def __init__(self, fn: Callable[[pl.DataFrame], Any]) -> None:
        self.fn = fn

    def open(self, ctx: OpenContext) -> FrameWriter:
        return FrameWriter(self.fn)

    def __repr__(self) -> str:
        return f"frame_sink({getattr(self.fn, '__qualname__', self.fn)!r})"


class FrameWriter:
    """An open :class:`FrameSink`."""

    def __init__(self, fn: Callable[[pl.DataFrame], Any]) -> None:
        self.fn = fn
        self._rows: list[Any] = []

    def write(self, value: Any, timestamp: int) -> None:
        self._rows.append(value)

    def write_frame(self, frame: pl.DataFrame, timestamps: np.ndarray) -> None:
        self.flush()
        self.fn(frame)

    def flush(self) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            self.fn(pl.DataFrame(rows))

    def close(self) -> None:
        self.flush()


def frame_sink(fn: Callable[[pl.DataFrame], Any]) -> FrameSink:
    """A sink that hands results to ``fn`` as Polars frames.

    >>> frames = []
    >>> writer = frame_sink(frames.append).open(None)  # type: ignore[arg-type]
    >>> writer.write({"x": 1}, 0); writer.close()
    >>> frames[0].to_dicts()
    [{'x': 1}]
    """
    return FrameSink(fn)


__all__ = ["FrameSink", "FrameWriter", "frame_sink"]
