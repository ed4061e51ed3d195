"""Window semantics through the whole API, with hand-worked expected results."""

from __future__ import annotations

import threading
import time
from typing import Any

from rheos.transport import Log

from ._rh import rh
from .helpers import ev, rows, windowed


def test_tumbling_keyed_in_order() -> None:
    events = [ev("a", 1_000, 1), ev("b", 2_000, 5), ev("a", 9_999, 2), ev("a", 10_000, 4)]
    out, late, summary = windowed(events, rh.tumbling("10s"))
    assert rows(out, "n", "total") == [
        ("a", 0, 10_000, 2, 3),
        ("b", 0, 10_000, 1, 5),
        ("a", 10_000, 20_000, 1, 4),
    ]
    assert late == [] and summary.late == 0 and summary.out_of_order == 0


def test_out_of_order_within_the_bound_is_not_late() -> None:
    # bound 5s: after a@12000 the watermark is 7000, so window [0, 10s) is still open for 8000
    events = [ev("a", 1_000), ev("a", 12_000), ev("a", 8_000)]
    out, late, summary = windowed(events, rh.tumbling("10s"), bound="5s")
    assert rows(out, "n") == [("a", 0, 10_000, 2), ("a", 10_000, 20_000, 1)]
    assert late == []
    assert summary.out_of_order == 1
    assert summary.sources["source"].max_delay_ms == 4_000
    assert summary.steps["window"].out_of_order == 1


def test_late_beyond_the_bound_goes_to_the_late_output_and_is_counted() -> None:
    # bound 2s: after a@13000 the watermark is 11000 >= 10000: [0, 10s) is final; 5000 is late
    events = [ev("a", 1_000), ev("a", 13_000), ev("a", 5_000, 7)]
    out, late, summary = windowed(events, rh.tumbling("10s"), bound="2s")
    assert rows(out, "n") == [("a", 0, 10_000, 1), ("a", 10_000, 20_000, 1)]
    assert len(late) == 1
    record = late[0]
    assert record["event"] == ev("a", 5_000, 7)
    assert (record["key"], record["timestamp"], record["watermark"]) == ("a", 5_000, 11_000)
    assert record["windows"] == [[0, 10_000]]
    assert (record["flow"], record["step"]) == ("w", "window")
    assert summary.late == 1 and summary.steps["window"].late == 1


def test_allowed_lateness_keeps_the_window_open() -> None:
    events = [ev("a", 1_000), ev("a", 13_000), ev("a", 5_000)]
    out, late, summary = windowed(events, rh.tumbling("10s"), bound="2s", lateness="2s")
    assert rows(out, "n") == [("a", 0, 10_000, 2), ("a", 10_000, 20_000, 1)]
    assert late == [] and summary.late == 0


def test_sliding_windows() -> None:
    events = [ev("a", 1_000), ev("a", 6_000), ev("a", 12_000)]
    out, _, _ = windowed(events, rh.sliding("10s", every="5s"))
    assert rows(out, "n") == [
        ("a", -5_000, 5_000, 1),
        ("a", 0, 10_000, 2),
        ("a", 5_000, 15_000, 2),
        ("a", 10_000, 20_000, 1),
    ]


def test_session_windows_merge_when_a_late_event_bridges_them() -> None:
    # gap 5s: 1000 -> [1000, 6000); 9000 -> [9000, 14000); then 5000 -> [5000, 10000) touches
    # both, so the three events become one session [1000, 14000)
    events = [ev("a", 1_000, 1), ev("a", 9_000, 2), ev("a", 5_000, 4), ev("b", 30_000, 8)]
    out, late, _ = windowed(events, rh.session("5s"), bound="10s")
    assert rows(out, "n", "total") == [("a", 1_000, 14_000, 3, 7), ("b", 30_000, 35_000, 1, 8)]
    assert late == []


def test_session_windows_separate_without_the_bridge() -> None:
    events = [ev("a", 1_000), ev("a", 3_000), ev("a", 20_000)]
    out, _, _ = windowed(events, rh.session("5s"))
    assert rows(out, "n") == [("a", 1_000, 8_000, 2), ("a", 20_000, 25_000, 1)]


