"""Bad events of every kind go to ``<flow>.dlq`` with their metadata; replay fixes them once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

import rheos as rh
from rheos.runtime.deadletters import DeadLetter, read_dead_letters


class Event(msgspec.Struct):
    k: str
    v: int
    ts: int | None = None


GOOD = [{"k": f"k{i % 4}", "v": i, "ts": 1_000 * i} for i in range(40)]
BAD = {
    b"{not json": ("source", "EventError"),
    b"\x00\xff\xfe garbage": ("source", "EventError"),
    b'{"k": 1, "v": "x", "ts": 5}': ("source", "EventError"),  # wrong types for the schema
    b'{"k": "k1", "v": 3}': ("source", "EventError"),  # no timestamp
    b'{"k": "k1", "v": 3, "ts": "soon"}': ("source", "EventError"),  # unparsable timestamp
    b'{"k": "k2", "v": 5, "ts": 7, "pad": "' + b"x" * 300 + b'"}': (
        "source",
        "RecordTooLargeError",
    ),
}
BOOM = [{"k": "boom", "v": 100 + i, "ts": 50_000 + i} for i in range(3)]


def write_input(data_dir: Path) -> int:
    log = rh.Log(data_dir)
    log.create_topic("in", 1)
    values = [msgspec.json.encode(e) for e in GOOD[:20]]
    values += list(BAD) + [msgspec.json.encode(e) for e in BOOM]
    values += [msgspec.json.encode(e) for e in GOOD[20:]]
    with log.producer("in") as p:
        p.append(values)
    return len(values)


def build(data_dir: Path, *, fixed: bool, **options: Any) -> rh.Flow:
    def double(event: dict) -> dict:
        if event["k"] == "boom" and not fixed:
            raise ValueError(f"cannot double {event['k']}")
        return {**event, "v": 2 * event["v"]}

    flow = rh.Flow("bad", data_dir=data_dir, checkpoint_interval="50ms", **options)
    (
        flow.source(
            rh.log_source("in", schema=Event, max_record_bytes=200),
            timestamp="ts",
            timestamp_unit="ms",
        )
        .map(double, name="double")
        .filter(lambda e: e["v"] % 3 != 0, name="not3")
        .sink(rh.log_sink("out"))
    )
    return flow


def outputs(data_dir: Path) -> list[dict]:
    return [msgspec.json.decode(r.value) for r in rh.Log(data_dir).reader("out").read()]


@pytest.mark.parametrize("mode", ["streaming", "bounded"])
def test_every_kind_of_bad_event_is_dead_lettered_and_the_counts_add_up(
    tmp_path: Path, mode: str
) -> None:
    total = write_input(tmp_path)
    flow = build(tmp_path, fixed=False)
    if mode == "bounded":
        summary = flow.run(bounded=True)
    else:
        summary = flow.run(stop_after=len(GOOD) + len(BOOM))
    assert summary.stopped in ("exhausted", "stop_after")
    letters = list(read_dead_letters(rh.Log(tmp_path), "bad"))
    assert len(letters) == len(BAD) + len(BOOM)
    by_value = {letter.value: letter for letter in letters}
    for raw, (step, kind) in BAD.items():
        letter = by_value[raw]  # the original bytes, as they were
        assert (letter.step, letter.error_type, letter.source) == (step, kind, "source")
        assert (letter.source_topic, letter.source_partition) == ("in", 0)
        assert letter.source_offset is not None and letter.time_ms > 0 and letter.message
    for event in BOOM:
        letter = by_value[msgspec.json.encode(event)]
        assert (letter.step, letter.error_type) == ("double", "UserFunctionError")
        assert "cannot double boom" in letter.message and "ValueError" in letter.traceback
        assert letter.event_time == event["ts"] and letter.value_format == "record"
    assert summary.dead_lettered == {
        ("source", "EventError"): 5,
        ("source", "RecordTooLargeError"): 1,
        ("double", "UserFunctionError"): 3,
    }
    filtered = sum(1 for e in GOOD if (2 * e["v"]) % 3 == 0)
    assert summary.events_in + len(BAD) == total  # undecodable records are not events
    assert summary.events_in == summary.events_out + len(BOOM) + summary.late + filtered
    assert len(outputs(tmp_path)) == summary.events_out


def test_a_dead_letter_sink_receives_every_dead_letter_too(tmp_path: Path) -> None:
    """``dead_letter_sink``: a copy of each letter, as a dict, written with the checkpoints
    (here a log sink; tests/kafka/test_exactly_once.py puts one in Kafka under kill -9)."""
    write_input(tmp_path)
    copy = rh.log_sink("bad-letters")
    summary = build(tmp_path, fixed=False, dead_letter_sink=copy).run(
        stop_after=len(GOOD) + len(BOOM)
    )
    letters = list(read_dead_letters(rh.Log(tmp_path), "bad"))
    with rh.Log(tmp_path).reader("bad-letters") as reader:
        copies = [msgspec.json.decode(r.value) for r in reader.read()]
    assert len(copies) == len(letters) == summary.dead == len(BAD) + len(BOOM)
    assert [(c["step"], c["error_type"], c["source_offset"]) for c in copies] == [
        (x.step, x.error_type, x.source_offset) for x in letters
    ]
    texts = {c["value"] for c in copies if "value" in c}
    assert {msgspec.json.encode(e).decode() for e in BOOM} <= texts
    assert any(c.get("value_hex") == b"\x00\xff\xfe garbage".hex() for c in copies)
    with pytest.raises(rh.FlowDefinitionError, match="dead_letter_sink must be a sink"):
        rh.Flow("wrong", dead_letter_sink="bad.dlq")


def test_replay_of_fixed_code_yields_the_missing_results_once(tmp_path: Path) -> None:
    write_input(tmp_path)
    build(tmp_path, fixed=False).run(stop_after=len(GOOD) + len(BOOM))
    before = outputs(tmp_path)
    summary = build(tmp_path, fixed=True).replay_dead_letters()
    assert summary.dead_letters_replayed == len(BAD) + len(BOOM)
    added = outputs(tmp_path)[len(before) :]
    assert sorted(e["v"] for e in added) == sorted(
        2 * e["v"] for e in BOOM if (2 * e["v"]) % 3 != 0
    )
    # the still-bad ones were dead-lettered again, after the replayed range
    assert summary.dead_lettered == {
        ("source", "EventError"): 5,
        ("source", "RecordTooLargeError"): 1,
    }
    again = build(tmp_path, fixed=True).replay_dead_letters()  # only the re-dead-lettered
    assert again.dead_letters_replayed == len(BAD)
    assert outputs(tmp_path)[len(before) :] == added  # nothing doubled


def test_skip_and_fail_policies(tmp_path: Path) -> None:
    write_input(tmp_path)
    flow = rh.Flow("skip", data_dir=tmp_path, on_error="skip")
    flow.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms").sink(rh.list_sink([]))
    summary = flow.run(bounded=True)
    assert summary.skipped_count == 4 and summary.dead == 0  # bad JSON, garbage, 2 bad ts
    assert not rh.Log(tmp_path).has_topic("skip.dlq")
    strict = rh.Flow("strict", data_dir=tmp_path)
    strict.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms").on_error("fail").sink(
        rh.list_sink([])
    )
    with pytest.raises(rh.EventError, match="offset 20"):
        strict.run(bounded=True)


def test_without_a_data_directory_dead_letters_stay_in_the_summary() -> None:
    flow = rh.Flow("mem")
    flow.source(rh.iterable_source([1, 0, 2])).map(lambda x: 1 // x).sink(rh.list_sink([]))
    summary = flow.run()
    (letter,) = summary.dead_letters
    assert isinstance(letter, DeadLetter) and letter.value == b"0" and letter.step == "map"
