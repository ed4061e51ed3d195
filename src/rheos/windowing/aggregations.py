"""Aggregations: what a window computes over its events.

Each aggregation folds the events of one window (of one key) into an *accumulator* and turns
it into a result at the end. Built in:

=========================  ==============================================================
``count()``                number of events
``sum(field)``             sum of the values (``0`` for none)
``min(field)``             smallest value
``max(field)``             largest value
``mean(field)``            arithmetic mean (a ``float``)
``first(field)``           value of the event with the smallest timestamp (ties: the first
                           to arrive)
``last(field)``            value of the event with the largest timestamp (ties: the last
                           to arrive)
``collect(field=None)``    list of the values, ordered by event time (ties: by arrival);
                           without a field, the whole events
``count_distinct(field)``  number of distinct values
=========================  ==============================================================

``field`` is a key of a dict event or a function ``event -> value``. ``sum``, ``min``,
``max``, ``mean`` and ``count_distinct`` skip ``None`` values (``min``/``max``/``mean`` of
nothing is ``None``). A missing field raises :class:`rheos.errors.EventError`.

``first``, ``last`` and ``collect`` go by *event time*, so a bounded run gives the same answer
whatever order the events arrived in. Their accumulators keep each value with its timestamp and
its arrival number: ``[ts, seq, value]`` (``seq`` is the operator's arrival counter).

User-defined aggregations. Any object with these four methods is an :class:`Aggregation`::

    init() -> acc                  a fresh accumulator
    add(acc, value) -> acc         fold one value in
    merge(a, b) -> acc             combine two accumulators (a holds the earlier events;
                                   session windows merge when an event bridges them)
    result(acc) -> Any             the window's result

Wrap it with :func:`aggregate_with` to say which value it receives (by default the whole
event); an unwrapped object given to the window operator receives whole events.

>>> class Product:
...     def init(self): return 1
...     def add(self, acc, value): return acc * value
...     def merge(self, a, b): return a * b
...     def result(self, acc): return acc
>>> product = aggregate_with(Product(), "x")
>>> acc = product.init()
>>> for event in [{"x": 2}, {"x": 3}, {"x": 7}]:
...     acc = product.add(acc, event)
>>> product.result(acc)
42

Accumulators must be plain data -- ``int``, ``float``, ``str``, ``bytes``, ``None``, lists and
dicts with ``str`` keys -- because checkpoints store them with msgpack (tuples come back as
lists). An aggregation whose accumulator is not plain data provides ``dump(acc) -> plain`` and
``load(plain) -> acc``. Every built-in accumulator is plain data (:func:`count_distinct` keeps
a dict from a text form of each distinct value: ``1`` and ``1.0`` are one value, ``True`` is
another, lists and dicts are compared by content).

Two forms. Each built-in aggregation carries its *row form*, which folds one value at a time
(:meth:`~BoundAggregation.add_value`; for ``count``, ``sum``, ``min``, ``max`` and ``mean``
written once as Python source, :attr:`~BoundAggregation.ADD`, which :meth:`add_value` is
compiled from and the generated hot path of tumbling windows inlines), and its *columnar form*,
the partial aggregate of a group of rows as Polars expressions
(:meth:`~BoundAggregation.partial_polars`) and the accumulator made from it
(:meth:`~BoundAggregation.from_partial`) -- as expressions carry theirs
(:meth:`rheos.flows.Expr.to_polars`). The micro-batch runtime runs the columnar form where an
aggregation has one (:attr:`~BoundAggregation.columnar`).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any, Protocol, runtime_checkable

from rheos.errors import ConfigError, EventError

Field = str | Callable[[Any], Any] | None
"""Which value an aggregation reads: a dict key, a function of the event, or the whole event."""


@runtime_checkable
class Aggregation(Protocol):
    """A user-defined aggregation (see the module docs)."""

    def init(self) -> Any:
        """Return a fresh accumulator."""
        ...

    def add(self, acc: Any, value: Any) -> Any:
        """Fold ``value`` into ``acc`` and return the accumulator."""
        ...

    def merge(self, a: Any, b: Any) -> Any:
        """Combine two accumulators; ``a`` holds the earlier events."""
        ...

    def result(self, acc: Any) -> Any:
        """Turn an accumulator into the window's result."""
        ...


