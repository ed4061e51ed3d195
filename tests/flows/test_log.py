"""Flows on the embedded log: log_source -> window -> log_sink, groups, the late topic."""

from __future__ import annotations

import threading
import time

import msgspec

from rheos.transport import Log

from ._rh import rh


def write(data_dir, topic: str, events: list, partitions: int = 1) -> None:
    log = Log(data_dir)
    log.create_topic(topic, partitions, exist_ok=True)
    with log.producer(topic) as p:
        p.append([msgspec.json.encode(e) for e in events])
    log.close()


def read(data_dir, topic: str) -> list:
    log = Log(data_dir)
    r = log.reader(topic)
    out = [msgspec.json.decode(v) for b in r.poll(max_records=100_000) for v in b.values()]
    r.close()
    log.close()
    return out


QUOTES = [
    {"symbol": "A", "ts": 1_000, "price": 10.0, "qty": 1},
    {"symbol": "B", "ts": 2_000, "price": 5.0, "qty": 2},
    {"symbol": "A", "ts": 30_000, "price": 10.5, "qty": 3},
    {"symbol": "A", "ts": 61_000, "price": 11.0, "qty": 1},
    {"symbol": "A", "ts": 20_000, "price": 99.0, "qty": 9},  # late: [0, 1m) closed at 61000
]


def quote_flow(data_dir, out_topic: str = "alerts", **options):
    flow = rh.Flow("quote-alerts", data_dir=data_dir, **options)
    quotes = flow.source(
        rh.log_source("quotes"), timestamp="ts", timestamp_unit="ms", out_of_orderness="1s"
    )
    (
        quotes.filter(lambda q: q["price"] > 0)
        .key_by("symbol")
        .window(rh.tumbling("1m"))
        .aggregate(open=rh.first("price"), close=rh.last("price"), volume=rh.sum("qty"))
        .sink(rh.log_sink(out_topic, key="key"))
    )
    return flow


def test_log_round_trip_bounded(tmp_path) -> None:
    write(tmp_path, "quotes", QUOTES)
    summary = quote_flow(tmp_path).run(bounded=True)
    assert summary.events_in == 5 and summary.late == 0
    assert read(tmp_path, "alerts") == [
        {
            "key": "A",
            "window_start": 0,
            "window_end": 60_000,
            "open": 10.0,
            "close": 10.5,
            "volume": 13,
        },
        {
            "key": "B",
            "window_start": 0,
            "window_end": 60_000,
            "open": 5.0,
            "close": 5.0,
            "volume": 2,
        },
        {
            "key": "A",
            "window_start": 60_000,
            "window_end": 120_000,
            "open": 11.0,
            "close": 11.0,
            "volume": 1,
        },
    ]


def test_log_round_trip_streaming_routes_late_events_to_the_default_topic(tmp_path) -> None:
    write(tmp_path, "quotes", QUOTES)
    summary = quote_flow(tmp_path).run(stop_after=5, drain=True)
    assert summary.stopped == "stop_after" and summary.late == 1
    alerts = read(tmp_path, "alerts")
    assert [(a["key"], a["window_start"], a["volume"]) for a in alerts] == [
        ("A", 0, 4),
        ("B", 0, 2),
        ("A", 60_000, 1),
    ]
    (late,) = read(tmp_path, "quote-alerts.late")
    assert late["event"] == QUOTES[4] and late["windows"] == [[0, 60_000]]
    assert summary.events_out == 3  # the default late topic is counted under `late`


def test_late_sink_and_dead_letter_sink_receive_copies(tmp_path) -> None:
    """``late_sink`` gets what goes to ``<flow>.late``, ``dead_letter_sink`` what goes to
    ``<flow>.dlq`` (in both modes, checkpointed: written with the checkpoints)."""
    write(tmp_path, "quotes", [*QUOTES[:2], {"symbol": "A", "price": 1.0}, *QUOTES[2:]])
    flow = quote_flow(
        tmp_path,
        late_sink=rh.log_sink("late-copy"),
        dead_letter_sink=rh.log_sink("dead-copy"),
    )
    flow.checkpoint_interval_ms = 50
    summary = flow.run(stop_after=5, drain=True)
    assert (summary.late, summary.dead) == (1, 1)
    assert read(tmp_path, "late-copy") == read(tmp_path, "quote-alerts.late")
    (letter,) = read(tmp_path, "dead-copy")
    assert (letter["step"], letter["error_type"], letter["source_offset"]) == (
        "source",
        "EventError",
        2,
    )


