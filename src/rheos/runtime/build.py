"""The plan builder: one walk over a flow's graph for both runtime modes.

:func:`build` opens the sinks, creates the stateful nodes (windows, process steps, joins: the
same :mod:`rheos.runtime.nodes` in both modes), sets up the default late output and collects
it all in a :class:`Compiled`. What a mode makes of the rest is its :class:`Wiring`, the
mode's node factory: where a node's output port goes, what a stateless step or a source
becomes, how a sink is fed --

* stream-first (:mod:`rheos.runtime.compile`): push functions that call each other, fused
  chains of stateless steps, generated loops per source;
* micro-batch (:mod:`rheos.runtime.microbatch.plan`): collectors that gather a node's output
  into a batch, and executors that run each step on whole batches.

Steps are visited from the sinks back to the sources, so that a step's consumers exist when
the step is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from rheos.connectors.base import OpenContext, SinkWriter
from rheos.connectors.log import LogSink
from rheos.errors import FlowDefinitionError, RheosError
from rheos.flows.steps import (
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
from rheos.runtime.deadletters import IN_SUMMARY, DeadLetters
from rheos.runtime.disk_nodes import DiskProcessNode, DiskWindowNode
from rheos.runtime.nodes import (
    BAD_EVENT_ERRORS,
    JoinNode,
    LateRouter,
    Node,
    ProcessNode,
    Push,
    WindowNode,
    output_context,
    where,
)
from rheos.runtime.summary import StepStats
from rheos.state.disk import StateDB

ChunkLoop = Callable[[list[Any], list[int], Any, Any], None]
"""``loop(values, timestamps, source_run, executor)`` (the per-event executor): see
:func:`rheos.runtime.compile.source_loop`."""


class SinkCounter:
    """Counts what reaches a sink (for the run summary and live metrics)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.count = 0


@dataclass
class Compiled:
    """A flow ready to run: source entry points, stateful nodes, open sink writers."""

    graph: Graph
    entries: dict[int, Push] = field(default_factory=dict)
    """Source step id -> the push function of its stream (stream-first)."""
    loops: dict[int, ChunkLoop] = field(default_factory=dict)
    """Source step id -> its generated chunk loop (stream-first, single-partition sources)."""
    ordered_loops: dict[int, ChunkLoop] = field(default_factory=dict)
    """The same loops for events in event-time order (bounded runs; see
    :func:`rheos.runtime.compile.ordered_loop`)."""
    nodes: list[Node] = field(default_factory=list)
    """Stateful nodes in topological order."""
    writers: list[SinkWriter] = field(default_factory=list)
    sink_counters: list[SinkCounter] = field(default_factory=list)
    late_memory: list[Any] = field(default_factory=list)
    named_writers: dict[str, SinkWriter] = field(default_factory=dict)
    """Every open writer by a stable name (sink step name, or the late topic's name)."""
    on_open: Callable[[str, SinkWriter], None] | None = None
    """Called when a writer opens during the run (the late topic's): checkpoint recovery."""
    dead: DeadLetters | None = None
    """The run's bad-event policy and dead-letter writer (see :meth:`dead_letters`)."""
    disk: StateDB | None = None
    """The run's disk state (a flow with ``state="disk"``): committed with each checkpoint."""

    @property
    def events_out(self) -> int:
        return sum(c.count for c in self.sink_counters)

    def dead_letters(self) -> DeadLetters | None:
        """The run's :class:`DeadLetters` (set by the runner once it has opened them)."""
        return self.dead

    def close_failed(self, step: Step, error: RheosError, context: dict[str, Any], ts: int) -> None:
        """User code failed while a node was advanced (a window closing, a timer firing), or
        a step failed on a node's output: the failing step's ``on_error`` policy, with a dead
        letter that has no source event."""
        dead = self.dead_letters()
        if dead is None or not isinstance(error, BAD_EVENT_ERRORS):
            raise error
        failing = error.step or step.name  # a step downstream of the node, or the node
        dead.handle(error, source="", step=failing, event_time=ts, context=context)

    def sink_failed(self, step: SinkStep, error: RheosError, key: Any, value: Any, ts: int) -> None:
        """A sink refused an output (too large for its topic, no key field): the sink step's
        policy, with a dead letter holding the key, the window when the output is a window's
        result, and the output itself (its first characters when it is large)."""
        error = error.located(flow=self.graph.name, step=step.name)
        self.close_failed(step, error, output_context(key, value), ts)

    def wire(self, node: Node) -> None:
        """Send the errors of user code run while ``node`` is advanced to the policy."""
        node.on_close_error = self.close_failed


class Wiring(Protocol):
    """What one runtime mode makes of the steps (see the module docs)."""

    def output(self, port: Port) -> Push:
        """Where a stateful node's output port ``port`` pushes to."""
        ...

    def late(self, step: Step, default: Push) -> Push:
        """Where the late records of ``step`` go; ``default`` is the flow's default late
        output (kept in the summary, written to the late topic if there is one)."""
        ...

    def sink(self, step: SinkStep, writer: SinkWriter, counter: SinkCounter) -> None:
        """Feed ``writer`` (open) with what reaches ``step``; count it in ``counter``."""
        ...

    def node(self, step: Step, node: Node) -> None:
        """Run ``node``, the stateful node of ``step``."""
        ...

    def stateless(self, step: Step) -> None:
        """Run a source, a transform, a ``key_by`` or a union step."""
        ...


