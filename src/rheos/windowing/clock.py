"""Processing time, injectable.

Event time comes from the events; *processing time* is the wall clock of the machine running
the flow. rheos reads processing time only through a :class:`Clock`, so anything that depends
on it (idle partitions, a quiet source's watermark) can be tested deterministically with a
:class:`ManualClock`.

>>> clock = ManualClock(start_ms=1_000)
>>> clock.now_ms()
1000
>>> clock.advance(250)
>>> clock.now_ms()
1250
>>> clock.set(5_000)
>>> clock.now_ms()
5000
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from rheos.errors import ConfigError


@runtime_checkable
class Clock(Protocol):
    """Anything that can tell the processing time in epoch milliseconds."""

    def now_ms(self) -> int:
        """Return the current processing time in epoch milliseconds."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now_ms(self) -> int:
        """Return :func:`time.time_ns` in whole milliseconds."""
        return time.time_ns() // 1_000_000

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to: a public testing helper.

    It never goes backwards: :meth:`advance` takes a non-negative step and :meth:`set` refuses
    an earlier time.
    """

    def __init__(self, start_ms: int = 0) -> None:
        self._now = int(start_ms)

    def now_ms(self) -> int:
        """Return the time the clock was last set to."""
        return self._now

    def advance(self, ms: int) -> None:
        """Move the clock forward by ``ms`` milliseconds."""
        if ms < 0:
            raise ConfigError(f"ManualClock.advance: cannot move back in time ({ms} ms)")
        self._now += int(ms)

    def set(self, ms: int) -> None:
        """Set the clock to ``ms``; it must not be earlier than the current time."""
        if ms < self._now:
            raise ConfigError(f"ManualClock.set: {ms} is earlier than the current time {self._now}")
        self._now = int(ms)

    def __repr__(self) -> str:
        return f"ManualClock(now_ms={self._now})"


__all__ = ["Clock", "ManualClock", "SystemClock"]
