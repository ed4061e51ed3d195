"""The public names the tests use, as ``rh.<name>``.

``rheos`` re-exports these at the top level (each name is taken from there when it is);
the others come from the packages that define them, so the tests read like user code.
"""

from __future__ import annotations

from types import SimpleNamespace

import rheos
import rheos.connectors as _connectors
import rheos.errors as _errors
import rheos.flows as _flows
import rheos.runtime as _runtime
import rheos.windowing as _windowing

NAMES = {
    _runtime: ["Flow", "RunSummary"],
    _flows: ["Stream", "KeyedStream", "WindowedStream", "col"],
    _connectors: [
        "log_source",
        "log_sink",
        "iterable_source",
        "jsonl_source",
        "csv_source",
        "parquet_source",
        "jsonl_sink",
        "stdout_sink",
        "callback_sink",
        "list_sink",
    ],
    _windowing: [
        "tumbling",
        "sliding",
        "session",
        "calendar",
        "count",
        "sum",
        "min",
        "max",
        "mean",
        "first",
        "last",
        "collect",
        "count_distinct",
        "aggregate_with",
        "ManualClock",
    ],
    _errors: ["RheosError", "UserFunctionError", "EventError", "FlowDefinitionError"],
}

rh = SimpleNamespace(
    **{n: getattr(rheos, n, None) or getattr(m, n) for m, names in NAMES.items() for n in names}
)

__all__ = ["rh"]
