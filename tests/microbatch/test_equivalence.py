"""Stream-first and micro-batch give the same results and late output, for random flows over
random out-of-order input and random batch sizes; bounded runs agree too.

Calendar windows run on the same events with each millisecond stretched to a minute, from a
few days before a DST change of the zone, so that periods of 23 and 25 hours are crossed."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rheos.windowing as w
from rheos.connectors import iterable_source, list_sink
from rheos.flows.expressions import col, lit
from rheos.runtime import Flow

KEYS = ["a", "b", "c"]
MINUTE = 60_000
CALENDAR_STARTS = {
    "UTC": 1_362_787_200_000,  # 2013-03-09T00:00Z
    "America/New_York": 1_362_787_200_000,  # DST began 2013-03-10, and ended 2013-11-03
    "Europe/Paris": 1_382_745_600_000,  # 2013-10-26T00:00Z: DST ended 2013-10-27
    "Australia/Sydney": 1_380_153_600_000,  # 2013-09-26T00:00Z: DST began 2013-10-06
}


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 300))
    out = []
    t = 0
    for i in range(n):
        t += draw(st.integers(0, 400))
        back = draw(st.sampled_from([0, 0, 0, 200, 1_500, 6_000]))  # some beyond lateness
        out.append(
            {
                "id": i,
                "k": draw(st.sampled_from(KEYS)),
                "t": max(0, t - back),
                "x": draw(st.integers(-5, 20)),
                "y": draw(FLOATS),  # sums round: they must round the same in both modes
            }
        )
    return out


FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 0.1, -0.3, 1e16, -1e16]),
    st.floats(-1e6, 1e6),
    st.floats(-1e-300, 1e-300),  # tiny (and subnormal)
    st.floats(-1e300, 1e300),  # huge: sums may overflow to an infinity, or to nan
)
"""Floats of mixed magnitudes and signs, both zeros; no nan or infinity (not JSON)."""


AGGS = {
    "n": lambda f: w.count(),
    "s": lambda f: w.sum(f),
    "lo": lambda f: w.min(f),
    "hi": lambda f: w.max(f),
    "avg": lambda f: w.mean(f),
    "first": lambda f: w.first(f),
    "last": lambda f: w.last(f),
}


@st.composite
def flows(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "filter": draw(st.sampled_from([None, "expr", "fn"])),
        "map": draw(st.sampled_from([None, "with_columns", "fn"])),
        "key": draw(st.sampled_from([None, "field", "expr", "fn"])),
        "window": draw(st.sampled_from(["tumbling", "sliding", "calendar"])),
        "unit": draw(st.sampled_from(["day", "day", "week", "month"])),
        "tz": draw(st.sampled_from(sorted(CALENDAR_STARTS))),
        "over_previous": draw(st.booleans()),
        "size": draw(st.sampled_from([1_000, 2_000, 5_000])),
        "lateness": draw(st.sampled_from([0, 500, 2_000])),
        "bound": draw(st.sampled_from([0, 300, 1_000])),
        "aggs": draw(st.lists(st.sampled_from(sorted(AGGS)), min_size=1, max_size=4, unique=True)),
        "field": draw(st.sampled_from(["x", "y", "expr"])),
    }


def build(
    spec: dict[str, Any], data: list[dict[str, Any]], out: list[Any], late: list[Any]
) -> Flow:
    flow = Flow("eq")
    scale = 1
    if spec["window"] == "calendar":
        scale, start = MINUTE, CALENDAR_STARTS[spec["tz"]]
        data = [{**e, "t": start + e["t"] * scale} for e in data]
    s = flow.source(
        iterable_source(data),
        timestamp="t",
        timestamp_unit="ms",
        out_of_orderness=spec["bound"] * scale,
    )
    if spec["filter"] == "expr":
        s = s.filter((col("x") > 0) | (col("k") == lit("a")))
    elif spec["filter"] == "fn":
        s = s.filter(lambda e: e["x"] > 0 or e["k"] == "a")
    if spec["map"] == "with_columns":
        s = s.with_columns(z=col("x") * 2 + col("y"))
    elif spec["map"] == "fn":
        s = s.map(lambda e: {**e, "z": e["x"] * 2 + e["y"]})
    key = spec["key"]
    if key == "field":
        s = s.key_by("k")
    elif key == "expr":
        s = s.key_by(col("k"))
    elif key == "fn":
        s = s.key_by(lambda e: e["k"] + "!")
    size = spec["size"]
    windows: Any = (
        w.tumbling(size)
        if spec["window"] == "tumbling"
        else w.sliding(size, size // 2)
        if spec["window"] == "sliding"
        else w.calendar(spec["unit"], tz=spec["tz"])
    )
    field: Any = col("x") * 2 - col("y") if spec["field"] == "expr" else spec["field"]
    aggs = {name: AGGS[name](field) for name in spec["aggs"]}
    result = s.window(windows, allowed_lateness=spec["lateness"] * scale).aggregate(**aggs)
    if spec["over_previous"] and spec["window"] != "sliding":
        result.over_previous(*spec["aggs"]).sink(list_sink(out))
    else:
        result.sink(list_sink(out))
    result.late().sink(list_sink(late))
    return flow


def run(spec: dict[str, Any], data: list[dict[str, Any]], **options: Any) -> tuple[Any, ...]:
    out: list[Any] = []
    late: list[Any] = []
    summary = build(spec, data, out, late).run(**options)
    return out, late, summary.late, summary.events_out, summary.out_of_order


def exact(results: tuple[Any, ...]) -> str:
    """Results compared exactly: ``0.0`` vs ``-0.0``, ``1`` vs ``1.0`` and the last bit of a
    float all differ in the ``repr``."""
    return repr(results)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=flows(),
    data=events(),
    batch_size=st.one_of(st.integers(1, 20), st.integers(1, 100_000)),
)
def test_micro_batch_equals_stream_first(
    spec: dict[str, Any], data: list[dict[str, Any]], batch_size: int
) -> None:
    expected = run(spec, data, mode="stream-first")
    assert exact(run(spec, data, mode="micro-batch", batch_size=batch_size)) == exact(expected)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=flows(), data=events(), batch_size=st.integers(1, 100_000))
def test_bounded_runs_agree(
    spec: dict[str, Any], data: list[dict[str, Any]], batch_size: int
) -> None:
    expected = run(spec, data, mode="stream-first", bounded=True)
    assert expected[1] == []  # a bounded run has no late events
    got = run(spec, data, mode="micro-batch", bounded=True, batch_size=batch_size)
    assert exact(got) == exact(expected)
