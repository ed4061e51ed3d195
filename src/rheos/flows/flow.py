"""The flow builder: :class:`Flow`, :class:`Stream`, :class:`KeyedStream`, :class:`WindowedStream`.

Building a flow only records steps; nothing runs until ``flow.run()`` (see :mod:`rheos.runtime`).

>>> from rheos.connectors import iterable_source, list_sink
>>> flow = Flow("doubles")
>>> out = []
>>> (flow.source(iterable_source([1, 2, 3]))
...     .map(lambda x: 2 * x)
...     .filter(lambda x: x > 2)
...     .sink(list_sink(out)))
>>> print(flow.describe())  # doctest: +ELLIPSIS
flow 'doubles'
  #0 source 'source': ...
  #1 map 'map' <- #0: ...
  #2 filter 'filter' <- #1: ...
  #3 sink 'sink' <- #2: ListSink(...)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any, Self

from rheos.durations import Duration, to_ms
from rheos.errors import FlowDefinitionError
from rheos.flows.backends import StateOption, state_backend
from rheos.flows.expressions import Expr, WithColumns, as_expr, as_function
from rheos.flows.logic import OverPrevious, RunningAggregate, RunningReduce, as_logic
from rheos.flows.steps import (
    LATE,
    ON_ERROR,
    OUT,
    EmitMode,
    Graph,
    JoinStep,
    KeyByStep,
    OnError,
    Port,
    ProcessStep,
    SinkStep,
    SourceStep,
    Step,
    TimeDomain,
    TransformKind,
    TransformStep,
    UnionStep,
    WindowStep,
)
from rheos.windowing.windows import CalendarWindows, TumblingWindows

DEFAULT_IDLE_TIMEOUT = "5s"
"""How long a source partition may go without an event (or have none at all) before it stops
holding the watermark back, unless the source says otherwise."""


def signed_ms(value: Duration, *, what: str) -> int:
    """A duration that may be negative (``"-5s"``), in milliseconds.

    >>> signed_ms("-5s", what="lower")
    -5000
    >>> signed_ms(timedelta(seconds=-1), what="lower")
    -1000
    """
    if isinstance(value, str) and value.strip().startswith("-"):
        return -to_ms(value.strip()[1:], what=what)
    if isinstance(value, timedelta) and value < timedelta(0):
        return -to_ms(-value, what=what)
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return value
    return to_ms(value, what=what)


class Flow:
    """A named dataflow: sources, the steps between them, and sinks.

    ``data_dir`` is the embedded log's directory (for log sources and sinks and the default
    late-event topic ``<name>.late``); when ``None`` the runtime uses ``RHEOS_DATA_DIR`` or
    the CLI's default. ``clock`` (an object with ``now_ms()``) drives processing time and
    idle timeouts; tests pass a ``ManualClock``. ``on_error`` is the policy for events a step
    cannot process (undecodable, failing the schema, without a usable timestamp, or making a
    user function raise): ``"dead-letter"`` (default: to the topic ``<name>.dlq``),
    ``"skip"`` (dropped, counted) or ``"fail"`` (the run stops with the error); one step can
    override it with :meth:`Stream.on_error`. ``dead_letter_sink`` (a sink, e.g.
    ``rh.kafka_sink("orders.dlq", ...)``) also receives every dead letter written to
    ``<name>.dlq``, as a dict (``DeadLetter.as_dict()``: the record as text, the step, the
    error, where it was read), with the flow's checkpoints: a Kafka sink writes them in its
    checkpoint's transaction, exactly once. ``<name>.dlq`` stays the one that ``rheos dlq``
    lists and ``rheos replay`` replays. ``late_sink`` likewise receives what goes to the
    default late output ``<name>.late`` (late records of steps whose ``.late()`` is not
    routed elsewhere).
    ``state`` is where keyed state lives: ``"memory"`` (default), ``"disk"`` or
    :func:`~rheos.disk_state` (windows and keyed ``process`` state in SQLite with a bounded
    cache of hot keys; see docs/concepts/state.md).
    """

    def __init__(
        self,
        name: str,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        clock: Any = None,
        on_error: OnError = "dead-letter",
        dead_letter_sink: Any = None,
        late_sink: Any = None,
        state: StateOption = "memory",
    ) -> None:
        if not name or not isinstance(name, str):
            raise FlowDefinitionError(f"a flow needs a non-empty name, got {name!r}")
        _check_policy(name, on_error)
        self.state = state_backend(name, state)
        for what, sink in (("dead_letter_sink", dead_letter_sink), ("late_sink", late_sink)):
            if sink is not None and not callable(getattr(sink, "open", None)):
                raise FlowDefinitionError(
                    f"flow {name!r}: {what} must be a sink (rh.kafka_sink(...), "
                    f"rh.log_sink(...)), got {sink!r}"
                )
        self.on_error: OnError = on_error
        self.dead_letter_sink = dead_letter_sink
        self.late_sink = late_sink
        self.name = name
        self.data_dir = os.fspath(data_dir) if data_dir is not None else None
        self.clock = clock
        self._steps: list[Step] = []
        self._names: set[str] = set()

    # -- building --------------------------------------------------------------------------
    def source(
        self,
        source: Any,
        *,
        timestamp: str | Callable[[Any], Any] | None = None,
        out_of_orderness: Duration = 0,
        idle_timeout: Duration | None = DEFAULT_IDLE_TIMEOUT,
        timestamp_unit: str = "auto",
        name: str | None = None,
    ) -> Stream:
        """Add a source and return its stream.

        ``timestamp`` is the event-time field (epoch ms, epoch s or ISO-8601 text; see
        ``timestamp_unit``) or a function of the event. Without it, log records use their
        record timestamp and other sources the clock at reading time. ``out_of_orderness``
        bounds how far behind the newest event an event may arrive without being late:
        the source's watermark is ``min over partitions(max event time seen) - bound``.
        ``idle_timeout`` (default ``"5s"``): a partition (or whole source) with no new event
        for that long on the flow's clock stops holding the watermark back -- a partition
        that has had no data at all as well, so windows close even when some partitions of
        a topic stay empty; ``None`` waits for every partition forever. See
        :mod:`rheos.windowing.watermarks`.
        """
        step = SourceStep(
            id=len(self._steps),
            name=self._name(name, "source"),
            inputs=(),
            source=source,
            timestamp=timestamp,
            timestamp_unit=timestamp_unit,
            out_of_orderness_ms=to_ms(out_of_orderness, what="out_of_orderness"),
            idle_timeout_ms=None
            if idle_timeout is None
            else to_ms(idle_timeout, what="idle_timeout"),
        )
        return Stream(self, self._add(step))

    def union(self, *streams: Stream, name: str | None = None) -> Stream:
        """Merge streams into one (see :meth:`Stream.union`)."""
        if not streams:
            raise FlowDefinitionError(f"flow {self.name!r}: union needs at least one stream")
        return streams[0].union(*streams[1:], name=name)

    def _name(self, name: str | None, default: str) -> str:
        base = name or default
        candidate, n = base, 1
        while candidate in self._names:
            if name is not None:
                raise FlowDefinitionError(f"flow {self.name!r}: two steps named {name!r}")
            n += 1
            candidate = f"{base}_{n}"
        self._names.add(candidate)
        return candidate

    def _add(self, step: Step) -> Port:
        self._steps.append(step)
        return (step.id, OUT)

    def _next_id(self) -> int:
        return len(self._steps)

    # -- inspecting ------------------------------------------------------------------------
    @property
    def steps(self) -> tuple[Step, ...]:
        """Every step, in the order they were added (a topological order)."""
        return tuple(self._steps)

    def graph(self) -> Graph:
        """A frozen snapshot of the flow's steps."""
        return Graph(
            self.name,
            tuple(self._steps),
            self.on_error,
            dead_letter_sink=self.dead_letter_sink,
            late_sink=self.late_sink,
            state=self.state,
        )

    def describe(self) -> str:
        """The flow as text: one step per line with the ports it reads from."""
        return self.graph().describe()

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        return f"Flow({self.name!r}, steps={len(self._steps)})"


