"""Error messages name the flow, the step and the user function; the log place of bad data.

These flows use ``on_error="fail"``: the error stops the run (the default dead-letters it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rheos.errors import NoDataDirWarning
from rheos.transport import Log

from ._rh import rh


def explode(x: int) -> int:
    return 1 // (x - 2)


LINE = explode.__code__.co_firstlineno


def test_user_function_error_names_flow_step_and_function() -> None:
    flow = rh.Flow("boom", on_error="fail")
    flow.source(rh.iterable_source([1, 2, 3])).map(lambda x: x).map(explode, name="divide").sink(
        rh.list_sink([])
    )
    with pytest.raises(rh.UserFunctionError) as info:
        flow.run()
    message = str(info.value)
    assert "flow 'boom'" in message
    assert "step #2 'divide' (map)" in message
    assert f"explode at {__file__}:{LINE}" in message
    assert "ZeroDivisionError" in message
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_errors_in_filters_keys_and_process_steps() -> None:
    for build, where in [
        (lambda s: s.filter(lambda x: x["nope"]), "(filter)"),
        (lambda s: s.key_by(lambda x: x["nope"]), "(key_by)"),
        (lambda s: s.key_by("k").process(lambda ctx, e: e["nope"]), "(process)"),
    ]:
        flow = rh.Flow("f", on_error="fail")
        build(flow.source(rh.iterable_source([{"k": 1}]))).sink(rh.list_sink([]))
        with pytest.raises(rh.UserFunctionError, match="KeyError") as info:
            flow.run()
        assert where in str(info.value) and "test_errors.py:" in str(info.value)


def test_missing_key_field_is_an_event_error_naming_the_step() -> None:
    flow = rh.Flow("keys", on_error="fail")
    flow.source(rh.iterable_source([{"a": 1}])).key_by("symbol").sink(rh.list_sink([]))
    with pytest.raises(rh.EventError, match=r"step #1 'key_by' \(key_by\).*no key field 'symbol'"):
        flow.run()


def test_aggregation_on_a_missing_field_names_the_window_step() -> None:
    flow = rh.Flow("agg", on_error="fail")
    (
        flow.source(rh.iterable_source([{"t": 1}]), timestamp="t", timestamp_unit="ms")
        .window(rh.tumbling("1s"))
        .aggregate(s=rh.sum("price"))
        .sink(rh.list_sink([]))
    )
    with pytest.raises(rh.EventError, match=r"flow 'agg', step #\d+ 'window'.*'price'"):
        flow.run()


def test_decoding_error_names_topic_partition_and_offset(tmp_path) -> None:
    log = Log(tmp_path)
    log.create_topic("quotes", 2)
    with log.producer("quotes") as p:
        p.append([b'{"price": 1}', b'{"price": 2}', b"{not json", b"{}"], partition=1)
    log.close()
    flow = rh.Flow("dec", data_dir=tmp_path, on_error="fail")
    flow.source(rh.log_source("quotes")).sink(rh.list_sink([]))
    with pytest.raises(rh.EventError) as info:
        flow.run(bounded=True)
    err = info.value
    assert (err.topic, err.partition, err.offset) == ("quotes", 1, 2)
    assert "topic 'quotes', partition 1, offset 2" in str(err)


def test_bad_timestamp_names_the_source_step_and_place(tmp_path) -> None:
    log = Log(tmp_path)
    with log.producer("ticks", create_partitions=1) as p:
        p.append([b'{"ts": 1000}', b'{"ts": "soon"}'])
    log.close()
    flow = rh.Flow("ts", data_dir=tmp_path, on_error="fail")
    flow.source(rh.log_source("ticks"), timestamp="ts").sink(rh.list_sink([]))
    with pytest.raises(rh.EventError) as info:
        flow.run(bounded=True)
    assert "flow 'ts', step #0 'source' (source)" in str(info.value)
    assert (info.value.topic, info.value.partition, info.value.offset) == ("ticks", 0, 1)


def test_a_data_directory_that_cannot_be_written_is_said_at_start(tmp_path: Path) -> None:
    """Nowhere to keep dead letters: the run warns, goes on, and keeps them in its summary."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    flow = rh.Flow("nowhere", data_dir=blocker / "data")
    out: list = []
    flow.source(rh.iterable_source([{"v": 1}, {"v": 0}])).map(lambda e: 1 / e["v"]).sink(
        rh.list_sink(out)
    )
    with pytest.warns(NoDataDirWarning, match=r"cannot use the data directory .*a-file/data"):
        summary = flow.run()
    assert out == [1.0]
    assert [letter.error_type for letter in summary.dead_letters] == ["UserFunctionError"]


