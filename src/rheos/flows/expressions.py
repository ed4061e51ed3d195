"""Column expressions: written once, run per event (stream-first) or per batch (micro-batch).

An :class:`Expr` describes a computation on the fields of a dict event::

    rh.col("amount") > 500
    rh.col("price") * rh.col("qty")
    (rh.col("side") == "buy") & (rh.col("qty") >= rh.lit(10))

Expressions are accepted wherever a flow takes a function of the event -- ``filter``,
``map``, ``key_by``, the ``field`` of a window aggregation (``rh.sum(rh.col("p") * rh.col("q"))``)
-- and by :meth:`Stream.with_columns <rheos.flows.Stream.with_columns>`. The stream-first
runtime calls them on each event (``expr(event)``: :meth:`Expr.row_function`, one generated
function doing what :meth:`Expr.eval_row` does without walking the tree); the micro-batch
runtime turns them into Polars expressions (:meth:`Expr.to_polars`) and runs them on a whole
batch at once. A Polars expression can be used directly (wrap it with :func:`expr` where a
function is expected, e.g. in an aggregation).

Semantics are those of a columnar engine, in both runtimes: ``None`` (null) in gives ``None``
out for arithmetic and comparisons; ``&``/``|`` follow three-valued logic; a filter keeps an
event only when its predicate is true (``None`` drops it); division is true division and a
division by zero gives ``inf``/``nan`` (``//`` and ``%`` by zero give ``None``).

>>> e = (col("price") * col("qty")).alias("notional")
>>> e.eval_row({"price": 2.5, "qty": 4})
10.0
>>> e
(col('price') * col('qty')).alias('notional')
>>> (col("x") > 3).eval_row({"x": None}) is None
True
>>> (~(col("x") > 3) | lit(False)).eval_row({"x": 1})
True
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from rheos.errors import EventError


def _div(a: Any, b: Any) -> Any:
    if b == 0:
        if a == 0 or (isinstance(a, float) and math.isnan(a)):
            return math.nan
        return math.copysign(math.inf, a) * (math.copysign(1.0, b) if isinstance(b, float) else 1)
    return a / b


def _floordiv(a: Any, b: Any) -> Any:
    return None if b == 0 else a // b


def _mod(a: Any, b: Any) -> Any:
    return None if b == 0 else a % b


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _div,
    "//": _floordiv,
    "%": _mod,
    "**": operator.pow,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _and(a: Any, b: Any) -> Any:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return bool(a) and bool(b)


def _or(a: Any, b: Any) -> Any:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return bool(a) or bool(b)


_PYTHON_OPS = frozenset(("+", "-", "*", "**", "==", "!=", "<", "<=", ">", ">="))
"""The operators whose :data:`_ARITH` function is Python's own operator."""