class Stream:
    """A stream of events inside a :class:`Flow` (an output port of a step)."""

    keyed = False

    def __init__(self, flow: Flow, port: Port) -> None:
        self.flow = flow
        self.port = port

    def _derive(self, port: Port) -> Stream:
        return Stream(self.flow, port)

    def _transform(
        self,
        kind: TransformKind,
        fn: Callable[..., Any],
        name: str | None,
        default: str | None = None,
    ) -> Port:
        fn = as_function(fn)
        if not callable(fn):
            raise FlowDefinitionError(
                f"flow {self.flow.name!r}: {kind} needs a function, got {fn!r}"
            )
        flow = self.flow
        step = TransformStep(
            flow._next_id(), flow._name(name, default or kind), (self.port,), kind, fn
        )
        return flow._add(step)

    # -- stateless ---------------------------------------------------------------------------
    def map(self, fn: Callable[[Any], Any], *, name: str | None = None) -> Stream:
        """Replace each event by ``fn(event)``."""
        return self._derive(self._transform("map", fn, name))

    def filter(self, predicate: Callable[[Any], Any], *, name: str | None = None) -> Stream:
        """Keep the events for which ``predicate(event)`` is true."""
        return self._derive(self._transform("filter", predicate, name))

    def flat_map(self, fn: Callable[[Any], Iterable[Any]], *, name: str | None = None) -> Stream:
        """Replace each event by every item of ``fn(event)`` (zero or more)."""
        return self._derive(self._transform("flat_map", fn, name))

    def inspect(self, fn: Callable[[Any], Any], *, name: str | None = None) -> Stream:
        """Call ``fn(event)`` for its side effect; events pass through unchanged."""
        return self._derive(self._transform("inspect", fn, name))

    def with_columns(self, *exprs: Any, name: str | None = None, **named: Any) -> Stream:
        """Add (or replace) fields computed by expressions: a ``map`` to a new dict event.

        Positional expressions need a name (``col("x")`` or ``.alias("y")``); keyword ones are
        named by their keyword: ``.with_columns(notional=rh.col("price") * rh.col("qty"))``.
        Every expression reads the incoming event. Runs columnar in micro-batch mode.
        """
        return self._derive(
            self._transform("map", _with_columns(self, exprs, named), name, "with_columns")
        )

    def union(self, *others: Stream, name: str | None = None) -> Stream:
        """Merge this stream with ``others`` (events keep their event times and keys)."""
        flow = self.flow
        for other in others:
            if other.flow is not flow:
                raise FlowDefinitionError(f"flow {flow.name!r}: cannot union streams of two flows")
        ports = (self.port, *(o.port for o in others))
        port = flow._add(UnionStep(flow._next_id(), flow._name(name, "union"), ports))
        if self.keyed and all(o.keyed for o in others):
            return KeyedStream(flow, port)
        return Stream(flow, port)

    def split(
        self, predicate: Callable[[Any], Any], *, name: str | None = None
    ) -> tuple[Stream, Stream]:
        """Two streams: events where ``predicate`` is true, and the rest."""
        base = name or "split"
        yes = self._derive(self._transform("filter", predicate, None, f"{base}.true"))

        no = self._derive(self._transform("filter", _Not(predicate), None, f"{base}.false"))
        return yes, no

    def branch(self, **predicates: Callable[[Any], Any]) -> dict[str, Stream]:
        """One stream per named predicate; an event goes to every branch whose predicate holds.

        >>> from rheos.connectors import iterable_source
        >>> flow = Flow("b")
        >>> numbers = flow.source(iterable_source([1, 2]))
        >>> parts = numbers.branch(odd=lambda x: x % 2, big=lambda x: x > 1)
        >>> sorted(parts)
        ['big', 'odd']
        """
        return {
            label: self._derive(self._transform("filter", pred, None, f"branch.{label}"))
            for label, pred in predicates.items()
        }

    # -- keys, state, windows ----------------------------------------------------------------
    def key_by(self, key: str | Callable[[Any], Any], *, name: str | None = None) -> KeyedStream:
        """Key events by a field name, an expression or a function of the event."""
        key = as_function(key)
        if not (isinstance(key, str) or callable(key)):
            raise FlowDefinitionError(
                f"flow {self.flow.name!r}: key_by needs a field name or a function, got {key!r}"
            )
        flow = self.flow
        step = KeyByStep(flow._next_id(), flow._name(name, "key_by"), (self.port,), key)
        return KeyedStream(flow, flow._add(step))

    def window(
        self,
        spec: Any,
        *,
        allowed_lateness: Duration = 0,
        emit: EmitMode = "final",
        time: TimeDomain = "event",
    ) -> WindowedStream:
        """Window this stream. Unkeyed streams get one global window set (key ``None``).

        ``allowed_lateness``: a window stays open this long after the watermark passes its
        end; events for windows closed beyond it go to the late output
        (:meth:`WindowedStream.late`).
        ``emit="final"`` emits each window once when it closes; ``"update"`` emits the new
        result on every change. ``time="processing"`` windows by the flow clock instead.
        """
        if emit not in ("final", "update"):
            raise FlowDefinitionError(f"window emit must be 'final' or 'update', got {emit!r}")
        if time not in ("event", "processing"):
            raise FlowDefinitionError(f"window time must be 'event' or 'processing', got {time!r}")
        lateness = to_ms(allowed_lateness, what="allowed_lateness")
        if self.keyed:
            return WindowedStream(self, spec, lateness, emit, time)
        # One global window set: events that still carry an upstream key (the results of a
        # keyed window, say) are re-keyed to None first.
        upstream = self.key_by(_global_key)
        return WindowedStream(upstream, spec, lateness, emit, time, keyed=False)

    def on_error(self, policy: OnError) -> Self:
        """Set the bad-event policy of the step that made this stream (a source: decoding,
        schema and timestamp errors; a step: its function raising) and return the stream.

        >>> from rheos.connectors import iterable_source
        >>> flow = Flow("p")
        >>> _ = flow.source(iterable_source([1])).map(lambda x: 1 / x).on_error("skip")
        >>> flow.steps[1].on_error
        'skip'
        """
        flow = self.flow
        _check_policy(flow.name, policy)
        sid = self.port[0]
        flow._steps[sid] = replace(flow._steps[sid], on_error=policy)
        return self

    def sink(self, sink: Any, *, name: str | None = None) -> None:
        """Write every event of this stream to ``sink``."""
        flow = self.flow
        flow._add(SinkStep(flow._next_id(), flow._name(name, "sink"), (self.port,), sink))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.flow.name!r}, step={self.port[0]}, port={self.port[1]!r})"
        )


