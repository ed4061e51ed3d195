"""Stateless steps: map, filter, flat_map, inspect, union, split, branch; the flow graph."""

from __future__ import annotations

import pytest

from ._rh import rh


def run(build, items, **kw):
    flow = rh.Flow("t")
    out: list = []
    build(flow.source(rh.iterable_source(items))).sink(rh.list_sink(out))
    summary = flow.run(**kw)
    return out, summary


def test_map_filter_flat_map_inspect_fused_in_order() -> None:
    seen: list = []
    out, summary = run(
        lambda s: (
            s.map(lambda x: x + 1)
            .filter(lambda x: x % 2 == 0)
            .flat_map(lambda x: [x, -x])
            .inspect(seen.append)
            .map(lambda x: x * 10)
        ),
        range(6),
    )
    assert out == [20, -20, 40, -40, 60, -60]
    assert seen == [2, -2, 4, -4, 6, -6]
    assert (summary.events_in, summary.events_out) == (6, 6)


def test_filter_inside_flat_map_skips_only_that_item() -> None:
    out, _ = run(lambda s: s.flat_map(lambda x: range(x)).filter(lambda y: y != 1), [3, 2])
    assert out == [0, 2, 0]


def test_union_split_branch() -> None:
    flow = rh.Flow("u")
    a = flow.source(rh.iterable_source([1, 2, 3]))
    b = flow.source(rh.iterable_source([10, 20]))
    odd, even = a.union(b).split(lambda x: x % 2)
    parts = b.branch(big=lambda x: x > 15, all=lambda x: True)
    o1, o2, o3, o4 = [], [], [], []
    odd.sink(rh.list_sink(o1))
    even.sink(rh.list_sink(o2))
    parts["big"].sink(rh.list_sink(o3))
    parts["all"].sink(rh.list_sink(o4))
    summary = flow.run()
    assert sorted(o1) == [1, 3]
    assert sorted(o2) == [2, 10, 20]
    assert o3 == [20] and o4 == [10, 20]
    assert summary.events_in == 5 and summary.events_out == 8


def test_fan_out_to_two_sinks_from_one_stream() -> None:
    flow = rh.Flow("fan")
    s = flow.source(rh.iterable_source([1, 2])).map(lambda x: x * 3)
    x, y = [], []
    s.sink(rh.list_sink(x))
    s.filter(lambda v: v > 3).sink(rh.list_sink(y))
    flow.run()
    assert x == [3, 6] and y == [6]


def test_describe_names_every_step_and_its_inputs() -> None:
    flow = rh.Flow("quote-alerts")
    quotes = flow.source(rh.iterable_source([]), timestamp="ts", out_of_orderness="5s")
    (
        quotes.filter(lambda q: q["price"] > 0)
        .key_by("symbol")
        .window(rh.tumbling("1m"), allowed_lateness="10s")
        .aggregate(open=rh.first("price"), close=rh.last("price"), volume=rh.sum("qty"))
        .sink(rh.list_sink([]))
    )
    text = str(flow)
    assert text.splitlines()[0] == "flow 'quote-alerts'"
    assert "#2 key_by 'key_by' <- #1: 'symbol'" in text
    assert "#3 window 'window' <- #2: tumbling('1m'), allowed_lateness=10s" in text
    assert "out_of_orderness=5s" in text
    assert "test_stateless.py:" in text  # user functions are named by file and line
    assert [s.kind for s in flow.steps] == ["source", "filter", "key_by", "window", "sink"]


def test_steps_are_frozen() -> None:
    flow = rh.Flow("f")
    flow.source(rh.iterable_source([1])).map(str)
    with pytest.raises(AttributeError):
        flow.steps[1].name = "other"  # type: ignore[misc]


def test_definition_errors() -> None:
    flow = rh.Flow("bad")
    s = flow.source(rh.iterable_source([1]))
    with pytest.raises(rh.FlowDefinitionError, match="needs a function"):
        s.map(42)  # type: ignore[arg-type]
    with pytest.raises(rh.FlowDefinitionError, match="two steps named"):
        s.map(str, name="x").map(str, name="x")
    with pytest.raises(rh.FlowDefinitionError, match="keyed streams"):
        s.key_by(str).join(s, window=rh.tumbling("1s"))  # type: ignore[arg-type]
    with pytest.raises(rh.FlowDefinitionError, match="aggregate"):
        s.window(rh.tumbling("1s")).late()


def test_bounded_run_of_stateless_flow_equals_streaming() -> None:
    build = lambda s: s.map(lambda x: x * x).filter(lambda x: x % 3)  # noqa: E731
    assert run(build, range(50))[0] == run(build, range(50), bounded=True)[0]
