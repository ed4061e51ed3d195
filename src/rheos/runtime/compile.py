"""Compile a flow description into push functions.

Every step becomes a function ``push(key, value, ts)`` that calls the next step's function
directly -- no queue between steps. A chain of stateless steps (``map``, ``filter``,
``flat_map``, ``inspect``, ``key_by``) with one consumer each is *fused*: one generated
function runs the whole chain, so an event pays one call for all of them. User code runs
inside ``try`` blocks (free in CPython 3.11 when nothing is raised) that turn exceptions into
:class:`~rheos.errors.UserFunctionError` naming the flow, the step and the function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rheos.connectors.base import OpenContext, SinkWriter
from rheos.connectors.log import LogSink
from rheos.errors import (
    EventError,
    FlowDefinitionError,
    RheosError,
)
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
from rheos.runtime.deadletters import IN_SUMMARY, DeadLetters
from rheos.runtime.nodes import (
    BAD_EVENT_ERRORS,
    JoinNode,
    LateRouter,
    Node,
    ProcessNode,
    Push,
    WindowNode,
    output_context,
    user_error,
    where,
)
from rheos.runtime.summary import StepStats
from rheos.windowing.watermarks import disorder_source

ChunkLoop = Callable[[list[Any], list[int], Any, Any], None]
"""``loop(values, timestamps, source_run, runner)``: see :func:`source_loop`."""


def _noop(key: Any, value: Any, ts: int) -> None:
    return None


def _fanout(targets: list[Push]) -> Push:
    def push(key: Any, value: Any, ts: int) -> None:
        for target in targets:
            target(key, value, ts)

    return push


class _SinkCounter:
    """Counts what reaches a sink (for the run summary and live metrics)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.count = 0


@dataclass
class Compiled:
    """A flow ready to run: source entry points, stateful nodes, open sink writers."""

    graph: Graph
    entries: dict[int, Push] = field(default_factory=dict)
    """Source step id -> the push function of its stream."""
    loops: dict[int, ChunkLoop] = field(default_factory=dict)
    """Source step id -> its generated chunk loop (single-partition sources)."""
    nodes: list[Node] = field(default_factory=list)
    """Stateful nodes in topological order."""
    writers: list[SinkWriter] = field(default_factory=list)
    sink_counters: list[_SinkCounter] = field(default_factory=list)
    late_memory: list[Any] = field(default_factory=list)
    named_writers: dict[str, SinkWriter] = field(default_factory=dict)
    """Every open writer by a stable name (sink step name, or the late topic's name)."""
    on_open: Callable[[str, SinkWriter], None] | None = None
    """Called when a writer opens during the run (the late topic's): checkpoint recovery."""
    dead: DeadLetters | None = None
    """The run's bad-event policy and dead-letter writer (see :meth:`dead_letters`)."""

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


def _fusable(step: Step) -> bool:
    return isinstance(step, TransformStep | KeyByStep)


def _key_error(flow: str, step: Step, value: Any, field_name: str) -> EventError:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    err = EventError(f"{where(flow, step)}: the event has no key field {field_name!r}: {text}")
    err.step = step.name
    return err


def _chain_lines(
    chain: list[Step], window: WindowNode | None, env: dict[str, Any], ind: str, skip: str
) -> list[str]:
    """Python lines running ``chain`` on ``k, v, t``, then the tail (or ``window`` inlined).

    ``skip`` is the statement that drops the current event (``return`` or ``continue``).
    """
    lines: list[str] = []

    def guarded(stmt: str, i: int) -> None:
        lines.extend(
            [
                f"{ind}try:",
                f"{ind}    {stmt}",
                f"{ind}except Exception as e:",
                f"{ind}    raise _uerr(_flow, s{i}, f{i}, e) from e",
            ]
        )

    for i, step in enumerate(chain):
        env[f"s{i}"] = step
        if isinstance(step, KeyByStep):
            if isinstance(step.key, str):
                env[f"n{i}"] = step.key
                lines.extend(
                    [
                        f"{ind}try:",
                        f"{ind}    k = v[n{i}]",
                        f"{ind}except (KeyError, TypeError, IndexError):",
                        f"{ind}    raise _kerr(_flow, s{i}, v, n{i}) from None",
                    ]
                )
            else:
                env[f"f{i}"] = step.key
                guarded(f"k = f{i}(v)", i)
            continue
        assert isinstance(step, TransformStep)
        env[f"f{i}"] = step.fn
        if step.transform == "map":
            guarded(f"v = f{i}(v)", i)
        elif step.transform == "filter":
            guarded(f"ok = f{i}(v)", i)
            lines.append(f"{ind}if not ok:")
            lines.append(f"{ind}    {skip}")
        elif step.transform == "inspect":
            guarded(f"f{i}(v)", i)
        else:  # flat_map
            guarded(f"items{i} = list(f{i}(v))", i)
            lines.append(f"{ind}for v in items{i}:")
            ind += "    "
            skip = "continue"
    if window is None:
        lines.append(f"{ind}tail(k, v, t)")
        return lines
    # the window step's push, inlined
    lines.extend(f"{ind}{line}" for line in window.push_source("k", "v", "t", env))
    return lines


