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
from rheos.connectors.log import LogSink
from rheos.errors import FlowDefinitionError, RheosError
from rheos.flows.steps import (
    LATE,
    OUT,
    Graph,
    JoinStep,
    KeyByStep,
    Port,
    ProcessStep,
    SinkStep,
    SourceStep,
    Step,
    TransformStep,
    UnionStep,
    WindowStep,
)
from rheos.runtime.compile import BAD_EVENT_ERRORS, Compiled, _SinkCounter, hold_back
from rheos.runtime.deadletters import IN_SUMMARY
from rheos.runtime.microbatch.batch import Batch, merge_by_pos
from rheos.runtime.microbatch.stateful import Collector, Driver, Round, make_driver
from rheos.runtime.microbatch.stateless import OnBad, Row, run_key_by, run_transform
from rheos.runtime.nodes import (
    JoinNode,
    LateRouter,
    ProcessNode,
    WindowNode,
    output_context,
    where,
)
from rheos.runtime.summary import StepStats


class Plan:
    """A flow ready to run batch by batch (see the module docs)."""

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
        self.sinks: dict[int, tuple[SinkWriter, _SinkCounter]] = {}
        self._late_topic = default_late_topic
        self._late_writer: SinkWriter | None = None
        self.on_bad: OnBad | None = None
        """Where events that fail in a per-event step go (the runner's bad-event policy)."""
        holds = hold_back(graph)
        flow = graph.name
        for step in graph.steps:
            if isinstance(step, SinkStep):
                writer = step.sink.open(ctx)
                counter = _SinkCounter(step.name)
                self.compiled.writers.append(writer)
                self.compiled.named_writers[step.name] = writer
                self.compiled.sink_counters.append(counter)
                self.sinks[step.id] = (writer, counter)
                continue
            if not isinstance(step, WindowStep | ProcessStep | JoinStep):
                continue
            out = self._collector((step.id, OUT))
            node: WindowNode | ProcessNode | JoinNode
            if isinstance(step, WindowStep):
                late = self._collector((step.id, LATE))
                router = LateRouter(flow, step, late, StepStats(step.name, step.kind))
                node = WindowNode(flow, step, out, router, holds[step.id], now)
                node.stats.kind = "window"
            elif isinstance(step, ProcessStep):
                node = ProcessNode(flow, step, out, holds[step.id])
            else:
                late = self._collector((step.id, LATE))
                router = LateRouter(flow, step, late, StepStats(step.name, step.kind))
                node = JoinNode(flow, step, out, router, holds[step.id])
            node.flow_watermark = self._flow_watermark
            self.compiled.wire(node)
            self.compiled.nodes.append(node)
            self.drivers[step.id] = make_driver(node, self.cur)

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
        memory = self.compiled.late_memory
        if self._late_topic is None:
            memory.extend(batch.rows)
            return
        if len(memory) < IN_SUMMARY:
            memory.extend(batch.rows[: IN_SUMMARY - len(memory)])
        if self._late_writer is None:
            self._late_writer = LogSink(self._late_topic).open(self.ctx)
            self.compiled.writers.append(self._late_writer)
            self.compiled.named_writers[self._late_topic] = self._late_writer
            if self.compiled.on_open is not None:
                self.compiled.on_open(self._late_topic, self._late_writer)
        for value, ts in zip(batch.rows, batch.ts.tolist(), strict=True):
            self._late_writer.write(value, ts)


__all__ = ["Plan"]
