"""rheos: stream processing in Python on an embedded, durable, partitioned event log.

>>> import rheos as rh
>>> out = []
>>> flow = rh.Flow("doc-example")
>>> events = [
...     {"symbol": "ACME", "price": 10.0, "ts": 0},
...     {"symbol": "ACME", "price": 11.0, "ts": 1},
... ]
>>> (flow.source(rh.iterable_source(events), timestamp="ts", timestamp_unit="ms")
...     .key_by("symbol")
...     .window(rh.tumbling("1m"))
...     .aggregate(open=rh.first("price"), close=rh.last("price"), n=rh.count())
...     .sink(rh.list_sink(out)))
>>> _ = flow.run()
>>> out
[{'key': 'ACME', 'window_start': 0, 'window_end': 60000, 'open': 10.0, 'close': 11.0, 'n': 2}]
"""

from rheos.connectors import (
    callback_sink,
    csv_source,
    iterable_source,
    jsonl_sink,
    jsonl_source,
    kafka_sink,
    kafka_source,
    list_sink,
    log_sink,
    log_source,
    parquet_source,
    stdout_sink,
)
from rheos.durations import Duration
from rheos.errors import (
    EventError,
    FlowDefinitionError,
    FlowError,
    RheosError,
    RheosWarning,
    UserFunctionError,
)
from rheos.flows import KeyedStream, ProcessContext, ProcessLogic, Stream, WindowedStream
from rheos.flows.backends import disk_state
from rheos.flows.expressions import Expr, col, expr, lit
from rheos.runtime import Flow, RunSummary
from rheos.transport import Log, Record, RecordBatch, default_data_dir
from rheos.windowing import (
    MAX_WATERMARK,
    MIN_WATERMARK,
    Aggregation,
    Clock,
    ManualClock,
    SystemClock,
    aggregate_with,
    calendar,
    collect,
    count,
    count_distinct,
    first,
    last,
    max,
    mean,
    min,
    session,
    sliding,
    sum,
    tumbling,
)

__version__ = "0.1.0"

__all__ = [
    "MAX_WATERMARK",
    "MIN_WATERMARK",
    "Aggregation",
    "Clock",
    "Duration",
    "EventError",
    "Expr",
    "Flow",
    "FlowDefinitionError",
    "FlowError",
    "KeyedStream",
    "Log",
    "ManualClock",
    "ProcessContext",
    "ProcessLogic",
    "Record",
    "RecordBatch",
    "RheosError",
    "RheosWarning",
    "RunSummary",
    "Stream",
    "SystemClock",
    "UserFunctionError",
    "WindowedStream",
    "__version__",
    "aggregate_with",
    "calendar",
    "callback_sink",
    "col",
    "collect",
    "count",
    "count_distinct",
    "csv_source",
    "default_data_dir",
    "disk_state",
    "expr",
    "first",
    "iterable_source",
    "jsonl_sink",
    "jsonl_source",
    "kafka_sink",
    "kafka_source",
    "last",
    "list_sink",
    "lit",
    "log_sink",
    "log_source",
    "max",
    "mean",
    "min",
    "parquet_source",
    "session",
    "sliding",
    "stdout_sink",
    "sum",
    "tumbling",
]