def _build(code: str, env: dict[str, Any], label: str, name: str) -> Any:
    exec(compile(code, f"<rheos {label}>", "exec"), env)
    return env[name]


def _env(flow: str, tail: Push) -> dict[str, Any]:
    return {"tail": tail, "_uerr": user_error, "_kerr": _key_error, "_flow": flow}


def fuse(flow: str, chain: list[Step], tail: Push, window: WindowNode | None = None) -> Push:
    """Generate one function running ``chain`` (stateless steps) and then ``tail`` -- or,
    when ``window`` is given (the chain's only consumer, an event-time window), the window's
    push inlined."""
    env = _env(flow, tail)
    lines = ["def push(k, v, t):", *_chain_lines(chain, window, env, "    ", "return")]
    label = f"fused chain {chain[0].name}..{chain[-1].name}" if chain else "window"
    push: Push = _build("\n".join(lines), env, label, "push")
    return push


def source_loop(
    flow: str, chain: list[Step], tail: Push, window: WindowNode | None = None
) -> ChunkLoop:
    """Generate the loop over one chunk of a single-partition source, with the source's
    chain of stateless steps (and its window, if that comes next) inlined.

    Per event: out-of-order statistics; if the event raises the source watermark
    (``t - bound``) past the runner's next due point, ``runner.advance_flow()`` *before* the
    event is pushed (which cannot make the event itself late); then the chain, inside a
    ``try`` (free when nothing raises) that hands a bad event to ``runner.event_failed``.
    """
    env = _env(flow, tail)
    env["_bad"] = BAD_EVENT_ERRORS
    head = [
        "def loop(values, tss, src, rt):",
        "    stats = src.stats",
        "    top, wm, bound, timed = src.top, src.wm, src.bound, rt.timed",
        "    ooo, maxd = 0, stats.max_delay_ms",
        "    failed = rt.event_failed",
        "    for i, (v, t) in enumerate(zip(values, tss)):",
        *(
            "        " + line
            for line in disorder_source(
                "t",
                "top",
                "ooo",
                "maxd",
                on_top=[
                    "if timed and t - bound > wm:",
                    "    wm = src.wm = t - bound",
                    "    if wm >= rt.due:",
                    "        rt.advance_flow()",
                ],
            ).splitlines()
        ),
        "        k = None",
        "        try:",
    ]
    tail_lines = [
        "        except _bad as e:",
        "            failed(src, i, e)",
        "    src.top = top",
        "    stats.out_of_order += ooo",
        "    stats.max_delay_ms = maxd",
    ]
    body = _chain_lines(chain, window, env, "            ", "continue")
    loop: ChunkLoop = _build("\n".join([*head, *body, *tail_lines]), env, "source loop", "loop")
    return loop


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


