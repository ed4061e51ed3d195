"""Runtime nodes for the stateful primitives: windows, keyed process steps and joins.

A node turns a step into *push functions* (``push(key, value, ts)``) and an
``advance(watermark)`` method. Nodes read a *held-back* watermark: the flow watermark minus
the allowed lateness of the windows upstream of them (``hold_ms``), so that results a window
emits when it finalizes (stamped ``window_end - 1``) are never late for the next window.

User code also runs while a node is advanced: a custom aggregation's ``result`` when a window
closes, a window join's ``combine``, a process step's ``on_timer``. An exception there becomes
a :class:`~rheos.errors.UserFunctionError` naming the flow, the step, the key and the window or
timer, and goes to the node's :attr:`on_close_error` hook (set by the runtime: the step's
``on_error`` policy, see :mod:`rheos.runtime.deadletters`); the node goes on with the other
keys, windows and timers. The default hook raises it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any

from rheos.errors import EventError, RecordTooLargeError, RheosError, UserFunctionError
from rheos.flows.steps import JoinStep, ProcessStep, Step, WindowStep, describe_callable
from rheos.runtime.summary import StepStats
from rheos.windowing import (
    MAX_WATERMARK,
    MIN_WATERMARK,
    IntervalJoinOperator,
    LateInfo,
    WindowJoinOperator,
    WindowOperator,
)
from rheos.windowing.operator import CloseFailure, key_from_plain, key_to_plain
from rheos.windowing.watermarks import Disorder, disorder_source

Push = Callable[[Any, Any, int], None]

CloseErrorHandler = Callable[[Step, RheosError, dict[str, Any], int], None]
"""``handler(step, error, context, ts)``: user code failed while ``step`` was advanced, with
``context`` ``{"key", "window_start", "window_end"}`` or ``{"key", "timer"}`` and ``ts`` the
window's last millisecond or the timer's time. Raises to stop the run."""


BAD_EVENT_ERRORS = (EventError, UserFunctionError, RecordTooLargeError)
"""Errors that make an event a bad event (the flow's on_error policy applies); any other
error stops the run."""
OUTPUT_PREVIEW = 1_000
"""How much of an output (its ``repr``) the dead letter of a step that failed on it keeps."""


def output_context(key: Any, value: Any) -> dict[str, Any]:
    """What a dead letter keeps of an output a later step (or a sink) failed on: the key, the
    window when it is a window's result, and the start of the output itself."""
    context: dict[str, Any] = {"key": key}
    if isinstance(value, dict):
        context.update((f, value[f]) for f in ("window_start", "window_end") if f in value)
    text = repr(value)
    context["output"] = text if len(text) <= OUTPUT_PREVIEW else text[:OUTPUT_PREVIEW] + "..."
    return context


def raise_close_error(step: Step, error: RheosError, context: dict[str, Any], ts: int) -> None:
    """The default :data:`CloseErrorHandler`: the error stops the run."""
    raise error


def where(flow: str, step: Step) -> str:
    """``flow 'f', step #3 'window'`` -- the prefix of every runtime error message."""
    return f"flow {flow!r}, step #{step.id} {step.name!r} ({step.kind})"


def user_error(flow: str, step: Step, fn: Any, exc: BaseException) -> RheosError:
    """Wrap an exception raised by user code (EventErrors get the step added)."""
    if isinstance(exc, EventError):
        event_err = EventError(
            f"{where(flow, step)}: {exc}",
            topic=exc.topic,
            partition=exc.partition,
            offset=exc.offset,
        )
        event_err.flow, event_err.step = flow, exc.step or step.name
        return event_err
    if isinstance(exc, RheosError):
        return exc.located(flow=flow, step=step.name)
    err = UserFunctionError(
        f"{where(flow, step)}: {describe_callable(fn)} raised {type(exc).__name__}: {exc}"
    )
    err.flow, err.step, err.function = flow, step.name, describe_callable(fn)
    return err


def close_error(
    flow: str, step: Step, fn: Any, exc: Exception, context: dict[str, Any]
) -> UserFunctionError:
    """Wrap an exception raised by user code while ``step`` was advanced (see the module
    docs); ``context`` names the key and the window or timer."""
    if "timer" in context:
        at = f"key {context['key']!r}, timer {context['timer']}"
    else:
        at = f"key {context['key']!r}, window [{context['window_start']}, {context['window_end']})"
    err = UserFunctionError(
        f"{where(flow, step)}: {at}: {describe_callable(fn)} raised {type(exc).__name__}: {exc}"
    )
    err.flow, err.step, err.function = flow, step.name, describe_callable(fn)
    err.__cause__ = exc
    return err


def held(watermark: int, hold_ms: int) -> int:
    """``watermark - hold_ms``, keeping the infinities infinite."""
    if watermark >= MAX_WATERMARK or watermark <= MIN_WATERMARK:
        return watermark
    return watermark - hold_ms


class LateRouter:
    """Turns a late report into a late record and sends it to the late output."""

    def __init__(self, flow: str, step: Step, out: Push, stats: StepStats) -> None:
        self.flow, self.step, self.out, self.stats = flow, step, out, stats
        self.whole: Callable[[Any], Any] | None = None
        """Set by the runtime where the step sees only some fields of its source's events
        (:mod:`rheos.runtime.projection`): the whole event behind the one being pushed."""

    def __call__(self, late: LateInfo, watermark: int) -> None:
        self.stats.late += 1
        if self.whole is not None:
            late = late._replace(event=self.whole(late.event))
        record = {
            "flow": self.flow,
            "step": self.step.name,
            "key": late.key,
            "timestamp": late.ts,
            "watermark": watermark,
            "windows": [list(w) for w in late.windows],
            "event": late.event,
        }
        self.out(late.key, record, late.ts)


@dataclass
class LoopEdges:
    """The lines that steps inlined in a source's chunk loop need around its body
    (:meth:`WindowNode.loop_source`)."""

    before: list[str] = field(default_factory=list)
    """Before the loop."""
    after: list[str] = field(default_factory=list)
    """Once the loop ends, however it ends."""
    sync: list[str] = field(default_factory=list)
    """Before the flow's watermark moves (``rt.advance_flow()``)."""
    resume: list[str] = field(default_factory=list)
    """After it moved."""
    settle: list[str] = field(default_factory=list)
    """From the loop, for the steps: before anything reads the flow watermark in the loop
    (a late event routed), the source's watermark stored, where the loop keeps it in a
    local."""


class WindowNode:
    """Runs a :class:`WindowStep` with a :class:`~rheos.windowing.WindowOperator`."""

    def __init__(
        self,
        flow: str,
        step: WindowStep,
        out: Push,
        late: LateRouter,
        hold_ms: int,
        now: Callable[[], int],
    ) -> None:
        self.step = step
        self.hold_ms = hold_ms
        self.processing_time = step.time == "processing"
        self.op = WindowOperator(
            step.spec,
            step.aggregations,
            allowed_lateness_ms=step.allowed_lateness_ms,
            emit=step.emit,
        )
        self.stats = StepStats(step.name, step.kind)
        self._out = out
        self._late = late
        late.stats = self.stats
        self._flow = flow
        self._now = now
        self.flow_watermark: Callable[[], int] = lambda: self.op.watermark
        """Set by the runner: the flow watermark now (for late records)."""
        self._due = MIN_WATERMARK + 1
        self._sessions = self.op.kernel.session
        self.coarse_ms = 0
        """Set by a bounded run for session windows (their gap): the operator is called at
        most once per this much event time. With its perfect watermark no event is late, so
        a session closed up to a gap later holds the same events, and the rows come out in
        the same order (by end); a session that keeps growing is looked at once per call,
        not once per gap."""
        self.on_close_error: CloseErrorHandler = raise_close_error
        """Set by the runtime: where errors of user code at window close go."""
        self.disorder = Disorder()
        self.cell = self.disorder.cell
        """Hot-path counters: events in, largest time seen, out of order, largest delay."""
        self.push = self._make_push()

    def push_source(self, k: str, v: str, t: str, env: dict[str, Any]) -> list[str]:
        """The push of this node as Python lines over the names ``k``, ``v``, ``t`` (event
        time windows): what :meth:`push` runs, for generated loops to inline; ``env``
        receives the names the lines use."""
        env.update(wc=self.cell, wlate=self.route_late)
        return [
            "wc[0] += 1",
            *disorder_source(t, "wc[1]", "wc[2]", "wc[3]").splitlines(),
            *self._process_call(k, v, t, "late", env),
            "if late is not None:",
            "    wlate(late)",
        ]

    def loop_source(
        self, k: str, v: str, t: str, env: dict[str, Any], edges: LoopEdges, *, track: bool
    ) -> list[str]:
        """:meth:`push_source` for a source's chunk loop (event-time windows): the lines in
        the loop, those around it added to ``edges``. The counters of :attr:`cell` are
        locals of the loop, stored once it ends (nothing else pushes to this window while it
        runs); a tumbling window's ``process`` is inlined
        (:meth:`WindowOperator.inline_source`); with ``track``, ``rt.i`` is set only before
        a late event is routed (the one use of it: its record, to write it whole)."""
        env.update(wc=self.cell, wlate=self.route_late, werr=self.error)
        edges.before.append("w_n, w_top, w_ooo, w_max = wc")
        edges.after.append("wc[0], wc[1], wc[2], wc[3] = w_n, w_top, w_ooo, w_max")
        inlined = self.op.inline_source(env, k, v, t, "w_", "w_late")
        lines = ["w_n += 1", *disorder_source(t, "w_top", "w_ooo", "w_max").splitlines()]
        if inlined is None:
            lines += self._process_call(k, v, t, "w_late", env)
        else:  # (final rows come only as the watermark moves: no rows here)
            edges.before.extend(inlined.enter)
            edges.after.extend(inlined.sync)
            edges.sync.extend(inlined.sync)
            edges.resume.extend(inlined.resume)
            lines += [
                "try:",
                *("    " + line for line in inlined.late),
                "    else:",
                "        w_late = None",
                *("        " + line for line in inlined.body),
                "except Exception as e:",
                "    raise werr(e) from e",
            ]
        lines += ["if w_late is not None:", *(["    rt.i = i"] if track else [])]
        lines += [*("    " + line for line in edges.settle), "    wlate(w_late)"]
        return lines

    def _process_call(self, k: str, v: str, t: str, late: str, env: dict[str, Any]) -> list[str]:
        """Lines calling the operator's ``process``: its rows sent on, its late report in
        ``late``."""
        env.update(wproc=self.op.process, wrows=self.emit_rows, werr=self.error)
        return [
            "try:",
            f"    rows, {late} = wproc({k}, {v}, {t})",
            "except Exception as e:",
            "    raise werr(e) from e",
            "if rows:",
            "    wrows(rows)",
        ]

    def _make_push(self) -> Push:
        env: dict[str, Any] = {"now": self._now}
        lines = ["def push(key, value, ts):"]
        if self.processing_time:
            lines.append("    ts = now()")
        lines.extend("    " + line for line in self.push_source("key", "value", "ts", env))
        exec(compile("\n".join(lines), f"<rheos window push {self.step.name}>", "exec"), env)
        push: Push = env["push"]
        return push

    def emit_rows(self, rows: list[dict[str, Any]]) -> None:
        """Send result rows downstream, stamped with their window's last millisecond."""
        self.stats.events_out += len(rows)
        out = self._out
        for row in rows:
            try:
                out(row["key"], row, row["window_end"] - 1)
            except BAD_EVENT_ERRORS as exc:  # a later step failed on this result
                context = output_context(row["key"], row)
                self.on_close_error(self.step, exc, context, row["window_end"] - 1)

    @property
    def late_router(self) -> LateRouter:
        """What turns this step's late events into late records."""
        return self._late

    def route_late(self, late: LateInfo) -> None:
        """Send a late event to the late output."""
        self._late(late, held(self.flow_watermark(), self.hold_ms))

    def error(self, exc: Exception) -> RheosError:
        """The error to raise for an exception from the operator (aggregations, fields)."""
        return user_error(self._flow, self.step, self.step.aggregations, exc)

    def _close_failed(self, failure: CloseFailure) -> None:
        """An aggregation's ``result`` raised as its window closed: to the error hook."""
        agg = failure.aggregation
        custom = getattr(agg, "aggregation", None)
        fn = getattr(custom, "result", None) or agg
        context = {"key": failure.key, "window_start": failure.start, "window_end": failure.end}
        err = close_error(self._flow, self.step, fn, failure.error, context)
        self.on_close_error(self.step, err, context, failure.end - 1)

    def _close(self, watermark: int) -> None:
        """Advance the operator to ``watermark`` and send the rows it finalizes (a few
        thousand at a time: a window of millions of keys is never one list of rows)."""
        rows = self.op.advance(watermark, self._close_failed, self.emit_rows)
        if rows:
            self.emit_rows(rows)

    def sync_stats(self) -> StepStats:
        """Copy the hot-path counters into :attr:`stats` and return it."""
        stats = self.stats
        stats.events_in, _, stats.out_of_order, stats.max_delay_ms = self.cell
        stats.state_size = self.op.state_size
        return stats

    @property
    def next_due(self) -> int:
        """The lowest flow watermark at which :meth:`advance` can change anything."""
        return MAX_WATERMARK if self.processing_time else self._due

    def advance(self, watermark: int) -> None:
        """Advance to the flow watermark (event-time windows only).

        Windows finalize, and decide lateness, only at the watermarks the event-time kernel
        names (:meth:`~rheos.windowing.kernel.WindowKernel.next_change`); between two such
        points the operator is not called (the result is the same).
        """
        if self.processing_time or watermark < self._due:
            return
        if self._sessions and MIN_WATERMARK < watermark < MAX_WATERMARK:
            # sessions change at every rise (the operator mostly just takes the watermark)
            rows = self.op.advance(watermark - self.hold_ms, self._close_failed, self.emit_rows)
            if rows:
                self.emit_rows(rows)
            self._due = watermark + 1 + self.coarse_ms
            return
        wm = held(watermark, self.hold_ms)
        self._close(wm)
        nxt = self.op.kernel.next_change(wm)
        self._due = nxt if nxt >= MAX_WATERMARK else nxt + self.hold_ms

    def advance_processing(self, now_ms: int) -> None:
        """Advance a processing-time window to the clock."""
        if self.processing_time:
            self._close(now_ms)

    def finish(self) -> None:
        self._close(MAX_WATERMARK)
        self._due = MAX_WATERMARK

    def snapshot(self) -> dict[str, Any]:
        return self.op.snapshot()

    def checkpoint(self) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
        """Operator-wide state, and the state of every key changed since the last call."""
        op = self.op
        changes = op.snapshot_changed()
        op.clear_changed()
        return {"op": op.snapshot(include_keys=False), "cell": list(self.cell)}, changes

    def restore(self, meta: dict[str, Any], keys: Iterable[tuple[Any, Any]]) -> None:
        """Load what :meth:`checkpoint` wrote (``keys``: the newest state of each key)."""
        self.op.load(meta["op"])
        self.cell[1] = meta["cell"][1]  # the newest time seen; the counters are per run
        for key, data in keys:
            self.op.restore_key(key_from_plain(key), data)
        self.op.clear_changed()
        self._due = MIN_WATERMARK + 1

    def take_changed(self) -> Any:
        """Hand over the keys changed since the last checkpoint (constant time): a forked
        snapshot checkpoints its copy of them. :meth:`merge_changed` gives them back."""
        return self.op.take_changed()

    def merge_changed(self, taken: Any) -> None:
        self.op.merge_changed(taken)


def coarsen_sessions(nodes: Iterable[Any]) -> None:
    """For a bounded run: session windows among ``nodes`` are called once per gap of event
    time (see :attr:`WindowNode.coarse_ms`)."""
    for node in nodes:
        if isinstance(node, WindowNode) and node.op.kernel.session:
            node.coarse_ms = node.op.kernel.size


class NodeContext:
    """The :class:`~rheos.flows.ProcessContext` of a :class:`ProcessNode`."""

    __slots__ = ("_node", "key", "timestamp")

    def __init__(self, node: ProcessNode) -> None:
        self._node = node
        self.key: Any = None
        self.timestamp = 0

    @property
    def watermark(self) -> int:
        node = self._node
        return held(node.flow_watermark(), node.hold_ms)

    @property
    def state(self) -> Any:
        return self._node.states.get(self.key)

    @state.setter
    def state(self, value: Any) -> None:
        self._node.changed.add(self.key)
        if value is None:
            self._node.states.pop(self.key, None)
        else:
            self._node.states[self.key] = value

    def emit(self, value: Any, timestamp: int | None = None) -> None:
        node = self._node
        node.stats.events_out += 1
        ts = self.timestamp if timestamp is None else timestamp
        try:
            node.out(self.key, value, ts)
        except BAD_EVENT_ERRORS as exc:  # a later step failed on this output
            node.on_close_error(node.step, exc, output_context(self.key, value), ts)

    def register_timer(self, timestamp: int) -> None:
        node = self._node
        entry = (int(timestamp), self.key)
        if entry not in node.timer_set:
            node.changed.add(self.key)
            node.timer_set.add(entry)
            node.seq += 1
            heappush(node.timers, (entry[0], node.seq, self.key))
            due = entry[0] + node.hold_ms
            now = node.flow_watermark()
            if due <= now < MAX_WATERMARK:
                due = now + 1  # already passed: fires when the watermark next rises
            node.lower_due(due)

    def delete_timer(self, timestamp: int) -> None:
        self._node.changed.add(self.key)
        self._node.timer_set.discard((int(timestamp), self.key))


class ProcessNode:
    """Runs a :class:`ProcessStep`: per-key state (plain data) and event-time timers.

    Timers fire, in time order, when the (held-back) watermark reaches their time; a timer
    registered again for the same key and time fires once.
    """

    def __init__(self, flow: str, step: ProcessStep, out: Push, hold_ms: int) -> None:
        self.step = step
        self.hold_ms = hold_ms
        self.out = out
        self.logic = step.logic
        self.states: dict[Hashable, Any] = {}
        self.timers: list[tuple[int, int, Hashable]] = []
        self.timer_set: set[tuple[int, Hashable]] = set()
        self.changed: set[Hashable] = set()
        """Keys whose state or timers may have changed since the last checkpoint."""
        self.seq = 0
        self.disorder = Disorder()
        self.stats = StepStats(step.name, "process")
        self._flow = flow
        self._ctx = NodeContext(self)
        self._on_timer = getattr(self.logic, "on_timer", None)
        self.flow_watermark: Callable[[], int] = lambda: MIN_WATERMARK
        """Set by the runner: the flow watermark now."""
        self.lower_due: Callable[[int], None] = lambda due: None
        """Set by the runner: called when a new timer makes this node due earlier."""
        self.on_close_error: CloseErrorHandler = raise_close_error
        """Set by the runtime: where errors of ``on_timer`` go."""
        self.push = self._make_push()

    @property
    def next_due(self) -> int:
        """The flow watermark at which the earliest timer fires."""
        return self.timers[0][0] + self.hold_ms if self.timers else MAX_WATERMARK

    def _make_push(self) -> Push:
        ctx, process = self._ctx, self.logic.process
        flow, step, logic = self._flow, self.step, self.logic
        observe = self.disorder.observe
        node = self  # the set of changed keys is replaced at each forked snapshot

        def push(key: Any, value: Any, ts: int) -> None:
            observe(ts)
            node.changed.add(key)  # in-place changes of ctx.state count too
            ctx.key = key
            ctx.timestamp = ts
            try:
                process(ctx, value)
            except Exception as exc:
                raise user_error(flow, step, logic, exc) from exc

        return push

    def advance(self, watermark: int) -> None:
        wm = held(watermark, self.hold_ms)
        ctx = self._ctx
        timers = self.timers
        if not timers or timers[0][0] > wm:
            return
        on_timer = self._on_timer
        while timers and timers[0][0] <= wm:
            ts, _, key = heappop(timers)
            if (ts, key) not in self.timer_set:
                continue  # deleted
            self.timer_set.discard((ts, key))
            self.changed.add(key)
            if on_timer is None:
                continue
            ctx.key = key
            ctx.timestamp = ts
            try:
                on_timer(ctx, ts)
            except Exception as exc:
                context = {"key": key, "timer": ts}
                err = close_error(self._flow, self.step, on_timer, exc, context)
                self.on_close_error(self.step, err, context, ts)
        self.stats.state_size = len(self.states)

    def finish(self) -> None:
        self.advance(MAX_WATERMARK)

    def sync_stats(self) -> StepStats:
        stats = self.stats
        stats.events_in, _, stats.out_of_order, stats.max_delay_ms = self.disorder.cell
        stats.state_size = len(self.states)
        return stats

    def snapshot(self) -> dict[str, Any]:
        """Per-key state and pending timers as plain data."""
        return {
            "states": [[key_to_plain(k), v] for k, v in self.states.items()],
            "timers": sorted([ts, key_to_plain(k)] for ts, k in self.timer_set),
        }

    def load(self, snapshot: dict[str, Any]) -> None:
        """Restore what :meth:`snapshot` returned."""
        self.states = {key_from_plain(k): v for k, v in snapshot["states"]}
        self.timers, self.timer_set = [], set()
        for ts, k in snapshot["timers"]:
            key = key_from_plain(k)
            self.timer_set.add((ts, key))
            self.seq += 1
            heappush(self.timers, (ts, self.seq, key))

    def checkpoint(self) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
        """Node-wide state, and ``{"state", "timers"}`` of every key changed since."""
        timers: dict[Hashable, list[int]] = {}
        if self.changed:
            for ts, k in self.timer_set:
                if k in self.changed:
                    timers.setdefault(k, []).append(ts)
        changes = []
        for k in self.changed:
            state = self.states.get(k)
            ts_list = sorted(timers.get(k, ()))
            value = None if state is None and not ts_list else {"state": state, "timers": ts_list}
            changes.append((key_to_plain(k), value))
        self.changed.clear()
        snap = getattr(self.logic, "snapshot", None)
        return {"logic": snap() if snap is not None else None}, changes

    def take_changed(self) -> Any:
        """Hand over the keys changed since the last checkpoint (constant time)."""
        taken, self.changed = self.changed, set()
        return taken

    def merge_changed(self, taken: Any) -> None:
        self.changed |= taken

    def restore(self, meta: dict[str, Any], keys: Iterable[tuple[Any, Any]]) -> None:
        """Load what :meth:`checkpoint` wrote."""
        load = getattr(self.logic, "load", None)
        if load is not None and meta.get("logic") is not None:
            load(meta["logic"])
        for k, value in keys:
            key = key_from_plain(k)
            if value["state"] is not None:
                self.states[key] = value["state"]
            for ts in value["timers"]:
                self.timer_set.add((ts, key))
                self.seq += 1
                heappush(self.timers, (ts, self.seq, key))


def _default_pair(key: Any, left: Any, right: Any) -> dict[str, Any]:
    return {"key": key, "left": left, "right": right}


class JoinNode:
    """Runs a :class:`JoinStep` (window or interval join); ``push_left``/``push_right``."""

    def __init__(
        self, flow: str, step: JoinStep, out: Push, late: LateRouter, hold_ms: int
    ) -> None:
        self.step = step
        self.hold_ms = hold_ms
        self.stats = StepStats(step.name, step.kind)
        self._flow, self._out, self._late = flow, out, late
        late.stats = self.stats
        self._combine = step.combine
        self._due = MIN_WATERMARK + 1
        self.flow_watermark: Callable[[], int] = lambda: MIN_WATERMARK
        """Set by the runner: the flow watermark now (for late records)."""
        self.on_close_error: CloseErrorHandler = raise_close_error
        """Set by the runtime: where errors of ``combine`` at window close go."""
        self.window_op: WindowJoinOperator | None = None
        self.interval_op: IntervalJoinOperator | None = None
        if step.mode == "window":
            self.window_op = WindowJoinOperator(
                step.spec, allowed_lateness_ms=step.allowed_lateness_ms
            )
            self.push_left = self._window_push(self.window_op.process_left)
            self.push_right = self._window_push(self.window_op.process_right)
        else:
            self.interval_op = IntervalJoinOperator(step.lower_ms, step.upper_ms)
            self.push_left = self._interval_push(self.interval_op.process_left)
            self.push_right = self._interval_push(self.interval_op.process_right)

    def _window_push(self, process: Callable[[Any, Any, int], Any]) -> Push:
        stats, late_out = self.stats, self._late
        node = self

        def push(key: Any, value: Any, ts: int) -> None:
            stats.events_in += 1
            _, late = process(key, value, ts)
            if late is not None:
                late_out(late, held(node.flow_watermark(), node.hold_ms))

        return push

    def _interval_push(self, process: Callable[[Any, Any, int], Any]) -> Push:
        stats, out, combine = self.stats, self._out, self._combine
        flow, step, node = self._flow, self.step, self

        def push(key: Any, value: Any, ts: int) -> None:
            stats.events_in += 1
            pairs = process(key, value, ts)
            if pairs.late:
                stats.late += 1
            for a, b in pairs:
                if combine is None:
                    row = _default_pair(key, a, b)
                else:
                    try:
                        row = combine(a, b)
                    except Exception as exc:
                        raise user_error(flow, step, combine, exc) from exc
                stats.events_out += 1
                try:
                    out(key, row, ts)
                except BAD_EVENT_ERRORS as exc:  # a later step failed on this pair
                    node.on_close_error(step, exc, output_context(key, row), ts)

        return push

    @property
    def next_due(self) -> int:
        """Interval joins decide lateness on the exact watermark: due on every rise. Window
        joins, like windows, at the watermarks their kernel names (between two of them the
        operator's answers are the same)."""
        return self._due

    def advance(self, watermark: int) -> None:
        wm = held(watermark, self.hold_ms)
        if self.interval_op is not None:
            self._due = MAX_WATERMARK if wm >= MAX_WATERMARK else watermark + 1
            self.interval_op.advance(wm)
            return
        assert self.window_op is not None
        self._emit(self.window_op.advance(wm))
        nxt = self.window_op.kernel.next_change(wm)
        self._due = nxt if nxt >= MAX_WATERMARK else nxt + self.hold_ms

    def _emit(self, rows: list[dict[str, Any]]) -> None:
        combine, out = self._combine, self._out
        for row in rows:
            if combine is None:
                value: Any = row
            else:
                try:
                    value = combine(row["left"], row["right"])
                except Exception as exc:
                    context = {
                        "key": row["key"],
                        "window_start": row["window_start"],
                        "window_end": row["window_end"],
                    }
                    err = close_error(self._flow, self.step, combine, exc, context)
                    self.on_close_error(self.step, err, context, row["window_end"] - 1)
                    continue
            self.stats.events_out += 1
            try:
                out(row["key"], value, row["window_end"] - 1)
            except BAD_EVENT_ERRORS as exc:  # a later step failed on this result
                context = output_context(row["key"], value)
                self.on_close_error(self.step, exc, context, row["window_end"] - 1)

    def finish(self) -> None:
        self.advance(MAX_WATERMARK)

    def sync_stats(self) -> StepStats:
        return self.stats

    def checkpoint(self) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
        """Window joins: per changed key; interval joins: their whole (small) buffer."""
        if self.interval_op is not None:
            self.interval_op.clear_changed()
            return {"interval": self.interval_op.snapshot()}, []
        op = self.window_op
        assert op is not None
        changes = [(key_to_plain(k), op.snapshot_key(k)) for k in op.changed_keys()]
        op.clear_changed()
        return {"window": op.snapshot(include_keys=False)}, changes

    def take_changed(self) -> Any:
        """Hand over the keys changed since the last checkpoint (constant time)."""
        if self.interval_op is not None:
            return self.interval_op.take_changed()
        assert self.window_op is not None
        return self.window_op.take_changed()

    def merge_changed(self, taken: Any) -> None:
        if self.interval_op is not None:
            self.interval_op.merge_changed(taken)
        else:
            assert self.window_op is not None
            self.window_op.merge_changed(taken)

    def restore(self, meta: dict[str, Any], keys: Iterable[tuple[Any, Any]]) -> None:
        if self.interval_op is not None:
            self.interval_op.load(meta["interval"])
            return
        op = self.window_op
        assert op is not None
        op.load(meta["window"])
        for key, data in keys:
            op.restore_key(key_from_plain(key), data)
        op.clear_changed()
        self._due = MIN_WATERMARK + 1


Node = WindowNode | ProcessNode | JoinNode

__all__ = [
    "CloseErrorHandler",
    "JoinNode",
    "LateRouter",
    "Node",
    "ProcessNode",
    "WindowNode",
    "close_error",
    "coarsen_sessions",
    "held",
    "raise_close_error",
    "user_error",
]
