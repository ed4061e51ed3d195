"""Process steps with event-time timers give the same output sequence in both modes: the exact
order of the outputs of events and timers, and the watermark each saw, for random out-of-order
input, lateness and batch sizes (a timer registered for a time the watermark has passed fires
at its next rise) -- from a list, and streaming from log partitions stopped with a drain."""

from __future__ import annotations

import json
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rheos.windowing as w
from rheos.connectors import iterable_source, list_sink, log_source
from rheos.flows import ProcessContext
from rheos.runtime import Flow
from rheos.transport import Log


class Timers:
    """Emits on every event and every timer; registers timers ahead of, at and behind the
    event's time, deletes some, and registers more from ``on_timer`` (which fails for some
    timers)."""

    def process(self, ctx: ProcessContext, event: Any) -> None:
        if isinstance(event, tuple):  # an upstream process step's output
            event = {"id": event[2], "d": 100 * (len(event) + event[2] % 3)}
        elif "id" not in event:  # a window's result row
            event = {"id": event["n"], "d": 100 * event["n"]}
        n = (ctx.state or 0) + 1
        ctx.state = n
        ctx.emit(("event", ctx.key, event["id"], ctx.timestamp, ctx.watermark, n))
        ctx.register_timer(ctx.timestamp + event["d"])
        if event["id"] % 4 == 0:
            ctx.register_timer(ctx.timestamp - 50)  # already due when the event is late
        if event["id"] % 6 == 0:
            ctx.delete_timer(ctx.timestamp + 300)

    def __init__(self) -> None:
        self.follow_ups: set[tuple[Any, int]] = set()

    def on_timer(self, ctx: ProcessContext, timestamp: int) -> None:
        ctx.emit(("timer", ctx.key, timestamp, ctx.watermark, ctx.state), timestamp)
        if (ctx.key, timestamp) in self.follow_ups:
            return
        later, sooner = (ctx.key, timestamp + 150), (ctx.key, timestamp - 20)
        if timestamp % 3 == 0 and later not in self.follow_ups:
            self.follow_ups.add(later)
            ctx.register_timer(timestamp + 150)
        if timestamp % 5 == 0 and sooner not in self.follow_ups:
            self.follow_ups.add(sooner)
            ctx.register_timer(timestamp - 20)  # due at once: fires in the same advance
        if timestamp % 13 == 7:
            raise ValueError(f"unlucky {timestamp}")  # dead-lettered; the others go on


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 120))
    out = []
    t = 0
    for i in range(n):
        t += draw(st.integers(0, 400))
        back = draw(st.sampled_from([0, 0, 0, 200, 1_500, 6_000]))
        out.append(
            {
                "id": i,
                "k": draw(st.sampled_from("abc")),
                "t": max(0, t - back),
                "d": draw(st.sampled_from([0, 1, 100, 300, 2_000])),
            }
        )
    return out


@st.composite
def flows(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "shape": draw(st.sampled_from(["process", "window-then-process", "process-twice"])),
        "bound": draw(st.sampled_from([0, 300, 1_000])),
        "lateness": draw(st.sampled_from([0, 500, 2_000])),
    }


