"""Bounded runs of flows no event order changes (rheos.runtime.bounded.order_free): the
streaming loop to the sources' ends, in arrival order, nothing held or sorted -- the results,
dead letters and counts of a streaming run of the same flow."""

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


def test_only_flows_of_stateless_steps_are_order_free(tmp_path: Path) -> None:
    assert order_free(stateless(tmp_path, []).graph())
    for stateful in ("key_by", "window", "aggregate"):
        flow = rh.Flow(f"with-{stateful}", data_dir=tmp_path, checkpoint_interval=None)
        events = flow.source(rh.log_source("in"), timestamp="ts")
        if stateful == "key_by":
            events.key_by("v").sink(rh.list_sink([]))
        elif stateful == "window":
            events.window(rh.tumbling("1s")).aggregate(n=rh.count()).sink(rh.list_sink([]))
        else:
            events.key_by("v").aggregate(n=rh.count()).sink(rh.list_sink([]))
        assert not order_free(flow.graph()), stateful


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
