"""Compile a flow description into push functions: the stream-first mode.

Every step becomes a function ``push(key, value, ts)`` that calls the next step's function
directly -- no queue between steps. A chain of stateless steps (``map``, ``filter``,
``flat_map``, ``inspect``, ``key_by``) with one consumer each is *fused*: one generated
function runs the whole chain, so an event pays one call for all of them. User code runs
inside ``try`` blocks (free in CPython 3.11 when nothing is raised) that turn exceptions into
:class:`~rheos.errors.UserFunctionError` naming the flow, the step and the function.

The graph is walked by the one plan builder (:mod:`rheos.runtime.build`); this mode's part is
its wiring, :class:`StreamWiring`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rheos.connectors.base import OpenContext, SinkWriter
from rheos.errors import EventError
from rheos.flows.expressions import Expr, WithColumns
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
from rheos.runtime.build import ChunkLoop, Compiled, SinkCounter, build, hold_back
from rheos.runtime.nodes import (
    BAD_EVENT_ERRORS,
    JoinNode,
    LoopEdges,
    Node,
    Push,
    WindowNode,
    user_error,
    where,
)
from rheos.runtime.projection import fields_read
from rheos.windowing.watermarks import disorder_source

ADVANCE = "rt.advance_flow()"
"""The line of a chunk loop that moves the flow's watermark (:func:`_loop` places the lines
of inlined steps around it)."""

NEVER = 1 << 64
"""An event time no event reaches (above every watermark): a loop's ``fire`` when its
source's watermark is not raised by events."""


def _noop(key: Any, value: Any, ts: int) -> None:
    return None


def _fanout(targets: list[Push]) -> Push:
    def push(key: Any, value: Any, ts: int) -> None:
        for target in targets:
            target(key, value, ts)

    return push


def _fusable(step: Step) -> bool:
    return isinstance(step, TransformStep | KeyByStep)


def _key_error(flow: str, step: Step, value: Any, field_name: str) -> EventError:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    err = EventError(f"{where(flow, step)}: the event has no key field {field_name!r}: {text}")
    err.step = step.name
    return err


def _per_event(fn: Any) -> Any:
    """What a generated chain calls for ``fn``: the generated function of an expression or
    of ``with_columns`` (:meth:`Expr.row_function`: one call, not two), else ``fn``."""
    return fn.row_function() if isinstance(fn, Expr | WithColumns) else fn