def run(
    spec: dict[str, Any],
    data: list[dict[str, Any]],
    data_dir: Path | None = None,
    **options: Any,
) -> tuple[Any, ...]:
    out: list[Any] = []
    more: list[Any] = []
    late: list[Any] = []
    flow = Flow("timers", data_dir=data_dir, checkpoint_interval=None)
    source = iterable_source(data) if data_dir is None else log_source("in")
    s = flow.source(
        source, timestamp="t", timestamp_unit="ms", out_of_orderness=spec["bound"]
    ).key_by("k")
    if spec["shape"] == "window-then-process":
        win = s.window(w.tumbling(1_000), allowed_lateness=spec["lateness"]).aggregate(n=w.count())
        win.late().sink(list_sink(late))
        s = win.key_by("key")
    p = s.process(Timers())
    p.sink(list_sink(out))
    if spec["shape"] == "process-twice":
        p.key_by(lambda e: e[1]).process(Timers()).sink(list_sink(more))
    summary = flow.run(**options)
    steps = {name: (s.events_in, s.events_out) for name, s in summary.steps.items()}
    dead: dict[str, list[Any]] = {}  # per step in order (micro-batch runs step by step)
    for d in summary.dead_letters:
        dead.setdefault(d.step, []).append((d.key, d.timer, d.event_time, d.message))
    return out, more, late, summary.late, summary.events_out, steps, dead


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=flows(),
    data=events(),
    batch_size=st.one_of(st.integers(1, 50), st.integers(1, 100_000)),
)
def test_timer_outputs_in_the_same_order_in_both_modes(
    spec: dict[str, Any], data: list[dict[str, Any]], batch_size: int
) -> None:
    expected = run(spec, data, mode="stream-first")
    assert run(spec, data, mode="micro-batch", batch_size=batch_size) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=flows(),
    data=events(),
    batch_size=st.one_of(st.integers(1, 50), st.integers(1, 100_000)),
)
def test_bounded_timer_outputs_agree(
    spec: dict[str, Any], data: list[dict[str, Any]], batch_size: int
) -> None:
    expected = run(spec, data, mode="stream-first", bounded=True)
    assert expected[2] == []  # a bounded run has no late events
    assert run(spec, data, mode="micro-batch", bounded=True, batch_size=batch_size) == expected


def test_a_timer_registered_behind_the_watermark_fires_at_its_next_rise() -> None:
    """The event at 500 arrives after the watermark reached 2000: its timer (at 500) fires
    when the watermark next rises (at 3000), after the event, in both modes and any batch;
    the timer it registers at 480 is due at once and fires right after it."""
    data = [
        {"id": 1, "k": "a", "t": 2_000, "d": 5_000},
        {"id": 2, "k": "b", "t": 500, "d": 0},
        {"id": 3, "k": "a", "t": 2_000, "d": 5_000},
        {"id": 5, "k": "a", "t": 3_000, "d": 5_000},
    ]
    spec = {"shape": "process", "bound": 0, "lateness": 0}
    expected = run(spec, data, mode="stream-first")
    assert [o[:3] for o in expected[0][:6]] == [
        ("event", "a", 1),
        ("event", "b", 2),
        ("event", "a", 3),
        ("timer", "b", 500),
        ("timer", "b", 480),
        ("event", "a", 5),
    ]
    assert expected[0][3][3] == 3_000  # the watermark it fired at
    for batch_size in (1, 2, 3, 4, 1_000):
        assert run(spec, data, mode="micro-batch", batch_size=batch_size) == expected


def drained_from_the_log(
    spec: dict[str, Any], data: list[dict[str, Any]], partitions: int, **options: Any
) -> tuple[Any, ...]:
    """A streaming run over ``data`` in a log topic, stopped once every event was read, with
    ``drain=True``: its sources are still open while the last windows close and the last
    timers fire."""
    with TemporaryDirectory() as folder:
        log = Log(folder)
        log.create_topic("in", partitions)
        with log.producer("in") as producer:
            values = [json.dumps(e).encode() for e in data]
            producer.append(values, keys=[e["k"].encode() for e in data])
        return run(
            spec, data, Path(folder), stop_after=len(data), drain=True, timeout=30, **options
        )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=flows(),
    data=events().filter(bool),
    partitions=st.integers(1, 3),
    batch_size=st.integers(1, 20),
)
def test_drained_streaming_runs_give_the_same_sequence_in_both_modes(
    spec: dict[str, Any], data: list[dict[str, Any]], partitions: int, batch_size: int
) -> None:
    expected = drained_from_the_log(spec, data, partitions, mode="stream-first")
    got = drained_from_the_log(spec, data, partitions, mode="micro-batch", batch_size=batch_size)
    assert got == expected


def test_timers_fired_by_a_drain_see_the_final_watermark() -> None:
    """Stopped with ``drain=True`` while its source is open, a run fires the timers left with
    the final watermark, as a run whose input ended does: in both modes."""
    data = [{"id": 1, "k": "a", "t": 1_000, "d": 500}]
    spec = {"shape": "process", "bound": 0, "lateness": 0}
    for options in ({"mode": "stream-first"}, {"mode": "micro-batch", "batch_size": 1}):
        out = drained_from_the_log(spec, data, 1, **options)[0]
        assert out[1][:2] == ("timer", "a") and out[1][3] == w.MAX_WATERMARK
        assert out == run(spec, data, **options)[0]