class _Code:
    """The body of a generated function of one event ``e`` (:meth:`Expr.row_function`)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {}
        self.known: set[str] = set()
        """Names that are never ``None`` (literals)."""
        self._names = 0

    def fresh(self) -> str:
        self._names += 1
        return f"x{self._names}"

    def bind(self, value: Any) -> str:
        """A global name for ``value`` (a constant, a function)."""
        name = f"g{len(self.env)}"
        self.env[name] = value
        return name

    def let(self, value: str) -> str:
        name = self.fresh()
        self.lines.append(f"{name} = {value}")
        return name

    def function(self, tail: list[str], label: str) -> Callable[[Any], Any]:
        body = "\n".join("    " + line for line in [*self.lines, *tail])
        exec(compile(f"def row(e):\n{body}", f"<rheos expression {label}>", "exec"), self.env)
        fn: Callable[[Any], Any] = self.env["row"]
        return fn


def is_polars_expr(value: object) -> bool:
    """True for a Polars expression (without importing Polars)."""
    return type(value).__module__.startswith("polars") and type(value).__name__ == "Expr"


class Expr:
    """An expression over the fields of an event (see the module docs)."""

    def eval_row(self, event: Any) -> Any:
        """The value of this expression for one event."""
        raise NotImplementedError

    def to_polars(self) -> Any:
        """The equivalent Polars expression (needs Polars)."""
        raise NotImplementedError

    @property
    def output_name(self) -> str | None:
        """The column name this expression produces, if it has one."""
        return None

    def columns(self) -> frozenset[str] | None:
        """The fields of the event this expression reads (None: not known).

        >>> sorted((col("price") * col("qty") > 100).columns())
        ['price', 'qty']
        """
        return None

    def __call__(self, event: Any) -> Any:
        return (self.__dict__.get("_row") or self.row_function())(event)

    def row_function(self) -> Callable[[Any], Any]:
        """One Python function computing :meth:`eval_row` -- the same values, errors and
        order of evaluation -- from source generated once (kept): one call per event
        instead of one per node of the expression.

        >>> f = (col("price") * col("qty") > 100).row_function()
        >>> f({"price": 30, "qty": 4}), f({"price": None, "qty": 4})
        (True, None)
        """
        fn = self.__dict__.get("_row")
        if fn is None:
            code = _Code()
            result = self._emit(code)
            fn = self.__dict__["_row"] = code.function([f"return {result}"], repr(self))
        return fn

    def _emit(self, code: _Code) -> str:
        """Append to ``code`` the lines computing this expression from the event ``e``, in
        :meth:`eval_row`'s order; return the name (or constant) holding the value."""
        return code.let(f"{code.bind(self.eval_row)}(e)")

    def alias(self, name: str) -> Expr:
        """This expression, naming its result ``name``."""
        return Alias(self, name)

    def is_null(self) -> Expr:
        """True where the value is ``None``."""
        return IsNull(self)

    # operators build new expressions; comparisons too (hence no __hash__)
    def _bin(self, op: str, other: Any, swap: bool = False) -> Expr:
        right = other if isinstance(other, Expr) else as_expr(other)
        return BinOp(op, right, self) if swap else BinOp(op, self, right)

    def __add__(self, o: Any) -> Expr:
        return self._bin("+", o)

    def __radd__(self, o: Any) -> Expr:
        return self._bin("+", o, True)

    def __sub__(self, o: Any) -> Expr:
        return self._bin("-", o)

    def __rsub__(self, o: Any) -> Expr:
        return self._bin("-", o, True)

    def __mul__(self, o: Any) -> Expr:
        return self._bin("*", o)

    def __rmul__(self, o: Any) -> Expr:
        return self._bin("*", o, True)

    def __truediv__(self, o: Any) -> Expr:
        return self._bin("/", o)

    def __rtruediv__(self, o: Any) -> Expr:
        return self._bin("/", o, True)

    def __floordiv__(self, o: Any) -> Expr:
        return self._bin("//", o)

    def __mod__(self, o: Any) -> Expr:
        return self._bin("%", o)

    def __pow__(self, o: Any) -> Expr:
        return self._bin("**", o)

    def __eq__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("==", o)

    def __ne__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("!=", o)

    def __lt__(self, o: Any) -> Expr:
        return self._bin("<", o)

    def __le__(self, o: Any) -> Expr:
        return self._bin("<=", o)

    def __gt__(self, o: Any) -> Expr:
        return self._bin(">", o)

    def __ge__(self, o: Any) -> Expr:
        return self._bin(">=", o)

    def __and__(self, o: Any) -> Expr:
        return self._bin("&", o)

    def __rand__(self, o: Any) -> Expr:
        return self._bin("&", o, True)

    def __or__(self, o: Any) -> Expr:
        return self._bin("|", o)

    def __ror__(self, o: Any) -> Expr:
        return self._bin("|", o, True)

    def __invert__(self) -> Expr:
        return Not(self)

    def __neg__(self) -> Expr:
        return BinOp("-", Lit(0), self)

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        raise TypeError(
            "an expression has no truth value; use & | ~ instead of and/or/not, "
            "and compare values inside the expression"
        )


