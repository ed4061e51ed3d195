"""Calendar windows: days, weeks, months, quarters and years in a time zone.

``calendar(unit, tz="UTC", week_start="monday")`` cuts event time into tumbling windows that
are calendar periods of the zone ``tz`` (an IANA name, read with :mod:`zoneinfo`): a period
starts at the first instant of its first local day -- local midnight, or the end of a DST gap
where midnight is skipped -- and ends where the next one starts. So a local day lasts 23 or 25
hours at a DST change, a month 28 to 31 days, a quarter 90 to 92.

Which period an event is in is answered in one place: a table of period boundaries (epoch ms,
ascending) built from the zone's rules and extended as event times need it. One timestamp is
looked up with :func:`bisect.bisect_right` on it (:meth:`CalendarWindows.window_of`), an array
with :func:`numpy.searchsorted` on the same boundaries (:meth:`CalendarWindows.windows_of_array`),
so both runtime modes assign events to the same periods by construction.

Each period has a label, the ``period`` field of window results:

=========  =============  ================================================================
unit       label          the period
=========  =============  ================================================================
day        ``2013-03-10``  a local date
week       ``2013-W10``    seven days from ``week_start``; labelled by the ISO year and week
                           of its middle day -- for weeks from Monday, the ISO week itself
month      ``2013-03``     a calendar month
quarter    ``2013-Q1``     January-March, April-June, July-September, October-December
year       ``2013``        a calendar year
=========  =============  ================================================================

>>> day = calendar("day", tz="America/New_York")
>>> start, end = day.window_of(1362898800000)  # 2013-03-10 07:00 UTC, 03:00 in New York
>>> (end - start) // 3_600_000, day.label(start)  # the day DST began: 23 hours
(23, '2013-03-10')
>>> week = calendar("week")
>>> week.label(week.window_start(1362898800000))
'2013-W10'
>>> calendar("quarter", tz="Europe/Paris")
calendar('quarter', tz='Europe/Paris')
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from threading import Lock
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rheos.errors import ConfigError, EventError

if TYPE_CHECKING:  # NumPy is needed only by the vectorised lookup (the micro-batch runtime)
    import numpy as np

UNITS = ("day", "week", "month", "quarter", "year")
"""The calendar units."""

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
"""The days a week may start on."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_FIRST_YEAR, _LAST_YEAR = 2, 9998
"""Event times are looked up in these years (``datetime`` covers 1-9999; one year of margin
either side for time zones and week starts)."""
_SPAN = 8
"""Years of boundaries added at a time."""


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


class _Boundaries:
    """The period boundaries of one (unit, zone, week start), built year by year as needed.

    ``starts`` is ascending; period ``i`` is ``[starts[i], starts[i + 1])``. The lists are
    replaced, never changed in place, so a reader always sees a consistent table.
    """

    def __init__(self, unit: str, zone: ZoneInfo, week_start: int) -> None:
        self.unit = unit
        self.zone = zone
        self.week_start = week_start
        self.years = (0, 0)
        """The years ``[first, last)`` whose local dates the table covers."""
        self.starts: list[int] = []
        self.dates: list[date] = []
        """The local first day of each period, by index."""
        self.array: Any = None
        """``starts`` as a NumPy array (made on the first vectorised lookup)."""
        self.last = (0, 0)
        """The period found last (a lookup of the same period needs no search)."""
        self._lock = Lock()
        self._labels: dict[int, str] = {}

    def _first_days(self, first: int, last: int) -> list[date]:
        """The first local day of every period from before ``first``-01-01 to after
        ``last``-01-01 (one period of margin either side)."""
        unit = self.unit
        if unit == "day" or unit == "week":
            begin = date(first, 1, 1) - timedelta(days=7)
            end = date(last, 1, 1) + timedelta(days=7)
            if unit == "week":
                begin -= timedelta(days=(begin.weekday() - self.week_start) % 7)
            step = timedelta(days=1 if unit == "day" else 7)
            days, d = [], begin
            while d <= end:
                days.append(d)
                d += step
            return days
        months = {"month": 1, "quarter": 3, "year": 12}[unit]
        return [
            date(year, month, 1)
            for year in range(first - 1, last + 1)
            for month in range(1, 13, months)
        ]

    def cover(self, low: int, high: int) -> None:
        """Make the table hold the periods of every time in ``[low, high]`` (epoch ms)."""
        first, last = _year(low) - 1, _year(high) + 2
        have = self.years
        if have[0] <= first and last <= have[1]:
            return
        with self._lock:
            if have != (0, 0):  # grow by several years at a time, keeping what is there
                first = min(first, have[0] if first >= have[0] else have[0] - _SPAN)
                last = max(last, have[1] if last <= have[1] else have[1] + _SPAN)
            first, last = max(first, _FIRST_YEAR - 1), min(last, _LAST_YEAR + 1)
            days = self._first_days(first, last)
            zone = self.zone
            self.dates = days
            self.starts = [_ms(datetime(d.year, d.month, d.day, tzinfo=zone)) for d in days]
            self.array = None
            self.years = (first, last)

    def index(self, ts: int) -> int:
        """The index of the period holding ``ts``."""
        starts = self.starts
        if not starts or not starts[0] <= ts < starts[-1]:
            self.cover(ts, ts)
            starts = self.starts
        return bisect_right(starts, ts) - 1

    def label(self, start: int) -> str:
        text = self._labels.get(start)
        if text is None:
            i = self.index(start)  # first: it may rebuild the table
            d = self.dates[i]
            unit = self.unit
            if unit == "day":
                text = d.isoformat()
            elif unit == "week":
                year, week, _ = (d + timedelta(days=3)).isocalendar()
                text = f"{year}-W{week:02d}"
            elif unit == "month":
                text = f"{d.year}-{d.month:02d}"
            elif unit == "quarter":
                text = f"{d.year}-Q{(d.month - 1) // 3 + 1}"
            else:
                text = str(d.year)
            self._labels[start] = text
        return text