def _with_columns(stream: Stream, exprs: tuple[Any, ...], named: dict[str, Any]) -> WithColumns:
    columns: dict[str, Expr] = {}
    for item in exprs:
        e = as_expr(item)
        if e.output_name is None:
            raise FlowDefinitionError(
                f"flow {stream.flow.name!r}: with_columns: {item!r} has no name; "
                "pass it as name=expression or use .alias(name)"
            )
        columns[e.output_name] = e
    for key, item in named.items():
        columns[key] = as_expr(item)
    if not columns:
        raise FlowDefinitionError(f"flow {stream.flow.name!r}: with_columns needs expressions")
    return WithColumns(columns)


def _check_policy(flow: str, policy: str) -> None:
    if policy not in ON_ERROR:
        raise FlowDefinitionError(
            f"flow {flow!r}: on_error must be one of {', '.join(ON_ERROR)}; got {policy!r}"
        )


class _Not:
    """``not predicate(event)``; keeps the predicate's code so errors point at user code."""

    def __init__(self, predicate: Callable[[Any], Any]) -> None:
        self.predicate = predicate
        self.__code__ = getattr(predicate, "__code__", None)
        self.__qualname__ = "not " + getattr(predicate, "__qualname__", repr(predicate))

    def __call__(self, event: Any) -> bool:
        return not self.predicate(event)