class Col(Expr):
    """The field ``name`` of the event."""

    def __init__(self, name: str) -> None:
        self.name = name

    def eval_row(self, event: Any) -> Any:
        try:
            return event[self.name]
        except (KeyError, TypeError, IndexError):
            raise self._missing(event) from None

    def _emit(self, code: _Code) -> str:
        name = code.fresh()
        code.lines += [
            "try:",
            f"    {name} = e[{self.name!r}]",
            "except (KeyError, TypeError, IndexError):",
            f"    raise {code.bind(self._missing)}(e) from None",
        ]
        return name

    def _missing(self, event: Any) -> EventError:
        text = repr(event)
        text = text if len(text) <= 80 else text[:77] + "..."
        return EventError(f"col({self.name!r}): the event has no such field: {text}")

    def to_polars(self) -> Any:
        import polars as pl

        return pl.col(self.name)

    @property
    def output_name(self) -> str:
        return self.name

    def columns(self) -> frozenset[str]:
        return frozenset((self.name,))

    def __repr__(self) -> str:
        return f"col({self.name!r})"


class Lit(Expr):
    """A constant."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def eval_row(self, event: Any) -> Any:
        return self.value

    def _emit(self, code: _Code) -> str:
        name = code.bind(self.value)
        if self.value is not None:
            code.known.add(name)
        return name

    def to_polars(self) -> Any:
        import polars as pl

        return pl.lit(self.value)

    def columns(self) -> frozenset[str]:
        return frozenset()

    def __repr__(self) -> str:
        return f"lit({self.value!r})"


class BinOp(Expr):
    """``left <op> right``; ``None`` on either side gives ``None`` (``&``/``|``: 3-valued)."""

    def __init__(self, op: str, left: Expr, right: Expr) -> None:
        self.op, self.left, self.right = op, left, right
        self._fn = _and if op == "&" else _or if op == "|" else _ARITH[op]

    def columns(self) -> frozenset[str] | None:
        left, right = self.left.columns(), self.right.columns()
        return None if left is None or right is None else left | right

    def eval_row(self, event: Any) -> Any:
        a, b = self.left.eval_row(event), self.right.eval_row(event)
        if self.op in ("&", "|"):
            return self._fn(a, b)
        if a is None or b is None:
            return None
        return self._fn(a, b)

    def _emit(self, code: _Code) -> str:
        a, b = self.left._emit(code), self.right._emit(code)
        if self.op in _PYTHON_OPS:
            value = f"{a} {self.op} {b}"
        else:  # (/, //, % and & | : the functions eval_row calls)
            value = f"{code.bind(self._fn)}({a}, {b})"
        if self.op in ("&", "|"):
            return code.let(value)
        nulls = " or ".join(f"{x} is None" for x in (a, b) if x not in code.known)
        return code.let(f"None if {nulls} else {value}" if nulls else value)

    def to_polars(self) -> Any:
        a, b = self.left.to_polars(), self.right.to_polars()
        ops: dict[str, Callable[[Any, Any], Any]] = {
            **_POLARS_OPS,
            "/": operator.truediv,
        }
        return ops[self.op](a, b)

    @property
    def output_name(self) -> str | None:
        return self.left.output_name or self.right.output_name

    def __repr__(self) -> str:
        return f"({self.left!r} {self.op} {self.right!r})"


_POLARS_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "&": operator.and_,
    "|": operator.or_,
}


class Not(Expr):
    """Logical not (``None`` stays ``None``)."""

    def __init__(self, inner: Expr) -> None:
        self.inner = inner

    def eval_row(self, event: Any) -> Any:
        value = self.inner.eval_row(event)
        return None if value is None else not value

    def _emit(self, code: _Code) -> str:
        a = self.inner._emit(code)
        return code.let(f"None if {a} is None else not {a}")

    def to_polars(self) -> Any:
        return ~self.inner.to_polars()

    def columns(self) -> frozenset[str] | None:
        return self.inner.columns()

    def __repr__(self) -> str:
        return f"~{self.inner!r}"


class IsNull(Expr):
    """True where the inner value is ``None``."""

    def __init__(self, inner: Expr) -> None:
        self.inner = inner

    def eval_row(self, event: Any) -> Any:
        return self.inner.eval_row(event) is None

    def _emit(self, code: _Code) -> str:
        return code.let(f"{self.inner._emit(code)} is None")

    def to_polars(self) -> Any:
        return self.inner.to_polars().is_null()

    def columns(self) -> frozenset[str] | None:
        return self.inner.columns()

    def __repr__(self) -> str:
        return f"{self.inner!r}.is_null()"


class Alias(Expr):
    """An expression with a result name."""

    def __init__(self, inner: Expr, name: str) -> None:
        self.inner, self.name = inner, name

    def eval_row(self, event: Any) -> Any:
        return self.inner.eval_row(event)

    def _emit(self, code: _Code) -> str:
        return self.inner._emit(code)

    def to_polars(self) -> Any:
        return self.inner.to_polars().alias(self.name)

    @property
    def output_name(self) -> str:
        return self.name

    def columns(self) -> frozenset[str] | None:
        return self.inner.columns()

    def __repr__(self) -> str:
        return f"{self.inner!r}.alias({self.name!r})"


class PolarsExpr(Expr):
    """A Polars expression used as a rheos expression (per event: a one-row frame; slow)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def eval_row(self, event: Any) -> Any:
        import polars as pl

        return pl.DataFrame([event]).select(self.inner).to_series().item()

    def to_polars(self) -> Any:
        return self.inner

    @property
    def output_name(self) -> str | None:
        try:
            return str(self.inner.meta.output_name())
        except Exception:
            return None

    def columns(self) -> frozenset[str] | None:
        try:
            return frozenset(self.inner.meta.root_names())
        except Exception:
            return None

    def __repr__(self) -> str:
        return f"expr({self.inner!r})"


