"""User code that fails while a window closes or a timer fires goes to the step's ``on_error``
policy, like an error on an event: a dead letter naming the flow, the step, the key and the
window or timer (it has no source event); the run goes on with the other keys and windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from rheos.operations.cli import main
from rheos.runtime.deadletters import DeadLetter, read_dead_letters
from rheos.transport import Log

from ._rh import rh
from .helpers import ev


class FailsOnThree:
    """A sum whose ``result`` refuses the total 3."""

    def init(self) -> int:
        return 0

    def add(self, acc: int, value: int) -> int:
        return acc + value

    def merge(self, a: int, b: int) -> int:
        return a + b

    def result(self, acc: int) -> int:
        if acc == 3:
            raise ValueError("three is not allowed")
        return acc


class QuietAlert:
    """Emits a key's count once it is quiet for 1 s; key ``"b"`` fails in ``on_timer``."""

    def process(self, ctx: Any, event: Any) -> None:
        ctx.state = (ctx.state or 0) + 1
        ctx.register_timer(ctx.timestamp + 1_000)

    def on_timer(self, ctx: Any, timestamp: int) -> None:
        if ctx.key == "b":
            raise KeyError("no alerts for b")
        ctx.emit({"key": ctx.key, "n": ctx.state, "at": timestamp})


class Counting:
    """Emits each key's count of events when it is quiet for 1 s."""

    def process(self, ctx: Any, event: Any) -> None:
        ctx.state = (ctx.state or 0) + 1
        ctx.register_timer(ctx.timestamp + 1_000)

    def on_timer(self, ctx: Any, timestamp: int) -> None:
        ctx.emit({"key": ctx.key, "n": ctx.state})


EVENTS = [ev("a", 100, 1), ev("b", 200, 3), ev("a", 1_500, 2), ev("b", 1_600, 1), ev("c", 3_000, 3)]


def source(flow: Any, events: list[dict[str, Any]]) -> Any:
    return flow.source(rh.iterable_source(events), timestamp="t", timestamp_unit="ms")


def window_flow(name: str = "win", **options: Any) -> tuple[Any, list[Any]]:
    flow = rh.Flow(name, **options)
    out: list[Any] = []
    (
        source(flow, EVENTS)
        .key_by("k")
        .window(rh.tumbling("1s"))
        .aggregate(total=rh.aggregate_with(FailsOnThree(), "v"))
        .sink(rh.list_sink(out))
    )
    return flow, out


def letter_facts(letters: list[DeadLetter]) -> list[tuple[Any, ...]]:
    return [
        (x.flow, x.source, x.step, x.error_type, x.key, x.window_start, x.window_end, x.timer)
        for x in letters
    ]


def test_a_failing_result_at_window_close_is_dead_lettered_and_the_run_goes_on() -> None:
    flow, out = window_flow()
    summary = flow.run()
    assert [(r["key"], r["window_start"], r["total"]) for r in out] == [
        ("a", 0, 1),
        ("a", 1_000, 2),
        ("b", 1_000, 1),
    ]
    assert summary.dead_lettered == {("window", "UserFunctionError"): 2}
    letters = summary.dead_letters
    assert letter_facts(letters) == [
        ("win", "", "window", "UserFunctionError", '"b"', 0, 1_000, None),
        ("win", "", "window", "UserFunctionError", '"c"', 3_000, 4_000, None),
    ]
    first = letters[0]
    assert "flow 'win'" in first.message and "key 'b', window [0, 1000)" in first.message
    assert "FailsOnThree.result" in first.message and "three is not allowed" in first.message
    assert "ValueError" in first.traceback
    assert first.event_time == 999 and not first.replayable
    assert msgspec.json.decode(first.value) == {"key": "b", "window_start": 0, "window_end": 1_000}


def test_failing_result_of_a_session_window() -> None:
    flow = rh.Flow("sess")
    out: list[Any] = []
    (
        source(flow, EVENTS)
        .key_by("k")
        .window(rh.session("2s"))
        .aggregate(total=rh.aggregate_with(FailsOnThree(), "v"))
        .sink(rh.list_sink(out))
    )
    summary = flow.run()
    assert [(r["key"], r["total"]) for r in out] == [("b", 4)]
    assert [(x.key, x.window_start, x.window_end) for x in summary.dead_letters] == [
        ('"a"', 100, 3_500),
        ('"c"', 3_000, 5_000),
    ]