def _extractor(field: Field, label: str) -> Callable[[Any], Any] | None:
    if field is None:
        return None
    if isinstance(field, str):
        key = field

        def get(event: Any) -> Any:
            try:
                return event[key]
            except (KeyError, TypeError, IndexError):
                text = repr(event)
                if len(text) > 80:
                    text = text[:77] + "..."
                raise EventError(
                    f"aggregation {label}: the event has no field {key!r}: {text}"
                ) from None

        return get
    if callable(field):
        return field
    raise ConfigError(f"aggregation {label}: field must be a str or a function, got {field!r}")


def _label(kind: str, field: Field) -> str:
    if field is None:
        return f"{kind}()"
    if isinstance(field, str):
        return f"{kind}({field!r})"
    return f"{kind}({getattr(field, '__qualname__', repr(field))})"


def _method(name: str, args: str, body: str) -> Callable[..., Any]:
    """A function compiled from source lines (the row forms written as :attr:`ADD`)."""
    text = "\n".join("    " + line for line in body.splitlines())
    env: dict[str, Any] = {}
    exec(compile(f"def {name}({args}):\n{text}\n", f"<rheos aggregation {name}>", "exec"), env)
    function: Callable[..., Any] = env[name]
    return function


class BoundAggregation:
    """An aggregation together with the way it reads events; what the operators execute.

    Operators read every value first (:attr:`read`, then :meth:`add_value`), so an event with
    a missing field changes no accumulator. ``add_value(acc, value, ts, seq)`` receives the
    event time ``ts`` and the arrival number ``seq``. ``add_event`` reads and adds in one step;
    ``add(acc, event)`` (the :class:`Aggregation` protocol) adds an event with no known time,
    as if all events had the same timestamp, so the order of arrival decides.
    """

    kind = "aggregation"

    INIT: str | None = None
    """The row form's fresh accumulator as a Python expression (None: call :meth:`init`)."""
    ADD: str | None = None
    """The row form as Python statements folding ``{value}`` into ``{acc}`` (names filled in
    with :meth:`add_source`); a subclass that sets it gets :meth:`init` and :meth:`add_value`
    compiled from :attr:`INIT` and it. None: generated code calls :meth:`add_value`."""

    columnar = False
    """Whether the aggregation has a columnar form (:meth:`partial_polars`)."""
    reads_value = True
    """Whether the result depends on the values (not for ``count``)."""
    sums_in_order = False
    """A sum of floats (``sum``, ``mean``): a columnar run adds a group's values one by one,
    in arrival order (:meth:`running_sum`, :meth:`with_sum`), to give the row form's bits."""
    order_free = False
    """Whether the result is the same in whatever order the events of a window are added,
    up to what a streaming run also takes from arrival order (the bits of a float sum, the
    first of equal extremes): ``count``, ``sum``, ``min``, ``max``, ``mean``, ``first``,
    ``last`` and ``collect`` (by event time, ties by arrival) and ``count_distinct``; not an
    aggregation of the user's. A bounded run
    whose windows only aggregate so takes the events in arrival order
    (:func:`rheos.runtime.bounded.order_free`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("INIT") is not None:
            cls.init = _method("init", "self", f"return {cls.INIT}")  # type: ignore[method-assign]
        add = cls.__dict__.get("ADD")
        if add is not None:
            body = add.format(acc="acc", value="value") + "\nreturn acc"
            cls.add_value = _method("add_value", "self, acc, value, ts, seq", body)  # type: ignore[method-assign]

    def add_source(self, acc: str, value: str) -> str | None:
        """:attr:`ADD` over the names given (None without a source form)."""
        return None if self.ADD is None else self.ADD.format(acc=acc, value=value)

    # -- the columnar form ------------------------------------------------------------------

    def partial_polars(self, value: str, ts: str, seq: str, out: str, *, floats: bool) -> list[Any]:
        """Polars expressions of the partial aggregate of a group of rows, whose value,
        event time and arrival number are the columns ``value``, ``ts`` and ``seq``; their
        names start with ``out``. ``floats``: the values are floats."""
        raise NotImplementedError(f"{self.label} has no columnar form")

    def from_partial(self, row: tuple[Any, ...], at: int, *, floats: bool) -> tuple[Any, int]:
        """The accumulator of a group from its row of :meth:`partial_polars` results starting
        at ``row[at]``, and how many columns they take."""
        return row[at], 1

    def running_sum(self, acc: Any) -> Any:
        """The sum so far in ``acc`` (:attr:`sums_in_order` aggregations)."""
        raise NotImplementedError

    def with_sum(self, acc: Any, total: Any, n: int) -> Any:
        """``acc`` (None: a new window) with its sum replaced by ``total``, after ``n`` more
        values (:attr:`sums_in_order` aggregations)."""
        raise NotImplementedError

    def __init__(self, field: Field = None) -> None:
        self.field = field
        self.label = _label(self.kind, field)
        self._get = _extractor(field, self.label)
        self.read: Callable[[Any], Any] | None = (
            itemgetter(field) if isinstance(field, str) else field
        )
        """Fast reader of the value: raises plain ``KeyError`` etc.; None for the whole event."""

    def value(self, event: Any) -> Any:
        """The value this aggregation reads from ``event`` (:class:`EventError` if missing)."""
        get = self._get
        return event if get is None else get(event)

    def add_event(self, acc: Any, event: Any, ts: int, seq: int) -> Any:
        """Fold ``event`` (at event time ``ts``, arrival number ``seq``) into ``acc``."""
        return self.add_value(acc, self.value(event), ts, seq)

    def add(self, acc: Any, value: Any) -> Any:
        """Fold event ``value`` in, with no event time (arrival order decides)."""
        return self.add_value(acc, self.value(value), 0, 0)

    def init(self) -> Any:
        """A fresh accumulator."""
        raise NotImplementedError

    def add_value(self, acc: Any, value: Any, ts: int, seq: int) -> Any:
        """Fold ``value`` (of an event at ``ts`` with arrival number ``seq``) into ``acc``."""
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        """Combine two accumulators; ``a`` holds the earlier events."""
        raise NotImplementedError

    def result(self, acc: Any) -> Any:
        """The window's result."""
        return acc

    def dump(self, acc: Any) -> Any:
        """The accumulator as plain data for a checkpoint."""
        return acc

    def load(self, data: Any) -> Any:
        """The accumulator back from :meth:`dump` output."""
        return data

    def __repr__(self) -> str:
        return self.label