def col(name: str) -> Expr:
    """The field ``name`` of each event.

    >>> (col("amount") > 500).eval_row({"amount": 900})
    True
    """
    return Col(name)


def lit(value: Any) -> Expr:
    """A constant value.

    >>> (col("x") + lit(1)).eval_row({"x": 1})
    2
    """
    return Lit(value)


def as_expr(value: Any) -> Expr:
    """``value`` as an expression: expressions as they are, Polars expressions wrapped,
    anything else a literal."""
    if isinstance(value, Expr):
        return value
    if is_polars_expr(value):
        return PolarsExpr(value)
    return Lit(value)


def expr(value: Any) -> Expr:
    """Wrap a Polars expression (or a constant) as a rheos expression.

    >>> expr(3).eval_row({})
    3
    """
    return as_expr(value)


def as_function(fn: Any) -> Any:
    """What a flow step stores for ``fn``: Polars expressions wrapped, the rest unchanged."""
    return PolarsExpr(fn) if is_polars_expr(fn) else fn


class WithColumns:
    """The function of :meth:`Stream.with_columns`: the event with columns added or replaced.

    Every expression reads the *input* event (as Polars' ``with_columns`` does).

    >>> f = WithColumns({"notional": col("price") * col("qty")})
    >>> f({"price": 2, "qty": 3})
    {'price': 2, 'qty': 3, 'notional': 6}
    """

    def __init__(self, columns: dict[str, Expr]) -> None:
        self.columns = columns
        self.__qualname__ = "with_columns(" + ", ".join(columns) + ")"
        code = _Code()
        values = [(name, e._emit(code)) for name, e in self.columns.items()]
        stores = [f"out[{name!r}] = {value}" for name, value in values]
        self._row = code.function(["out = dict(e)", *stores, "return out"], self.__qualname__)

    def __call__(self, event: Any) -> Any:
        return self._row(event)

    def row_function(self) -> Callable[[Any], Any]:
        """The generated function a call runs (:meth:`Expr.row_function`)."""
        return self._row

    def eval_row(self, event: Any) -> Any:
        """What a call does, walking the expressions' trees (:meth:`Expr.eval_row`)."""
        values = {name: e.eval_row(event) for name, e in self.columns.items()}
        out = dict(event)
        out.update(values)
        return out

    def polars(self) -> list[Any]:
        """The Polars expressions, aliased to their column names."""
        return [e.to_polars().alias(name) for name, e in self.columns.items()]

    def __repr__(self) -> str:
        return self.__qualname__


__all__ = [
    "Alias",
    "BinOp",
    "Col",
    "Expr",
    "IsNull",
    "Lit",
    "Not",
    "PolarsExpr",
    "WithColumns",
    "as_expr",
    "as_function",
    "col",
    "expr",
    "is_polars_expr",
    "lit",
]
