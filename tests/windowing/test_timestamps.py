from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from rheos.errors import ConfigError, EventError
from rheos.windowing import parse_timestamp, timestamp_getter


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_700_000_000_123, 1_700_000_000_123),  # ms
        (1_700_000_000, 1_700_000_000_000),  # seconds
        (1_700_000_000.5, 1_700_000_000_500),  # fractional seconds
        (1_700_000_000_123.4, 1_700_000_000_123),  # fractional ms, rounded
        (0, 0),
        (-86_400, -86_400_000),  # seconds before the epoch
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
        ("2023-11-14T22:13:20.250Z", 1_700_000_000_250),
        ("2023-11-14 22:13:20", 1_700_000_000_000),  # naive: UTC
        ("1969-12-31T23:59:59Z", -1_000),
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), 1_700_000_000_000),
        (datetime(2023, 11, 14, 22, 13, 20), 1_700_000_000_000),
        (
            datetime(2023, 11, 14, 17, 13, 20, 1_000, tzinfo=timezone(timedelta(hours=-5))),
            1_700_000_000_001,
        ),
        (date(1970, 1, 2), 86_400_000),
    ],
)
def test_parse_timestamp(value: object, expected: int) -> None:
    assert parse_timestamp(value) == expected


def test_heuristic_boundary_and_unit_override() -> None:
    assert parse_timestamp(99_999_999_999) == 99_999_999_999_000  # below 1e11: seconds
    assert parse_timestamp(100_000_000_000) == 100_000_000_000  # from 1e11: ms
    assert parse_timestamp(5, unit="ms") == 5
    assert parse_timestamp(1_700_000_000_123, unit="s") == 1_700_000_000_123_000
    assert parse_timestamp(1.5, unit="s") == 1_500
    assert parse_timestamp("1970-01-01T00:00:01Z", unit="ms") == 1_000
    with pytest.raises(ConfigError, match="unit"):
        parse_timestamp(5, unit="us")


@pytest.mark.parametrize("value", ["yesterday", "", None, True, float("nan"), float("inf"), [1]])
def test_bad_values(value: object) -> None:
    with pytest.raises(EventError, match="timestamp"):
        parse_timestamp(value)


def test_getter_by_field() -> None:
    get = timestamp_getter("time")
    assert get({"time": "2023-11-14T22:13:20Z"}) == 1_700_000_000_000
    assert get({"time": 1_700_000_000}) == 1_700_000_000_000
    assert timestamp_getter("t", unit="ms")({"t": 42}) == 42


def test_getter_errors_name_the_field_and_value() -> None:
    get = timestamp_getter("time")
    with pytest.raises(EventError, match=r"timestamp field 'time'.*no such field"):
        get({"ts": 1})
    with pytest.raises(EventError, match=r"timestamp field 'time'.*'soon'"):
        get({"time": "soon"})
    with pytest.raises(EventError, match="no such field"):
        get("not a mapping")


def test_getter_by_function() -> None:
    def ts_of(event: tuple[str, float]) -> float:
        return event[1]

    get = timestamp_getter(ts_of, unit="s")
    assert get(("a", 2.5)) == 2_500
    with pytest.raises(EventError, match=r"timestamp function .*ts_of: returned 'x'"):
        get(("a", "x"))


def test_getter_bad_spec() -> None:
    with pytest.raises(ConfigError):
        timestamp_getter(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        timestamp_getter("ts", unit="minutes")
