"""The primitive steps a flow is made of: frozen, inspectable, printable.

A flow is a directed graph of *steps*. Each step names the ports it reads from
(``inputs``: ``(step_id, port)`` pairs) and does one primitive thing. The runtime only knows
these primitives; every other operator on :class:`~rheos.flows.Stream` is composed from them:

=================  ==========================================================================
primitive          what it does
=================  ==========================================================================
``SourceStep``     reads events from a source, stamps them with an event time
``TransformStep``  stateless, one event in, zero or more out (``map``/``filter``/``flat_map``/
                   ``inspect`` are its kinds); chains of them are fused into one closure
``KeyByStep``      attaches a key to each event
``ProcessStep``    keyed state plus event-time timers (running ``reduce``/``aggregate`` too)
``WindowStep``     keyed (or global) windows with aggregations, in event or processing time
``JoinStep``       a windowed or interval join of two keyed streams
``UnionStep``      merges streams
``SinkStep``       writes events out
=================  ==========================================================================

Ports: every step has an ``"out"`` port; window and join steps also have a ``"late"`` port
that carries the events that arrived after their window closed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rheos.durations import format_ms
from rheos.flows.backends import DiskState

Port = tuple[int, str]
"""A step's output: ``(step_id, port_name)``."""

OUT = "out"
LATE = "late"

TransformKind = Literal["map", "filter", "flat_map", "inspect"]
TimeDomain = Literal["event", "processing"]
EmitMode = Literal["final", "update"]
OnError = Literal["dead-letter", "skip", "fail"]
ON_ERROR = ("dead-letter", "skip", "fail")
"""Policies for bad events: write them to ``<flow>.dlq`` (default), drop them (counted), or
stop the run with the error."""


def describe_callable(fn: object) -> str:
    """Name a user function by ``module:line`` (or its ``repr`` if it has no code object).

    >>> def double(x):
    ...     return 2 * x
    >>> describe_callable(double).startswith("double at ")
    True
    """
    code = getattr(fn, "__code__", None)
    if code is None:
        call = getattr(type(fn), "__call__", None)  # noqa: B004 - a callable object's code
        code = getattr(call, "__code__", None)
        name = type(fn).__qualname__
    else:
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    if code is None:
        return repr(fn)
    return f"{name} at {code.co_filename}:{code.co_firstlineno}"


@dataclass(frozen=True)
class Step:
    """Base of all steps: an id unique in its flow, a readable name and the input ports."""

    id: int
    name: str
    inputs: tuple[Port, ...]
    on_error: str | None = field(default=None, kw_only=True)
    """What to do with an event this step cannot process (``None``: the flow's policy)."""

    @property
    def kind(self) -> str:
        """The primitive this step is, e.g. ``"window"``."""
        return type(self).__name__.removesuffix("Step").lower()

    def detail(self) -> str:
        """A one-line description of the step's parameters (used by :meth:`Flow.describe`)."""
        return ""


@dataclass(frozen=True)
class SourceStep(Step):
    """Reads from ``source``; event time from ``timestamp`` (field name or function)."""

    source: Any
    timestamp: str | Callable[[Any], Any] | None
    timestamp_unit: str
    out_of_orderness_ms: int
    idle_timeout_ms: int | None

    def detail(self) -> str:
        ts = (
            self.timestamp
            if isinstance(self.timestamp, str) or self.timestamp is None
            else (describe_callable(self.timestamp))
        )
        idle = f", idle_timeout={format_ms(self.idle_timeout_ms)}" if self.idle_timeout_ms else ""
        return (
            f"{self.source!r}, timestamp={ts!r}, "
            f"out_of_orderness={format_ms(self.out_of_orderness_ms)}{idle}"
        )


@dataclass(frozen=True)
class TransformStep(Step):
    """A stateless function: ``map`` (1→1), ``filter`` (1→0/1), ``flat_map`` (1→n), ``inspect``."""

    transform: TransformKind
    fn: Callable[..., Any]

    @property
    def kind(self) -> str:
        return self.transform

    def detail(self) -> str:
        return describe_callable(self.fn)


@dataclass(frozen=True)
class KeyByStep(Step):
    """Keys each event by a field (``str``) or a function of the event."""

    key: str | Callable[[Any], Any]

    @property
    def kind(self) -> str:
        return "key_by"

    def detail(self) -> str:
        return repr(self.key) if isinstance(self.key, str) else describe_callable(self.key)


