"""Float sums in micro-batch mode are bit for bit those of stream-first mode.

Stream-first mode adds each value to a window's sum as it arrives: ``((0 + v1) + v2) + ...``
(nulls skipped; ``0`` a Python int). Floating-point addition is not associative, so merging
per-batch partial sums into the state would change the last bits; micro-batch mode adds the
values one by one, in arrival order, starting from the window's sum so far.
"""

from __future__ import annotations

import functools
import operator
import random
from typing import Any

import msgspec
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rheos.windowing as w
from rheos.connectors import iterable_source, list_sink
from rheos.runtime import Flow
from rheos.runtime.microbatch.stateful import _sums_in_order

FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 0.1, 0.2, -0.3, 1e16, -1e16, 2.0**53]),
    st.floats(-1e6, 1e6),
    st.floats(-1e-300, 1e-300),
    st.floats(-1e300, 1e300),
)
"""Mixed magnitudes and signs, both zeros; no nan or infinity (not JSON)."""


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Out-of-order events with float values (some null), in runs of one type: a run of
    integers or of nulls makes a batch whose column is not a float one."""
    out: list[dict[str, Any]] = []
    t = 0
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["float", "float", "int", "null"]))
        values = {"float": FLOATS, "int": st.integers(-(10**6), 10**6), "null": st.none()}[kind]
        for _ in range(draw(st.integers(1, 120))):
            t += draw(st.integers(0, 300))
            value = draw(st.one_of(values, st.none())) if kind != "null" else None
            out.append(
                {
                    "t": max(0, t - draw(st.sampled_from([0, 0, 250, 900, 3_000]))),
                    "k": draw(st.sampled_from(["a", "b"])),
                    "v": value,
                }
            )
    return out


def run(data: list[dict[str, Any]], window: str, **options: Any) -> bytes:
    out: list[Any] = []
    flow = Flow("float_sums")
    windows = w.tumbling(1_000) if window == "tumbling" else w.sliding(1_000, 250)
    (
        flow.source(iterable_source(data), timestamp="t", timestamp_unit="ms", out_of_orderness=500)
        .key_by("k")
        .window(windows, allowed_lateness=400)
        .aggregate(s=w.sum("v"), m=w.mean("v"), n=w.count())
        .sink(list_sink(out))
    )
    flow.run(**options)
    # ``repr`` tells 0.0 from -0.0, 1 from 1.0, and every bit of a float (nan included)
    return msgspec.json.encode([repr(row) for row in out])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=events(),
    window=st.sampled_from(["tumbling", "sliding"]),
    batch_size=st.one_of(st.integers(1, 50), st.integers(1, 100_000)),
)
def test_sums_and_means_equal_stream_first(
    data: list[dict[str, Any]], window: str, batch_size: int
) -> None:
    expected = run(data, window)
    assert run(data, window, mode="micro-batch", batch_size=batch_size) == expected


def test_sums_of_many_values_equal_stream_first() -> None:
    """Large batches of values that round at every addition (as a price field does)."""
    rnd = random.Random(3)
    data = [
        {"t": i * 7 - rnd.choice([0, 0, 0, 600]), "k": rnd.choice("abc"), "v": rnd.random() * 100}
        for i in range(12_000)
    ]
    expected = run(data, "tumbling")
    for batch_size in (64, 4_096, 100_000):
        assert run(data, "tumbling", mode="micro-batch", batch_size=batch_size) == expected


def test_a_sum_whose_values_change_type_between_batches() -> None:
    """Batches of floats, then of integers, then of floats, in the same windows: integers go
    on adding to a float sum one by one, and floats start from an integer sum."""
    rnd = random.Random(7)
    data = []
    for i in range(240):
        value: Any = rnd.randint(-(10**6), 10**6) if 60 <= i < 120 else rnd.random() / 3
        data.append({"t": i * 3, "k": "a" if i < 180 else "b", "v": value})
    data[200]["v"] = 1  # a float sum of "b" that goes on with integers
    expected = run(data, "tumbling")
    for batch_size in (60, 61):
        assert run(data, "tumbling", mode="micro-batch", batch_size=batch_size) == expected
    assert run(data, "sliding", mode="micro-batch", batch_size=60) == run(data, "sliding")


def test_sums_in_order_add_one_value_at_a_time() -> None:
    """Per group, ``init`` then each value in turn (``np.add.at`` is sequential)."""
    rnd = random.Random(5)
    groups: list[list[float]] = [[] for _ in range(300)]
    for _ in range(30_000):
        groups[rnd.randrange(len(groups))].append(rnd.choice([-1, 1]) * 10 ** rnd.uniform(-9, 9))
    groups[7] = []
    inits: list[Any] = [rnd.choice([0, 0.5, -(10**17) + 1, 1e-3]) for _ in groups]
    values = pl.Series([list(g) for g in groups], dtype=pl.List(pl.Float64))
    sums, counts = _sums_in_order(values, inits)
    expected = [functools.reduce(operator.add, g, i) for g, i in zip(groups, inits, strict=True)]
    assert repr(sums) == repr(expected)
    assert counts == [len(g) for g in groups]
    assert sums[7] is inits[7]  # no values: the sum so far as it is (an int stays an int)
