"""Event time, watermarks, windows, aggregations and joins -- as pure logic.

Nothing here does I/O, starts a thread or writes a log: the runtimes feed events in and get
rows out, so every runtime (stream-first, micro-batch, bounded) shares the same semantics.

* :mod:`~rheos.windowing.timestamps` -- reading event time (epoch ms) out of events;
* :mod:`~rheos.windowing.watermarks` -- how far event time has progressed on a source;
* :mod:`~rheos.windowing.windows` -- tumbling, sliding and session window specifications, and
  the formulas of window assignment and lateness;
* :mod:`~rheos.windowing.kernel` -- the event-time kernel both runtime modes call: which
  windows an event is in, whether it is late, when the watermark can finalize a window next
  (for one event, an array of events, and as source text for generated code);
* :mod:`~rheos.windowing.calendars` -- calendar windows: days to years in a time zone;
* :mod:`~rheos.windowing.aggregations` -- what a window computes;
* :mod:`~rheos.windowing.operator` -- the keyed window operator: lateness, emission, state;
* :mod:`~rheos.windowing.joins` -- interval joins and window joins;
* :mod:`~rheos.windowing.clock` -- processing time, injectable for tests.

>>> op = WindowOperator(sliding("10s", "5s"), {"n": count(), "top": max("v")})
>>> for ts, v in [(1_000, 3), (6_000, 9), (12_000, 4)]:
...     _ = op.process(None, {"v": v}, ts)
>>> for row in op.advance(MAX_WATERMARK):
...     print(row)
{'key': None, 'window_start': -5000, 'window_end': 5000, 'n': 1, 'top': 3}
{'key': None, 'window_start': 0, 'window_end': 10000, 'n': 2, 'top': 9}
{'key': None, 'window_start': 5000, 'window_end': 15000, 'n': 2, 'top': 9}
{'key': None, 'window_start': 10000, 'window_end': 20000, 'n': 1, 'top': 4}
"""

from __future__ import annotations

from rheos.windowing.aggregations import (
    Aggregation,
    BoundAggregation,
    aggregate_with,
    collect,
    count,
    count_distinct,
    first,
    last,
    max,
    mean,
    min,
    sum,
)
from rheos.windowing.clock import Clock, ManualClock, SystemClock
from rheos.windowing.joins import IntervalJoinOperator, JoinResult, WindowJoinOperator
from rheos.windowing.kernel import WindowKernel
from rheos.windowing.operator import LateInfo, ProcessResult, WindowOperator
from rheos.windowing.timestamps import parse_timestamp, timestamp_getter
from rheos.windowing.watermarks import (
    MAX_WATERMARK,
    MIN_WATERMARK,
    Disorder,
    WatermarkTracker,
    combine_watermarks,
)
from rheos.windowing.windows import (
    CalendarWindows,
    SessionWindows,
    SlidingWindows,
    TumblingWindows,
    WindowSpec,
    calendar,
    session,
    sliding,
    tumbling,
)

__all__ = [
    "MAX_WATERMARK",
    "MIN_WATERMARK",
    "Aggregation",
    "BoundAggregation",
    "CalendarWindows",
    "Clock",
    "Disorder",
    "IntervalJoinOperator",
    "JoinResult",
    "LateInfo",
    "ManualClock",
    "ProcessResult",
    "SessionWindows",
    "SlidingWindows",
    "SystemClock",
    "TumblingWindows",
    "WatermarkTracker",
    "WindowJoinOperator",
    "WindowKernel",
    "WindowOperator",
    "WindowSpec",
    "aggregate_with",
    "calendar",
    "collect",
    "combine_watermarks",
    "count",
    "count_distinct",
    "first",
    "last",
    "max",
    "mean",
    "min",
    "parse_timestamp",
    "session",
    "sliding",
    "sum",
    "timestamp_getter",
    "tumbling",
]
