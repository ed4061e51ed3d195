"""The graph as batch executors: one :class:`Plan` per run, one :meth:`Plan.run_round` per
source batch (or per watermark change without events).

Steps run in topological order; each reads the batches on its input ports (merged by position)
and writes batches to its output ports. Stateless steps: :mod:`.stateless`; stateful steps:
:mod:`.stateful`; sinks write each event (or a whole frame to a writer with ``write_frame``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rheos.connectors.base import OpenContext, SinkWriter
from rheos.errors import FlowDefinitionError, RheosError
from rheos.flows.expressions import Expr, WithColumns
from rheos.flows.steps import (
    LATE,
    OUT,
    Graph,
    KeyByStep,
    Port,
    SinkStep,
    SourceStep,
    Step,
    TransformStep,
    UnionStep,
    WindowStep,
)
from rheos.runtime.build import Compiled, SinkCounter, build
from rheos.runtime.microbatch.batch import Batch, merge_by_pos
from rheos.runtime.microbatch.sources import ColumnarLogReader
from rheos.runtime.microbatch.stateful import Collector, Driver, Round, make_driver, vectorizable
from rheos.runtime.microbatch.stateless import OnBad, Row, run_key_by, run_transform
from rheos.runtime.nodes import (
    BAD_EVENT_ERRORS,
    Node,
    Push,
    WindowNode,
    output_context,
    where,
)


class Plan:
    """A flow ready to run batch by batch (see the module docs).

    The graph is walked by the one plan builder (:mod:`rheos.runtime.build`); the plan is
    this mode's wiring: a stateful node's output ports are collectors, and the other steps run
    whole batches in :meth:`run_round`.
    """

    def __init__(
        self,
        graph: Graph,
        ctx: OpenContext,
        *,
        default_late_topic: str | None,
        now: Callable[[], int],
    ) -> None:
        self.graph = graph
        self.ctx = ctx
        self.compiled = Compiled(graph)
        self.consumers = graph.consumers()
        self.cur = [0]
        """The position being processed (read by collectors and watermark callbacks)."""
        self.round: Round | None = None
        self.drivers: dict[int, Driver] = {}
        self.collectors: dict[Port, Collector] = {}
        self.sinks: dict[int, tuple[SinkWriter, SinkCounter]] = {}
        self._late_default: Push | None = None
        self.on_bad: OnBad | None = None
        """Where events that fail in a per-event step go (the runner's bad-event policy)."""
        build(self.compiled, ctx, self, default_late_topic=default_late_topic, now=now)

    # -- the wiring (see rheos.runtime.build.Wiring) ----------------------------------------------

    def output(self, port: Port) -> Push:
        return self._collector(port)

    def late(self, step: Step, default: Push) -> Push:
        self._late_default = default
        return self._collector((step.id, LATE))

    def sink(self, step: SinkStep, writer: SinkWriter, counter: SinkCounter) -> None:
        self.sinks[step.id] = (writer, counter)

    def node(self, step: Step, node: Node) -> None:
        node.flow_watermark = self._flow_watermark
        self.drivers[step.id] = make_driver(node, self.cur)

    def stateless(self, step: Step) -> None:
        """Sources, transforms, ``key_by`` and unions run in :meth:`run_round`."""

    def _collector(self, port: Port) -> Collector:
        collector = self.collectors[port] = Collector(self.cur)
        return collector

    def _flow_watermark(self) -> int:
        assert self.round is not None
        return self.round.flow_watermark(self.cur[0])

    @property
    def nodes(self) -> list[Any]:
        return self.compiled.nodes

    def processing_nodes(self) -> list[WindowNode]:
        return [n for n in self.nodes if isinstance(n, WindowNode) and n.processing_time]

    # -- running --------------------------------------------------------------------------------
    def run_round(self, sources: dict[int, Batch], rnd: Round) -> None:
        """Push the source batches (possibly none) through every step, advancing the
        stateful steps through the round's watermarks."""
        self.round = rnd
        flow = self.graph.name
        on_bad = None if self.on_bad is None else self._on_bad
        ports: dict[Port, list[Batch]] = {}
        for step in self.graph.steps:
            if isinstance(step, SourceStep):
                batch = sources.get(step.id)
                if batch is not None:
                    ports[(step.id, OUT)] = [batch]
                continue
            inputs = [merge_by_pos(ports.get(port, [])) for port in step.inputs]
            if isinstance(step, TransformStep):
                ports[(step.id, OUT)] = [run_transform(flow, step, inputs[0], on_bad)]
            elif isinstance(step, KeyByStep):
                ports[(step.id, OUT)] = [run_key_by(flow, step, inputs[0], on_bad)]
            elif isinstance(step, UnionStep):
                ports[(step.id, OUT)] = [merge_by_pos(inputs)]
            elif isinstance(step, SinkStep):
                self._sink(step, inputs[0])
            elif step.id in self.drivers:
                driver = self.drivers[step.id]
                driver.on_bad = on_bad
                driver.run(inputs, rnd)
                ports[(step.id, OUT)] = [self.collectors[(step.id, OUT)].take()]
                late = self.collectors.get((step.id, LATE))
                if late is not None:
                    batch = late.take()
                    if self.consumers.get((step.id, LATE)):
                        ports[(step.id, LATE)] = [batch]
                    elif len(batch):
                        self._default_late(batch)
            else:  # pragma: no cover - a new primitive without a runtime
                raise FlowDefinitionError(f"{where(flow, step)}: this runtime cannot run it")

    def _on_bad(self, step: Step, pos: int, exc: Exception, row: Row) -> None:
        """A per-event step failed on ``row`` at ``pos``: a source event (``3 * i + 2``) is
        bad; a row emitted while the watermark rose (``3 * i``: a window's result, a timer's
        output) has no source event: its dead letter holds the output, as in stream-first
        mode."""
        assert self.on_bad is not None
        if pos % 3 == 2:
            self.on_bad(step, pos, exc, row)
            return
        if not isinstance(exc, RheosError):
            raise exc
        key, value, ts = row
        self.compiled.close_failed(step, exc, output_context(key, value), ts)

    def _sink(self, step: Step, batch: Batch) -> None:
        if not len(batch):
            return
        writer, counter = self.sinks[step.id]
        write_frame = getattr(writer, "write_frame", None)
        if write_frame is not None and batch.frame is not None:
            write_frame(batch.frame, batch.ts)
            counter.count += len(batch)
            return
        write, refused = writer.write, 0
        keys = batch.keys if batch.keys is not None else [None] * len(batch)
        for value, ts, key in zip(batch.rows, batch.ts.tolist(), keys, strict=True):
            try:
                write(value, ts)
            except BAD_EVENT_ERRORS as exc:
                assert isinstance(step, SinkStep)
                self.compiled.sink_failed(step, exc, key, value, ts)
                refused += 1
        counter.count += len(batch) - refused

    def _default_late(self, batch: Batch) -> None:
        default = self._late_default
        assert default is not None
        for key, value, ts in zip(batch.key_list(), batch.rows, batch.ts.tolist(), strict=True):
            default(key, value, ts)


def runs_columnar(graph: Graph) -> bool:
    """Whether every step of ``graph`` runs columnar in this mode: JSON log sources (decoded
    in bulk) with a time field, expressions (``filter``/``with_columns`` on columns), keys by
    field or expression, event-time windows with columnar aggregations, unions and sinks --
    no Python function called per event, no ``process`` step, join or session window (those
    run per event in this mode too, where stream-first mode is at least as fast)."""
    for step in graph.steps:
        if isinstance(step, SourceStep):
            if not ColumnarLogReader.accepts(step.source) or not isinstance(step.timestamp, str):
                return False
        elif isinstance(step, TransformStep):
            columnar = (step.transform == "filter" and isinstance(step.fn, Expr)) or (
                step.transform == "map" and isinstance(step.fn, WithColumns)
            )
            if not columnar:
                return False
        elif isinstance(step, KeyByStep):
            if not isinstance(step.key, str | Expr):
                return False
        elif isinstance(step, WindowStep):
            if not vectorizable(step):
                return False
        elif not isinstance(step, UnionStep | SinkStep):
            return False
    return True


__all__ = ["Plan", "runs_columnar"]
