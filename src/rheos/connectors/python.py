"""Python-side connectors: an iterable source and list, callback and stdout sinks.

These are the testing helpers of rheos (and handy in notebooks):

>>> import rheos.flows as fl
>>> out = []
>>> flow = fl.Flow("demo")
>>> flow.source(iterable_source([1, 2, 3])).map(lambda x: x * 10).sink(list_sink(out))
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, TextIO

from rheos.connectors.base import BaseReader, BaseWriter, Chunk, OpenContext
from rheos.connectors.codecs import encoder


class IterableSource:
    """Events from a Python iterable, ``batch_size`` at a time (finite if the iterable is)."""

    def __init__(self, items: Iterable[Any], *, batch_size: int = 1024) -> None:
        self.items = items
        self.batch_size = max(1, batch_size)

    def open(self, ctx: OpenContext) -> IterableReader:
        return IterableReader(iter(self.items), self.batch_size)

    def __repr__(self) -> str:
        return f"iterable_source({type(self.items).__name__})"


class IterableReader(BaseReader):
    def __init__(self, it: Iterator[Any], batch_size: int) -> None:
        self._it = it
        self._n = batch_size

    def poll(self, timeout: float) -> list[Chunk]:
        if self._done:
            return []
        values = list(islice(self._it, self._n))
        if len(values) < self._n:
            self._done = True
        if not values:
            return []
        return [Chunk(0, values, None, None, None)]


class ListSink:
    """Appends each event to ``target``."""

    def __init__(self, target: list[Any]) -> None:
        self.target = target

    def open(self, ctx: OpenContext) -> ListWriter:
        return ListWriter(self.target)

    def __repr__(self) -> str:
        return f"ListSink(len={len(self.target)})"


class ListWriter(BaseWriter):
    def __init__(self, target: list[Any]) -> None:
        self._append = target.append

    def write(self, value: Any, timestamp: int) -> None:
        self._append(value)


class CallbackSink:
    """Calls ``fn(event)`` for every event."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def open(self, ctx: OpenContext) -> CallbackWriter:
        return CallbackWriter(self.fn)

    def __repr__(self) -> str:
        return f"callback_sink({getattr(self.fn, '__qualname__', self.fn)})"


class CallbackWriter(BaseWriter):
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self._fn = fn

    def write(self, value: Any, timestamp: int) -> None:
        self._fn(value)


class StdoutSink:
    """Prints each event as one line of JSON (to ``file``, default standard output)."""

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file

    def open(self, ctx: OpenContext) -> StdoutWriter:
        return StdoutWriter(self.file or sys.stdout)

    def __repr__(self) -> str:
        return "stdout_sink()"


class StdoutWriter(BaseWriter):
    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._encode = encoder("json")

    def write(self, value: Any, timestamp: int) -> None:
        self._file.write(self._encode(value).decode() + "\n")

    def flush(self) -> None:
        self._file.flush()


def iterable_source(items: Iterable[Any], *, batch_size: int = 1024) -> IterableSource:
    """A source yielding the items of ``items`` (a list, a generator...)."""
    return IterableSource(items, batch_size=batch_size)


def list_sink(target: list[Any]) -> ListSink:
    """A sink appending every event to ``target``."""
    return ListSink(target)


def callback_sink(fn: Callable[[Any], Any]) -> CallbackSink:
    """A sink calling ``fn(event)`` for every event."""
    return CallbackSink(fn)


def stdout_sink(file: TextIO | None = None) -> StdoutSink:
    """A sink printing each event as a JSON line."""
    return StdoutSink(file)


__all__ = [
    "CallbackSink",
    "IterableSource",
    "ListSink",
    "StdoutSink",
    "callback_sink",
    "iterable_source",
    "list_sink",
    "stdout_sink",
]