def test_streaming_log_source_waits_for_new_data_and_stops_from_another_thread(tmp_path) -> None:
    write(tmp_path, "quotes", QUOTES[:2])
    flow = quote_flow(tmp_path)
    flow.checkpoint_interval_ms = 100  # committed readers see results at each checkpoint
    results: list = []
    t = threading.Thread(target=lambda: results.append(flow.run()))
    t.start()
    time.sleep(0.2)
    write(tmp_path, "quotes", QUOTES[2:4])  # A@61000: closes the first minute
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(read(tmp_path, "alerts")) < 2:
        time.sleep(0.05)
    flow.stop()
    t.join(10)
    assert not t.is_alive()
    assert results[0].stopped == "stopped" and results[0].events_in == 4
    assert [a["key"] for a in read(tmp_path, "alerts")] == ["A", "B"]


def test_consumer_group_resumes_and_bounded_reads_to_end_at_start(tmp_path) -> None:
    write(tmp_path, "nums", [{"n": i} for i in range(5)])
    got: list = []

    def run_once() -> None:
        flow = rh.Flow("g", data_dir=tmp_path)
        flow.source(rh.log_source("nums", group="g1")).sink(rh.list_sink(got))
        flow.run(bounded=True)

    run_once()
    write(tmp_path, "nums", [{"n": 5}])
    run_once()
    assert [e["n"] for e in got] == [0, 1, 2, 3, 4, 5]


def test_msgpack_raw_and_schema_formats(tmp_path) -> None:
    class Quote(msgspec.Struct):
        symbol: str
        price: float

    flow = rh.Flow("fmt", data_dir=tmp_path)
    flow.source(rh.iterable_source([{"symbol": "A", "price": 1.5}])).sink(
        rh.log_sink("packed", format="msgpack")
    )
    flow.run()
    out_dict, out_struct, out_raw = [], [], []
    flow = rh.Flow("fmt2", data_dir=tmp_path)
    flow.source(rh.log_source("packed", format="msgpack", schema=Quote)).sink(
        rh.list_sink(out_dict)
    )
    flow.source(rh.log_source("packed", format="msgpack", schema=Quote, as_dict=False)).sink(
        rh.list_sink(out_struct)
    )
    flow.source(rh.log_source("packed", format="raw")).sink(rh.list_sink(out_raw))
    flow.run(bounded=True)
    assert out_dict == [{"symbol": "A", "price": 1.5}]
    assert out_struct == [Quote("A", 1.5)]
    assert out_raw == [msgspec.msgpack.encode({"symbol": "A", "price": 1.5})]


def test_log_sink_key_picks_the_partition(tmp_path) -> None:
    flow = rh.Flow("keys", data_dir=tmp_path)
    events = [{"k": k} for k in "abcabc"]
    flow.source(rh.iterable_source(events)).sink(rh.log_sink("keyed", key="k", partitions=3))
    flow.run()
    log = Log(tmp_path)
    r = log.reader("keyed")
    by_part: dict = {}
    for b in r.poll():
        for key in b.keys():  # noqa: SIM118 - a RecordBatch method
            by_part.setdefault(key, set()).add(b.partition)
    r.close()
    log.close()
    assert set(by_part) == {b"a", b"b", b"c"} and all(len(p) == 1 for p in by_part.values())