def test_a_failing_timer_is_dead_lettered_and_other_keys_go_on() -> None:
    flow = rh.Flow("alerts")
    out: list[Any] = []
    source(flow, EVENTS).key_by("k").process(QuietAlert, name="quiet").sink(rh.list_sink(out))
    summary = flow.run()
    assert out == [
        {"key": "a", "n": 1, "at": 1_100},
        {"key": "a", "n": 2, "at": 2_500},
        {"key": "c", "n": 1, "at": 4_000},
    ]
    assert letter_facts(summary.dead_letters) == [
        ("alerts", "", "quiet", "UserFunctionError", '"b"', None, None, 1_200),
        ("alerts", "", "quiet", "UserFunctionError", '"b"', None, None, 2_600),
    ]
    letter = summary.dead_letters[0]
    assert "key 'b', timer 1200" in letter.message and "QuietAlert.on_timer" in letter.message
    assert letter.event_time == 1_200
    assert msgspec.json.decode(letter.value) == {"key": "b", "timer": 1_200}


def test_a_failing_combine_of_a_window_join() -> None:
    def combine(left: Any, right: Any) -> Any:
        if left["k"] == "b":
            raise ZeroDivisionError("b cannot pair")
        return (left["k"], left["v"], right["v"])

    flow = rh.Flow("pairs")
    out: list[Any] = []
    left = source(flow, EVENTS[:3]).key_by("k")
    right = source(flow, [ev("a", 300, 10), ev("b", 400, 20)]).key_by("k")
    left.join(right, window=rh.tumbling("1s"), combine=combine).sink(rh.list_sink(out))
    summary = flow.run()
    assert out == [("a", 1, 10)]
    assert [(x.step, x.key, x.window_start, x.window_end) for x in summary.dead_letters] == [
        ("join", '"b"', 0, 1_000)
    ]


def ratio(w: dict[str, Any]) -> dict[str, Any]:
    return {**w, "per_event": 10 / (w["total"] - 3)}  # fails on the total 3


@pytest.mark.parametrize("bounded", [False, True])
def test_a_step_failing_on_a_window_result_dead_letters_that_result(bounded: bool) -> None:
    """A map after a window raising on one result: a dead letter at the map naming the key,
    the window and the result; the other results go on (an error after a stateful step has
    no source event to blame)."""
    flow = rh.Flow("after")
    out: list[Any] = []
    (
        source(flow, EVENTS)
        .key_by("k")
        .window(rh.tumbling("1s"))
        .aggregate(total=rh.sum("v"))
        .map(ratio, name="ratio")
        .sink(rh.list_sink(out))
    )
    summary = flow.run(bounded=bounded)
    assert [(r["key"], r["window_start"]) for r in out] == [("a", 0), ("a", 1_000), ("b", 1_000)]
    assert letter_facts(summary.dead_letters) == [
        ("after", "", "ratio", "UserFunctionError", '"b"', 0, 1_000, None),
        ("after", "", "ratio", "UserFunctionError", '"c"', 3_000, 4_000, None),
    ]
    letter = summary.dead_letters[0]
    assert "ZeroDivisionError" in letter.message and letter.event_time == 999
    value = msgspec.json.decode(letter.value)
    assert value["output"] == repr({"key": "b", "window_start": 0, "window_end": 1_000, "total": 3})
    assert summary.dead_lettered == {("ratio", "UserFunctionError"): 2}


def test_a_step_failing_on_a_timer_output_dead_letters_that_output() -> None:
    flow = rh.Flow("timers")
    out: list[Any] = []
    (
        source(flow, EVENTS[:2] + EVENTS[3:])
        .key_by("k")
        .process(Counting, name="counting")
        .map(lambda e: e if e["n"] != 2 else e["missing"], name="pick")
        .sink(rh.list_sink(out))
    )
    summary = flow.run()
    assert [(e["key"], e["n"]) for e in out] == [("a", 1), ("b", 1), ("c", 1)]
    assert [(x.step, x.key, x.event_time) for x in summary.dead_letters] == [("pick", '"b"', 2_600)]


def test_fail_policy_on_the_later_step_stops_the_run() -> None:
    flow = rh.Flow("strict-after")
    (
        source(flow, EVENTS)
        .key_by("k")
        .window(rh.tumbling("1s"))
        .aggregate(total=rh.sum("v"))
        .map(ratio, name="ratio")
        .on_error("fail")
        .sink(rh.list_sink([]))
    )
    with pytest.raises(rh.UserFunctionError, match="ZeroDivisionError"):
        flow.run()


def test_skip_policy_counts_the_failure() -> None:
    flow = rh.Flow("skipping")
    out: list[Any] = []
    source(flow, EVENTS).key_by("k").process(QuietAlert, name="quiet").on_error("skip").sink(
        rh.list_sink(out)
    )
    summary = flow.run()
    assert len(out) == 3
    assert summary.skipped == {("quiet", "UserFunctionError"): 2}
    assert summary.dead_letters == []


