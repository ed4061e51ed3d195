"""The flow of the crash tests: a keyed window and a running aggregate over the log.

``python chaos_app.py DATA_DIR`` runs it until SIGTERM (which takes a last checkpoint);
``RHEOS_TEST_CHECKPOINT_PAUSE`` makes every checkpoint pause inside its transaction.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import rheos as rh

EVENTS = "events"


def pace(event: Any) -> None:
    """Slow the flow down a little (about 4 s for 200,000 events) so kills land mid-stream."""
    if event["i"] % 1000 == 0:
        time.sleep(0.02)


def build(data_dir: str, interval: str = "0.3s") -> rh.Flow:
    flow = rh.Flow("chaos", data_dir=data_dir, checkpoint_interval=interval)
    keyed = (
        flow.source(
            rh.log_source(EVENTS), timestamp="ts", timestamp_unit="ms", out_of_orderness="2s"
        )
        .inspect(pace)
        .key_by("key")
    )
    (
        keyed.window(rh.tumbling("10s"))
        .aggregate(n=rh.count(), total=rh.sum("v"))
        .sink(rh.log_sink("windows", key="key", partitions=2))
    )
    keyed.aggregate(n=rh.count(), total=rh.sum("v")).sink(rh.log_sink("running"))
    return flow


if __name__ == "__main__":
    build(sys.argv[1]).run()