class KeyedStream(Stream):
    """A stream whose events carry a key. Stateless steps keep the key."""

    keyed = True

    def _derive(self, port: Port) -> KeyedStream:
        return KeyedStream(self.flow, port)

    def map(self, fn: Callable[[Any], Any], *, name: str | None = None) -> KeyedStream:
        """Replace each event's value by ``fn(event)``; the key stays."""
        return self._derive(self._transform("map", fn, name))

    def filter(self, predicate: Callable[[Any], Any], *, name: str | None = None) -> KeyedStream:
        """Keep the events for which ``predicate(event)`` is true."""
        return self._derive(self._transform("filter", predicate, name))

    def flat_map(
        self, fn: Callable[[Any], Iterable[Any]], *, name: str | None = None
    ) -> KeyedStream:
        """Replace each event by the items of ``fn(event)``, all under the same key."""
        return self._derive(self._transform("flat_map", fn, name))

    def inspect(self, fn: Callable[[Any], Any], *, name: str | None = None) -> KeyedStream:
        """Call ``fn(event)`` for its side effect."""
        return self._derive(self._transform("inspect", fn, name))

    def process(self, logic: Any, *, name: str | None = None) -> Stream:
        """A general keyed stateful step; ``logic`` follows :class:`~rheos.flows.ProcessLogic`.

        Emitted values keep the key (the returned stream is a :class:`KeyedStream`).
        """
        try:
            obj = as_logic(logic)
        except TypeError as exc:
            raise FlowDefinitionError(f"flow {self.flow.name!r}: process: {exc}") from None
        flow = self.flow
        step = ProcessStep(flow._next_id(), flow._name(name, "process"), (self.port,), obj)
        return KeyedStream(flow, flow._add(step))

    def reduce(self, fn: Callable[[Any, Any], Any], *, name: str | None = None) -> KeyedStream:
        """Running reduce per key; emits the key's new value after every event."""
        return self._process_named(RunningReduce(fn), name, "reduce")

    def aggregate(self, *, name: str | None = None, **aggregations: Any) -> KeyedStream:
        """Running aggregations per key; emits ``{"key", <name>: value, ...}`` per event."""
        if not aggregations:
            raise FlowDefinitionError(f"flow {self.flow.name!r}: aggregate needs aggregations")
        return self._process_named(RunningAggregate(aggregations), name, "aggregate")

    def _process_named(self, logic: Any, name: str | None, default: str) -> KeyedStream:
        flow = self.flow
        step = ProcessStep(flow._next_id(), flow._name(name, default), (self.port,), logic)
        return KeyedStream(flow, flow._add(step))

    def join(
        self,
        other: KeyedStream,
        *,
        window: Any,
        allowed_lateness: Duration = 0,
        combine: Callable[[Any, Any], Any] | None = None,
        name: str | None = None,
    ) -> KeyedStream:
        """Pairs of events with the same key in the same window of ``window``.

        Each output is ``combine(left, right)``, by default
        ``{"key", "window_start", "window_end", "left", "right"}``, emitted when the window
        closes.
        """
        step = JoinStep(
            self.flow._next_id(),
            self.flow._name(name, "join"),
            self._pair(other),
            "window",
            spec=window,
            allowed_lateness_ms=to_ms(allowed_lateness, what="allowed_lateness"),
            combine=combine,
        )
        return KeyedStream(self.flow, self.flow._add(step))

    def interval_join(
        self,
        other: KeyedStream,
        *,
        lower: Duration,
        upper: Duration,
        combine: Callable[[Any, Any], Any] | None = None,
        name: str | None = None,
    ) -> KeyedStream:
        """Pairs ``(a, b)`` of the same key with ``a.t + lower <= b.t <= a.t + upper``.

        Each output is ``combine(a, b)``, by default ``{"key", "left": a, "right": b}``,
        emitted as soon as both sides are seen.
        """
        lo, hi = signed_ms(lower, what="lower"), signed_ms(upper, what="upper")
        if lo > hi:
            raise FlowDefinitionError(f"interval_join: lower {lower!r} is above upper {upper!r}")
        step = JoinStep(
            self.flow._next_id(),
            self.flow._name(name, "interval_join"),
            self._pair(other),
            "interval",
            lower_ms=lo,
            upper_ms=hi,
            combine=combine,
        )
        return KeyedStream(self.flow, self.flow._add(step))

    def _pair(self, other: Stream) -> tuple[Port, Port]:
        if not isinstance(other, KeyedStream):
            raise FlowDefinitionError(
                f"flow {self.flow.name!r}: join needs two keyed streams; call key_by on both"
            )
        if other.flow is not self.flow:
            raise FlowDefinitionError(f"flow {self.flow.name!r}: cannot join streams of two flows")
        return (self.port, other.port)


