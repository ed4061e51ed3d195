"""Calendar windows: periods of a time zone, checked against datetime arithmetic done
independently here (local date -> its period's first day -> that day's first instant)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rheos.errors import ConfigError, EventError
from rheos.windowing import MAX_WATERMARK, WindowOperator, calendar, count, sum
from rheos.windowing.calendars import UNITS, WEEKDAYS

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Paris",
    "Australia/Sydney",  # DST in the southern summer
    "Asia/Kolkata",  # +05:30, no DST
    "America/Santiago",  # DST changes at local midnight: some days start at 01:00
    "Pacific/Apia",  # skipped 2011-12-30 entirely
]
HOUR = 3_600_000


def ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def first_instant(day: date, zone: ZoneInfo) -> int:
    """The first instant of local day ``day``: midnight, or the end of a gap that skips it."""
    t = ms(datetime(day.year, day.month, day.day, tzinfo=zone))
    while datetime.fromtimestamp(t / 1000, zone).date() < day:  # midnight fell in a gap
        t += 60_000
    return t


def expected_period(ts: int, unit: str, tz: str, week_start: str = "monday") -> tuple[int, int]:
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(ts // 1000, zone).date()
    if unit == "day":
        first, nxt = local, local + timedelta(days=1)
    elif unit == "week":
        first = local - timedelta(days=(local.weekday() - WEEKDAYS.index(week_start)) % 7)
        nxt = first + timedelta(days=7)
    elif unit == "month":
        first = local.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
    elif unit == "quarter":
        first = local.replace(month=3 * ((local.month - 1) // 3) + 1, day=1)
        nxt = (first + timedelta(days=95)).replace(day=1)
    else:
        first, nxt = date(local.year, 1, 1), date(local.year + 1, 1, 1)
    start, end = first_instant(first, zone), first_instant(nxt, zone)
    while end <= ts:  # a skipped local day (Apia): the period after it
        nxt += timedelta(days=1)
        end = first_instant(nxt, zone)
    return start, end


def test_a_local_day_lasts_23_or_25_hours_at_dst_changes() -> None:
    ny = calendar("day", tz="America/New_York")
    spring = ms(datetime(2013, 3, 10, 12, tzinfo=UTC))
    autumn = ms(datetime(2013, 11, 3, 12, tzinfo=UTC))
    for ts, hours, label in [(spring, 23, "2013-03-10"), (autumn, 25, "2013-11-03")]:
        start, end = ny.window_of(ts)
        assert (end - start) // HOUR == hours
        assert ny.label(start) == label
        local = datetime.fromtimestamp(start / 1000, ZoneInfo("America/New_York"))
        assert (local.hour, local.minute) == (0, 0)
    paris = calendar("day", tz="Europe/Paris")
    start, end = paris.window_of(ms(datetime(2013, 3, 31, 12, tzinfo=UTC)))
    assert (end - start) // HOUR == 23


def test_labels_of_every_unit() -> None:
    ts = ms(datetime(2013, 3, 10, 7, tzinfo=UTC))  # 03:00 in New York, 08:00 in Paris
    labels = {u: calendar(u, tz="America/New_York") for u in UNITS}
    got = {u: spec.label(spec.window_start(ts)) for u, spec in labels.items()}
    assert got == {
        "day": "2013-03-10",
        "week": "2013-W10",
        "month": "2013-03",
        "quarter": "2013-Q1",
        "year": "2013",
    }


@pytest.mark.parametrize(
    ("day", "label"),
    [
        (date(2013, 12, 30), "2014-W01"),  # ISO week-years differ from calendar years
        (date(2010, 1, 3), "2009-W53"),
        (date(2013, 3, 4), "2013-W10"),
        (date(2013, 3, 10), "2013-W10"),
    ],
)
def test_weeks_from_monday_are_iso_weeks(day: date, label: str) -> None:
    week = calendar("week")
    start, end = week.window_of(ms(datetime(day.year, day.month, day.day, 12, tzinfo=UTC)))
    assert week.label(start) == label
    assert datetime.fromtimestamp(start / 1000, UTC).date().weekday() == 0
    assert end - start == 7 * 24 * HOUR


def test_weeks_from_sunday() -> None:
    week = calendar("week", week_start="sunday", tz="America/New_York")
    start, end = week.window_of(ms(datetime(2013, 3, 12, tzinfo=UTC)))
    local = datetime.fromtimestamp(start / 1000, ZoneInfo("America/New_York"))
    assert local.date() == date(2013, 3, 10) and local.hour == 0
    assert (end - start) // HOUR == 7 * 24 - 1  # DST began at 02:00 that Sunday
    assert week.label(start) == "2013-W11"  # the ISO week of its middle day, Wednesday
    assert repr(week) == "calendar('week', tz='America/New_York', week_start='sunday')"


@settings(max_examples=300, deadline=None)
@given(
    ts=st.integers(ms(datetime(1900, 1, 1, tzinfo=UTC)), ms(datetime(2100, 1, 1, tzinfo=UTC))),
    unit=st.sampled_from(UNITS),
    tz=st.sampled_from(ZONES),
    week_start=st.sampled_from(WEEKDAYS),
)
def test_the_period_of_a_time_is_its_local_calendar_period(
    ts: int, unit: str, tz: str, week_start: str
) -> None:
    spec = calendar(unit, tz=tz, week_start=week_start)
    start, end = spec.window_of(ts)
    assert start <= ts < end
    assert (start, end) == expected_period(ts, unit, tz, week_start)
    assert spec.windows_of(ts) == ((start, end),)
    assert spec.window_end(start) == end
    assert spec.next_boundary(ts) == end


@settings(max_examples=100, deadline=None)
@given(
    times=st.lists(
        st.integers(ms(datetime(1950, 1, 1, tzinfo=UTC)), ms(datetime(2050, 1, 1, tzinfo=UTC))),
        max_size=50,
    ),
    unit=st.sampled_from(UNITS),
    tz=st.sampled_from(ZONES),
)
def test_the_vectorised_lookup_equals_the_one_for_one_event(
    times: list[int], unit: str, tz: str
) -> None:
    spec = calendar(unit, tz=tz)
    starts, ends = spec.windows_of_array(np.asarray(times, dtype=np.int64))
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == [
        calendar(unit, tz=tz).window_of(t)
        for t in times  # a fresh table each time
    ]


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unit must be one of"):
        calendar("fortnight")
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        calendar("day", tz="Mars/Olympus")
    with pytest.raises(ConfigError, match="week_start"):
        calendar("week", week_start="someday")
    with pytest.raises(EventError, match="outside the years"):
        calendar("day").window_of(2**62)


def test_the_operator_closes_periods_of_varying_length() -> None:
    month = calendar("month", tz="Europe/Paris")
    op = WindowOperator(month, {"n": count(), "total": sum("x")}, allowed_lateness_ms=HOUR)
    feb = ms(datetime(2013, 2, 10, tzinfo=UTC))
    march_end = ms(datetime(2013, 3, 31, 22, tzinfo=UTC))  # 2013-04-01 00:00 in Paris
    op.process("a", {"x": 1}, feb)
    op.process("a", {"x": 2}, march_end - 1)
    op.process("a", {"x": 4}, march_end)
    assert op.advance(march_end + HOUR - 1) == [
        {
            "key": "a",
            "window_start": ms(datetime(2013, 1, 31, 23, tzinfo=UTC)),
            "window_end": ms(datetime(2013, 2, 28, 23, tzinfo=UTC)),
            "period": "2013-02",
            "n": 1,
            "total": 1,
        }
    ]
    assert op.process("a", {"x": 8}, march_end - 2).late is None  # within the lateness
    restored = WindowOperator.restore(
        month, {"n": count(), "total": sum("x")}, op.snapshot(), allowed_lateness_ms=HOUR
    )
    for o in (op, restored):
        rows = o.advance(march_end + HOUR)
        assert [(r["period"], r["n"], r["total"]) for r in rows] == [("2013-03", 2, 10)]
        late = o.process("a", {"x": 16}, march_end - 3).late
        assert late is not None and late.windows == ((rows[0]["window_start"], march_end),)
        assert [(r["period"], r["total"]) for r in o.advance(MAX_WATERMARK)] == [("2013-04", 4)]


def test_period_cannot_name_an_aggregation_of_a_calendar_window() -> None:
    with pytest.raises(ConfigError, match="period"):
        WindowOperator(calendar("day"), {"period": count()})