@pytest.mark.parametrize(
    "windows",
    [rh.tumbling("10s"), rh.sliding("10s", every="5s"), rh.session("10s")],
    ids=["tumbling", "sliding", "session"],
)
def test_an_event_an_aggregation_cannot_add_changes_no_accumulator(windows: object) -> None:
    """A value the sum cannot add (a string) dead-letters the event and leaves every
    accumulator of its window as it was -- the count too, though it was added first -- and
    a key whose only event it was gets no window at all (a replay of the dead letter, once
    fixed, counts it once)."""
    events = [
        {"k": "a", "v": 1, "ts": 1_000},
        {"k": "a", "v": "lots", "ts": 2_000},  # bad for the sum, after an event of "a"
        {"k": "b", "v": "lots", "ts": 3_000},  # bad, and "b"'s only event
        {"k": "a", "v": 3, "ts": 4_000},
    ]
    out: list = []
    flow = rh.Flow("bad-values")
    (
        flow.source(rh.iterable_source(events), timestamp="ts", timestamp_unit="ms")
        .key_by("k")
        .window(windows)
        .aggregate(n=rh.count(), total=rh.sum("v"), avg=rh.mean("v"), top=rh.max("v"))
        .sink(rh.list_sink(out))
    )
    summary = flow.run()
    assert summary.dead == 2
    assert {row["key"] for row in out} == {"a"}
    for row in out:
        assert (row["n"], row["total"], row["avg"], row["top"]) == (2, 4, 2.0, 3)


def test_a_bad_event_neither_grows_nor_bridges_sessions() -> None:
    """Sessions with a 10 s gap: a bad event that would have grown a session (so that a later
    event joins it) or bridged two (merging them) is dead-lettered and changes neither."""
    events = [
        {"k": "grow", "v": 1, "ts": 1_000},
        {"k": "grow", "v": "lots", "ts": 9_000},  # would grow [1 s, 11 s) to 19 s
        {"k": "grow", "v": 2, "ts": 16_000},  # a session of its own
        {"k": "bridge", "v": 1, "ts": 1_000},
        {"k": "bridge", "v": 2, "ts": 15_000},
        {"k": "bridge", "v": "lots", "ts": 8_000},  # would bridge [1 s, 11 s) and [15 s, 25 s)
    ]
    out: list = []
    flow = rh.Flow("bad-bridges")
    (
        flow.source(
            rh.iterable_source(events), timestamp="ts", timestamp_unit="ms", out_of_orderness="8s"
        )
        .key_by("k")
        .window(rh.session("10s"))
        .aggregate(n=rh.count(), total=rh.sum("v"), seen=rh.collect("v"))
        .sink(rh.list_sink(out))
    )
    summary = flow.run()
    assert summary.dead == 2
    assert sorted((r["key"], r["window_start"], r["n"], r["total"], r["seen"]) for r in out) == [
        ("bridge", 1_000, 1, 1, [1]),
        ("bridge", 15_000, 1, 2, [2]),
        ("grow", 1_000, 1, 1, [1]),
        ("grow", 16_000, 1, 2, [2]),
    ]
