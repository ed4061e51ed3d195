"""Keyed stateful logic: the contract of :meth:`KeyedStream.process`, and the running
``reduce``/``aggregate`` and the period-over-period ``over_previous`` built on it.

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


class OverPrevious:
    """Each window result of a key gains, for every field, ``<field>_previous`` (the value of
    the key's previous period) and ``<field>_change`` (``value / previous - 1``).

    The previous period is the window that ends where this one starts; ``<field>_previous``
    is None when the key had no result for it, and ``<field>_change`` is None then, when
    either value is None, or when the previous value is 0. Results of one key arrive in
    window order (a window step emits them as its windows close), so the state is the key's
    last result: ``[window_end, value, ...]``, plain data.

    >>> class Ctx:
    ...     key, state = "a", None
    ...     def emit(self, value): print(value)
    >>> logic, ctx = OverPrevious(("n",)), Ctx()
    >>> logic.process(ctx, {"key": "a", "window_start": 0, "window_end": 10, "n": 4})
    {'key': 'a', 'window_start': 0, 'window_end': 10, 'n': 4, 'n_previous': None, 'n_change': None}
    >>> logic.process(ctx, {"key": "a", "window_start": 10, "window_end": 20, "n": 5})
    {'key': 'a', 'window_start': 10, 'window_end': 20, 'n': 5, 'n_previous': 4, 'n_change': 0.25}
    """

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.__qualname__ = f"over_previous({', '.join(map(repr, fields))})"

    def process(self, ctx: ProcessContext, row: Any) -> None:
        state = ctx.state
        follows = state is not None and state[0] == row["window_start"]
        out = dict(row)
        for i, name in enumerate(self.fields, 1):
            value = row[name]
            before = state[i] if follows else None
            out[f"{name}_previous"] = before
            out[f"{name}_change"] = _change(name, value, before)
        ctx.state = [row["window_end"], *(row[name] for name in self.fields)]
        ctx.emit(out)

    def __repr__(self) -> str:
        return self.__qualname__


def _change(name: str, value: Any, before: Any) -> float | None:
    if value is None or before is None:
        return None
    for v in (value, before):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(f"{name!r} is {v!r}, not a number: no change to compute")
    if before == 0:
        return None
    return float(value / before - 1)


__all__ = [
    "FunctionLogic",
    "OverPrevious",
    "ProcessContext",
    "ProcessLogic",
    "RunningAggregate",
    "RunningReduce",
    "as_logic",
]
