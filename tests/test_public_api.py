"""The names ``rheos`` exports are a contract: this test fails if they drift."""

from __future__ import annotations

import re
from pathlib import Path

import rheos

EXPECTED = {
    # the log
    "Log", "Record", "RecordBatch", "default_data_dir",
    # flows and running them
    "Flow", "Stream", "KeyedStream", "WindowedStream", "ProcessContext", "ProcessLogic",
    "RunSummary", "Duration", "disk_state",
    # windows, aggregations, time
    "tumbling", "sliding", "session", "calendar", "count", "sum", "min", "max", "mean", "first",
    "last", "collect", "count_distinct", "aggregate_with", "Aggregation", "Clock", "SystemClock",
    "ManualClock", "MIN_WATERMARK", "MAX_WATERMARK",
    # vectorised expressions (both runtime modes)
    "col", "lit", "expr", "Expr",
    # sources and sinks
    "log_source", "log_sink", "iterable_source", "jsonl_source", "csv_source",
    "parquet_source", "jsonl_sink", "stdout_sink", "callback_sink", "list_sink",
    "kafka_source", "kafka_sink",
    # errors
    "RheosError", "FlowError", "FlowDefinitionError", "UserFunctionError", "EventError",
    "RheosWarning",
    "__version__",
}  # fmt: skip


def test_exported_names_are_exactly_the_contract() -> None:
    assert set(rheos.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in rheos.__all__:
        assert getattr(rheos, name) is not None, name


def test_the_reference_page_lists_every_exported_name() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "reference.md").read_text()
    listed = set(re.findall(r"^\| `([A-Za-z_]+)` \|", page, re.M))
    assert listed == set(rheos.__all__)