def test_global_window_has_key_none() -> None:
    events = [ev("a", 1_000, 1), ev("b", 2_000, 2), ev("c", 11_000, 3)]
    out, _, _ = windowed(events, rh.tumbling("10s"), keyed=False)
    assert rows(out, "n", "total") == [(None, 0, 10_000, 2, 3), (None, 10_000, 20_000, 1, 3)]


def test_emit_update_emits_every_change_then_the_final_row() -> None:
    events = [ev("a", 1_000, 1), ev("a", 2_000, 2), ev("a", 12_000, 3)]
    out, _, _ = windowed(events, rh.tumbling("10s"), emit="update", total=rh.sum("v"))
    assert [(r["window_start"], r["total"], r["final"]) for r in out] == [
        (0, 1, False),
        (0, 3, False),
        (0, 3, True),
        (10_000, 3, False),
        (10_000, 3, True),
    ]


def test_all_builtin_aggregations() -> None:
    events = [ev("a", 3_000, 5), ev("a", 1_000, 2), ev("a", 2_000, 5)]
    out, _, _ = windowed(
        events,
        rh.tumbling("10s"),
        bound="10s",
        n=rh.count(),
        s=rh.sum("v"),
        lo=rh.min("v"),
        hi=rh.max("v"),
        avg=rh.mean("v"),
        first=rh.first("v"),
        last=rh.last("v"),
        all=rh.collect("v"),
        distinct=rh.count_distinct("v"),
    )
    (row,) = out
    assert row["n"] == 3 and row["s"] == 12 and row["lo"] == 2 and row["hi"] == 5
    assert row["avg"] == 4.0 and row["first"] == 2 and row["last"] == 5
    assert row["all"] == [2, 5, 5] and row["distinct"] == 2


def test_user_defined_aggregation_and_window_reduce() -> None:
    class Product:
        def init(self):
            return 1

        def add(self, acc, value):
            return acc * value

        def merge(self, a, b):
            return a * b

        def result(self, acc):
            return acc

    events = [ev("a", 1_000, 2), ev("a", 2_000, 3), ev("a", 3_000, 7)]
    out, _, _ = windowed(events, rh.tumbling("10s"), p=rh.aggregate_with(Product(), "v"))
    assert out[0]["p"] == 42
    flow = rh.Flow("r")
    got: list = []
    (
        flow.source(rh.iterable_source(events), timestamp="t", timestamp_unit="ms")
        .key_by("k")
        .window(rh.tumbling("10s"))
        .reduce(lambda a, b: {**a, "v": a["v"] + b["v"]})
        .sink(rh.list_sink(got))
    )
    flow.run()
    assert got[0]["value"]["v"] == 12


def test_processing_time_windows_follow_the_injected_clock() -> None:
    clock = rh.ManualClock(0)

    def arrivals():
        for at, value in [(1_000, 1), (2_000, 2), (15_000, 3)]:
            clock.set(at)
            yield {"v": value}

    flow = rh.Flow("pt", clock=clock)
    out: list = []
    emitted_at: list = []
    (
        flow.source(rh.iterable_source(arrivals(), batch_size=1))
        .window(rh.tumbling("10s"), time="processing")
        .aggregate(total=rh.sum("v"))
        .inspect(lambda r: emitted_at.append(clock.now_ms()))
        .sink(rh.list_sink(out))
    )
    flow.run()
    assert rows(out, "total") == [(None, 0, 10_000, 3), (None, 10_000, 20_000, 3)]
    assert emitted_at[0] == 15_000  # closed by the clock, not by the end of the input


