"""The flow of the Kafka crash test: Kafka -> keyed window and running aggregate -> Kafka
(and the running aggregate to the embedded log too: a Kafka source into a log sink).

``python chaos_app.py DATA_DIR SERVERS PREFIX`` reads ``PREFIX.events`` and writes
``PREFIX.windows`` and ``PREFIX.running`` to Kafka and ``running`` to the flow's log until
SIGTERM (which takes a last checkpoint), a copy of each dead letter to ``PREFIX.dlq``;
``RHEOS_TEST_CHECKPOINT_PAUSE`` makes every checkpoint pause inside its transaction and again
between the checkpoint's commit and the Kafka transactions' commit.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import rheos as rh


def pace(event: Any) -> None:
    """Slow the flow down a little (about 2 s for 100,000 events) so kills land mid-stream."""
    if event["i"] % 1000 == 0:
        time.sleep(0.02)


def build(data_dir: str, servers: str, prefix: str, interval: str = "0.3s") -> rh.Flow:
    flow = rh.Flow(
        "kchaos",
        data_dir=data_dir,
        checkpoint_interval=interval,
        dead_letter_sink=rh.kafka_sink(f"{prefix}.dlq", bootstrap_servers=servers, create=True),
    )
    keyed = (
        flow.source(
            rh.kafka_source(f"{prefix}.events", bootstrap_servers=servers, group=prefix),
            timestamp="ts",
            timestamp_unit="ms",
            out_of_orderness="2s",
        )
        .inspect(pace)
        .key_by("key")
    )
    (
        keyed.window(rh.tumbling("10s"))
        .aggregate(n=rh.count(), total=rh.sum("v"))
        .sink(rh.kafka_sink(f"{prefix}.windows", key="key", bootstrap_servers=servers))
    )
    running = keyed.aggregate(n=rh.count(), total=rh.sum("v"))
    running.sink(rh.kafka_sink(f"{prefix}.running", key="key", bootstrap_servers=servers))
    running.sink(rh.log_sink("running", key="key", partitions=2))  # the mixed case
    return flow


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2], sys.argv[3]).run()
