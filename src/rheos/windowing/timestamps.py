"""Reading event time out of events.

Event time in rheos is always an ``int`` of **epoch milliseconds** (UTC). Events carry it in
many shapes; :func:`parse_timestamp` turns each into milliseconds:

* ``int`` / ``float``: epoch milliseconds, or epoch **seconds** (see *units* below);
  fractions of a millisecond are rounded to the nearest millisecond.
* ``str``: ISO-8601, such as ``"2024-05-01T12:00:00Z"``, ``"2024-05-01T14:00:00+02:00"``
  or ``"2024-05-01 12:00:00.250"``; a string without an offset is read as UTC. A string is
  always read as ISO-8601, never as a number (``"20240501"`` is the date 2024-05-01).
* :class:`datetime.datetime`: an aware datetime is converted; a naive one is read as UTC.
  A plain :class:`datetime.date` is its midnight UTC.

Units. ``unit="ms"`` reads numbers as milliseconds and ``unit="s"`` as seconds. The default
``unit="auto"`` uses a heuristic: a number whose absolute value is **below 1e11 is seconds**,
anything else is milliseconds. 1e11 seconds is the year 5138 and 1e11 milliseconds is
1973-03-03, so the guess is right for every real-world timestamp after March 1973; pass
``unit="ms"`` when events carry small millisecond values (tests, synthetic data).

>>> parse_timestamp(1_700_000_000)          # seconds (auto)
1700000000000
>>> parse_timestamp(1_700_000_000_123)      # milliseconds (auto)
1700000000123
>>> parse_timestamp(5, unit="ms")
5
>>> parse_timestamp("1970-01-01T00:00:01.5Z")
1500
>>> parse_timestamp("1970-01-01T01:00:00+01:00")
0
>>> get_ts = timestamp_getter("time", unit="ms")
>>> get_ts({"time": 42})
42

A missing field or a value that is not a timestamp raises :class:`rheos.errors.EventError`
naming the field and the bad value; the caller adds the topic, partition and offset.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from rheos.errors import ConfigError, EventError

_SECONDS_BELOW = 1e11
_UNITS = ("auto", "ms", "s")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TimestampSpec = str | Callable[[Any], Any]
"""Where an event's time is: a field name of a dict event, or a function of the event."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_unit(unit: str) -> None:
    if unit not in _UNITS:
        raise ConfigError(f"timestamp unit must be one of 'auto', 'ms', 's', got {unit!r}")


def _from_number(value: float, unit: str) -> int:
    if unit == "s" or (unit == "auto" and abs(value) < _SECONDS_BELOW):
        return round(value * 1000)
    return round(value)


def _from_datetime(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + round(delta.microseconds / 1000)


def _parse(value: Any, unit: str) -> int | None:
    """Return milliseconds, or None if ``value`` is not a timestamp."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _from_number(value, unit)
    if isinstance(value, float):
        return _from_number(value, unit) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return _from_datetime(value)
    if isinstance(value, date):
        return _from_datetime(datetime(value.year, value.month, value.day))
    if isinstance(value, str):
        try:
            return _from_datetime(datetime.fromisoformat(value.strip()))
        except ValueError:
            return None
    return None


def parse_timestamp(value: Any, *, unit: str = "auto") -> int:
    """Return ``value`` as epoch milliseconds; raise :class:`EventError` if it is not a time."""
    _check_unit(unit)
    ms = _parse(value, unit)
    if ms is None:
        raise EventError(
            f"cannot read {_short(value)} as a timestamp: expected epoch ms or seconds, "
            "an ISO-8601 string or a datetime"
        )
    return ms


def timestamp_getter(spec: TimestampSpec, *, unit: str = "auto") -> Callable[[Any], int]:
    """Return a function ``event -> epoch ms`` reading the time where ``spec`` says.

    ``spec`` is a field name (the event is a mapping) or a callable returning any value
    :func:`parse_timestamp` accepts.

    >>> timestamp_getter(lambda e: e[1], unit="s")(("a", 2))
    2000
    >>> timestamp_getter("ts")({"x": 1})
    Traceback (most recent call last):
    ...
    rheos.errors.EventError: timestamp field 'ts': the event has no such field: {'x': 1}
    """
    _check_unit(unit)
    if isinstance(spec, str):
        field = spec

        def from_field(event: Any) -> int:
            try:
                value = event[field]
            except (KeyError, TypeError, IndexError):
                raise EventError(
                    f"timestamp field {field!r}: the event has no such field: {_short(event)}"
                ) from None
            ms = _parse(value, unit)
            if ms is None:
                raise EventError(
                    f"timestamp field {field!r}: cannot read {_short(value)} as a timestamp "
                    "(expected epoch ms or seconds, an ISO-8601 string or a datetime)"
                )
            return ms

        return from_field
    if callable(spec):
        func = spec
        name = getattr(func, "__qualname__", repr(func))

        def from_function(event: Any) -> int:
            value = func(event)
            ms = _parse(value, unit)
            if ms is None:
                raise EventError(
                    f"timestamp function {name}: returned {_short(value)}, which is not a "
                    "timestamp (expected epoch ms or seconds, an ISO-8601 string or a datetime)"
                )
            return ms

        return from_function
    raise ConfigError(f"timestamp: expected a field name or a function, got {spec!r}")


__all__ = ["TimestampSpec", "parse_timestamp", "timestamp_getter"]
