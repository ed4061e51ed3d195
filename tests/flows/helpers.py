"""Small helpers shared by the flow tests."""

from __future__ import annotations

from typing import Any

from ._rh import rh


def ev(key: Any, t: int, v: int = 1) -> dict[str, Any]:
    """An event: key ``k``, event time ``t`` (ms), value ``v``."""
    return {"k": key, "t": t, "v": v}


def rows(out: list[dict[str, Any]], *fields: str) -> list[tuple[Any, ...]]:
    """``(key, window_start, window_end, *fields)`` of each result row."""
    return [(r["key"], r["window_start"], r["window_end"], *(r[f] for f in fields)) for r in out]


def windowed(
    events: list[dict[str, Any]],
    spec: Any,
    *,
    bound: str | int = 0,
    lateness: str | int = 0,
    emit: str = "final",
    keyed: bool = True,
    bounded: bool = False,
    batch_size: int = 1024,
    **aggs: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    """Run one window over ``events``; return (results, late records, summary)."""
    flow = rh.Flow("w")
    out: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    s = flow.source(
        rh.iterable_source(events, batch_size=batch_size),
        timestamp="t",
        timestamp_unit="ms",
        out_of_orderness=bound,
    )
    stream = s.key_by("k") if keyed else s
    w = stream.window(spec, allowed_lateness=lateness, emit=emit)
    w.aggregate(**(aggs or {"n": rh.count(), "total": rh.sum("v")})).sink(rh.list_sink(out))
    w.late().sink(rh.list_sink(late))
    summary = flow.run(bounded=bounded)
    return out, late, summary
