"""Bounded runs of flows no event order changes (rheos.runtime.bounded.order_free): the
streaming loop to the sources' ends, in arrival order, nothing sorted, the watermark held at
its lowest until the end -- the results, dead letters and counts of a streaming run of the
same flow with no late event."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

import rheos as rh
from rheos.connectors.base import OpenContext
from rheos.runtime.bounded import backlog, order_free

# out of event-time order (a bounded run of a windowed flow would sort them), one bad record
EVENTS = [{"i": i, "ts": 1_000 * ((i * 7) % 50), "v": i % 9} for i in range(200)]
BAD = b'{"i": 999, "ts": 5, "v": "nine"}'


def write_input(data_dir: Path, partitions: int = 1) -> None:
    log = rh.Log(data_dir)
    log.create_topic("in", partitions)
    values = [msgspec.json.encode(e) for e in EVENTS]
    values[60:60] = [BAD]
    with log.producer("in") as p:
        for part in range(partitions):
            p.append(values[part::partitions], partition=part)
    log.close()


def stateless(data_dir: Path, out: list[Any]) -> rh.Flow:
    flow = rh.Flow("stateless", data_dir=data_dir, checkpoint_interval=None)
    events = flow.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms")
    (
        events.filter(rh.col("v") > 1)
        .with_columns(w=rh.col("v") * 10)
        .map(lambda e: {**e, "big": e["w"] >= 50})
        .sink(rh.list_sink(out))
    )
    return flow


@pytest.mark.parametrize("mode", ["stream-first", "micro-batch"])
@pytest.mark.parametrize("partitions", [1, 2])
def test_a_bounded_run_of_stateless_steps_equals_a_streaming_run(
    tmp_path: Path, mode: Any, partitions: int
) -> None:
    write_input(tmp_path, partitions)
    runs = {}
    for bounded in (True, False):
        out: list[Any] = []
        flow = stateless(tmp_path, out)
        if bounded:
            summary = flow.run(bounded=True, mode=mode)
        else:
            summary = flow.run(stop_after=len(EVENTS) + 1, drain=True, mode=mode)
        letters = [d.value for d in summary.dead_letters]
        runs[bounded] = (out, letters, summary.events_in, summary.events_out)
        assert summary.stopped == ("exhausted" if bounded else "stop_after")
    assert runs[True] == runs[False]
    out, letters, _, _ = runs[True]
    assert letters == [BAD]  # ("nine" > 1 fails: dead-lettered once)
    kept = [e for e in EVENTS if e["v"] > 1]
    if partitions == 1:  # arrival order, not event time
        assert [e["i"] for e in out] == [e["i"] for e in kept]
    assert sorted(e["i"] for e in out) == sorted(e["i"] for e in kept)
    assert all(e["w"] == e["v"] * 10 and e["big"] == (e["w"] >= 50) for e in out)


def test_stateless_steps_and_windows_that_add_in_any_order_are_order_free(
    tmp_path: Path,
) -> None:
    assert order_free(stateless(tmp_path, []).graph())
    free = {
        "key_by": lambda e: e.key_by("v").sink(rh.list_sink([])),
        "tumbling": lambda e: e.window(rh.tumbling("1s")).aggregate(n=rh.count()),
        "calendar": lambda e: e.key_by("v").window(rh.calendar("day")).aggregate(m=rh.max("v")),
        "tumbling, all": lambda e: (
            e.key_by("v")
            .window(rh.tumbling("1s"))
            .aggregate(
                s=rh.sum("v"),
                a=rh.mean("v"),
                f=rh.first("v"),
                la=rh.last("v"),
                d=rh.count_distinct("i"),
                lo=rh.min("v"),
                vs=rh.collect("v"),
            )
        ),
    }
    not_free = {
        "running aggregate": lambda e: e.key_by("v").aggregate(n=rh.count()),
        "sliding": lambda e: e.window(rh.sliding("2s", "1s")).aggregate(n=rh.count()),
        "session": lambda e: e.key_by("v").window(rh.session("1s")).aggregate(n=rh.count()),
        "own aggregation": lambda e: e.window(rh.tumbling("1s")).aggregate(
            n=rh.aggregate_with(Tally())
        ),
        "update rows": lambda e: e.window(rh.tumbling("1s"), emit="update").aggregate(n=rh.count()),
        "processing time": lambda e: e.window(rh.tumbling("1s"), time="processing").aggregate(
            n=rh.count()
        ),
        "window join": lambda e: e.key_by("v").join(e.key_by("i"), window=rh.tumbling("1s")),
        "sliding join": lambda e: e.key_by("v").join(e.key_by("i"), window=rh.sliding("2s", "1s")),
        "interval join": lambda e: e.key_by("v").interval_join(
            e.key_by("i"), lower="-1s", upper="1s"
        ),
    }
    for name, build in [*free.items(), *not_free.items()]:
        flow = rh.Flow(name.replace(" ", "-"), data_dir=tmp_path, checkpoint_interval=None)
        build(flow.source(rh.log_source("in"), timestamp="ts"))
        assert order_free(flow.graph()) == (name in free), name


class Tally:
    """An aggregation of the user's: rheos cannot tell whether its order matters."""

    def init(self) -> int:
        return 0

    def add(self, acc: int, value: Any) -> int:
        return acc + 1

    def merge(self, a: int, b: int) -> int:
        return a + b

    def result(self, acc: int) -> int:
        return acc


