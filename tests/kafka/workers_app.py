"""The flows of the Kafka worker tests: a Kafka topic of 6 partitions -> parse -> Kafka,
``stateless``, or ``keyed`` (10 s windows per user, through a repartition topic).

``python -m rheos run tests/kafka/workers_app.py --workers N --data-dir DIR`` runs the flow
named by ``RHEOS_TEST_KAFKA_FLOW`` (default ``stateless``) over the broker named by
``RHEOS_TEST_KAFKA`` and the topics ``<RHEOS_TEST_KAFKA_PREFIX>.events`` (read with that
prefix as the consumer group) and ``<prefix>.out`` (written keyed by user).
Events are paced a little (``RHEOS_TEST_WORKERS_PACE`` seconds every 50) so that kills land
mid-stream; the source reads 100 records at a time, as small as the test's micro-batches.
"""

from __future__ import annotations

import os
import time
from typing import Any

import rheos as rh
from rheos.connectors.kafka import KafkaSource

FLOW = "kworkers"
PARTITIONS = 6
SERVERS_ENV = "RHEOS_TEST_KAFKA"
PREFIX_ENV = "RHEOS_TEST_KAFKA_PREFIX"
FLOW_ENV = "RHEOS_TEST_KAFKA_FLOW"
PACE_ENV = "RHEOS_TEST_WORKERS_PACE"


def pace(event: Any) -> None:
    if event["i"] % 50 == 0:
        seconds = float(os.environ.get(PACE_ENV) or 0)
        if seconds:
            time.sleep(seconds)


def parse(event: Any) -> dict[str, Any]:
    """Bad events: ``d`` is 0 (division by zero) or missing (a KeyError)."""
    return {"i": event["i"], "user": event["user"], "q": 1000 // event["d"]}


def _parsed(flow: rh.Flow, servers: str, prefix: str) -> Any:
    source = KafkaSource(
        f"{prefix}.events", bootstrap_servers=servers, group=prefix, max_records=100
    )
    return flow.source(source, timestamp="ts", timestamp_unit="ms").inspect(pace).map(parse)


def stateless(servers: str, prefix: str, data_dir: str | None = None) -> rh.Flow:
    flow = rh.Flow(FLOW, data_dir=data_dir, checkpoint_interval="0.2s")
    _parsed(flow, servers, prefix).sink(
        rh.kafka_sink(f"{prefix}.out", key="user", bootstrap_servers=servers)
    )
    return flow


def keyed(servers: str, prefix: str, data_dir: str | None = None) -> rh.Flow:
    """Per user, 10 s tumbling windows of the good events: count and sum (across workers,
    through the repartition topic ``kworkers.key_by.repartition``)."""
    flow = rh.Flow(FLOW, data_dir=data_dir, checkpoint_interval="0.2s")
    (
        _parsed(flow, servers, prefix)
        .key_by("user")
        .window(rh.tumbling("10s"))
        .aggregate(n=rh.count(), total=rh.sum("q"))
        .sink(rh.kafka_sink(f"{prefix}.out", key="key", bootstrap_servers=servers))
    )
    return flow


FLOWS = {"stateless": stateless, "keyed": keyed}

if os.environ.get(SERVERS_ENV):
    flow = FLOWS[os.environ.get(FLOW_ENV, "stateless")](
        os.environ[SERVERS_ENV], os.environ[PREFIX_ENV]
    )
