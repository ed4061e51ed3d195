"""Keyed steps: key_by, running reduce and aggregate, and the general process step."""

from __future__ import annotations

from typing import Any

from ._rh import rh
from .helpers import ev


def source(flow: Any, events: list, **kw: Any) -> Any:
    return flow.source(rh.iterable_source(events), timestamp="t", timestamp_unit="ms", **kw)


def test_running_reduce_per_key_emits_every_update() -> None:
    flow = rh.Flow("r")
    out: list = []
    (
        source(flow, [ev("a", 1, 1), ev("b", 2, 10), ev("a", 3, 2), ev("a", 4, 3)])
        .key_by("k")
        .map(lambda e: e["v"])
        .reduce(lambda acc, v: acc + v)
        .sink(rh.list_sink(out))
    )
    flow.run()
    assert out == [1, 10, 3, 6]


def test_running_aggregate_per_key() -> None:
    flow = rh.Flow("agg")
    out: list = []
    (
        source(flow, [ev("a", 1, 1), ev("b", 2, 10), ev("a", 3, 5)])
        .key_by(lambda e: e["k"].upper())
        .aggregate(n=rh.count(), hi=rh.max("v"))
        .sink(rh.list_sink(out))
    )
    flow.run()
    assert out == [
        {"key": "A", "n": 1, "hi": 1},
        {"key": "B", "n": 1, "hi": 10},
        {"key": "A", "n": 2, "hi": 5},
    ]


class SessionAlert:
    """Emits the number of events of a key once it has been quiet for 10 s of event time."""

    def process(self, ctx: Any, event: Any) -> None:
        state = ctx.state or {"n": 0, "timer": None}
        if state["timer"] is not None:
            ctx.delete_timer(state["timer"])
        state["n"] += 1
        state["timer"] = ctx.timestamp + 10_000
        ctx.register_timer(state["timer"])
        ctx.state = state

    def on_timer(self, ctx: Any, timestamp: int) -> None:
        ctx.emit({"key": ctx.key, "n": ctx.state["n"], "quiet_since": timestamp - 10_000})
        ctx.state = None


def test_process_step_with_state_and_event_time_timers() -> None:
    flow = rh.Flow("p")
    out: list = []
    events = [ev("a", 1_000), ev("a", 5_000), ev("b", 6_000), ev("a", 30_000), ev("b", 31_000)]
    source(flow, events).key_by("k").process(SessionAlert).sink(rh.list_sink(out))
    summary = flow.run()
    # a: timers at 11000 (deleted), 15000 fires when the watermark passes it (at 30000)
    assert out == [
        {"key": "a", "n": 2, "quiet_since": 5_000},
        {"key": "b", "n": 1, "quiet_since": 6_000},
        {"key": "a", "n": 1, "quiet_since": 30_000},
        {"key": "b", "n": 1, "quiet_since": 31_000},
    ]
    assert summary.steps["process"].events_in == 5


def test_process_with_a_plain_function_and_bounded_run() -> None:
    def dedupe(ctx: Any, event: Any) -> None:
        if ctx.state is None:
            ctx.state = 1
            ctx.emit(event)

    events = [ev("a", 3, 1), ev("a", 1, 2), ev("b", 2, 3)]
    results = []
    for bounded in (False, True):
        flow = rh.Flow("d")
        out: list = []
        source(flow, events, out_of_orderness="1s").key_by("k").process(dedupe).sink(
            rh.list_sink(out)
        )
        flow.run(bounded=bounded)
        results.append(out)
    assert results[0] == [ev("a", 3, 1), ev("b", 2, 3)]  # streaming: arrival order
    assert results[1] == [ev("a", 1, 2), ev("b", 2, 3)]  # bounded: event-time order


def test_process_state_snapshot_is_plain_data() -> None:
    from rheos.flows.steps import ProcessStep
    from rheos.runtime.nodes import ProcessNode

    out: list = []
    step = ProcessStep(0, "p", (), SessionAlert())
    node = ProcessNode("f", step, lambda k, v, t: out.append(v), 0)
    node.push(("a", 1), {"x": 1}, 1_000)
    snap = node.snapshot()
    assert snap == {
        "states": [[["a", 1], {"n": 1, "timer": 11_000}]],
        "timers": [[11_000, ["a", 1]]],
    }
    other = ProcessNode("f", step, lambda k, v, t: out.append(v), 0)
    other.load(snap)
    other.advance(11_000)
    assert out == [{"key": ("a", 1), "n": 1, "quiet_since": 1_000}]