class _Count(BoundAggregation):
    kind = "count"
    order_free = True
    INIT = "0"
    ADD = "{acc} += 1"
    columnar = True
    reads_value = False

    def merge(self, a: Any, b: Any) -> Any:
        return a + b

    def partial_polars(self, value: str, ts: str, seq: str, out: str, *, floats: bool) -> list[Any]:
        import polars as pl

        return [pl.len().alias(out)]


class _Sum(BoundAggregation):
    kind = "sum"
    order_free = True
    INIT = "0"
    ADD = "if {value} is not None:\n    {acc} += {value}"
    columnar = True
    sums_in_order = True

    def merge(self, a: Any, b: Any) -> Any:
        return a + b

    def partial_polars(self, value: str, ts: str, seq: str, out: str, *, floats: bool) -> list[Any]:
        import polars as pl

        return [pl.col(value).sum().alias(out)]

    def running_sum(self, acc: Any) -> Any:
        return acc

    def with_sum(self, acc: Any, total: Any, n: int) -> Any:
        return total


class _Extreme(BoundAggregation):
    """``min`` and ``max``: the smallest or largest value (the first to arrive among equals)."""

    order_free = True
    columnar = True

    def partial_polars(self, value: str, ts: str, seq: str, out: str, *, floats: bool) -> list[Any]:
        import polars as pl

        v = pl.col(value)
        extreme = v.min() if self.kind == "min" else v.max()
        if floats:  # and the group's first zero: 0.0 and -0.0 are equal, the first is kept
            return [extreme.alias(out), v.filter(v == 0).first().alias(out + "z")]
        return [extreme.alias(out)]

    def from_partial(self, row: tuple[Any, ...], at: int, *, floats: bool) -> tuple[Any, int]:
        if floats:
            value, zero = row[at], row[at + 1]
            return (zero if value == 0 else value), 2
        return row[at], 1


class _Min(_Extreme):
    kind = "min"
    INIT = "None"
    ADD = "if {value} is not None and ({acc} is None or {value} < {acc}):\n    {acc} = {value}"

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        return a if b is None or a <= b else b


class _Max(_Extreme):
    kind = "max"
    INIT = "None"
    ADD = "if {value} is not None and ({acc} is None or {value} > {acc}):\n    {acc} = {value}"

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        return a if b is None or a >= b else b