_LOW = _ms(datetime(_FIRST_YEAR, 1, 1, tzinfo=UTC))
_HIGH = _ms(datetime(_LAST_YEAR, 12, 31, tzinfo=UTC))


def _year(ts: int) -> int:
    return (_EPOCH + ts * _MS).year


@dataclass(frozen=True)
class CalendarWindows:
    """Tumbling windows that are calendar periods in a time zone; build with :func:`calendar`."""

    unit: str
    tz: str = "UTC"
    week_start: str = "monday"
    _table: _Boundaries = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ConfigError(f"calendar window: unit must be one of {', '.join(UNITS)}, "
                              f"got {self.unit!r}")  # fmt: skip
        if self.week_start not in WEEKDAYS:
            raise ConfigError(
                f"calendar window: week_start must be a day name ({', '.join(WEEKDAYS)}), "
                f"got {self.week_start!r}"
            )
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(
                f"calendar window: unknown time zone {self.tz!r} (an IANA name such as "
                "'Europe/Paris' or 'UTC')"
            ) from None
        table = _Boundaries(self.unit, zone, WEEKDAYS.index(self.week_start))
        object.__setattr__(self, "_table", table)

    def _check(self, ts: int) -> None:
        if not _LOW <= ts <= _HIGH:
            raise EventError(
                f"{self!r}: event time {ts} ms is outside the years {_FIRST_YEAR}-{_LAST_YEAR}"
            )

    def window_of(self, ts: int) -> tuple[int, int]:
        """The period ``(start, end)`` that holds ``ts`` (epoch ms)."""
        table = self._table
        last = table.last
        if last[0] <= ts < last[1]:  # events come mostly in time order: the same period
            return last
        starts = table.starts
        if starts and starts[0] <= ts < starts[-1]:
            i = bisect_right(starts, ts) - 1
        else:
            self._check(ts)
            i = table.index(ts)
            starts = table.starts
        period = table.last = (starts[i], starts[i + 1])
        return period

    def window_start(self, ts: int) -> int:
        """Start of the period that holds ``ts``."""
        return self.window_of(ts)[0]

    def window_end(self, start: int) -> int:
        """End of the period that starts at ``start`` (the start of the next one)."""
        return self.window_of(start)[1]

    def windows_of(self, ts: int) -> tuple[tuple[int, int], ...]:
        """The windows ``(start, end)`` that hold ``ts``: one period."""
        return (self.window_of(ts),)

    def next_boundary(self, ts: int) -> int | None:
        """The first period start above ``ts``; None outside the years the table can hold."""
        if not _LOW <= ts <= _HIGH:
            return None
        return self.window_of(ts)[1]

    def windows_of_array(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`window_of`: the starts and ends of the periods of ``ts`` (an
        int64 array of epoch ms), by a binary search in the same boundaries."""
        import numpy as np  # an optional dependency: only the micro-batch runtime calls this

        if not len(ts):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        low, high = int(ts.min()), int(ts.max())
        self._check(low)
        self._check(high)
        table = self._table
        table.cover(low, high)
        array = table.array
        if array is None:
            array = table.array = np.asarray(table.starts, dtype=np.int64)
        i = np.searchsorted(array, ts, side="right") - 1
        return array[i], array[i + 1]

    def label(self, start: int) -> str:
        """The label of the period that starts at ``start``: ``2013-03-10``, ``2013-W10``,
        ``2013-03``, ``2013-Q1`` or ``2013``."""
        return self._table.label(start)

    def __repr__(self) -> str:
        text = f"calendar({self.unit!r}"
        if self.tz != "UTC":
            text += f", tz={self.tz!r}"
        if self.week_start != "monday":
            text += f", week_start={self.week_start!r}"
        return text + ")"


def calendar(unit: str, tz: str = "UTC", week_start: str = "monday") -> CalendarWindows:
    """Tumbling windows of calendar periods (``"day"``, ``"week"``, ``"month"``,
    ``"quarter"``, ``"year"``) in the time zone ``tz``; weeks start on ``week_start``."""
    return CalendarWindows(unit, tz, week_start)


__all__ = ["UNITS", "WEEKDAYS", "CalendarWindows", "calendar"]
