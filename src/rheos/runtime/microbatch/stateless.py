"""Stateless steps on whole batches: ``filter``, ``map``/``with_columns``, ``flat_map``,
``inspect`` and ``key_by``.

Expressions (:mod:`rheos.flows.expressions`) run columnar on the batch's frame. Plain Python
functions run per event (the slow path) -- a ``filter`` with a function still keeps the batch
columnar (only the mask is computed per event). When a columnar evaluation fails (a missing
column, a type Polars rejects), the step runs per event instead, so errors name the event and
the user function exactly as in stream-first mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from rheos.errors import EventError
from rheos.flows.expressions import Expr, WithColumns
from rheos.flows.steps import KeyByStep, TransformStep
from rheos.runtime.compile import BAD_EVENT_ERRORS
from rheos.runtime.microbatch.batch import Batch
from rheos.runtime.nodes import user_error, where

Row = tuple[Any, Any, int]
"""``(key, value, timestamp)`` of one event or output in a batch."""
OnBad = Callable[[Any, int, Exception, Row], None]
"""``on_bad(step, pos, error, row)``: ``row``, at position ``pos``, failed in ``step`` (a bad
event, or an output of a stateful step: the step's ``on_error`` policy applies; it raises
with ``"fail"``)."""


def _columnar(batch: Batch, expr: Expr) -> pl.DataFrame | None:
    """``batch.frame.select(expr)``, or None when the batch is not columnar or it fails (the
    fields ``expr`` reads are enough: :meth:`Batch.columns`)."""
    frame = batch.columns(expr.columns())
    if frame is None:
        return None
    try:
        return frame.select(expr.to_polars())
    except Exception:
        return None


def run_transform(
    flow: str, step: TransformStep, batch: Batch, on_bad: OnBad | None = None
) -> Batch:
    """Apply a ``map``/``filter``/``flat_map``/``inspect`` step to ``batch``.

    An event whose function raises is given to ``on_bad`` and left out; the rest of the batch
    goes on (without ``on_bad`` the error is raised).
    """
    if not len(batch):
        return batch
    fn = step.fn
    kind = step.transform
    if kind == "filter":
        return batch.take(_mask(flow, step, batch, on_bad))
    if kind == "map":
        if isinstance(fn, WithColumns) and batch.columnar() is not None:
            try:
                assert batch.frame is not None
                return batch.with_values(frame=batch.frame.with_columns(fn.polars()))
            except Exception:
                pass
        elif isinstance(fn, WithColumns):
            added = _added_to_rows(batch, fn)
            if added is not None:
                return batch.with_values(rows=added)
        if isinstance(fn, Expr):
            out = _columnar(batch, fn)
            if out is not None:
                return batch.with_values(rows=out.to_series().to_list())
        rows, ok = _per_row(flow, step, fn, batch, on_bad)
        mapped = batch.with_values(rows=rows)
        return mapped if ok is None else mapped.take(ok)
    if kind == "inspect":
        _, ok = _per_row(flow, step, fn, batch, on_bad)
        return batch if ok is None else batch.take(ok)
    # flat_map
    counts: list[int] = []
    items: list[Any] = []
    pos = batch.pos.tolist()
    for i, value in enumerate(batch.rows):
        try:
            produced = list(fn(value))
        except Exception as exc:
            _failed(flow, step, fn, exc, on_bad, pos[i], batch.row(i))
            produced = []
        counts.append(len(produced))
        items.extend(produced)
    repeat = np.asarray(counts, dtype=np.int64)
    keys: Any = batch.keys
    if keys is not None:
        keys = [k for k, c in zip(batch.key_list(), counts, strict=True) for _ in range(c)]
    return Batch(np.repeat(batch.pos, repeat), np.repeat(batch.ts, repeat), rows=items, keys=keys)


def _added_to_rows(batch: Batch, fn: WithColumns) -> list[Any] | None:
    """``fn`` on rows that make no frame (a nested value or a ``null`` in a field it does not
    read): its columns computed from a frame of the fields it reads, then added to a copy of
    each row, as ``fn`` adds them; None where that frame cannot be made or a column fails."""
    read: frozenset[str] = frozenset()
    for expr in fn.columns.values():
        fields = expr.columns()
        if fields is None:
            return None
        read |= fields
    if not read:
        return None
    frame = batch.columns(read)
    if frame is None:
        return None
    try:
        added = frame.select(fn.polars())
    except Exception:
        return None
    names = added.columns
    out = []
    for row, values in zip(batch.rows, added.iter_rows(), strict=True):
        new = dict(row)
        new.update(zip(names, values, strict=True))
        out.append(new)
    return out


def _mask(flow: str, step: TransformStep, batch: Batch, on_bad: OnBad | None) -> np.ndarray:
    fn = step.fn
    if isinstance(fn, Expr):
        out = _columnar(batch, fn)
        if out is not None:
            series = out.to_series()
            if series.dtype == pl.Boolean:
                return series.fill_null(False).to_numpy().astype(bool)
    flags, ok = _per_row(flow, step, fn, batch, on_bad)
    mask = np.fromiter((bool(f) for f in flags), dtype=bool, count=len(flags))
    return mask if ok is None else mask & ok


def _per_row(
    flow: str, step: Any, fn: Any, batch: Batch, on_bad: OnBad | None
) -> tuple[list[Any], np.ndarray | None]:
    """``fn`` on every event, and None -- or, when it raised for some events, a mask of the
    events where it did not (those got ``on_bad`` and a ``None`` result)."""
    rows = batch.rows
    try:
        return [fn(v) for v in rows], None
    except Exception:
        pass
    out: list[Any] = []
    ok = np.ones(len(rows), dtype=bool)
    pos = batch.pos.tolist()
    for i, v in enumerate(rows):  # again, one by one, to find the failing events
        try:
            out.append(fn(v))
        except Exception as exc:
            _failed(flow, step, fn, exc, on_bad, pos[i], batch.row(i))
            out.append(None)
            ok[i] = False
    return out, ok


def _failed(
    flow: str, step: Any, fn: Any, exc: Exception, on_bad: OnBad | None, pos: int, row: Row
) -> None:
    """``fn`` raised ``exc`` for ``row`` at ``pos``: a bad event for ``on_bad`` (raised
    without one, or when it is not an event's fault)."""
    err = user_error(flow, step, fn, exc)
    if on_bad is None or not isinstance(err, BAD_EVENT_ERRORS):
        raise err from exc
    err.__cause__ = exc
    on_bad(step, pos, err, row)


def run_key_by(flow: str, step: KeyByStep, batch: Batch, on_bad: OnBad | None = None) -> Batch:
    """Attach keys: a field or an expression (columnar) or a function (per event)."""
    if not len(batch):
        return batch.with_values(rows=batch.rows, frame=batch.frame, keys=[])
    key = step.key
    if isinstance(key, str):
        frame = batch.columnar()
        if frame is not None and key in frame.columns:
            return _keyed(batch, frame.get_column(key))
        try:
            keys = [v[key] for v in batch.rows]
        except (KeyError, TypeError, IndexError):
            keys = []
            ok = np.ones(len(batch), dtype=bool)
            pos = batch.pos.tolist()
            for i, v in enumerate(batch.rows):
                try:
                    keys.append(v[key])
                except (KeyError, TypeError, IndexError):
                    text = repr(v)
                    text = text if len(text) <= 80 else text[:77] + "..."
                    err = EventError(
                        f"{where(flow, step)}: the event has no key field {key!r}: {text}"
                    )
                    err.step = step.name
                    if on_bad is None:
                        raise err from None
                    on_bad(step, pos[i], err, batch.row(i))
                    keys.append(None)
                    ok[i] = False
            return _keyed(batch, keys).take(ok)
        return _keyed(batch, keys)
    if isinstance(key, Expr):
        out = _columnar(batch, key)
        if out is not None:
            return _keyed(batch, out.to_series())
    values, valid = _per_row(flow, step, key, batch, on_bad)
    keyed = _keyed(batch, values)
    return keyed if valid is None else keyed.take(valid)


def _keyed(batch: Batch, keys: Any) -> Batch:
    return Batch(batch.pos, batch.ts, frame=batch.frame, rows=batch.held_rows, keys=keys)


__all__ = ["run_key_by", "run_transform"]