class _Mean(BoundAggregation):
    kind = "mean"
    order_free = True
    INIT = "[0, 0]"
    ADD = "if {value} is not None:\n    acc_ = {acc}\n    acc_[0] += {value}\n    acc_[1] += 1"
    columnar = True
    sums_in_order = True

    def merge(self, a: Any, b: Any) -> Any:
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, acc: Any) -> Any:
        return acc[0] / acc[1] if acc[1] else None

    def partial_polars(self, value: str, ts: str, seq: str, out: str, *, floats: bool) -> list[Any]:
        import polars as pl

        v = pl.col(value)
        return [v.sum().alias(out + "s"), v.count().alias(out + "n")]

    def from_partial(self, row: tuple[Any, ...], at: int, *, floats: bool) -> tuple[Any, int]:
        return [row[at], row[at + 1]], 2

    def running_sum(self, acc: Any) -> Any:
        return acc[0]

    def with_sum(self, acc: Any, total: Any, n: int) -> Any:
        return [total, (0 if acc is None else acc[1]) + n]


class _First(BoundAggregation):
    kind = "first"
    order_free = True
    columnar = True

    def init(self) -> None:
        return None

    def add_value(self, acc: Any, value: Any, ts: int, seq: int) -> Any:
        if acc is None or ts < acc[0]:
            return [ts, seq, value]
        return acc

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        return b if (b[0], b[1]) < (a[0], a[1]) else a

    def result(self, acc: Any) -> Any:
        return None if acc is None else acc[2]

    def partial_polars(self, value: str, ts: str, seq: str, out: str, *, floats: bool) -> list[Any]:
        import polars as pl

        t = pl.col(ts)
        at = t.arg_min()  # the smallest time, ties to the first arrival
        return [t.min().alias(out + "t"), pl.col(seq).get(at).alias(out + "q"),
                pl.col(value).get(at).alias(out)]  # fmt: skip

    def from_partial(self, row: tuple[Any, ...], at: int, *, floats: bool) -> tuple[Any, int]:
        return [row[at], row[at + 1], row[at + 2]], 3


class _Last(BoundAggregation):
    kind = "last"
    order_free = True
    columnar = True

    def init(self) -> None:
        return None

    def add_value(self, acc: Any, value: Any, ts: int, seq: int) -> Any:
        if acc is None or ts >= acc[0]:
            return [ts, seq, value]
        return acc

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        return b if (b[0], b[1]) >= (a[0], a[1]) else a

    def result(self, acc: Any) -> Any:
        return None if acc is None else acc[2]

    def partial_polars(self, value: str, ts: str, seq: str, out: str, *, floats: bool) -> list[Any]:
        import polars as pl

        t = pl.col(ts)
        top = t == t.max()  # the largest time, ties to the last arrival
        return [t.max().alias(out + "t"), pl.col(seq).filter(top).last().alias(out + "q"),
                pl.col(value).filter(top).last().alias(out)]  # fmt: skip

    def from_partial(self, row: tuple[Any, ...], at: int, *, floats: bool) -> tuple[Any, int]:
        return [row[at], row[at + 1], row[at + 2]], 3


class _Collect(BoundAggregation):
    kind = "collect"
    order_free = True

    def init(self) -> list[Any]:
        return []

    def add_value(self, acc: Any, value: Any, ts: int, seq: int) -> Any:
        acc.append([ts, seq, value])
        return acc

    def merge(self, a: Any, b: Any) -> Any:
        return a + b

    def result(self, acc: Any) -> Any:
        return [item[2] for item in sorted(acc, key=lambda item: (item[0], item[1]))]


def _distinct_key(value: Any) -> str:
    """The text a distinct value is known by: equal values, equal text; plain data."""
    if isinstance(value, str):
        return "s:" + value
    if isinstance(value, bool):
        return "b:" + repr(value)
    if isinstance(value, int):
        return "n:" + repr(value)
    if isinstance(value, float):
        return "n:" + (repr(int(value)) if value.is_integer() else repr(value))
    return "r:" + repr(_canonical(value))


