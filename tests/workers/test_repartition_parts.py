"""The parts of repartitioning: the exact encoding, the graph each task runs, and the two
ends of a repartition topic (events, watermark records, end markers, errors)."""

from __future__ import annotations

import datetime
import math
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rheos as rh
from rheos.connectors.base import OpenContext
from rheos.connectors.repartition_codec import UnencodableError, decode, encode
from rheos.connectors.repartition_topic import (
    WATERMARK_OF,
    RepartitionSink,
    RepartitionSource,
    repartition_topic,
)
from rheos.errors import ConfigError
from rheos.flows.steps import KeyByStep, SinkStep, SourceStep, WindowStep
from rheos.runtime.deadletters import read_dead_letters
from rheos.runtime.repartition import repartitioned
from rheos.runtime.runner import Runner
from rheos.windowing import MAX_WATERMARK, MIN_WATERMARK
from rheos.windowing.clock import ManualClock

# -- the encoding ---------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # also far beyond 64 bits
    | st.integers(min_value=2**63, max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary()
)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner), max_leaves=4)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(), inner, max_size=4)
        | st.dictionaries(hashables, inner, max_size=4)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (NaN equal to NaN, -0.0 not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(map(repr, a)) == list(map(repr, b)) and all(
            same(x, y) for x, y in zip(a.values(), b.values(), strict=True)
        )
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(values)
def test_values_come_back_exactly(value: Any) -> None:
    assert same(decode(encode(value)), value)


@pytest.mark.parametrize(
    "value",
    [datetime.datetime(2024, 1, 1), {"a": {1, 2}}, [object()], {"n": True.__class__.__mro__}],
)
def test_other_types_are_refused_not_changed(value: Any) -> None:
    with pytest.raises(UnencodableError, match="cannot cross a repartition topic"):
        encode(value)


# -- the graph --------------------------------------------------------------------------------


def keyed_flow() -> rh.Flow:
    flow = rh.Flow("g")
    (
        flow.source(rh.iterable_source([]), timestamp="ts")
        .key_by("k")
        .window(rh.tumbling("1s"))
        .aggregate(n=rh.count())
        .sink(rh.list_sink([]))
    )
    return flow


def test_one_task_runs_the_graph_as_it_is() -> None:
    graph = keyed_flow().graph()
    assert repartitioned(graph, 1) is graph


def test_a_key_by_reads_through_its_topic() -> None:
    graph = repartitioned(keyed_flow().graph(), 4)
    kinds = [type(step) for step in graph.steps]
    assert kinds[:4] == [SourceStep, SinkStep, SourceStep, KeyByStep]
    sink, source, key_by = graph.steps[1], graph.steps[2], graph.steps[3]
    assert isinstance(sink, SinkStep) and isinstance(sink.sink, RepartitionSink)
    assert sink.inputs == ((0, "out"),) and key_by.inputs == ((source.id, "out"),)
    assert sink.sink.topic == repartition_topic("g", "key_by") == "g.key_by.repartition"
    assert [s.id for s in graph.steps] == list(range(len(graph.steps)))


def test_a_global_window_gets_one_topic() -> None:
    flow = rh.Flow("g")
    flow.source(rh.iterable_source([]), timestamp="ts").window(rh.tumbling("1s")).aggregate(
        n=rh.count()
    ).sink(rh.list_sink([]))
    graph = repartitioned(flow.graph(), 2)
    topics = [s for s in graph.steps if isinstance(s, SinkStep) and s.name.endswith("-out")]
    assert len(topics) == 1
    window = next(s for s in graph.steps if isinstance(s, WindowStep))
    assert not window.keyed


def test_a_second_repartition_is_refused_by_name() -> None:
    flow = rh.Flow("g")
    (
        flow.source(rh.iterable_source([]), timestamp="ts")
        .key_by("a")
        .window(rh.tumbling("1s"))
        .aggregate(n=rh.count())
        .key_by("n", name="again")
        .reduce(lambda a, b: a)
        .sink(rh.list_sink([]))
    )
    with pytest.raises(ConfigError, match="flow 'g', step 'again'"):
        repartitioned(flow.graph(), 2)


# -- the two ends -----------------------------------------------------------------------------


def ends(data_dir: Path, task: int, tasks: int, clock: Any, wm: list[int], idle: int | None):
    ctx = OpenContext("f", str(data_dir), clock=clock, task=task, tasks=tasks)
    ctx.shared[WATERMARK_OF] = lambda names: wm[0]
    topic = repartition_topic("f", "key_by")
    sink = RepartitionSink(topic, tasks=tasks, step="key_by", key="k", upstream=("source",))
    source = RepartitionSource(topic, tasks=tasks, step="key_by", stage=1, idle_timeout_ms=idle)
    return ctx, sink.open(ctx), source.open(ctx)


def read(reader: Any) -> list[Any]:
    return [v for chunk in reader.poll(0.0) for v in chunk.values]


def test_events_go_to_the_task_of_their_key_with_watermarks(tmp_path: Path) -> None:
    clock = ManualClock(1_000)
    wm0, wm1 = [MIN_WATERMARK], [MIN_WATERMARK]
    ctx0, w0, r0 = ends(tmp_path, 0, 2, clock, wm0, None)
    ctx1, w1, r1 = ends(tmp_path, 1, 2, clock, wm1, None)
    events = [{"k": f"key{i}", "ts": i} for i in range(40)]
    for e in events:
        w0.write(e, e["ts"])
    wm0[0] = 30
    w0.flush()
    got0, got1 = read(r0), read(r1)
    assert sorted(got0 + got1, key=lambda e: e["ts"]) == events
    assert got0 and got1  # keys are spread over both tasks
    assert r1.watermark() == MIN_WATERMARK  # task 1 has not spoken yet
    wm1[0] = 12
    w1.flush()
    read(r0), read(r1)
    assert r0.watermark() == r1.watermark() == 12  # the lowest upstream task's
    wm0[0] = wm1[0] = MAX_WATERMARK  # end markers
    w0.flush()
    assert not read(r1) and not r1.exhausted
    w1.flush()
    read(r0), read(r1)
    assert r0.exhausted and r1.exhausted
    for end in (w0, w1, r0, r1, ctx0, ctx1):
        end.close()


def test_a_silent_upstream_task_stops_holding_back_after_the_idle_timeout(
    tmp_path: Path,
) -> None:
    clock = ManualClock(1_000)
    wm = [500]
    ctx0, w0, r0 = ends(tmp_path, 0, 2, clock, wm, 2_000)
    w0.flush()  # task 0 speaks; task 1 never runs
    read(r0)
    assert r0.watermark() == MIN_WATERMARK
    clock.advance(2_000)
    wm[0] = 600
    w0.flush()  # task 0 goes on; task 1 has been silent for the idle timeout
    read(r0)
    assert r0.watermark() == 600
    clock.advance(2_000)  # both silent: event time follows the clock, as for any source
    assert r0.watermark() == 2_600
    for end in (w0, r0, ctx0):
        end.close()


def test_uncommitted_records_are_not_read_and_are_rolled_back(tmp_path: Path) -> None:
    clock = ManualClock(1_000)
    wm = [MIN_WATERMARK]
    ctx, writer, reader = ends(tmp_path, 0, 1, clock, wm, None)
    ctx.transactional = True
    w = RepartitionSink(
        writer.sink.topic, tasks=1, step="key_by", key="k", upstream=("source",)
    ).open(ctx)
    w.write({"k": "a"}, 1)
    first = w.prepare(1)
    w.commit(1)
    w.write({"k": "b"}, 2)
    w.prepare(2)  # a crash before the checkpoint commits
    assert read(reader) == [{"k": "a"}]
    w.recover(1, first)
    w.write({"k": "c"}, 3)
    w.prepare(3)
    w.commit(3)
    assert read(reader) == [{"k": "c"}]
    for end in (w, writer, reader, ctx):
        end.close()


def test_a_topic_made_for_other_tasks_is_refused(tmp_path: Path) -> None:
    ctx, writer, reader = ends(tmp_path, 0, 2, ManualClock(), [0], None)
    for end in (writer, reader, ctx):
        end.close()
    with pytest.raises(ConfigError, match=r"'f.key_by.repartition' has 4 partitions"):
        ends(tmp_path, 0, 3, ManualClock(), [0], None)


def with_date(e: dict[str, Any]) -> dict[str, Any]:
    return {**e, "when": datetime.date(2024, 1, 1)} if e["k"] == "b" else e


def test_an_event_that_cannot_cross_is_a_dead_letter_naming_flow_and_step(
    tmp_path: Path,
) -> None:
    log = rh.Log(tmp_path)
    log.create_topic("in", 2)
    with log.producer("in") as producer:
        producer.append([b'{"k": "b", "ts": 1}', b'{"k": "c", "ts": 2}'], partition=0)
        producer.append([b'{"k": "a", "ts": 3}'], partition=1)
    out: list[Any] = []
    runners = []
    for task in (0, 1):
        flow = rh.Flow("dl")
        (
            flow.source(rh.log_source("in"), timestamp="ts")
            .map(with_date)
            .key_by("k")
            .window(rh.tumbling("1s"))
            .aggregate(n=rh.count())
            .sink(rh.list_sink(out))
        )
        graph = repartitioned(flow.graph(), 2)
        runner = Runner(graph, data_dir=str(tmp_path), metrics=False, task=task, tasks=2)
        runners.append(runner)
    thread = threading.Thread(target=runners[1].run, kwargs={"bounded": True})
    thread.start()
    summary = runners[0].run(bounded=True)
    thread.join(30)
    (letter,) = read_dead_letters(log, "dl")
    assert letter.step == "key_by.repartition-out"
    assert "flow 'dl', step 'key_by'" in letter.message
    assert "datetime.date" in letter.message
    assert sorted(r["key"] for r in out) == ["a", "c"]
    assert summary.dead_lettered == {("key_by.repartition-out", "EventError"): 1}
