"""The mode a bounded run takes when none is given: micro-batch when every step runs columnar
there (rheos.runtime.bounded_mode), with the results, dead letters and counts of a
stream-first run; stream-first otherwise, and whenever a mode is asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

import rheos as rh
import rheos.windowing as w
from rheos.runtime import MODE_ENV

EVENTS = [
    {"k": f"k{i % 5}", "v": (i * 37) % 101, "ts": 1_000 * i - (7_000 if i % 11 == 0 else 0)}
    for i in range(300)
]
BAD = [b"{not json", b'{"k": "k1", "v": 3}', b'{"k": "k1", "v": 3, "ts": "soon"}']


@pytest.fixture(autouse=True)
def no_mode_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODE_ENV, raising=False)


def write_input(data_dir: Path) -> None:
    log = rh.Log(data_dir)
    log.create_topic("in", 1)
    values = [msgspec.json.encode(e) for e in EVENTS]
    values[100:100] = BAD
    with log.producer("in") as p:
        p.append(values)


def columnar(data_dir: Path, name: str, out: list[Any]) -> rh.Flow:
    flow = rh.Flow(name, data_dir=data_dir, checkpoint_interval=None)
    (
        flow.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms")
        .filter(rh.col("v") > 10)
        .with_columns(w=rh.col("v") * 2)
        .key_by("k")
        .window(w.tumbling("10s"))
        .aggregate(n=w.count(), total=w.sum("w"), high=w.max("v"))
        .sink(rh.list_sink(out))
    )
    return flow


def test_a_columnar_flow_runs_bounded_in_micro_batch_with_the_same_answers(
    tmp_path: Path,
) -> None:
    write_input(tmp_path)
    auto: list[Any] = []
    chosen = columnar(tmp_path, "auto", auto).run(bounded=True, progress=False)
    asked: list[Any] = []
    stream = columnar(tmp_path, "asked", asked).run(
        bounded=True, progress=False, mode="stream-first"
    )
    assert (chosen.executor, stream.executor) == ("micro-batch", "stream-first")
    assert "(bounded, micro-batch, exhausted)" in str(chosen)
    assert auto == asked and len(auto) > 100
    assert (chosen.events_in, chosen.out_of_order, chosen.dead) == (
        stream.events_in,
        stream.out_of_order,
        stream.dead,
    )
    assert chosen.dead == len(BAD)


def test_a_python_function_keeps_a_bounded_run_stream_first(tmp_path: Path) -> None:
    write_input(tmp_path)
    out: list[Any] = []
    flow = rh.Flow("fn", data_dir=tmp_path, checkpoint_interval=None)
    (
        flow.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms")
        .map(lambda e: {**e, "w": e["v"] * 2})
        .key_by("k")
        .window(w.tumbling("10s"))
        .aggregate(n=w.count())
        .sink(rh.list_sink(out))
    )
    assert flow.run(bounded=True, progress=False).executor == "stream-first"
    assert out


def test_streaming_runs_and_asked_modes_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_input(tmp_path)
    out: list[Any] = []
    streaming = columnar(tmp_path, "streaming", out).run(stop_after=len(EVENTS), drain=True)
    assert streaming.executor == "stream-first"
    monkeypatch.setenv(MODE_ENV, "stream-first")
    assert columnar(tmp_path, "env", []).run(bounded=True, progress=False).executor == (
        "stream-first"
    )


def test_events_read_whole_with_nested_values_run_stream_first(tmp_path: Path) -> None:
    """A flow that reads whole events (here: its sink gets them), over records with a nested
    value, runs stream-first (micro-batch would decode them one by one); the same flow over
    flat records, or reading three fields of the nested records, runs micro-batch."""
    log = rh.Log(tmp_path)
    for topic, extra in [("flat", {"tag": "x"}), ("nested", {"tag": {"x": [1, None]}})]:
        log.create_topic(topic, 1)
        with log.producer(topic) as p:
            p.append([msgspec.json.encode({**e, **extra}) for e in EVENTS])
    log.close()

    def run(topic: str, *, whole: bool) -> str:
        out: list[Any] = []
        flow = rh.Flow(f"{topic}-{whole}", data_dir=tmp_path, checkpoint_interval=None)
        events = flow.source(rh.log_source(topic), timestamp="ts", timestamp_unit="ms")
        kept = events.filter(rh.col("v") > 10)
        if whole:
            kept.sink(rh.list_sink(out))
        else:
            kept.key_by("k").window(w.tumbling("10s")).aggregate(n=w.count()).sink(
                rh.list_sink(out)
            )
        summary = flow.run(bounded=True, progress=False)
        assert out and summary.events_in == len(EVENTS)
        return summary.executor

    assert run("flat", whole=True) == "micro-batch"
    assert run("nested", whole=True) == "stream-first"
    assert run("nested", whole=False) == "micro-batch"
