"""The flows of the worker tests, over the log topic ``events`` (6 partitions).

``python -m rheos run tests/workers/app.py --workers N --data-dir DIR`` runs the flow named
by ``RHEOS_TEST_WORKERS_FLOW`` (default ``stateless``); each is paced a little so that kills
land mid-stream. Adding a flow here (a keyed one, once repartitioning lands) adds it to the
chaos test's parameters.
"""

from __future__ import annotations

import os
import time
from typing import Any

import rheos as rh
from rheos.connectors.log import LogSource

EVENTS = "events"
PARTITIONS = 6
FLOW = "workers"


PACE_ENV = "RHEOS_TEST_WORKERS_PACE"
"""Seconds to pause every 50 events (the chaos test: 0.15, about 12 s per task). Sources read
100 records at a time (the chaos test's micro-batches are as small), so a task stops within
a fraction of a second when asked to."""


def pace(event: Any) -> None:
    if event["i"] % 50 == 0:
        seconds = float(os.environ.get(PACE_ENV) or 0)
        if seconds:
            time.sleep(seconds)


def parse(event: Any) -> dict[str, Any]:
    """Bad events: ``d`` is 0 (division by zero) or missing (a KeyError)."""
    return {"i": event["i"], "user": event["user"], "q": 1000 // event["d"]}


def stateless(data_dir: str | None = None) -> rh.Flow:
    flow = rh.Flow(FLOW, data_dir=data_dir, checkpoint_interval="0.2s")
    (
        flow.source(LogSource(EVENTS, max_records=100), timestamp="ts", timestamp_unit="ms")
        .inspect(pace)
        .map(parse)
        .sink(rh.log_sink("out"))
    )
    return flow


def keyed(data_dir: str | None = None) -> rh.Flow:
    """Per user, 10 s tumbling windows of the good events: count and sum (needs its events
    repartitioned by user across tasks: refused with workers until that lands)."""
    flow = rh.Flow(FLOW, data_dir=data_dir, checkpoint_interval="0.2s")
    (
        flow.source(LogSource(EVENTS, max_records=100), timestamp="ts", timestamp_unit="ms")
        .inspect(pace)
        .map(parse)
        .key_by("user")
        .window(rh.tumbling("10s"))
        .aggregate(n=rh.count(), total=rh.sum("q"))
        .sink(rh.log_sink("out"))
    )
    return flow


FLOWS = {"stateless": stateless, "keyed": keyed}

flow = FLOWS[os.environ.get("RHEOS_TEST_WORKERS_FLOW", "stateless")]()