def windowed(data_dir: Path, out: list[Any], window: Any, seen: list[Any]) -> rh.Flow:
    flow = rh.Flow("windowed", data_dir=data_dir, checkpoint_interval=None)
    (
        flow.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms", out_of_orderness=0)
        .inspect(lambda e: seen.append(e["i"]))
        .key_by(lambda e: e["v"] % 3)
        .window(window)
        .aggregate(
            n=rh.count(),
            total=rh.sum("v"),
            first=rh.first("ts"),
            last=rh.last("ts"),
            top=rh.max("v"),
            times=rh.collect("ts"),
        )
        .sink(rh.list_sink(out))
    )
    return flow


@pytest.mark.parametrize("window", ["tumbling", "calendar"])
@pytest.mark.parametrize("partitions", [1, 2])
def test_a_bounded_run_of_order_free_windows_holds_the_watermark_and_loses_no_event(
    tmp_path: Path, window: str, partitions: int
) -> None:
    """Events far out of order (a streaming run with no allowed disorder drops most as late):
    the bounded run, in arrival order with the watermark held, puts every good event in its
    windows -- the rows of the definition, the same in both modes, in window order -- and
    dead-letters the bad one."""
    write_input(tmp_path, partitions)
    spec = rh.tumbling("5s") if window == "tumbling" else rh.calendar("day")
    runs = {}
    for mode in ("stream-first", "micro-batch"):
        out: list[Any] = []
        seen: list[Any] = []
        summary = windowed(tmp_path, out, spec, seen).run(bounded=True, mode=mode)
        if partitions == 1:  # arrival order, not event time
            assert seen == [*[e["i"] for e in EVENTS[:60]], 999, *[e["i"] for e in EVENTS[60:]]]
        assert summary.late == 0 and summary.events_in == len(EVENTS) + 1
        assert [d.value for d in summary.dead_letters] == [BAD]
        assert summary.sources["source"].out_of_order > 50  # (counted all the same)
        runs[mode] = out
    assert runs["stream-first"] == runs["micro-batch"]
    late: list[Any] = []
    streaming = windowed(tmp_path, late, spec, []).run(stop_after=len(EVENTS) + 1, drain=True)
    if window == "tumbling":  # (every event falls in the first day)
        assert streaming.late > 50  # what the held watermark spares
    expected = []
    for key in range(3):
        mine = sorted((e for e in EVENTS if e["v"] % 3 == key), key=lambda e: (e["ts"], e["i"]))
        size = 5_000 if window == "tumbling" else 86_400_000
        groups: dict[int, list[Any]] = {}
        for e in mine:
            groups.setdefault(e["ts"] // size, []).append(e)
        for at, g in groups.items():
            times = [e["ts"] for e in g]
            row = (key, at * size, (at + 1) * size, len(g), sum(e["v"] for e in g))
            top = max(e["v"] for e in g)
            expected.append((*row, min(times), max(times), top, sorted(times)))
    out = runs["stream-first"]
    got = [
        tuple(
            r[f]
            for f in (
                "key",
                "window_start",
                "window_end",
                "n",
                "total",
                "first",
                "last",
                "top",
                "times",
            )
        )
        for r in out
    ]
    assert sorted(got) == sorted(expected)
    assert [r["window_end"] for r in out] == sorted(r["window_end"] for r in out)


def test_the_backlog_of_bounded_readers_is_what_they_will_read(tmp_path: Path) -> None:
    write_input(tmp_path, 2)
    reader = rh.log_source("in").open(OpenContext("f", str(tmp_path), bounded=True))
    try:
        assert backlog([reader]) == len(EVENTS) + 1
        assert backlog([object()]) == 0  # (a reader that cannot tell)
    finally:
        reader.close()


def test_session_windows_of_a_bounded_run_close_coarsely_with_the_same_rows_in_order(
    tmp_path: Path,
) -> None:
    """A bounded stream-first run calls a session window at most once per gap of event time
    (``WindowNode.coarse_ms``): the rows, and their order, are those of the micro-batch run
    (which calls it at every rise) and those of the definition of sessions."""
    rnd = random.Random(5)
    events, ts = [], 0
    for i in range(3_000):
        ts += rnd.choice([37, 101, 450, 1_300, 2_900])  # some gaps longer than 1 s
        events.append({"k": f"k{i % 23}", "v": i, "ts": ts + rnd.randint(-1_500, 0)})
    log = rh.Log(tmp_path)
    log.create_topic("in", 1)
    with log.producer("in") as p:
        p.append([msgspec.json.encode(e) for e in events])
    log.close()
    runs = {}
    for mode in ("stream-first", "micro-batch"):
        out: list[Any] = []
        flow = rh.Flow("sessions", data_dir=tmp_path, checkpoint_interval=None)
        (
            flow.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms")
            .key_by("k")
            .window(rh.session("1s"))
            .aggregate(n=rh.count(), vs=rh.collect("v"))
            .sink(rh.list_sink(out))
        )
        flow.run(bounded=True, mode=mode)
        runs[mode] = out
    assert runs["stream-first"] == runs["micro-batch"]
    expected = []  # the definition: per key, events in time order, split at gaps of 1 s
    for key in sorted({e["k"] for e in events}):
        mine = sorted((e for e in events if e["k"] == key), key=lambda e: e["ts"])
        group = [mine[0]]
        for e in mine[1:]:
            if e["ts"] - group[-1]["ts"] >= 1_000:
                expected.append((key, group[0]["ts"], group[-1]["ts"] + 1_000, len(group)))
                group = []
            group.append(e)
        expected.append((key, group[0]["ts"], group[-1]["ts"] + 1_000, len(group)))
    got = [(r["key"], r["window_start"], r["window_end"], r["n"]) for r in runs["stream-first"]]
    assert sorted(got) == sorted(expected)
    assert [r["window_end"] for r in runs["stream-first"]] == sorted(e[2] for e in expected)
