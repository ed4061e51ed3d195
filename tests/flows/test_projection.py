"""Sources decoded to the fields a flow reads (rheos.runtime.projection): the same results,
late events and dead letters whole."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from rheos.flows.steps import SourceStep
from rheos.runtime.projection import fields_read
from rheos.transport import Log

from ._rh import rh
from .test_log import read

# wide events: fields no step reads, one of them nested
QUOTES = [
    {"venue": "X", "symbol": "A", "ts": 1_000, "price": 10.0, "qty": 1, "meta": {"id": 1}},
    {"venue": "Y", "symbol": "B", "ts": 2_000, "price": 5.0, "qty": 2, "meta": {"id": 2}},
    {"venue": "X", "symbol": "A", "ts": 30_000, "price": 10.5, "qty": 3, "meta": {"id": 3}},
    {"venue": "X", "symbol": "A", "ts": 61_000, "price": 11.0, "qty": 1, "meta": {"id": 4}},
    # late: [0, 1m) closed at 61000
    {"venue": "Z", "symbol": "A", "ts": 20_000, "price": 99.0, "qty": 9, "meta": {"id": 5}},
    {"venue": "X", "symbol": "B", "ts": 62_000, "price": 0.0, "qty": 4, "meta": {"id": 6}},
]


def write(data_dir: Any, topic: str, records: list[bytes], partitions: int = 1) -> None:
    log = Log(data_dir)
    log.create_topic(topic, partitions, exist_ok=True)
    with log.producer(topic) as p:
        p.append(records, partition=0)
    log.close()


def quote_flow(
    data_dir: Any, *, projected: bool, extend: bool = False, topic: str = "quotes"
) -> rh.Flow:
    """A flow that reads four fields of ``topic`` (projected), or the same one with a Python
    filter, which sees whole events (not projected); ``extend``: with columns added and
    replaced."""
    flow = rh.Flow("quotes-by-symbol", data_dir=data_dir, checkpoint_interval=None)
    quotes = flow.source(
        rh.log_source(topic), timestamp="ts", timestamp_unit="ms", out_of_orderness="1s"
    )
    kept = quotes.filter(rh.col("price") > 0 if projected else lambda q: q["price"] > 0)
    if extend:
        kept = kept.with_columns(notional=rh.col("price") * rh.col("qty"), qty=rh.col("qty") * 10)
    (
        kept.key_by("symbol")
        .window(rh.tumbling("1m"))
        .aggregate(n=rh.count(), volume=rh.sum("qty"), close=rh.last("price"))
        .sink(rh.log_sink("bars", key="key"))
    )
    return flow


def source_fields(flow: rh.Flow) -> frozenset[str] | None:
    graph = flow.graph()
    (source,) = [s for s in graph.steps if isinstance(s, SourceStep)]
    return fields_read(graph, source)


def test_fields_read_are_those_of_filters_keys_and_aggregations(tmp_path: Any) -> None:
    assert source_fields(quote_flow(tmp_path, projected=True)) == {"ts", "price", "symbol", "qty"}
    assert source_fields(quote_flow(tmp_path, projected=False)) is None  # a Python filter

    def flow_with(build: Any) -> rh.Flow:
        flow = rh.Flow("f", data_dir=tmp_path)
        build(flow.source(rh.log_source("quotes"), timestamp="ts"))
        return flow

    windowed = lambda s: s.key_by("symbol").window(rh.tumbling("1m"))  # noqa: E731
    cases = {
        "whole events collected": lambda s: (
            windowed(s).aggregate(all=rh.collect()).sink(rh.list_sink([]))
        ),
        "events to a sink": lambda s: s.sink(rh.list_sink([])),
        "a map": lambda s: windowed(s.map(dict)).aggregate(n=rh.count()).sink(rh.list_sink([])),
        "late events to the user": lambda s: _late_to_sink(windowed(s)),
    }
    for what, build in cases.items():
        assert source_fields(flow_with(build)) is None, what
    by_expression = flow_with(
        lambda s: (
            s.key_by(rh.col("venue"))
            .window(rh.tumbling("1m"))
            .aggregate(v=rh.sum(rh.col("price") * rh.col("qty")))
            .sink(rh.list_sink([]))
        )
    )
    assert source_fields(by_expression) == {"ts", "venue", "price", "qty"}
    extended = quote_flow(tmp_path, projected=True, extend=True)
    assert source_fields(extended) == {"ts", "price", "symbol", "qty"}


def _late_to_sink(windowed: Any) -> None:
    windowed.aggregate(n=rh.count()).sink(rh.list_sink([]))
    windowed.late().sink(rh.list_sink([]))


@pytest.mark.parametrize("partitions, extend", [(1, False), (2, False), (1, True), (2, True)])
def test_projected_run_equals_whole_events_and_writes_late_events_whole(
    tmp_path: Any, partitions: int, extend: bool
) -> None:
    """Streaming, one partition (the generated loop) and two (the loop per partition): the
    bars, the late event written whole (with the fields no step reads, and with what
    ``with_columns`` added and replaced) and the dead letter (no quantity to sum, its record
    as written) equal those of whole events."""
    bad = {"venue": "X", "symbol": "A", "ts": 40_000, "price": 1.0, "meta": None}
    records = [msgspec.json.encode(q) for q in [*QUOTES[:3], bad, *QUOTES[3:]]]
    runs = {}
    for projected in (True, False):
        data = tmp_path / str(projected)
        write(data, "quotes", records)
        if partitions == 2:  # (the same records twice: late once, in the second one read)
            log = Log(data)
            log.create_topic("quotes-2", 2)
            with log.producer("quotes-2") as p:
                p.append(records, partition=0)
                p.append(records, partition=1)
            log.close()
        topic = "quotes" if partitions == 1 else "quotes-2"
        flow = quote_flow(data, projected=projected, extend=extend, topic=topic)
        summary = flow.run(stop_after=len(records) * partitions, drain=True)
        assert (summary.late, summary.dead) == (1, partitions)
        runs[projected] = (
            read(data, "bars"),
            read(data, "quotes-by-symbol.late"),
            read(data, "quotes-by-symbol.dlq"),  # (a letter's value: the record)
        )
    assert runs[True] == runs[False]
    bars, (late,), letters = runs[True]
    if extend:  # whole, the replaced field in its place, the new one last
        assert list(late["event"].items()) == [
            *{**QUOTES[4], "qty": 90}.items(),
            ("notional", 99.0 * 9),
        ]
        return
    assert late["event"] == QUOTES[4]  # whole
    assert letters == [bad] * partitions  # whole
    # (two partitions: the first one read is not late, its copy of the late event counts)
    assert sorted((b["key"], b["window_start"], b["n"], b["volume"]) for b in bars) == [
        ("A", 0, 2, 4) if partitions == 1 else ("A", 0, 5, 17),
        ("A", 60_000, partitions, partitions),
        ("B", 0, partitions, 2 * partitions),
    ]


def test_projected_bounded_runs_equal_whole_events(tmp_path: Any) -> None:
    """Bounded, stream-first: one projected source, then two in one flow (pushed merged);
    a record that is not an object is dead-lettered as before."""
    records = [msgspec.json.encode(q) for q in QUOTES] + [b"[1, 2]"]
    outputs = {}
    for projected in (True, False):
        data = tmp_path / str(projected)
        write(data, "quotes", records)
        flow = quote_flow(data, projected=projected)
        summary = flow.run(bounded=True, mode="stream-first")
        assert (summary.events_in, summary.dead) == (6, 1)
        two = rh.Flow("two", data_dir=data, checkpoint_interval=None)
        for n, sink in enumerate(["by-symbol", "by-venue"]):
            source = two.source(
                rh.log_source("quotes"), timestamp="ts", timestamp_unit="ms", name=f"s{n}"
            )
            (
                source.key_by("symbol" if n == 0 else "venue")
                .window(rh.tumbling("1m"))
                .aggregate(v=rh.sum(rh.col("price") * rh.col("qty")))
                .sink(rh.log_sink(sink))
            )
            if not projected:
                source.sink(rh.list_sink([]))  # whole events: nothing projected
        two.run(bounded=True, mode="stream-first")
        outputs[projected] = [read(data, t) for t in ("bars", "by-symbol", "by-venue")]
    assert outputs[True] == outputs[False]
    by_venue = {(r["key"], r["window_start"]): r["v"] for r in outputs[True][2]}
    assert by_venue == {("X", 0): 10.0 + 31.5, ("Y", 0): 10.0, ("Z", 0): 891.0, ("X", 60_000): 11.0}
