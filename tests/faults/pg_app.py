"""The flow of the PostgreSQL crash tests: events -> running totals -> a PostgreSQL table.

``python pg_app.py DATA_DIR TABLE [BOOTSTRAP_SERVERS TOPIC]`` runs it until SIGTERM: over the
log topic ``events``, or over a Kafka topic.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

import rheos as rh
from rheos.connectors.postgres import postgres_sink

DSN = "host=127.0.0.1 port=5432 user=rheos password=rheos dbname=test"


def build(data_dir: str, table: str, kafka: tuple[str, str] | None = None) -> rh.Flow:
    flow = rh.Flow("pg", data_dir=data_dir, checkpoint_interval="0.1s")
    source = (
        rh.log_source("events")
        if kafka is None
        else rh.kafka_source(kafka[1], bootstrap_servers=kafka[0], start="beginning")
    )
    (
        flow.source(source)
        .key_by("k")
        .aggregate(total=rh.sum("v"), n=rh.count())
        .map(lambda r: {"k": r["key"], "n": r["n"], "total": r["total"]})
        .sink(postgres_sink(DSN, table))
    )
    return flow


def rows(table: str) -> list[tuple[str, int, int]]:
    """The table's rows, sorted."""
    with psycopg.connect(DSN) as conn:
        return sorted(conn.execute(f"SELECT k, n, total FROM {table}").fetchall())


def start(data_dir: Path, table: str, *kafka: str) -> subprocess.Popen[bytes]:
    """This app in a process of its own (``kafka``: bootstrap servers and topic), its
    checkpoints pausing inside their transaction for the crash tests."""
    root = Path(__file__).resolve().parent.parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    env["RHEOS_TEST_CHECKPOINT_PAUSE"] = str(data_dir / "in-checkpoint")
    return subprocess.Popen(
        [sys.executable, __file__, str(data_dir), table, *kafka],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    kafka = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else None
    build(sys.argv[1], sys.argv[2], kafka).run()
