"""Containers the window operator keeps its session heaps and changed keys in: in memory by
default, or disk-backed ones with the same methods (:mod:`rheos.state.disk`)."""

from __future__ import annotations

from collections.abc import Hashable
from heapq import heappop, heappush
from typing import Any, Protocol


class SessionHeap(Protocol):
    """A min-heap of tuples whose last item is a key and whose other items (integers) are
    unique: a session's ``(end, start, creation seq, n, key)``, a finalized session's
    ``(forget at, n, key)``."""

    def push(self, item: tuple[Any, ...]) -> None: ...

    def peek(self) -> tuple[Any, ...] | None: ...

    def pop(self) -> tuple[Any, ...]: ...

    def clear(self) -> None: ...


class ListHeap:
    """A :class:`SessionHeap` in memory (a list and :mod:`heapq`)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []

    def push(self, item: tuple[Any, ...]) -> None:
        heappush(self.items, item)

    def peek(self) -> tuple[Any, ...] | None:
        return self.items[0] if self.items else None

    def pop(self) -> tuple[Any, ...]:
        return heappop(self.items)

    def clear(self) -> None:
        self.items.clear()


class NoChanges(set[Hashable]):
    """A set of changed keys that stays empty: for state kept in a disk-backed store,
    which writes what changed itself."""

    def add(self, key: Hashable) -> None:
        return None


__all__ = ["ListHeap", "NoChanges", "SessionHeap"]