def _chain_lines(
    chain: list[Step],
    window: WindowNode | None,
    env: dict[str, Any],
    ind: str,
    skip: str,
    edges: LoopEdges | None = None,
    track: bool = False,
) -> list[str]:
    """Python lines running ``chain`` on ``k, v, t``, then the tail (or ``window`` inlined).

    ``skip`` is the statement that drops the current event (``return`` or ``continue``).
    ``edges``: the lines are a chunk loop's (for ``window``, :meth:`WindowNode.loop_source`,
    which adds the lines it needs around the loop to them; ``track``: as there).
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
                env[f"f{i}"] = _per_event(step.key)
                guarded(f"k = f{i}(v)", i)
            continue
        assert isinstance(step, TransformStep)
        env[f"f{i}"] = _per_event(step.fn)
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
    if edges is None:
        lines.extend(f"{ind}{line}" for line in window.push_source("k", "v", "t", env))
        return lines
    body = window.loop_source("k", "v", "t", env, edges, track=track)
    lines.extend(f"{ind}{line}" for line in body)
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
    flow: str,
    chain: list[Step],
    tail: Push,
    window: WindowNode | None = None,
    *,
    track: bool = False,
    fixed_due: bool = False,
) -> ChunkLoop:
    """Generate the loop over one chunk of a single-partition source, with the source's
    chain of stateless steps (and its window, if that comes next) inlined.

    Per event: out-of-order statistics; if the event raises the source watermark
    (``t - bound``) past the executor's next due point, ``rt.advance_flow()`` *before* the
    event is pushed (which cannot make the event itself late); then the chain, inside a
    ``try`` (free when nothing raises) that hands a bad event to ``rt.event_failed`` (``rt``:
    the :class:`~rheos.runtime.event_executor.EventExecutor`). With ``track``, ``rt.i`` is
    the index of the event being pushed (a source whose events are projected:
    :mod:`rheos.runtime.projection`).

    ``fixed_due``: nothing lowers the due point while the loop runs (no step sets timers)
    and nothing reads the source's watermark but the flow's advance and late events routed
    by a window inlined (:func:`_fixed_due`). The loop then keeps in a local the event time
    at which the watermark reaches the due point (``fire``) and stores the source's
    watermark only then, before a late event is routed and once it ends: one comparison
    per event that raises the top time, where otherwise the watermark is raised, stored
    and compared with ``rt.due`` for each.
    """
    if fixed_due:
        start = [
            "top, bound = src.top, src.bound",
            "timed = rt.timed and not src.held",
            "fire = rt.due + bound if timed else _never",
        ]
        on_top = [
            "if t >= fire:",
            "    if t - bound > src.wm:",
            "        src.wm = t - bound",
            f"        {ADVANCE}",
            "    fire = rt.due + bound",
        ]
        settle = ["if timed and top - bound > src.wm:", "    src.wm = top - bound"]
    else:
        start = ["top, wm, bound = src.top, src.wm, src.bound", "timed = rt.timed and not src.held"]
        on_top = [
            "if timed and t - bound > wm:",
            "    wm = src.wm = t - bound",
            "    if wm >= rt.due:",
            f"        {ADVANCE}",
        ]
        settle = []
    head = [
        "def loop(values, tss, src, rt):",
        "    stats = src.stats",
        *("    " + line for line in start),
        "    ooo, maxd = 0, stats.max_delay_ms",
        "    failed = rt.event_failed",
        "    for i, (v, t) in enumerate(zip(values, tss)):",
        *(["        rt.i = i"] if track and window is None else []),
        *(
            "        " + line
            for line in disorder_source("t", "top", "ooo", "maxd", on_top=on_top).splitlines()
        ),
    ]
    tail_lines = [
        "    src.top = top",
        *("    " + line for line in settle),
        "    stats.out_of_order += ooo",
        "    stats.max_delay_ms = maxd",
    ]
    return _loop(flow, chain, tail, window, head, tail_lines, "source loop", track, settle)


def ordered_loop(
    flow: str,
    chain: list[Step],
    tail: Push,
    window: WindowNode | None = None,
    *,
    track: bool = False,
    fixed_due: bool = False,
) -> ChunkLoop:
    """:func:`source_loop` for events already in event-time order (a bounded run): each
    event's time is the watermark (nothing earlier is still to come), so there is no
    disorder to count and no bound to subtract."""
    if fixed_due:
        start = ["timed = rt.timed", "fire = rt.due if timed else _never"]
        on_event = [
            "if t >= fire:",
            "    if t > src.wm:",
            "        src.wm = t",
            f"        {ADVANCE}",
            "    fire = rt.due",
        ]
        settle = ["if timed and t > src.wm:", "    src.wm = t"]
        tail_lines = ["    if timed and tss and tss[-1] > src.wm:", "        src.wm = tss[-1]"]
    else:
        start = ["wm, timed = src.wm, rt.timed"]
        on_event = [
            "if timed and t > wm:",
            "    wm = src.wm = t",
            "    if wm >= rt.due:",
            f"        {ADVANCE}",
        ]
        settle, tail_lines = [], []
    head = [
        "def loop(values, tss, src, rt):",
        *("    " + line for line in start),
        "    failed = rt.event_failed",
        "    for i, (v, t) in enumerate(zip(values, tss)):",
        *(["        rt.i = i"] if track and window is None else []),
        *("        " + line for line in on_event),
    ]
    tail_lines += [
        "    if tss and tss[-1] > src.top:",
        "        src.top = tss[-1]",
    ]
    return _loop(flow, chain, tail, window, head, tail_lines, "ordered source loop", track, settle)


def _loop(
    flow: str,
    chain: list[Step],
    tail: Push,
    window: WindowNode | None,
    head: list[str],
    after: list[str],
    label: str,
    track: bool,
    settle: list[str],
) -> ChunkLoop:
    """A chunk loop: ``head`` (up to the loop's per-event bookkeeping), the chain inside a
    ``try`` that hands a bad event to ``runner.event_failed``, then ``after`` -- with the
    lines ``window`` needs around the loop (:meth:`WindowNode.loop_source`): before it,
    around each ``rt.advance_flow()`` of ``head``, and in a ``finally`` before ``after``
    (``settle``: :attr:`LoopEdges.settle`)."""
    env = _env(flow, tail)
    env["_bad"] = BAD_EVENT_ERRORS
    env["_never"] = NEVER
    edges = LoopEdges(settle=settle)
    body = _chain_lines(chain, window, env, "            ", "continue", edges, track)
    start = next(i for i, line in enumerate(head) if line.startswith("    for "))
    loop = [
        *head[start:],
        "        k = None",
        "        try:",
        *body,
        "        except _bad as e:",
        "            failed(src, i, e)",
    ]
    if edges.sync or edges.resume:
        moved = []
        for line in loop:
            if line.strip() != ADVANCE:
                moved.append(line)
                continue
            at = line[: len(line) - len(line.lstrip())]
            moved += [*(at + s for s in edges.sync), line, *(at + s for s in edges.resume)]
        loop = moved
    # (the def line, then the window's lines: those before the loop read only globals)
    lines = [head[0], *("    " + line for line in edges.before), *head[1:start]]
    if edges.after:
        lines += [
            "    try:",
            *("    " + line for line in loop),
            "    finally:",
            *("        " + line for line in edges.after),
            *after,
        ]
    else:
        lines += [*loop, *after]
    built: ChunkLoop = _build("\n".join(lines), env, label, "loop")
    return built


class StreamWiring:
    """The stream-first mode's :class:`~rheos.runtime.build.Wiring`: every step a push
    function calling its consumers' directly; chains of stateless steps fused, with an
    event-time window that follows inlined; a generated chunk loop per source."""

    def __init__(self, compiled: Compiled) -> None:
        self.compiled = compiled
        self.flow = compiled.graph.name
        self.consumers = compiled.graph.consumers()
        self.inputs_of: dict[tuple[int, int], Push] = {}
        """(step id, input index) -> the push function of that input."""
        self.chains: dict[int, tuple[list[Step], Push, WindowNode | None]] = {}
        self.windows: dict[int, WindowNode] = {}

    def output(self, port: Port) -> Push:
        targets = [self.inputs_of[(s.id, i)] for s, i in self.consumers.get(port, [])]
        if not targets:
            return _noop
        return targets[0] if len(targets) == 1 else _fanout(targets)

    def late(self, step: Step, default: Push) -> Push:
        if self.consumers.get((step.id, LATE)):
            return self.output((step.id, LATE))
        return default

    def sink(self, step: SinkStep, writer: SinkWriter, counter: SinkCounter) -> None:
        self.inputs_of[(step.id, 0)] = _sink_push(step, writer, counter, self.compiled)

    def node(self, step: Step, node: Node) -> None:
        if isinstance(node, JoinNode):
            self.inputs_of[(step.id, 0)] = node.push_left
            self.inputs_of[(step.id, 1)] = node.push_right
            return
        if isinstance(node, WindowNode):
            self.windows[step.id] = node
        self.inputs_of[(step.id, 0)] = node.push

    def stateless(self, step: Step) -> None:
        flow, consumers = self.flow, self.consumers
        if _fusable(step):
            outs = consumers.get((step.id, OUT), [])
            window = None
            if len(outs) == 1 and _fusable(outs[0][0]) and len(outs[0][0].inputs) == 1:
                rest, tail, window = self.chains[outs[0][0].id]
                chain = [step, *rest]
            else:
                chain, tail = [step], self.output((step.id, OUT))
                if len(outs) == 1 and outs[0][0].id in self.windows:
                    window = self.windows[outs[0][0].id]
                    if window.processing_time:
                        window = None
            self.chains[step.id] = (chain, tail, window)
            self.inputs_of[(step.id, 0)] = fuse(flow, chain, tail, window)
        elif isinstance(step, UnionStep):
            out = self.output((step.id, OUT))
            for i in range(len(step.inputs)):
                self.inputs_of[(step.id, i)] = out
        else:
            assert isinstance(step, SourceStep)
            entry = self.compiled.entries[step.id] = self.output((step.id, OUT))
            outs = consumers.get((step.id, OUT), [])
            chain, tail, window = [], entry, None
            if len(outs) == 1 and len(outs[0][0].inputs) == 1:
                first = outs[0][0]
                if _fusable(first):
                    chain, tail, window = self.chains[first.id]
                elif first.id in self.windows and not self.windows[first.id].processing_time:
                    window = self.windows[first.id]
            graph = self.compiled.graph
            track = fields_read(graph, step) is not None
            fixed = _fixed_due(graph, self.consumers, step, window)
            self.compiled.loops[step.id] = source_loop(
                flow, chain, tail, window, track=track, fixed_due=fixed
            )
            self.compiled.ordered_loops[step.id] = ordered_loop(
                flow, chain, tail, window, track=track, fixed_due=fixed
            )


def _fixed_due(
    graph: Graph,
    consumers: dict[Port, list[tuple[Step, int]]],
    source: SourceStep,
    window: WindowNode | None,
) -> bool:
    """Whether a loop over ``source``'s events may keep its watermark in locals
    (:func:`source_loop`'s ``fixed_due``): no process step (its timers lower the due point
    as events pass), and no window or join reached by the events pushed -- each reads the
    flow watermark when it routes a late event -- but ``window`` if it is inlined (whose
    late events the loop settles first, and whose rows come only as the watermark moves)."""
    if any(isinstance(step, ProcessStep) for step in graph.steps):
        return False
    if window is not None:
        return window.op.inlinable
    seen: set[int] = set()
    todo: list[Step] = [source]
    while todo:
        step = todo.pop()
        for port, readers in consumers.items():
            if port[0] != step.id:
                continue
            for reader, _ in readers:
                if isinstance(reader, WindowStep | JoinStep):
                    return False
                if reader.id not in seen:
                    seen.add(reader.id)
                    todo.append(reader)
    return True


def compile_flow(
    graph: Graph,
    ctx: OpenContext,
    *,
    default_late_topic: str | None,
    now: Callable[[], int],
) -> Compiled:
    """Build the push functions of every step, from the sinks back to the sources."""
    compiled = Compiled(graph)
    wiring = StreamWiring(compiled)
    return build(compiled, ctx, wiring, default_late_topic=default_late_topic, now=now)


def _sink_push(
    step: SinkStep, writer: SinkWriter, counter: SinkCounter, compiled: Compiled
) -> Push:
    write = writer.write

    def push(key: Any, value: Any, ts: int) -> None:
        try:
            write(value, ts)
        except BAD_EVENT_ERRORS as exc:
            compiled.sink_failed(step, exc, key, value, ts)
            return
        counter.count += 1

    return push


__all__ = [
    "BAD_EVENT_ERRORS",
    "ChunkLoop",
    "Compiled",
    "StreamWiring",
    "compile_flow",
    "fuse",
    "hold_back",
    "ordered_loop",
    "source_loop",
]
