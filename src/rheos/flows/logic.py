"""Keyed stateful logic: the contract of :meth:`KeyedStream.process`, and the running
``reduce``/``aggregate`` built on it.

A process step calls ``logic.process(ctx, event)`` for every event, with ``ctx`` a
:class:`ProcessContext` bound to the event's key. The logic keeps its per-key state in
``ctx.state`` -- plain data only (dicts, lists, numbers, strings), so the runtime can
snapshot it -- and may register event-time timers; ``logic.on_timer(ctx, timestamp)`` runs
once the watermark reaches the timer's time. A plain function ``fn(ctx, event)`` works too.

>>> class CountTo3:
...     def process(self, ctx, event):
...         ctx.state = (ctx.state or 0) + 1
...         if ctx.state == 3:
...             ctx.emit({"key": ctx.key, "third_at": ctx.timestamp})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from rheos.windowing.aggregations import bind


class ProcessContext(Protocol):
    """What a process step's logic sees for one key (implemented by the runtime)."""

    @property
    def key(self) -> Any:
        """The current key."""
        ...

    @property
    def timestamp(self) -> int:
        """Event time of the current event, or the timer's time inside ``on_timer``."""
        ...

    @property
    def watermark(self) -> int:
        """The step's current watermark."""
        ...

    state: Any
    """This key's state (``None`` until set; set it to ``None`` to drop it)."""

    def emit(self, value: Any, timestamp: int | None = None) -> None:
        """Send ``value`` downstream (event time defaults to :attr:`timestamp`)."""
        ...

    def register_timer(self, timestamp: int) -> None:
        """Call ``on_timer`` for this key once the watermark reaches ``timestamp``."""
        ...

    def delete_timer(self, timestamp: int) -> None:
        """Forget a timer registered for this key."""
        ...


@runtime_checkable
class ProcessLogic(Protocol):
    """Logic for :meth:`KeyedStream.process`; ``on_timer`` is optional."""

    def process(self, ctx: ProcessContext, event: Any) -> None:
        """Handle one event of ``ctx.key``."""
        ...


def as_logic(obj: Any) -> Any:
    """Return a logic object for ``obj``: an instance, a class (instantiated) or a function."""
    if isinstance(obj, type):
        obj = obj()
    if isinstance(obj, ProcessLogic):
        return obj
    if callable(obj):
        return FunctionLogic(obj)
    raise TypeError(f"expected a function fn(ctx, event) or an object with .process, got {obj!r}")


class FunctionLogic:
    """Wraps ``fn(ctx, event)`` as process logic."""

    def __init__(self, fn: Callable[[Any, Any], None]) -> None:
        self.fn = fn
        self.__code__ = getattr(fn, "__code__", None)
        self.__qualname__ = getattr(fn, "__qualname__", repr(fn))

    def process(self, ctx: ProcessContext, event: Any) -> None:
        self.fn(ctx, event)

    def __repr__(self) -> str:
        return f"FunctionLogic({self.__qualname__})"


class RunningReduce:
    """Running ``reduce`` per key: ``state = fn(state, event)``; emits the new state.

    The first event of a key becomes its state unchanged.
    """

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn
        self.__code__ = getattr(fn, "__code__", None)
        self.__qualname__ = getattr(fn, "__qualname__", repr(fn))

    def process(self, ctx: ProcessContext, event: Any) -> None:
        state = ctx.state
        state = event if state is None else self.fn(state, event)
        ctx.state = state
        ctx.emit(state)


class RunningAggregate:
    """Running aggregations per key; emits ``{"key": key, name: result, ...}`` per event.

    State is ``{name: accumulator}`` -- plain data as long as the aggregations' accumulators
    are (all built-in ones are).
    """

    def __init__(self, aggregations: Mapping[str, Any]) -> None:
        self.aggregations = {name: bind(agg) for name, agg in aggregations.items()}
        self.__qualname__ = "aggregate(" + ", ".join(self.aggregations) + ")"
        self._seq = 0

    def process(self, ctx: ProcessContext, event: Any) -> None:
        aggs = self.aggregations
        accs = ctx.state
        if accs is None:
            accs = {name: agg.init() for name, agg in aggs.items()}
        self._seq += 1
        ts, seq = ctx.timestamp, self._seq
        for name, agg in aggs.items():
            accs[name] = agg.add_event(accs[name], event, ts, seq)
        ctx.state = accs
        out = {"key": ctx.key}
        for name, agg in aggs.items():
            out[name] = agg.result(accs[name])
        ctx.emit(out)

    def snapshot(self) -> dict[str, Any]:
        """The event counter (it orders events of equal time for ``first``/``last``)."""
        return {"seq": self._seq}

    def load(self, snapshot: dict[str, Any]) -> None:
        self._seq = int(snapshot["seq"])


__all__ = [
    "FunctionLogic",
    "ProcessContext",
    "ProcessLogic",
    "RunningAggregate",
    "RunningReduce",
    "as_logic",
]
