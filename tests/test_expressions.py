"""Column expressions per event: the generated function (``expr(event)``,
:meth:`Expr.row_function`) gives what walking the tree (:meth:`Expr.eval_row`) gives -- the
same value, or the same error -- for random expressions over random events, nulls, missing
fields and wrong types included."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rheos.errors import EventError
from rheos.flows.expressions import Expr, WithColumns, col, lit

FIELDS = ("a", "b", "c")
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-6, 6),
    st.floats(-4, 4) | st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf]),
    st.sampled_from(["x", "buy", ""]),
)
BINARY = ("+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "&", "|")


def _combine(op: str, left: Expr, right: Expr) -> Expr:
    return {
        "+": lambda: left + right,
        "-": lambda: left - right,
        "*": lambda: left * right,
        "/": lambda: left / right,
        "//": lambda: left // right,
        "%": lambda: left % right,
        "**": lambda: left**right,
        "==": lambda: left == right,
        "!=": lambda: left != right,
        "<": lambda: left < right,
        "<=": lambda: left <= right,
        ">": lambda: left > right,
        ">=": lambda: left >= right,
        "&": lambda: left & right,
        "|": lambda: left | right,
    }[op]()


leaves = st.one_of(st.sampled_from(FIELDS).map(col), VALUES.map(lit))
expressions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(BINARY), inner, inner).map(lambda t: _combine(*t)),
        inner.map(lambda e: ~e),
        inner.map(lambda e: e.is_null()),
        inner.map(lambda e: -e),
        inner.map(lambda e: e.alias("out")),
    ),
    max_leaves=8,
)
events = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), VALUES),
    st.sampled_from([None, 3, "text", [1, 2]]),  # not a dict at all
)


def outcome(fn: Any, event: Any) -> tuple[str, Any]:
    try:
        value = fn(event)
    except Exception as exc:  # the error is part of the result compared
        return ("error", (type(exc), str(exc)))
    if isinstance(value, float) and math.isnan(value):
        return ("nan", None)
    if isinstance(value, dict):
        return ("dict", [(k, outcome(lambda _, v=v: v, None)) for k, v in value.items()])
    return ("value", (type(value), value))


@settings(max_examples=400, deadline=None)
@given(expressions, st.lists(events, min_size=1, max_size=6))
def test_the_generated_function_gives_what_the_tree_gives(expr: Expr, batch: list[Any]) -> None:
    generated = expr.row_function()
    assert expr.row_function() is generated  # generated once
    for event in batch:
        expected = outcome(expr.eval_row, event)
        assert outcome(generated, event) == expected, (expr, event)
        assert outcome(expr, event) == expected, (expr, event)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(("v", "a", "w")), expressions, min_size=1, max_size=3), events
)
def test_with_columns_gives_what_the_trees_give(columns: dict[str, Expr], event: Any) -> None:
    fn = WithColumns(columns)
    assert outcome(fn, event) == outcome(fn.eval_row, event), (columns, event)


def test_a_missing_field_names_the_column_and_the_event() -> None:
    fn = (col("price") * col("qty")).row_function()
    try:
        fn({"price": 2})
    except EventError as exc:
        assert str(exc) == "col('qty'): the event has no such field: {'price': 2}"
    else:
        raise AssertionError("no error")


def test_the_order_of_evaluation_is_the_trees() -> None:
    # left before right: the left side's type error comes before the right side's missing field
    expr = (col("a") + lit(1)) * col("missing")
    assert outcome(expr, {"a": "x"}) == outcome(expr.eval_row, {"a": "x"})
    assert outcome(expr, {"a": "x"})[1][0] is TypeError
