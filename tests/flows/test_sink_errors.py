"""An output its sink refuses -- too large for the topic, no key field -- is a bad output: a
dead letter at the sink step naming the key (and the window, for a window's result) with the
start of the output, and the run goes on with the others; ``on_error="fail"`` stops instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from rheos.errors import RecordTooLargeError
from rheos.transport import Log

from ._rh import rh

EVENTS = [{"k": k, "t": t, "n": n} for k, t, n in [("a", 0, 1), ("b", 10, 400), ("a", 20, 2)]]


def padded(e: dict[str, Any]) -> dict[str, Any]:
    return {**e, "pad": "x" * e["n"]}


def outputs(data_dir: Path, topic: str) -> list[tuple[Any, Any]]:
    records = Log(data_dir).reader(topic, start="beginning").read()
    return [(r.key, msgspec.json.decode(r.value)) for r in records]


def flow_into(data_dir: Path, topic: str, **options: Any) -> Any:
    Log(data_dir).create_topic(topic, 1, max_record_bytes=300, exist_ok=True)
    return rh.Flow("refused", data_dir=str(data_dir), checkpoint_interval=None, **options)


@pytest.mark.parametrize("bounded", [False, True])
def test_an_output_too_large_for_its_topic_is_dead_lettered(tmp_path: Path, bounded: bool) -> None:
    flow = flow_into(tmp_path, "out")
    (
        flow.source(rh.iterable_source(EVENTS), timestamp="t", timestamp_unit="ms")
        .map(padded)
        .sink(rh.log_sink("out", key="k"))
    )
    summary = flow.run(bounded=bounded)
    assert [(k, v["n"]) for k, v in outputs(tmp_path, "out")] == [(b"a", 1), (b"a", 2)]
    [letter] = summary.dead_letters
    assert (letter.step, letter.error_type, letter.key) == ("sink", "RecordTooLargeError", "null")
    assert "log_sink 'out': the output record is" in letter.message
    assert "over the topic's max_record_bytes of 300" in letter.message
    value = msgspec.json.decode(letter.value)
    assert value["output"].startswith("{'k': 'b', 't': 10, 'n': 400, 'pad': 'xxx")
    assert len(value["output"]) < 1_100
    assert summary.events_out == 2


def test_a_window_result_too_large_names_key_and_window(tmp_path: Path) -> None:
    flow = flow_into(tmp_path, "totals")
    (
        flow.source(rh.iterable_source(EVENTS), timestamp="t", timestamp_unit="ms")
        .key_by("k")
        .window(rh.tumbling("1s"))
        .aggregate(pads=rh.collect("n"))
        .map(lambda w: {**w, "pad": "x" * sum(w["pads"])})
        .sink(rh.log_sink("totals"))
    )
    summary = flow.run(bounded=True)
    assert [v["key"] for _, v in outputs(tmp_path, "totals")] == ["a"]
    [letter] = summary.dead_letters
    assert (letter.step, letter.key, letter.window_start, letter.window_end) == (
        "sink",
        '"b"',
        0,
        1_000,
    )
    assert not letter.replayable


def test_an_output_without_its_key_field_leaves_the_others_keyed(tmp_path: Path) -> None:
    flow = flow_into(tmp_path, "keyed")
    (
        flow.source(rh.iterable_source(EVENTS), timestamp="t", timestamp_unit="ms")
        .map(lambda e: e if e["n"] != 400 else {"n": 400})
        .sink(rh.log_sink("keyed", key="k"))
    )
    summary = flow.run(bounded=True)
    assert outputs(tmp_path, "keyed") == [
        (b"a", EVENTS[0]),
        (b"a", EVENTS[2]),
    ]
    [letter] = summary.dead_letters
    assert (letter.step, letter.error_type) == ("sink", "EventError")
    assert "the event has no key field 'k'" in letter.message


def test_fail_policy_stops_at_the_refused_output(tmp_path: Path) -> None:
    flow = flow_into(tmp_path, "out", on_error="fail")
    (
        flow.source(rh.iterable_source(EVENTS), timestamp="t", timestamp_unit="ms")
        .map(padded)
        .sink(rh.log_sink("out"))
    )
    with pytest.raises(RecordTooLargeError, match="log_sink 'out': the output record is"):
        flow.run(bounded=True)