def test_chained_windows_with_lateness_do_not_make_the_first_results_late() -> None:
    events = [ev("a", t) for t in range(0, 60_000, 1_000)]
    flow = rh.Flow("chain")
    out: list = []
    late: list = []
    per_10s = (
        flow.source(rh.iterable_source(events), timestamp="t", timestamp_unit="ms")
        .key_by("k")
        .window(rh.tumbling("10s"), allowed_lateness="15s")
    )
    (
        per_10s.aggregate(n=rh.count())
        .key_by("key")
        .window(rh.tumbling("30s"))
        .aggregate(n=rh.sum("n"), windows=rh.count())
        .sink(rh.list_sink(out))
    )
    per_10s.late().sink(rh.list_sink(late))
    summary = flow.run()
    assert rows(out, "n", "windows") == [("a", 0, 30_000, 30, 3), ("a", 30_000, 60_000, 30, 3)]
    assert summary.late == 0 and late == []


def test_idle_partition_stops_holding_the_watermark(tmp_path) -> None:
    clock = rh.ManualClock(0)
    flow = rh.Flow("idle", data_dir=tmp_path, clock=clock)
    from rheos.transport import Log

    log = Log(tmp_path)
    log.create_topic("events", 2)
    with log.producer("events") as p:
        p.append([b'{"t": 1000}', b'{"t": 12000}'], partition=0)
    log.close()
    out: list = []
    (
        flow.source(rh.log_source("events"), timestamp="t", timestamp_unit="ms", idle_timeout="5s")
        .window(rh.tumbling("10s"))
        .aggregate(n=rh.count())
        .sink(rh.list_sink(out))
    )
    result: list = []
    runner = threading.Thread(target=lambda: result.append(flow.run(timeout=20)))
    runner.start()

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 10
        while len(out) < n and time.monotonic() < deadline:
            time.sleep(0.01)

    time.sleep(0.3)
    assert out == []  # partition 1 has produced nothing: it holds the watermark back
    clock.advance(5_000)  # partition 1 is idle now; the watermark is partition 0's: 12000
    wait_for(1)
    assert rows(out, "n") == [(None, 0, 10_000, 1)]
    clock.advance(10_000)  # every partition idle: the watermark follows the clock
    wait_for(2)
    assert rows(out, "n")[1] == (None, 10_000, 20_000, 1)
    flow.stop()
    runner.join(10)
    assert result[0].stopped == "stopped"


def test_a_window_inlined_in_the_source_loop_counts_and_adds_as_its_operator_does(
    tmp_path: object,
) -> None:
    """A log source's generated chunk loop runs the tumbling window after ``key_by`` inline
    (its operator's ``process`` and counters in the loop's locals): over many chunks, with
    events out of order, late ones and ones without the key, the rows, the late events and
    the window's statistics are those worked out here event by event."""
    import random

    import msgspec

    rnd = random.Random(5)
    events: list[dict[str, object]] = []
    for i in range(30_000):  # (a chunk holds up to 10,000)
        ts = i * 40 - (rnd.randrange(6_000) if rnd.random() < 0.1 else 0)
        event: dict[str, object] = {"ts": max(ts, 0), "k": f"k{rnd.randrange(5)}", "v": i % 7}
        if i % 4_999 == 0:
            del event["k"]  # (a bad event: dead-lettered before the window)
        events.append(event)
    log = Log(tmp_path)
    log.create_topic("in", 1)
    with log.producer("in") as producer:
        for at in range(0, len(events), 300):  # batches of 300: many chunks
            producer.append([msgspec.json.encode(e) for e in events[at : at + 300]])
    log.close()
    out: list[dict[str, object]] = []
    flow = rh.Flow("inline", data_dir=tmp_path, checkpoint_interval=None)
    windows = (
        flow.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms", out_of_orderness="2s")
        .key_by("k")
        .window(rh.tumbling("1s"))
    )
    windows.aggregate(n=rh.count(), total=rh.sum("v")).sink(rh.list_sink(out))
    summary = flow.run(stop_after=len(events), drain=True)

    # by hand: the source's watermark is its largest time so far less 2 s (it rises before
    # the event is pushed); a window [s, s + 1 s) is closed once the watermark reaches s + 1 s
    want: dict[tuple[object, int], list[int]] = {}
    top = top_w = -(2**62)
    n_w = ooo_w = max_w = late = 0
    for e in events:
        ts = int(e["ts"])  # type: ignore[call-overload]
        top = max(top, ts)
        if "k" not in e:
            continue
        n_w += 1
        if ts < top_w:
            ooo_w += 1
            max_w = max(max_w, top_w - ts)
        top_w = max(top_w, ts)
        start = ts - ts % 1_000
        if start + 1_000 <= top - 2_000:
            late += 1
            continue
        acc = want.setdefault((e["k"], start), [0, 0])
        acc[0] += 1
        acc[1] += int(e["v"])  # type: ignore[call-overload]
    got = {(r["key"], r["window_start"]): [r["n"], r["total"]] for r in out}
    assert got == want
    stats = summary.steps["window"]
    assert (stats.events_in, stats.out_of_order, stats.max_delay_ms, stats.late) == (
        n_w,
        ooo_w,
        max_w,
        late,
    )
    assert late > 0 and summary.dead == 7