def test_offsets_are_committed_only_when_every_read_event_is_accounted_for(tmp_path) -> None:
    """Without checkpoints the consumer group is the flow's progress (tests/faults covers
    the checkpointed case, where the checkpoint is)."""
    write(tmp_path, "nums", [{"n": i} for i in range(5)])

    def run(**kw) -> list:
        got: list = []
        flow = rh.Flow("c", data_dir=tmp_path, checkpoint_interval=None)
        flow.source(rh.log_source("nums", group="g")).sink(rh.list_sink(got))
        flow.run(**kw)
        return [e["n"] for e in got]

    assert run(stop_after=2) == [0, 1]  # stopped mid-batch: nothing committed
    assert run(timeout=0.2) == [0, 1, 2, 3, 4]  # stopped without drain: nothing committed
    assert run(timeout=0.2, drain=True) == [0, 1, 2, 3, 4]  # drained: committed
    assert run(bounded=True) == []


def test_watermark_is_the_minimum_over_partitions(tmp_path) -> None:
    log = Log(tmp_path)
    log.create_topic("multi", 2)
    with log.producer("multi") as p:
        p.append([msgspec.json.encode({"t": t}) for t in (1_000, 12_000, 25_000)], partition=0)
        p.append([msgspec.json.encode({"t": t}) for t in (2_000, 3_000, 30_000)], partition=1)
    log.close()
    results = []
    for kw in ({"bounded": True}, {"stop_after": 6, "drain": True}):
        out: list = []
        flow = rh.Flow("multi", data_dir=tmp_path)
        (
            flow.source(rh.log_source("multi"), timestamp="t", timestamp_unit="ms")
            .window(rh.tumbling("10s"))
            .aggregate(n=rh.count())
            .sink(rh.list_sink(out))
        )
        summary = flow.run(**kw)
        assert summary.late == 0  # partition 1 held the watermark back for 2000 and 3000
        results.append([(r["window_start"], r["n"]) for r in out])
    assert results[0] == results[1] == [(0, 3), (10_000, 1), (20_000, 1), (30_000, 1)]


def test_a_bounded_run_reads_times_first_and_reports_bad_records_as_streaming_does(
    tmp_path,
) -> None:
    """A bounded run reads each record's time alone first and decodes the event when it
    pushes it; a stretch of records that are not all objects with the time field is decoded
    whole, so bad records (malformed, not an object, no time, an unreadable time) are dead
    letters exactly as in a streaming run, and the results are the same."""
    good = [{"k": f"k{i % 3}", "ts": 1_000 * i, "v": i, "pad": "x" * 40} for i in range(30)]
    records = [msgspec.json.encode(e) for e in good]
    records[4] = b'{"k": "k1", "ts": 4000, "v": '  # malformed
    records[9] = b"[1, 2, 3]"  # not an object
    records[14] = b'{"k": "k2", "v": 14}'  # no time
    records[19] = b'{"k": "k1", "ts": "yesterday", "v": 19}'  # a time that cannot be read
    log = Log(tmp_path)
    log.create_topic("mixed", 2)
    with log.producer("mixed") as p:
        p.append(records[:15], partition=0)
        p.append(records[15:], partition=1)
    log.close()

    def run(name: str, **options) -> tuple[list, list]:
        out: list = []
        flow = rh.Flow(name, data_dir=tmp_path, checkpoint_interval=None)
        (
            flow.source(rh.log_source("mixed"), timestamp="ts", timestamp_unit="ms")
            .key_by("k")
            .window(rh.tumbling("10s"))
            .aggregate(n=rh.count(), total=rh.sum("v"))
            .sink(rh.list_sink(out))
        )
        summary = flow.run(**options)
        letters = sorted(
            (x.source_partition, x.source_offset, x.error_type, x.value)
            for x in summary.dead_letters
        )
        return sorted(out, key=lambda r: (r["key"], r["window_start"])), letters

    bounded = run("b", bounded=True)
    streaming = run("s", stop_after=26, timeout=60, drain=True)  # the good events
    assert bounded == streaming
    assert [(p, o) for p, o, _, _ in bounded[1]] == [(0, 4), (0, 9), (0, 14), (1, 4)]
    assert sum(r["n"] for r in bounded[0]) == 26
