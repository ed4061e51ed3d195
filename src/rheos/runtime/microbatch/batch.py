"""A batch of events between two steps: columnar when it can be, rows when it must.

A :class:`Batch` holds ``n`` events with their event times (``ts``), their keys (``keys``,
``None`` for an unkeyed stream) and their *positions* (``pos``). The values are either a Polars
``DataFrame`` with one row per dict event (``frame``) or a Python list (``rows``), converted
lazily and only when the conversion is exact:

* rows -> frame (:func:`rows_to_frame`): every event a dict with the same keys in the same
  order, each field of one scalar type (``int``, ``float``, ``str``, ``bool``; ``None``
  allowed) -- otherwise the batch stays rows and the next step runs per row (the slow path);
* frame -> rows: ``DataFrame.to_dicts()``.

A batch of fewer than :data:`ROWS_BELOW` events that is rows is not converted: small rounds
(small batch sizes, or a trickle of events) run per event, through the same code as a step's
slow path, so their cost is close to stream-first mode's.

Positions order the items of one *round* (one source batch through the graph) the way the
stream-first runtime would have produced them: the event ``i`` of the round and everything a
stateless step derives from it has position ``3 * i + 2``; rows a stateful step emits when the
watermark rises just before event ``i`` have position ``3 * i`` (``3 * n`` at the round's end).
Merging inputs (``union``, joins) sorts by position, stably.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import numpy as np
import polars as pl

_SCALARS = (int, float, str, bool)

ROWS_BELOW = 48
"""Batches of fewer events stay rows and run per event: below this, the fixed cost of a
Polars call (tens of microseconds) is more than running the step on each event in Python."""
_INT64 = (-(2**63), 2**63 - 1)


class Batch:
    """Events with times, keys and positions (see the module docs)."""

    __slots__ = ("_rows", "_rows_only", "frame", "keys", "pos", "ts")

    def __init__(
        self,
        pos: np.ndarray,
        ts: np.ndarray,
        *,
        frame: pl.DataFrame | None = None,
        rows: list[Any] | None = None,
        keys: pl.Series | list[Any] | None = None,
    ) -> None:
        self.pos = pos
        self.ts = ts
        self.frame = frame
        self._rows = rows
        self.keys = keys
        self._rows_only = False
        """Whether the rows were found not to make a frame (not tried again)."""

    def __len__(self) -> int:
        return len(self.pos)

    @property
    def rows(self) -> list[Any]:
        """The events as Python values (dicts from a frame)."""
        if self._rows is None:
            assert self.frame is not None
            self._rows = self.frame.to_dicts()
        return self._rows

    @property
    def held_rows(self) -> list[Any] | None:
        """The events as Python values if the batch holds them so (no conversion), else None."""
        return self._rows

    def value(self, i: int) -> Any:
        """Event ``i`` as a Python value, without converting the whole batch."""
        if self._rows is None:
            assert self.frame is not None
            return self.frame.row(i, named=True)
        return self._rows[i]

    def key_list(self) -> list[Any]:
        """The keys as a Python list (``None`` for each event of an unkeyed stream)."""
        if self.keys is None:
            return [None] * len(self)
        if isinstance(self.keys, pl.Series):
            return self.keys.to_list()
        return self.keys

    def row(self, i: int) -> tuple[Any, Any, int]:
        """``(key, value, timestamp)`` of event ``i`` (for error handling: not a fast path)."""
        key = None if self.keys is None else self.keys[i]
        return key, self.rows[i], int(self.ts[i])

    def columnar(self) -> pl.DataFrame | None:
        """The events as a frame, converting rows if that is exact (and there are at least
        :data:`ROWS_BELOW` of them); else ``None``."""
        rows = self._rows
        if (
            self.frame is None
            and rows is not None
            and not self._rows_only
            and len(rows) >= ROWS_BELOW
        ):
            self.frame = rows_to_frame(rows)
            self._rows_only = self.frame is None
        return self.frame

    def columns(self, names: frozenset[str] | None) -> pl.DataFrame | None:
        """A frame with at least the fields ``names`` (None: all) of every event: the whole
        frame when there is one (see :meth:`columnar`), else, from rows that do not make one
        (a nested value or a ``null`` in another field), a frame of those fields alone."""
        frame = self.columnar()
        if frame is not None or names is None or self._rows is None:
            return frame
        if len(self._rows) < ROWS_BELOW:
            return None
        return rows_to_frame(self._rows, names)

    def take(self, mask: np.ndarray) -> Batch:
        """The events where ``mask`` (a bool array) is true."""
        keys: Any = self.keys
        if isinstance(keys, pl.Series):
            keys = keys.filter(pl.Series(mask))
        elif keys is not None:
            keys = [k for k, m in zip(keys, mask.tolist(), strict=True) if m]
        frame = None if self.frame is None else self.frame.filter(pl.Series(mask))
        rows = None
        if self._rows is not None:
            rows = [r for r, m in zip(self._rows, mask.tolist(), strict=True) if m]
        taken = Batch(self.pos[mask], self.ts[mask], frame=frame, rows=rows, keys=keys)
        taken._rows_only = self._rows_only  # (fewer rows of the same kind)
        return taken

    def with_values(
        self,
        *,
        frame: pl.DataFrame | None = None,
        rows: list[Any] | None = None,
        keys: Any = ...,
        pos: np.ndarray | None = None,
        ts: np.ndarray | None = None,
    ) -> Batch:
        """A batch with new values (and optionally keys, positions and times)."""
        return Batch(
            self.pos if pos is None else pos,
            self.ts if ts is None else ts,
            frame=frame,
            rows=rows,
            keys=self.keys if keys is ... else keys,
        )


def empty() -> Batch:
    """A batch of no events."""
    return Batch(np.empty(0, np.int64), np.empty(0, np.int64), rows=[])


def rows_to_frame(rows: list[Any], only: frozenset[str] | None = None) -> pl.DataFrame | None:
    """A frame of ``rows`` if the conversion is exact (see the module docs), else ``None``;
    with ``only``, a frame of those fields alone (every row must have them).

    Checked and built column by column (C loops over the rows: ``map``, ``itemgetter``),
    not row by row, and given up at the first column that does not fit."""
    if not rows:
        return None
    first = rows[0]
    if type(first) is not dict or not first:
        return None
    if set(map(type, rows)) != {dict}:
        return None
    if only is None:
        names = tuple(first)
        if not all(map(names.__eq__, map(tuple, rows))):  # the same fields, in the same order
            return None
    else:
        names = tuple(name for name in first if name in only)
        if len(names) != len(only):
            return None
    series = []
    for name in names:
        try:
            column = list(map(itemgetter(name), rows))
        except KeyError:
            return None
        seen = set(map(type, column))
        seen.discard(type(None))
        if len(seen) > 1 or (seen and next(iter(seen)) not in _SCALARS):
            return None
        kind = next(iter(seen)) if seen else None
        if kind is int and not _fits_int64(column):
            return None
        dtype = {int: pl.Int64, float: pl.Float64, str: pl.String, bool: pl.Boolean}.get(
            kind,  # type: ignore[arg-type]
            pl.Null,
        )
        try:
            series.append(pl.Series(name, column, dtype=dtype))
        except Exception:
            return None
    return pl.DataFrame(series)


def _fits_int64(column: list[Any]) -> bool:
    lo, hi = _INT64
    values = [v for v in column if v is not None]
    return not values or (min(values) >= lo and max(values) <= hi)


def key_series(keys: list[Any]) -> pl.Series | None:
    """Keys as a Series when that is exact (one scalar type, no ``None``), else ``None``."""
    kinds = set(map(type, keys))
    if kinds == {type(None)}:
        return pl.Series("__key", keys, dtype=pl.Null)
    if len(kinds) != 1:
        return None
    kind = next(iter(kinds))
    if kind not in _SCALARS:
        return None
    if kind is int and keys and (min(keys) < _INT64[0] or max(keys) > _INT64[1]):
        return None
    return pl.Series("__key", keys)


def merge_by_pos(parts: list[Batch]) -> Batch:
    """Concatenate batches and order them by position (stable: earlier parts first on ties)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty()
    if len(parts) == 1:
        return parts[0]
    pos = np.concatenate([p.pos for p in parts])
    order = np.argsort(pos, kind="stable")
    ts = np.concatenate([p.ts for p in parts])[order]
    rows = [r for p in parts for r in p.rows]
    keys = [k for p in parts for k in p.key_list()]
    idx = order.tolist()
    any_keys = any(p.keys is not None for p in parts)
    return Batch(
        pos[order],
        ts,
        rows=[rows[i] for i in idx],
        keys=[keys[i] for i in idx] if any_keys else None,
    )


__all__ = ["Batch", "empty", "key_series", "merge_by_pos", "rows_to_frame"]