def _global_key(event: Any) -> None:
    """The key of a global window: the same (None) for every event."""
    return None


class WindowedStream:
    """A stream cut into windows; finish it with :meth:`aggregate` or :meth:`reduce`."""

    def __init__(
        self,
        upstream: Stream,
        spec: Any,
        lateness_ms: int,
        emit: EmitMode,
        time: TimeDomain,
        *,
        keyed: bool = True,
    ) -> None:
        self.upstream = upstream
        self.keyed = keyed and upstream.keyed
        self.spec = spec
        self.allowed_lateness_ms = lateness_ms
        self.emit = emit
        self.time = time
        self._step: int | None = None

    def aggregate(self, *, name: str | None = None, **aggregations: Any) -> Stream:
        """One output row per key and window: ``{"key", "window_start", "window_end", ...}``."""
        if not aggregations:
            raise FlowDefinitionError(
                f"flow {self.upstream.flow.name!r}: aggregate needs at least one aggregation"
            )
        if self._step is not None:
            raise FlowDefinitionError(
                f"flow {self.upstream.flow.name!r}: this window is already aggregated; "
                "call .window(...) again for a second aggregation"
            )
        flow = self.upstream.flow
        step = WindowStep(
            flow._next_id(),
            flow._name(name, "window"),
            (self.upstream.port,),
            spec=self.spec,
            aggregations=dict(aggregations),
            allowed_lateness_ms=self.allowed_lateness_ms,
            emit=self.emit,
            time=self.time,
            keyed=self.keyed,
        )
        port = flow._add(step)
        self._step = step.id
        return WindowOutput(flow, port)

    def reduce(
        self, fn: Callable[[Any, Any], Any], *, name: str | None = None, field: str = "value"
    ) -> Stream:
        """Reduce each window's events with ``fn(acc, event)``; the result is under ``field``."""
        return self.aggregate(name=name, **{field: _ReduceAggregation(fn)})

    def late(self) -> Stream:
        """The events that arrived after their window closed (call after :meth:`aggregate`).

        Each late record is ``{"flow", "step", "key", "timestamp", "watermark", "event"}``.
        Routing the late output anywhere replaces the default ``<flow>.late`` log topic.
        """
        if self._step is None:
            raise FlowDefinitionError(
                f"flow {self.upstream.flow.name!r}: call .aggregate(...) before .late()"
            )
        return Stream(self.upstream.flow, (self._step, LATE))