def hold_back(graph: Graph) -> dict[int, int]:
    """Per step, the watermark hold: the largest allowed lateness summed along any path in."""
    delay: dict[int, int] = {}
    hold: dict[int, int] = {}
    for step in graph.steps:
        h = max((delay[sid] for sid, _ in step.inputs), default=0)
        hold[step.id] = h
        own = 0
        if (isinstance(step, WindowStep) and step.time == "event") or (
            isinstance(step, JoinStep) and step.mode == "window"
        ):
            own = step.allowed_lateness_ms
        delay[step.id] = h + own
    return hold


def make_node(
    flow: str,
    step: Step,
    out: Push,
    late: Callable[[], Push],
    hold_ms: int,
    now: Callable[[], int],
    disk: StateDB | None = None,
    cache_keys: int = 0,
) -> Node:
    """The stateful node of ``step`` (a window, process or join step), pushing its output to
    ``out`` and its late records to ``late()``; with ``disk``, windows and process steps
    keep their keys there (``cache_keys`` of them in memory)."""
    if isinstance(step, WindowStep):
        router = LateRouter(flow, step, late(), StepStats(step.name, step.kind))
        wnode = (
            WindowNode(flow, step, out, router, hold_ms, now)
            if disk is None
            else DiskWindowNode(flow, step, out, router, hold_ms, now, disk, cache_keys)
        )
        wnode.stats.kind = "window"
        return wnode
    if isinstance(step, ProcessStep):
        if disk is not None:
            return DiskProcessNode(flow, step, out, hold_ms, disk, cache_keys)
        return ProcessNode(flow, step, out, hold_ms)
    assert isinstance(step, JoinStep)
    router = LateRouter(flow, step, late(), StepStats(step.name, step.kind))
    return JoinNode(flow, step, out, router, hold_ms)


def default_late(ctx: OpenContext, topic: str | None, compiled: Compiled) -> Push:
    """The default late output: late records kept for the summary (all of them without a
    late topic; the first :data:`IN_SUMMARY` with one) and written to ``topic``, a log topic
    opened when the first late record comes -- and to the flow's ``late_sink`` (opened with
    the run, so that checkpoints recover it with the other sinks) when it has one."""
    memory = compiled.late_memory
    if topic is None:

        def keep(key: Any, value: Any, ts: int) -> None:
            memory.append(value)

        return keep
    opened: list[Callable[[Any, int], None]] = []
    copy = None
    if compiled.graph.late_sink is not None:  # opened with the run, recovered as a sink
        copy = compiled.graph.late_sink.open(ctx)
        compiled.writers.append(copy)
        compiled.named_writers[f"{topic} (late_sink)"] = copy

    def keep_and_write(key: Any, value: Any, ts: int) -> None:
        if len(memory) < IN_SUMMARY:
            memory.append(value)
        if not opened:
            writer = LogSink(topic).open(ctx)
            compiled.writers.append(writer)
            compiled.named_writers[topic] = writer
            if compiled.on_open is not None:
                compiled.on_open(topic, writer)
            opened.append(writer.write)
        opened[0](value, ts)
        if copy is not None:
            copy.write(value, ts)

    return keep_and_write


def build(
    compiled: Compiled,
    ctx: OpenContext,
    wiring: Wiring,
    *,
    default_late_topic: str | None,
    now: Callable[[], int],
) -> Compiled:
    """Build ``compiled.graph`` into ``compiled`` with ``wiring`` (see the module docs)."""
    graph = compiled.graph
    flow = graph.name
    holds = hold_back(graph)
    late_default = default_late(ctx, default_late_topic, compiled)
    nodes: list[Node] = []
    disk, cache_keys = None, 0
    if graph.state is not None and any(
        isinstance(s, WindowStep | ProcessStep) for s in graph.steps
    ):
        disk = compiled.disk = StateDB.open(ctx.data_dir, flow, ctx.task, durable=ctx.transactional)
        compiled.writers.append(_DiskCloser(disk))
        cache_keys = graph.state.cache_keys
    try:
        for step in reversed(graph.steps):
            if isinstance(step, SinkStep):
                writer = step.sink.open(ctx)
                counter = SinkCounter(step.name)
                compiled.writers.append(writer)
                compiled.named_writers[step.name] = writer
                compiled.sink_counters.append(counter)
                wiring.sink(step, writer, counter)
            elif isinstance(step, WindowStep | ProcessStep | JoinStep):
                node = make_node(
                    flow,
                    step,
                    wiring.output((step.id, OUT)),
                    partial(wiring.late, step, late_default),
                    holds[step.id],
                    now,
                    disk,
                    cache_keys,
                )
                nodes.append(node)
                wiring.node(step, node)
            elif isinstance(step, SourceStep | TransformStep | KeyByStep | UnionStep):
                wiring.stateless(step)
            else:  # pragma: no cover - a new primitive without a runtime
                raise FlowDefinitionError(f"{where(flow, step)}: this runtime cannot run it")
    except BaseException:
        if disk is not None:
            disk.close()
        raise
    nodes.reverse()
    compiled.nodes = nodes
    for node in nodes:
        compiled.wire(node)
    return compiled


class _DiskCloser:
    """Closes the run's disk state with its writers (what was not committed is dropped)."""

    def __init__(self, disk: StateDB) -> None:
        self.disk = disk

    def write(self, value: Any, timestamp: int) -> None:  # pragma: no cover - never fed
        return None

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.disk.close()


__all__ = [
    "ChunkLoop",
    "Compiled",
    "SinkCounter",
    "Wiring",
    "build",
    "default_late",
    "hold_back",
    "make_node",
]