@dataclass(frozen=True)
class ProcessStep(Step):
    """Keyed state and event-time timers; ``logic`` follows :class:`ProcessLogic`."""

    logic: Any

    def detail(self) -> str:
        return describe_callable(self.logic)


@dataclass(frozen=True)
class WindowStep(Step):
    """Windows (``spec``) with named aggregations over a keyed or global stream."""

    spec: Any
    aggregations: Mapping[str, Any]
    allowed_lateness_ms: int
    emit: EmitMode
    time: TimeDomain
    keyed: bool

    def detail(self) -> str:
        aggs = ", ".join(f"{k}={v!r}" for k, v in self.aggregations.items())
        extra = f", allowed_lateness={format_ms(self.allowed_lateness_ms)}"
        if self.emit != "final":
            extra += f", emit={self.emit!r}"
        if self.time != "event":
            extra += f", time={self.time!r}"
        if not self.keyed:
            extra += ", global"
        return f"{self.spec!r}{extra}: {aggs}"


@dataclass(frozen=True)
class JoinStep(Step):
    """Joins ``inputs[0]`` (left) and ``inputs[1]`` (right) by key.

    ``mode`` is ``"window"`` (both in the same window of ``spec``) or ``"interval"``
    (right's time within ``[left + lower_ms, left + upper_ms]``). ``combine(left, right)``
    builds each output; the default makes ``{"key", "left", "right", ...}``.
    """

    mode: Literal["window", "interval"]
    spec: Any = None
    lower_ms: int = 0
    upper_ms: int = 0
    allowed_lateness_ms: int = 0
    combine: Callable[[Any, Any], Any] | None = None

    def detail(self) -> str:
        if self.mode == "window":
            return f"window {self.spec!r}"
        return f"interval [{self.lower_ms}ms, {self.upper_ms}ms]"


@dataclass(frozen=True)
class UnionStep(Step):
    """Merges all of its inputs into one stream."""


@dataclass(frozen=True)
class SinkStep(Step):
    """Writes every event to ``sink``."""

    sink: Any

    def detail(self) -> str:
        return repr(self.sink)


@dataclass(frozen=True)
class Graph:
    """A snapshot of a flow's steps in creation (hence topological) order."""

    name: str
    steps: tuple[Step, ...] = field(default=())
    on_error: str = "dead-letter"
    """The flow's policy for bad events (see :data:`ON_ERROR`); steps may override it."""
    dead_letter_sink: Any = None
    """A sink that also receives every dead letter of the flow (see :class:`~rheos.flows.
    Flow`), or ``None``."""
    late_sink: Any = None
    """A sink that also receives what goes to the flow's default late output, or ``None``."""
    state: DiskState | None = None
    """Where keyed state lives: ``None`` in memory, else on disk (:mod:`rheos.flows.backends`)."""

    def consumers(self) -> dict[Port, list[tuple[Step, int]]]:
        """Map each port to the ``(step, input_index)`` pairs that read it."""
        out: dict[Port, list[tuple[Step, int]]] = {}
        for step in self.steps:
            for i, port in enumerate(step.inputs):
                out.setdefault(port, []).append((step, i))
        return out

    def describe(self) -> str:
        """The graph as text, one step per line with the ports it reads."""
        lines = [f"flow {self.name!r}"]
        for step in self.steps:
            src = ", ".join(
                f"#{sid}" if port == OUT else f"#{sid}.{port}" for sid, port in step.inputs
            )
            arrow = f" <- {src}" if src else ""
            detail = step.detail()
            policy = f" [on_error={step.on_error}]" if step.on_error else ""
            lines.append(
                f"  #{step.id} {step.kind} {step.name!r}{arrow}"
                + (f": {detail}" if detail else "")
                + policy
            )
        return "\n".join(lines)


__all__ = [
    "LATE",
    "ON_ERROR",
    "OUT",
    "EmitMode",
    "Graph",
    "JoinStep",
    "KeyByStep",
    "OnError",
    "Port",
    "ProcessStep",
    "SinkStep",
    "SourceStep",
    "Step",
    "TimeDomain",
    "TransformKind",
    "TransformStep",
    "UnionStep",
    "WindowStep",
    "describe_callable",
]
