"""Durations as people write them: ``"500ms"``, ``"5s"``, ``"1m"``, ``"1h"``, ``"1d"``.

>>> to_ms("1m30s")
90000
>>> to_ms(timedelta(seconds=2))
2000
>>> format_ms(90_000)
'1m30s'
"""

from __future__ import annotations

import re
from datetime import timedelta

from rheos.errors import ConfigError

Duration = str | timedelta | int
"""A duration: a string such as ``"5s"``, a :class:`datetime.timedelta`, or whole milliseconds."""

_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "min": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d|w)")


def to_ms(duration: Duration, *, what: str = "duration") -> int:
    """Return ``duration`` in whole milliseconds; raise :class:`ConfigError` if it is malformed."""
    if isinstance(duration, bool):
        raise ConfigError(f"{what}: expected a duration, got {duration!r}")
    if isinstance(duration, int):
        if duration < 0:
            raise ConfigError(f"{what}: a duration cannot be negative, got {duration}")
        return duration
    if isinstance(duration, timedelta):
        ms = round(duration.total_seconds() * 1000)
        if ms < 0:
            raise ConfigError(f"{what}: a duration cannot be negative, got {duration}")
        return ms
    if isinstance(duration, str):
        text = duration.strip().lower()
        pos, total = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos and text[pos : match.start()].strip():
                break
            total += float(match.group(1)) * _UNITS_MS[match.group(2)]
            pos = match.end()
        if text and pos == len(text):
            return round(total)
        raise ConfigError(
            f"{what}: cannot read {duration!r} as a duration; "
            "write it like '500ms', '5s', '1m', '1h', '1d' or '1m30s'"
        )
    raise ConfigError(f"{what}: expected a duration string, timedelta or int ms, got {duration!r}")


def format_ms(ms: int) -> str:
    """Format milliseconds the way :func:`to_ms` reads them."""
    if ms == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    if ms:
        out.append(f"{ms}ms")
    return "".join(out)


__all__ = ["Duration", "format_ms", "to_ms"]