def _canonical(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return sorted((repr(k), _canonical(v)) for k, v in value.items())
    return value


class _CountDistinct(BoundAggregation):
    kind = "count_distinct"
    order_free = True

    def init(self) -> dict[str, None]:
        return {}

    def add_value(self, acc: Any, value: Any, ts: int, seq: int) -> Any:
        if value is not None:
            acc[_distinct_key(value)] = None
        return acc

    def merge(self, a: Any, b: Any) -> Any:
        return {**a, **b}

    def result(self, acc: Any) -> Any:
        return len(acc)


class _Custom(BoundAggregation):
    kind = "aggregate_with"

    def __init__(self, aggregation: Aggregation, field: Field = None) -> None:
        for method in ("init", "add", "merge", "result"):
            if not callable(getattr(aggregation, method, None)):
                raise ConfigError(
                    f"aggregate_with: {aggregation!r} has no {method}() method; an aggregation "
                    "needs init(), add(acc, value), merge(a, b) and result(acc)"
                )
        super().__init__(field)
        self.aggregation = aggregation
        name = type(aggregation).__qualname__
        if field is None:
            self.label = f"aggregate_with({name})"
        else:
            self.label = f"aggregate_with({name}, {self.label[len('aggregate_with(') :]}"
        dump, load = getattr(aggregation, "dump", None), getattr(aggregation, "load", None)
        self._codec = (dump, load) if callable(dump) and callable(load) else None

    def init(self) -> Any:
        return self.aggregation.init()

    def add_value(self, acc: Any, value: Any, ts: int, seq: int) -> Any:
        return self.aggregation.add(acc, value)

    def merge(self, a: Any, b: Any) -> Any:
        return self.aggregation.merge(a, b)

    def result(self, acc: Any) -> Any:
        return self.aggregation.result(acc)

    def dump(self, acc: Any) -> Any:
        return acc if self._codec is None else self._codec[0](acc)

    def load(self, data: Any) -> Any:
        return data if self._codec is None else self._codec[1](data)


def count() -> BoundAggregation:
    """Number of events.

    >>> agg = count(); agg.result(agg.add(agg.add(agg.init(), "a"), "b"))
    2
    """
    return _Count()


# sum, min and max shadow the builtins inside this module on purpose (they are the names users
# expect); nothing below this point uses the builtins.


def sum(field: Field) -> BoundAggregation:
    """Sum of ``field`` (``None`` values skipped)."""
    return _Sum(field)


def min(field: Field) -> BoundAggregation:
    """Smallest value of ``field`` (``None`` values skipped)."""
    return _Min(field)


def max(field: Field) -> BoundAggregation:
    """Largest value of ``field`` (``None`` values skipped)."""
    return _Max(field)


def mean(field: Field) -> BoundAggregation:
    """Arithmetic mean of ``field`` as a float (``None`` values skipped)."""
    return _Mean(field)


def first(field: Field) -> BoundAggregation:
    """Value of ``field`` in the event with the smallest timestamp (ties: first arrival)."""
    return _First(field)


def last(field: Field) -> BoundAggregation:
    """Value of ``field`` in the event with the largest timestamp (ties: last arrival)."""
    return _Last(field)


def collect(field: Field = None) -> BoundAggregation:
    """Values of ``field`` (whole events without one), ordered by event time, then arrival."""
    return _Collect(field)


def count_distinct(field: Field) -> BoundAggregation:
    """Number of distinct values of ``field`` (``None`` skipped; lists compared by content).

    >>> agg = count_distinct("v")
    >>> acc = agg.init()
    >>> for v in [1, 1.0, "1", True, [1, 2], [1, 2], None]:
    ...     acc = agg.add(acc, {"v": v})
    >>> agg.result(acc)
    4
    """
    return _CountDistinct(field)


def aggregate_with(aggregation: Aggregation, field: Field = None) -> BoundAggregation:
    """Run a user-defined :class:`Aggregation` on ``field`` (the whole event by default)."""
    return _Custom(aggregation, field)


def bind(aggregation: Aggregation | BoundAggregation) -> BoundAggregation:
    """Return ``aggregation`` ready for an operator (wrapping a user object on whole events)."""
    if isinstance(aggregation, BoundAggregation):
        return aggregation
    return _Custom(aggregation)


__all__ = [
    "Aggregation",
    "BoundAggregation",
    "Field",
    "aggregate_with",
    "bind",
    "collect",
    "count",
    "count_distinct",
    "first",
    "last",
    "max",
    "mean",
    "min",
    "sum",
]