class WindowOutput(Stream):
    """The results of a window step; :meth:`late` gives its late events,
    :meth:`over_previous` the change of each period against the previous one."""

    def late(self) -> Stream:
        """The late events of the window step that produced this stream."""
        return Stream(self.flow, (self.port[0], LATE))

    def over_previous(self, *fields: str, name: str | None = None) -> Stream:
        """Period over period: each result gains ``<field>_previous``, the same key's value
        for the previous period (the window that ends where this one starts; None if that
        window had no result), and ``<field>_change``, ``value / previous - 1`` (None
        without a previous value or when it is 0) -- day over day, week over week, month
        over month with :func:`~rheos.windowing.calendar` windows.

        For tumbling and calendar windows emitting final results. Rows are emitted as the
        window step emits them (when a period closes); the state, each key's last result,
        is checkpointed like any keyed ``process`` step's.
        """
        flow = self.flow
        step = flow._steps[self.port[0]]
        assert isinstance(step, WindowStep)
        at = f"flow {flow.name!r}, step #{step.id} {step.name!r}: over_previous"
        if not fields:
            raise FlowDefinitionError(f"{at} needs the names of aggregations to compare")
        unknown = [f for f in fields if f not in step.aggregations]
        if unknown:
            raise FlowDefinitionError(
                f"{at}: {', '.join(map(repr, unknown))} is not an aggregation of this window "
                f"(those are {', '.join(map(repr, step.aggregations))})"
            )
        if not isinstance(step.spec, TumblingWindows | CalendarWindows) or step.emit != "final":
            raise FlowDefinitionError(
                f"{at} needs tumbling or calendar windows with emit='final'; got "
                f"{step.spec!r}, emit={step.emit!r}"
            )
        added = {f"{f}_{suffix}" for f in fields for suffix in ("previous", "change")}
        taken = set(step.aggregations) & added
        if taken:
            raise FlowDefinitionError(f"{at}: aggregations {sorted(taken)} would be overwritten")
        logic = OverPrevious(tuple(dict.fromkeys(fields)))
        process = ProcessStep(
            flow._next_id(), flow._name(name, "over_previous"), (self.port,), logic
        )
        return Stream(flow, flow._add(process))


class _ReduceAggregation:
    """A window aggregation from a two-argument reduce function (first event is the seed)."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn
        self.__code__ = getattr(fn, "__code__", None)

    def init(self) -> Any:
        return [False, None]

    def add(self, acc: Any, event: Any) -> Any:
        if acc[0]:
            acc[1] = self.fn(acc[1], event)
        else:
            acc[0], acc[1] = True, event
        return acc

    def merge(self, a: Any, b: Any) -> Any:
        if not b[0]:
            return a
        if not a[0]:
            return b
        return [True, self.fn(a[1], b[1])]

    def result(self, acc: Any) -> Any:
        return acc[1]

    def __repr__(self) -> str:
        return f"reduce({getattr(self.fn, '__qualname__', self.fn)!r})"


__all__ = [
    "Flow",
    "KeyedStream",
    "Stream",
    "WindowOutput",
    "WindowedStream",
    "signed_ms",
]
