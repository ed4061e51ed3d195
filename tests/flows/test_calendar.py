"""Calendar windows and period-over-period changes in flows (each test runs in both modes)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

import rheos as rh
from rheos.errors import FlowDefinitionError, UserFunctionError

NY = ZoneInfo("America/New_York")
HOUR = 3_600_000


def ny(*args: int) -> int:
    """Epoch ms of a New York wall-clock time."""
    return int(datetime(*args, tzinfo=NY).timestamp() * 1000)  # type: ignore[misc]


def run_days(events: list[dict[str, Any]], **window: Any) -> tuple[list[Any], list[Any]]:
    out: list[Any] = []
    late: list[Any] = []
    flow = rh.Flow("days")
    result = (
        flow.source(rh.iterable_source(events), timestamp="t", timestamp_unit="ms")
        .key_by("k")
        .window(rh.calendar("day", tz="America/New_York"), **window)
        .aggregate(n=rh.count(), total=rh.sum("x"))
    )
    result.sink(rh.list_sink(out))
    result.late().sink(rh.list_sink(late))
    flow.run()
    return out, late


def test_local_days_across_the_dst_change_with_lateness_and_late_output() -> None:
    events = [
        {"k": "a", "t": ny(2013, 3, 9, 23, 59), "x": 1},
        {"k": "a", "t": ny(2013, 3, 10, 0, 0), "x": 2},  # the 23-hour day
        {"k": "a", "t": ny(2013, 3, 10, 23, 30), "x": 4},
        {"k": "a", "t": ny(2013, 3, 11, 0, 30), "x": 8},
        {"k": "a", "t": ny(2013, 3, 10, 22, 0), "x": 16},  # within the hour of lateness
        {"k": "a", "t": ny(2013, 3, 11, 2, 0), "x": 32},  # closes 03-10 (end + 1 h)
        {"k": "a", "t": ny(2013, 3, 10, 21, 0), "x": 64},  # late
    ]
    out, late = run_days(events, allowed_lateness="1h")
    assert [(r["period"], r["n"], r["total"]) for r in out] == [
        ("2013-03-09", 1, 1),
        ("2013-03-10", 3, 22),
        ("2013-03-11", 2, 40),
    ]
    day = out[1]
    assert (day["window_start"], day["window_end"]) == (ny(2013, 3, 10), ny(2013, 3, 11))
    assert day["window_end"] - day["window_start"] == 23 * HOUR
    assert [(r["timestamp"], r["windows"]) for r in late] == [
        (ny(2013, 3, 10, 21), [[ny(2013, 3, 10), ny(2013, 3, 11)]])
    ]


def test_a_window_join_in_calendar_months() -> None:
    left = [
        {"k": "a", "t": ny(2013, 1, 31, 23), "v": "jan"},
        {"k": "a", "t": ny(2013, 2, 1), "v": "feb"},
    ]
    right = [{"k": "a", "t": ny(2013, 2, 28, 23, 59), "w": "feb"}]
    out: list[Any] = []
    flow = rh.Flow("join")
    lhs = flow.source(rh.iterable_source(left), timestamp="t", timestamp_unit="ms").key_by("k")
    rhs = flow.source(rh.iterable_source(right), timestamp="t", timestamp_unit="ms").key_by("k")
    month = rh.calendar("month", tz="America/New_York")
    lhs.join(rhs, window=month).sink(rh.list_sink(out))
    flow.run()
    assert [(r["left"]["v"], r["right"]["w"], r["window_start"]) for r in out] == [
        ("feb", "feb", ny(2013, 2, 1))
    ]


def monthly(events: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    flow = rh.Flow("mom")
    (
        flow.source(rh.iterable_source(events), timestamp="t", timestamp_unit="ms")
        .key_by("k")
        .window(rh.calendar("month", tz="America/New_York"))
        .aggregate(n=rh.count(), total=rh.sum("x"))
        .over_previous(*fields)
        .sink(rh.list_sink(out))
    )
    flow.run()
    return out


def test_over_previous_compares_each_period_with_the_one_before() -> None:
    events = [
        {"k": "a", "t": ny(2013, 1, 5), "x": 10},
        {"k": "b", "t": ny(2013, 1, 6), "x": 0},
        {"k": "a", "t": ny(2013, 2, 5), "x": 5},
        {"k": "a", "t": ny(2013, 2, 6), "x": 10},
        {"k": "b", "t": ny(2013, 2, 6), "x": 3},  # after a total of 0: no change
        {"k": "b", "t": ny(2013, 3, 31, 23, 59), "x": 6},
        {"k": "a", "t": ny(2013, 4, 1), "x": 7},  # no March for a: no previous value
    ]
    rows = monthly(events, "n", "total")
    got = [
        (r["key"], r["period"], r["n"], r["n_previous"], r["n_change"], r["total_previous"],
         r["total_change"])
        for r in rows
    ]  # fmt: skip
    assert got == [
        ("a", "2013-01", 1, None, None, None, None),
        ("b", "2013-01", 1, None, None, None, None),
        ("a", "2013-02", 2, 1, 1.0, 10, 0.5),
        ("b", "2013-02", 1, 1, 0.0, 0, None),
        ("b", "2013-03", 1, 1, 0.0, 3, 1.0),
        ("a", "2013-04", 1, None, None, None, None),
    ]
    assert list(rows[2]) == [
        "key", "window_start", "window_end", "period", "n", "total",
        "n_previous", "n_change", "total_previous", "total_change",
    ]  # fmt: skip


def test_over_previous_on_tumbling_windows_and_a_global_window() -> None:
    out: list[dict[str, Any]] = []
    flow = rh.Flow("tumbling")
    events = [{"t": t, "x": x} for t, x in [(0, 2), (1_000, 3), (2_500, 4), (4_000, 1)]]
    (
        flow.source(rh.iterable_source(events), timestamp="t", timestamp_unit="ms")
        .window(rh.tumbling("1s"))
        .aggregate(total=rh.sum("x"))
        .over_previous("total")
        .sink(rh.list_sink(out))
    )
    flow.run()
    assert [(r["window_start"], r["total_previous"], r["total_change"]) for r in out] == [
        (0, None, None),
        (1_000, 2, 0.5),
        (2_000, 3, pytest.approx(4 / 3 - 1)),
        (4_000, None, None),  # [3 s, 4 s) had no events
    ]


def test_over_previous_is_checked_when_the_flow_is_built() -> None:
    flow = rh.Flow("bad")
    keyed = flow.source(rh.iterable_source([])).key_by("k")
    with pytest.raises(FlowDefinitionError, match=r"flow 'bad', step #2 'window'.*'mean'"):
        keyed.window(rh.calendar("day")).aggregate(n=rh.count()).over_previous("mean")
    with pytest.raises(FlowDefinitionError, match="tumbling or calendar windows"):
        keyed.window(rh.sliding("2s", "1s")).aggregate(n=rh.count()).over_previous("n")
    with pytest.raises(FlowDefinitionError, match="emit='final'"):
        keyed.window(rh.tumbling("1s"), emit="update").aggregate(n=rh.count()).over_previous("n")
    with pytest.raises(FlowDefinitionError, match="needs the names"):
        keyed.window(rh.tumbling("1s")).aggregate(n=rh.count()).over_previous()
    with pytest.raises(FlowDefinitionError, match="overwritten"):
        keyed.window(rh.tumbling("1s")).aggregate(n=rh.count(), n_change=rh.count()).over_previous(
            "n"
        )


def test_a_value_that_is_not_a_number_names_the_step() -> None:
    flow = rh.Flow("words", on_error="fail")
    events = [{"t": 0, "w": "x"}, {"t": 1_000, "w": "y"}]
    (
        flow.source(rh.iterable_source(events), timestamp="t", timestamp_unit="ms")
        .window(rh.tumbling("1s"))
        .aggregate(word=rh.first("w"))
        .over_previous("word")
        .sink(rh.list_sink([]))
    )
    with pytest.raises(UserFunctionError, match=r"flow 'words'.*'over_previous'.*not a number"):
        flow.run()


def test_over_previous_resumes_from_a_checkpoint(tmp_path: Path) -> None:
    """Stopped and restarted in the middle of the year, the flow gives the rows of one run:
    the first month after the restart still knows the month before it."""
    months = [ny(2013, m, d) for m in range(1, 7) for d in (3, 17)]
    log = rh.Log(tmp_path)
    log.create_topic("in", 1)
    with log.producer("in") as producer:
        producer.append(
            [msgspec.json.encode({"k": "a", "t": t, "x": i}) for i, t in enumerate(months)]
        )

    def build(out: list[Any]) -> rh.Flow:
        flow = rh.Flow("mom", data_dir=tmp_path, checkpoint_interval=None)
        (
            flow.source(rh.log_source("in"), timestamp="t", timestamp_unit="ms")
            .key_by("k")
            .window(rh.calendar("month", tz="America/New_York"))
            .aggregate(total=rh.sum("x"))
            .over_previous("total")
            .sink(rh.list_sink(out))
        )
        flow.checkpoint_interval_ms = 10_000_000  # a checkpoint only where a run stops
        return flow

    first: list[Any] = []
    build(first).run(stop_after=7)
    second: list[Any] = []
    build(second).run(stop_after=len(months) - 7, drain=True)
    assert [r["period"] for r in first] == ["2013-01", "2013-02", "2013-03"]
    rows = first + second
    assert [(r["period"], r["total"], r["total_previous"]) for r in rows] == [
        (f"2013-{m:02d}", 4 * m - 3, None if m == 1 else 4 * m - 7) for m in range(1, 7)
    ]
