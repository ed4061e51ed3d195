"""Stateless steps on whole batches: ``filter``, ``map``/``with_columns``, ``flat_map``,
``inspect`` and ``key_by``.

Expressions (:mod:`rheos.flows.expressions`) run columnar on the batch's frame. Plain Python
functions run per event (the slow path) -- a ``filter`` with a function still keeps the batch
columnar (only the mask is computed per event). When a columnar evaluation fails (a missing
column, a type Polars rejects), the step runs per event instead, so errors name the event and
the user function exactly as in stream-first mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from rheos.errors import EventError
from rheos.flows.expressions import Expr, WithColumns
from rheos.flows.steps import KeyByStep, TransformStep
from rheos.runtime.microbatch.batch import Batch
from rheos.runtime.nodes import user_error, where


def _columnar(batch: Batch, exprs: list[Any]) -> pl.DataFrame | None:
    """``batch.frame.select(exprs)``, or None when the batch is not columnar or it fails."""
    frame = batch.columnar()
    if frame is None:
        return None
    try:
        return frame.select(exprs)
    except Exception:
        return None


def run_transform(flow: str, step: TransformStep, batch: Batch) -> Batch:
    """Apply a ``map``/``filter``/``flat_map``/``inspect`` step to ``batch``."""
    if not len(batch):
        return batch
    fn = step.fn
    kind = step.transform
    if kind == "filter":
        return batch.take(_mask(flow, step, batch))
    if kind == "map":
        if isinstance(fn, WithColumns) and batch.columnar() is not None:
            try:
                assert batch.frame is not None
                return batch.with_values(frame=batch.frame.with_columns(fn.polars()))
            except Exception:
                pass
        if isinstance(fn, Expr):
            out = _columnar(batch, [fn.to_polars()])
            if out is not None:
                return batch.with_values(rows=out.to_series().to_list())
        return batch.with_values(rows=_per_row(flow, step, fn, batch.rows))
    if kind == "inspect":
        _per_row(flow, step, fn, batch.rows)
        return batch
    # flat_map
    counts: list[int] = []
    items: list[Any] = []
    for value in batch.rows:
        try:
            produced = list(fn(value))
        except Exception as exc:
            raise user_error(flow, step, fn, exc) from exc
        counts.append(len(produced))
        items.extend(produced)
    repeat = np.asarray(counts, dtype=np.int64)
    keys: Any = batch.keys
    if keys is not None:
        keys = [k for k, c in zip(batch.key_list(), counts, strict=True) for _ in range(c)]
    return Batch(np.repeat(batch.pos, repeat), np.repeat(batch.ts, repeat), rows=items, keys=keys)


def _mask(flow: str, step: TransformStep, batch: Batch) -> np.ndarray:
    fn = step.fn
    if isinstance(fn, Expr):
        out = _columnar(batch, [fn.to_polars()])
        if out is not None:
            series = out.to_series()
            if series.dtype == pl.Boolean:
                return series.fill_null(False).to_numpy().astype(bool)
    flags = _per_row(flow, step, fn, batch.rows)
    return np.fromiter((bool(f) for f in flags), dtype=bool, count=len(flags))


def _per_row(flow: str, step: Any, fn: Any, rows: list[Any]) -> list[Any]:
    try:
        return [fn(v) for v in rows]
    except Exception:
        pass
    out = []
    for v in rows:  # again, one by one, to raise the error of the first failing event
        try:
            out.append(fn(v))
        except Exception as exc:
            raise user_error(flow, step, fn, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover - a function that failed once


def run_key_by(flow: str, step: KeyByStep, batch: Batch) -> Batch:
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
            for v in batch.rows:
                try:
                    v[key]
                except (KeyError, TypeError, IndexError):
                    text = repr(v)
                    text = text if len(text) <= 80 else text[:77] + "..."
                    raise EventError(
                        f"{where(flow, step)}: the event has no key field {key!r}: {text}"
                    ) from None
            raise
        return _keyed(batch, keys)
    if isinstance(key, Expr):
        out = _columnar(batch, [key.to_polars()])
        if out is not None:
            return _keyed(batch, out.to_series())
    return _keyed(batch, _per_row(flow, step, key, batch.rows))


def _keyed(batch: Batch, keys: Any) -> Batch:
    return Batch(batch.pos, batch.ts, frame=batch.frame, rows=batch._rows, keys=keys)


__all__ = ["run_key_by", "run_transform"]
