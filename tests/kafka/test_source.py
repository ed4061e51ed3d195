"""kafka_source against a real broker: reading, event time, bad records, bounded runs, modes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.kafka.helpers import new_topic, produce
from tests.waiting import wait_until

import rheos as rh
from rheos.connectors.base import OpenContext
from rheos.errors import BrokerUnreachableError, KafkaTopicNotFoundError
from rheos.flows.steps import SourceStep
from rheos.runtime.microbatch.kafka import ColumnarKafkaReader
from rheos.runtime.projection import fields_read
from rheos.transport import Log

MODES = ["stream-first", "micro-batch"]
T0 = 1_700_000_000_000


def events(n: int, keys: int = 3) -> list[dict[str, Any]]:
    return [{"i": i, "key": f"k{i % keys}", "ts": T0 + i * 1000, "v": i} for i in range(n)]


@pytest.mark.parametrize("mode", MODES)
def test_a_bounded_run_reads_every_record_to_the_ends_seen_at_its_start(
    kafka: str, tmp_path: Path, mode: Any
) -> None:
    topic = new_topic(kafka, partitions=3)
    sent = events(300)
    for p in range(3):
        produce(kafka, topic, sent[p::3], partition=p)
    out: list[dict[str, Any]] = []
    flow = rh.Flow("bounded", data_dir=tmp_path)
    flow.source(rh.kafka_source(topic, bootstrap_servers=kafka), timestamp="ts").sink(
        rh.list_sink(out)
    )
    summary = flow.run(bounded=True, mode=mode)
    assert summary.events_in == 300
    assert sorted(e["i"] for e in out) == list(range(300))


@pytest.mark.parametrize("mode", MODES)
def test_windows_close_by_event_time_with_an_idle_partition(
    kafka: str, tmp_path: Path, mode: Any
) -> None:
    """Partition 1 stays silent: after the idle timeout it no longer holds the watermark
    back, and the windows of partition 0 close in a streaming run."""
    topic = new_topic(kafka, partitions=2)
    produce(kafka, topic, events(60, keys=2), partition=0)
    out: list[dict[str, Any]] = []
    flow = rh.Flow("idle", data_dir=tmp_path, checkpoint_interval=None)
    (
        flow.source(
            rh.kafka_source(topic, bootstrap_servers=kafka),
            timestamp="ts",
            idle_timeout="300ms",
        )
        .key_by("key")
        .window(rh.tumbling("10s"))
        .aggregate(n=rh.count(), total=rh.sum("v"))
        .sink(rh.list_sink(out))
    )
    flow.run(timeout=4, mode=mode)
    closed = {(w["key"], w["window_start"] - T0): w["n"] for w in out}
    expected = {(f"k{k}", s * 10_000): 5 for k in range(2) for s in range(5)}
    assert closed.items() >= expected.items()


def test_record_timestamps_are_event_times_without_a_timestamp_field(
    kafka: str, tmp_path: Path
) -> None:
    topic = new_topic(kafka)
    produce(kafka, topic, [{"v": 1}, {"v": 2}], timestamps=[T0, T0 + 61_000])
    out: list[dict[str, Any]] = []
    flow = rh.Flow("stamps", data_dir=tmp_path)
    (
        flow.source(rh.kafka_source(topic, bootstrap_servers=kafka))
        .window(rh.tumbling("1m"))
        .aggregate(n=rh.count())
        .sink(rh.list_sink(out))
    )
    flow.run(bounded=True)
    assert [(w["window_start"] - T0 // 60_000 * 60_000, w["n"]) for w in out] == [
        (0, 1),
        (60_000, 1),
    ]


def test_undecodable_records_go_to_the_dead_letter_topic(kafka: str, tmp_path: Path) -> None:
    topic = new_topic(kafka)
    produce(kafka, topic, [{"v": 1}, b"{not json", {"v": 3}, b"\xff"])
    out: list[dict[str, Any]] = []
    flow = rh.Flow("bad", data_dir=tmp_path)
    flow.source(rh.kafka_source(topic, bootstrap_servers=kafka)).sink(rh.list_sink(out))
    summary = flow.run(bounded=True)
    assert out == [{"v": 1}, {"v": 3}]
    assert summary.dead == 2
    letters = summary.dead_letters
    where = [(d.source_topic, d.source_partition, d.source_offset) for d in letters]
    assert where == [(topic, 0, 1), (topic, 0, 3)]
    assert letters[0].value == b"{not json"


def test_start_end_committed_and_time(kafka: str, tmp_path: Path) -> None:
    topic = new_topic(kafka)
    produce(kafka, topic, [{"i": i} for i in range(5)], timestamps=[T0 + i for i in range(5)])

    def read(name: str, **kwargs: Any) -> list[int]:
        out: list[dict[str, Any]] = []
        flow = rh.Flow(name, data_dir=tmp_path / name, checkpoint_interval="50ms")
        flow.source(rh.kafka_source(topic, bootstrap_servers=kafka, **kwargs)).sink(
            rh.list_sink(out)
        )
        flow.run(timeout=1.5)
        return [e["i"] for e in out]

    assert read("from-time", start=T0 + 3) == [3, 4]
    assert read("from-end", start="end") == []
    assert read("group-1", group="g1") == [0, 1, 2, 3, 4]
    produce(kafka, topic, [{"i": 5}])
    assert read("group-2", group="g1") == [5]  # another flow, the group's committed offsets


def test_a_streaming_run_resumes_from_its_checkpoint(kafka: str, tmp_path: Path) -> None:
    topic = new_topic(kafka, partitions=2)
    produce(kafka, topic, events(10), partition=0)
    out: list[dict[str, Any]] = []

    def run() -> None:
        flow = rh.Flow("resume", data_dir=tmp_path, checkpoint_interval="50ms")
        flow.source(rh.kafka_source(topic, bootstrap_servers=kafka)).sink(rh.list_sink(out))
        flow.run(timeout=1.5)

    run()
    produce(kafka, topic, events(20)[10:], partition=1)
    run()
    assert sorted(e["i"] for e in out) == list(range(20))


def test_an_unreachable_broker_is_a_clear_error_in_time(tmp_path: Path) -> None:
    flow = rh.Flow("nobroker", data_dir=tmp_path)
    source = rh.kafka_source("x", bootstrap_servers="127.0.0.1:1", connect_timeout="1s")
    flow.source(source).sink(rh.list_sink([]))
    with pytest.raises(BrokerUnreachableError, match=r"127\.0\.0\.1:1 within 1 s"):
        flow.run(bounded=True)


def test_a_missing_topic_is_a_clear_error(kafka: str, tmp_path: Path) -> None:
    flow = rh.Flow("notopic", data_dir=tmp_path)
    flow.source(rh.kafka_source("no-such-topic", bootstrap_servers=kafka)).sink(rh.list_sink([]))
    with pytest.raises(KafkaTopicNotFoundError, match="no topic 'no-such-topic'"):
        flow.run(bounded=True)


def test_live_metrics_show_the_lag_of_each_kafka_partition(kafka: str, tmp_path: Path) -> None:
    topic = new_topic(kafka, partitions=2)
    flow = rh.Flow("kafka-live", data_dir=tmp_path, checkpoint_interval="100ms")
    flow.source(rh.kafka_source(topic, bootstrap_servers=kafka)).sink(rh.list_sink([]))
    thread = threading.Thread(target=flow.run)
    thread.start()
    try:
        for p in range(2):
            produce(kafka, topic, events(100), partition=p)
        wait_until(lambda: flow.metrics()["events_in"] == 200, "200 events in", limit=30)
        wait_until(lambda: flow.metrics()["checkpoints"]["count"] > 0, "a checkpoint", limit=30)
        [source] = flow.metrics()["sources"]
        assert source["topic"] == topic
        assert source["partitions"] == [
            {"partition": p, "position": 100, "end": 100, "lag": 0} for p in range(2)
        ]
    finally:
        flow.stop()
        thread.join(30)


def test_both_modes_agree_on_a_large_topic_with_bad_records(kafka: str, tmp_path: Path) -> None:
    """Micro-batch mode decodes each poll's JSON values together (columnar); a record that
    does not decode and an event a step fails on are dead-lettered as in stream-first mode."""
    topic = new_topic(kafka, partitions=2)
    sent: list[Any] = events(12_000, keys=7)
    sent[5_000] = b'{"i": oops'
    for p in range(2):
        produce(kafka, topic, sent[p::2], partition=p)

    def check(event: dict[str, Any]) -> dict[str, Any]:
        if event["i"] == 7_777:
            raise ValueError("seven sevens")
        return event

    results = {}
    for mode in MODES:
        out: list[dict[str, Any]] = []
        flow = rh.Flow(f"agree-{mode}", data_dir=tmp_path / mode)
        (
            flow.source(rh.kafka_source(topic, bootstrap_servers=kafka), timestamp="ts")
            .map(check)
            .key_by("key")
            .window(rh.tumbling("1m"))
            .aggregate(n=rh.count(), total=rh.sum("v"))
            .sink(rh.list_sink(out))
        )
        summary = flow.run(bounded=True, mode=mode)
        letters = sorted((d.source_offset, d.value) for d in summary.dead_letters)
        results[mode] = (sorted(out, key=lambda w: (w["window_start"], w["key"])), letters)
    assert results["micro-batch"] == results["stream-first"]
    windows, letters = results["stream-first"]
    assert sum(w["n"] for w in windows) == 12_000 - 2
    assert letters == [(2_500, b'{"i": oops'), (3_888, msgspec.json.encode(sent[7_777]))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tag", [20, 200])
def test_a_flow_reading_some_fields_decodes_only_those_and_writes_late_events_whole(
    kafka: str, tmp_path: Path, mode: Any, tag: int
) -> None:
    """A flow that reads three fields of wide events (one nested) decodes only those
    (``project`` on the reader; micro-batch: in bulk, polls of 2,500 records, by Arrow's
    JSON reader or, records of 160 bytes or more, by msgspec): the windows equal those of
    the same flow over whole events (a Python filter), and its late event and dead letter
    are written whole."""
    topic = new_topic(kafka)
    sent: list[Any] = [
        {"ts": T0 + i * 100, "key": f"k{i % 4}", "v": i, "tag": "x" * tag, "meta": {"i": [i]}}
        for i in range(6_000)
    ]
    late = {"ts": T0, "key": "k1", "v": -1, "tag": "late" * (tag // 4), "meta": None}
    sent.insert(4_000, late)  # (micro-batch: in the second poll, read in bulk)
    sent.append(b'{"ts": 1, "key": "k2", "v": oops}')  # (in the last one, read per record)
    produce(kafka, topic, sent)
    runs = {}
    for projected in (True, False):
        out: list[dict[str, Any]] = []
        data = tmp_path / str(projected)
        flow = rh.Flow("some-fields", data_dir=data)
        source = flow.source(
            rh.kafka_source(topic, bootstrap_servers=kafka),
            timestamp="ts",
            out_of_orderness="1s",
        )
        kept = source.filter(rh.col("v") >= -5 if projected else lambda e: e["v"] >= -5)
        windows = kept.key_by("key").window(rh.tumbling("10s"))
        windows.aggregate(n=rh.count(), total=rh.sum("v")).sink(rh.list_sink(out))
        graph = flow.graph()
        source_step = next(s for s in graph.steps if isinstance(s, SourceStep))
        assert (fields_read(graph, source_step) is not None) == projected
        size = 2_500 if mode == "micro-batch" else None
        summary = flow.run(stop_after=len(sent) - 1, drain=True, mode=mode, batch_size=size)
        letters = [d.value for d in summary.dead_letters]
        by_window = sorted(out, key=lambda w: (w["window_start"], w["key"]))
        runs[projected] = (by_window, read_log(data, "some-fields.late"), letters)
    assert runs[True] == runs[False]
    windows_out, late_out, letters = runs[True]
    assert sum(w["n"] for w in windows_out) == 6_000
    assert [e["event"] for e in late_out] == [late]  # whole
    assert letters == [b'{"ts": 1, "key": "k2", "v": oops}']


def read_log(data_dir: Path, topic: str) -> list[Any]:
    log = Log(data_dir)
    reader = log.reader(topic)
    try:
        return [msgspec.json.decode(v) for b in reader.poll(max_records=10_000) for v in b.values()]
    finally:
        reader.close()
        log.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", ["", "p" * 200])
def test_a_projected_reader_decodes_only_the_fields_asked(
    kafka: str, tmp_path: Path, mode: Any, pad: str
) -> None:
    topic = new_topic(kafka)
    sent = [{"ts": T0 + i, "v": i, "meta": {"i": [i], "pad": pad}} for i in range(3_000)]
    produce(kafka, topic, sent)
    source = rh.kafka_source(topic, bootstrap_servers=kafka)
    ctx = OpenContext("projected", str(tmp_path), bounded=True)
    reader: Any = (
        ColumnarKafkaReader(source, ctx, 10_000) if mode == "micro-batch" else source.open(ctx)
    )
    try:
        assert reader.project(frozenset({"v"}))
        rows: list[Any] = []
        frames = 0
        while not reader.exhausted:
            for part in reader.poll(1.0):
                if mode == "stream-first":
                    rows += part.values
                elif part.frame is not None:  # in bulk (a poll of 2,000 records or more)
                    rows += part.frame.to_dicts()
                    frames += 1
                else:
                    rows += part.get_rows()
        assert rows == [{"v": i} for i in range(3_000)]
        assert frames == (mode == "micro-batch")
        assert reader.decode(b'{"v": 1, "meta": {}}') == {"v": 1, "meta": {}}  # whole
    finally:
        reader.close()
