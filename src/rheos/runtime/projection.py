"""Which fields of a source's events a flow reads: decode only those.

A JSON record is mostly decoded into objects nobody reads when a flow aggregates a few fields
of wide events. When every step that sees a source's events reads named fields only --
filters and keys by field or expression, ``with_columns``, windows aggregating fields or
expressions (or counting) -- the runtime asks the reader for those fields alone
(:class:`~rheos.connectors.base.ProjectingReader`): the same values, without the rest.

Nothing else sees the events: a sink, a user's function (``map``, ``process``, a key or
filter function), a join or a union of them would see the whole event, so any such step
turns this off (:func:`fields_read` gives ``None``). What still needs the whole event gets
it from the record: a dead letter keeps the record bytes, and a late event is decoded
whole again before it is written, with what ``with_columns`` added or replaced on top
(:func:`whole`, :meth:`~rheos.runtime.nodes.LateRouter.whole`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rheos.connectors.base import ProjectingReader
from rheos.flows.expressions import Expr, WithColumns
from rheos.flows.steps import (
    LATE,
    OUT,
    Graph,
    KeyByStep,
    SourceStep,
    Step,
    TransformStep,
    WindowStep,
)
from rheos.runtime.nodes import WindowNode
from rheos.windowing.aggregations import BoundAggregation


def fields_read(graph: Graph, source: SourceStep) -> frozenset[str] | None:
    """The fields of ``source``'s events that the steps after it read, or ``None`` when
    some step sees whole events (see the module docs)."""
    fields: set[str] = set()
    if isinstance(source.timestamp, str):
        fields.add(source.timestamp)
    elif source.timestamp is not None:
        return None  # a function of the event
    consumers = graph.consumers()
    for step in _after(graph, source):
        read = _reads(step)
        if read is None or consumers.get((step.id, LATE)):
            return None  # (a late stream: its events reach the user whole)
        fields |= read
    return frozenset(fields)


def project_source(
    graph: Graph,
    step: SourceStep,
    reader: Any,
    nodes: Sequence[Any],
    whole_event: Callable[[Any], Any],
) -> bool:
    """Have ``reader`` decode only the fields the flow reads of ``step``'s events, where
    it can; then the windows after it write their late events whole, by ``whole_event``
    (the executor's: it knows the record behind the event being pushed). Whether it does."""
    fields = fields_read(graph, step)
    if fields is None or not isinstance(reader, ProjectingReader) or not reader.project(fields):
        return False
    after = {s.id for s in _after(graph, step)}
    for node in nodes:
        if isinstance(node, WindowNode) and node.step.id in after:
            node.late_router.whole = whole_event
    return True


def whole(record: Any, event: Any) -> Any:
    """The event ``record`` (decoded whole) became, where ``event`` is what the projected
    record became by the same steps: its fields, with those of ``event`` over them (a
    ``with_columns`` adds at the end and replaces in place, as on the whole event)."""
    if type(record) is not dict or type(event) is not dict:
        return event
    record.update(event)
    return record


def _after(graph: Graph, source: SourceStep) -> Iterator[Step]:
    """The steps that see ``source``'s events, each once: those reading it, those reading
    them... up to the windows (a window's rows are its own)."""
    consumers = graph.consumers()
    seen: set[int] = set()
    ports = [(source.id, OUT)]
    while ports:
        for step, _ in consumers.get(ports.pop(), []):
            if step.id not in seen:
                seen.add(step.id)
                yield step
                if not isinstance(step, WindowStep):
                    ports.append((step.id, OUT))


def _reads(step: Any) -> frozenset[str] | None:
    if isinstance(step, TransformStep):
        if step.transform == "filter":
            return _columns(step.fn)
        if step.transform == "map" and isinstance(step.fn, WithColumns):
            read: frozenset[str] = frozenset()
            for expr in step.fn.columns.values():
                names = _columns(expr)
                if names is None:
                    return None
                read |= names
            return read
        return None
    if isinstance(step, KeyByStep):
        return frozenset((step.key,)) if isinstance(step.key, str) else _columns(step.key)
    if isinstance(step, WindowStep):
        fields: frozenset[str] = frozenset()
        for agg in step.aggregations.values():
            if not isinstance(agg, BoundAggregation):
                return None
            if not agg.reads_value:
                continue
            names = _columns(agg.field)
            if names is None:
                return None
            fields |= names
        return fields
    return None


def _columns(fn: Any) -> frozenset[str] | None:
    if isinstance(fn, str):
        return frozenset((fn,))
    return fn.columns() if isinstance(fn, Expr) else None


__all__ = ["fields_read", "project_source", "whole"]