def test_late_records_carry_the_flow_watermark_whatever_the_loop_keeps_in_locals(
    tmp_path: object,
) -> None:
    """A source's chunk loop may keep its watermark in a local (no step sets timers, and
    nothing but an inlined window reads it mid-loop); a late record still carries the flow
    watermark at the late event's arrival: here a tumbling window inlined, a sliding window
    after a map, two windows on one source, and a tumbling window before a process step."""
    import msgspec

    events = []
    for i in range(3_000):
        ts = i * 50
        if i % 97 == 0 and i:
            ts -= 3_000  # late for a 1 s window with a 2 s bound
        events.append({"ts": ts, "k": f"k{i % 3}", "v": i})
    log = Log(tmp_path)
    log.create_topic("in", 1)
    with log.producer("in") as producer:
        for at in range(0, len(events), 250):
            producer.append([msgspec.json.encode(e) for e in events[at : at + 250]])
    log.close()
    # by hand: the watermark at an event's arrival is the largest time so far (its own
    # included) less 2 s; an event is late once its first window has closed
    top, want, want_sliding = -(2**62), [], []
    for e in events:
        ts = e["ts"]
        top = max(top, ts)
        if ts - ts % 1_000 + 1_000 <= top - 2_000:  # [s, s + 1 s)
            want.append((ts, top - 2_000))
        if ts - 1_000 - (ts - 1_000) % 500 + 1_500 <= top - 2_000:  # 1 s every 500 ms
            want_sliding.append((ts, top - 2_000))

    class Timers:
        def process(self, ctx: Any, event: Any) -> None:
            ctx.register_timer(ctx.timestamp + 100)  # (lowers the due point mid-loop)

        def on_timer(self, ctx: Any, timestamp: int) -> None:
            return None

    def shapes(flow: rh.Flow, lates: list[list[dict[str, object]]]) -> list[object]:
        def source() -> object:
            return flow.source(
                rh.log_source("in"), timestamp="ts", timestamp_unit="ms", out_of_orderness="2s"
            )

        def late(window: object, then: str = "sink") -> None:
            lates.append([])
            counts = window.aggregate(n=rh.count())  # type: ignore[attr-defined]
            counts.late().sink(rh.list_sink(lates[-1]))
            if then == "process":
                counts = counts.key_by("key").process(Timers())
            counts.sink(rh.list_sink([]))

        return [
            lambda: late(source().key_by("k").window(rh.tumbling("1s"))),
            lambda: late(source().map(dict).key_by("k").window(rh.sliding("1s", "500ms"))),
            lambda: [late(s.key_by("k").window(rh.tumbling("1s"))) for s in [source()] * 2],
            lambda: late(source().key_by("k").window(rh.tumbling("1s")), then="process"),
        ]

    for shape in range(4):
        lates: list[list[dict[str, object]]] = []
        flow = rh.Flow(f"late{shape}", data_dir=tmp_path, checkpoint_interval=None)
        shapes(flow, lates)[shape]()
        flow.run(stop_after=len(events), drain=True)
        assert len(lates) == (2 if shape == 2 else 1)
        for got in lates:
            pairs = sorted((r["timestamp"], r["watermark"]) for r in got)
            assert pairs == (want_sliding if shape == 1 else want), shape