def compile_flow(
    graph: Graph,
    ctx: OpenContext,
    *,
    default_late_topic: str | None,
    now: Callable[[], int],
) -> Compiled:
    """Build the push functions of every step, from the sinks back to the sources."""
    flow = graph.name
    consumers = graph.consumers()
    holds = hold_back(graph)
    compiled = Compiled(graph)
    inputs_of: dict[tuple[int, int], Push] = {}  # (step id, input index) -> push
    chains: dict[int, tuple[list[Step], Push, WindowNode | None]] = {}
    windows: dict[int, WindowNode] = {}
    nodes: list[Node] = []

    def emitter(port: Port) -> Push:
        targets = [inputs_of[(s.id, i)] for s, i in consumers.get(port, [])]
        if not targets:
            return _noop
        return targets[0] if len(targets) == 1 else _fanout(targets)

    def late_emitter(step: Step) -> Push:
        if consumers.get((step.id, LATE)):
            return emitter((step.id, LATE))
        memory = compiled.late_memory
        if default_late_topic is None:

            def keep(key: Any, value: Any, ts: int) -> None:
                memory.append(value)

            return keep
        write = _lazy_log_writer(ctx, default_late_topic, compiled)

        def keep_and_write(key: Any, value: Any, ts: int) -> None:
            if len(memory) < IN_SUMMARY:
                memory.append(value)
            write(key, value, ts)

        return keep_and_write

    for step in reversed(graph.steps):
        if isinstance(step, SinkStep):
            inputs_of[(step.id, 0)] = _sink_push(step, ctx, compiled)
        elif _fusable(step):
            outs = consumers.get((step.id, OUT), [])
            window = None
            if len(outs) == 1 and _fusable(outs[0][0]) and len(outs[0][0].inputs) == 1:
                rest, tail, window = chains[outs[0][0].id]
                chain = [step, *rest]
            else:
                chain, tail = [step], emitter((step.id, OUT))
                if len(outs) == 1 and outs[0][0].id in windows:
                    window = windows[outs[0][0].id]
                    if window.processing_time:
                        window = None
            chains[step.id] = (chain, tail, window)
            inputs_of[(step.id, 0)] = fuse(flow, chain, tail, window)
        elif isinstance(step, UnionStep):
            out = emitter((step.id, OUT))
            for i in range(len(step.inputs)):
                inputs_of[(step.id, i)] = out
        elif isinstance(step, WindowStep):
            wnode = WindowNode(
                flow,
                step,
                emitter((step.id, OUT)),
                _router(flow, step, late_emitter(step)),
                holds[step.id],
                now,
            )
            wnode.stats.kind = "window"
            windows[step.id] = wnode
            nodes.append(wnode)
            inputs_of[(step.id, 0)] = wnode.push
        elif isinstance(step, ProcessStep):
            pnode = ProcessNode(flow, step, emitter((step.id, OUT)), holds[step.id])
            nodes.append(pnode)
            inputs_of[(step.id, 0)] = pnode.push
        elif isinstance(step, JoinStep):
            jnode = JoinNode(
                flow,
                step,
                emitter((step.id, OUT)),
                _router(flow, step, late_emitter(step)),
                holds[step.id],
            )
            nodes.append(jnode)
            inputs_of[(step.id, 0)] = jnode.push_left
            inputs_of[(step.id, 1)] = jnode.push_right
        elif isinstance(step, SourceStep):
            compiled.entries[step.id] = emitter((step.id, OUT))
            outs = consumers.get((step.id, OUT), [])
            chain, tail, window = [], compiled.entries[step.id], None
            if len(outs) == 1 and len(outs[0][0].inputs) == 1:
                first = outs[0][0]
                if _fusable(first):
                    chain, tail, window = chains[first.id]
                elif first.id in windows and not windows[first.id].processing_time:
                    window = windows[first.id]
            compiled.loops[step.id] = source_loop(flow, chain, tail, window)
        else:  # pragma: no cover - a new primitive without a runtime
            raise FlowDefinitionError(f"{where(flow, step)}: this runtime cannot run it")
    nodes.reverse()
    compiled.nodes = nodes
    for node in nodes:
        compiled.wire(node)
    return compiled


def _router(flow: str, step: Step, out: Push) -> LateRouter:
    return LateRouter(flow, step, out, StepStats(step.name, step.kind))  # node replaces stats


def _sink_push(step: SinkStep, ctx: OpenContext, compiled: Compiled) -> Push:
    writer = step.sink.open(ctx)
    compiled.writers.append(writer)
    compiled.named_writers[step.name] = writer
    counter = _SinkCounter(step.name)
    compiled.sink_counters.append(counter)
    write = writer.write

    def push(key: Any, value: Any, ts: int) -> None:
        try:
            write(value, ts)
        except BAD_EVENT_ERRORS as exc:
            compiled.sink_failed(step, exc, key, value, ts)
            return
        counter.count += 1

    return push


def _lazy_log_writer(ctx: OpenContext, topic: str, compiled: Compiled) -> Push:
    """The default late output: a log topic, opened when the first late event comes."""
    opened: list[Push] = []

    def push(key: Any, value: Any, ts: int) -> None:
        if not opened:
            writer = LogSink(topic).open(ctx)
            compiled.writers.append(writer)
            compiled.named_writers[topic] = writer
            if compiled.on_open is not None:
                compiled.on_open(topic, writer)
            opened.append(_write(writer))
        opened[0](key, value, ts)

    return push


def _write(writer: SinkWriter) -> Push:
    write = writer.write

    def push(key: Any, value: Any, ts: int) -> None:
        write(value, ts)

    return push


__all__ = ["BAD_EVENT_ERRORS", "Compiled", "compile_flow", "fuse", "hold_back"]