def test_fail_policy_stops_the_run_naming_flow_step_and_key() -> None:
    flow, _ = window_flow("strict", on_error="fail")
    with pytest.raises(rh.UserFunctionError) as info:
        flow.run()
    message = str(info.value)
    assert "flow 'strict'" in message and "'window' (window)" in message
    assert "key 'b', window [0, 1000)" in message
    assert isinstance(info.value.__cause__, ValueError)

    flow = rh.Flow("strict_timers", on_error="fail")
    source(flow, EVENTS).key_by("k").process(QuietAlert, name="quiet").sink(rh.list_sink([]))
    with pytest.raises(rh.UserFunctionError, match=r"'quiet' \(process\): key 'b', timer 1200"):
        flow.run()


def test_bounded_runs_dead_letter_the_same() -> None:
    flow, out = window_flow()
    summary = flow.run(bounded=True)
    assert len(out) == 3
    assert [(x.key, x.window_start) for x in summary.dead_letters] == [('"b"', 0), ('"c"', 3_000)]


APP = """
import rheos as rh

class Alert:
    def process(self, ctx, event):
        ctx.register_timer(ctx.timestamp + 1_000)

    def on_timer(self, ctx, timestamp):
        if ctx.key == "b":
            raise KeyError("no alerts for b")
        ctx.emit({"key": ctx.key, "at": timestamp})

flow = rh.Flow("app", checkpoint_interval="20ms")
(flow.source(rh.log_source("in"), timestamp="t", timestamp_unit="ms")
    .key_by("k")
    .process(Alert, name="alert")
    .sink(rh.log_sink("out")))
"""


def test_dead_letters_without_a_source_event_in_the_log_cli_and_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RHEOS_DATA_DIR", str(tmp_path))
    log = Log(tmp_path)
    with log.producer("in", create_partitions=1) as p:
        p.append([msgspec.json.encode(e) for e in EVENTS])
    app = tmp_path / "app.py"
    app.write_text(APP)
    from rheos.operations.run_command import find_flow, load_module

    flow = find_flow(load_module(str(app)), None, str(app))
    flow.run(stop_after=len(EVENTS), drain=True)
    letters = list(read_dead_letters(Log(tmp_path), "app"))
    assert letter_facts(letters) == [
        ("app", "", "alert", "UserFunctionError", '"b"', None, None, 1_200),
        ("app", "", "alert", "UserFunctionError", '"b"', None, None, 2_600),
    ]
    capsys.readouterr()
    assert main(["dlq", "app"]) == 0
    listing = capsys.readouterr().out
    assert "alert" in listing and "UserFunctionError" in listing
    assert main(["dlq", "app", "--show"]) == 0
    shown = capsys.readouterr().out
    assert '"timer": 1200' in shown and "KeyError" in shown
    # nothing to send back through the flow: replay passes over them and writes nothing
    summary = flow.replay_dead_letters()
    assert summary.dead_lettered == {}
    outputs = [msgspec.json.decode(r.value) for r in Log(tmp_path).reader("out").read()]
    assert outputs == [
        {"key": "a", "at": 1_100},
        {"key": "a", "at": 2_500},
        {"key": "c", "at": 4_000},
    ]


@pytest.mark.parametrize("mode", ["stream-first", "micro-batch"])
def test_a_step_failing_on_a_late_record_dead_letters_it_and_the_run_goes_on(mode: str) -> None:
    """A map over the late output raising on one late record: its source event is a dead
    letter at the map (replayable like any other), the other late record and every window
    result go on."""
    flow = rh.Flow("late_fails")
    out: list[Any] = []
    late: list[Any] = []
    events = [ev("a", 100_000, 1), ev("a", 200_000, 2), ev("a", 1_000, 3), ev("a", 2_000, 4)]
    windows = source(flow, events).key_by("k").window(rh.tumbling("1m")).aggregate(n=rh.count())
    windows.sink(rh.list_sink(out))

    def picky(record: dict[str, Any]) -> dict[str, Any]:
        if record["event"]["v"] == 3:
            raise ValueError("no late 3")
        return record

    windows.late().map(picky, name="picky").sink(rh.list_sink(late))
    summary = flow.run(mode=mode)  # type: ignore[arg-type]
    assert [(r["window_start"], r["n"]) for r in out] == [(60_000, 1), (180_000, 1)]
    assert [r["event"]["v"] for r in late] == [4]
    assert [(x.source, x.step, x.error_type, x.event_time) for x in summary.dead_letters] == [
        ("source", "picky", "UserFunctionError", 1_000)
    ]
    assert msgspec.json.decode(summary.dead_letters[0].value) == ev("a", 1_000, 3)
