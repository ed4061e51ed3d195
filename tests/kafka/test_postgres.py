"""Kafka source -> PostgreSQL sink, exactly once through kill -9: the Kafka offsets live in
rheos's checkpoint, the rows and the checkpoint id in one PostgreSQL transaction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.faults import pg_app
from tests.waiting import checkpoint_progress, wait_until

from .helpers import new_topic, produce

N = 20_000
HERE = Path(__file__).parent


@pytest.fixture
def pg_table() -> Iterator[str]:
    conn = psycopg.connect(pg_app.DSN, autocommit=True)  # the real local server
    name = f"rheos_kafka_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE TABLE {name} (k text, n bigint, total bigint)")
    try:
        yield name
    finally:
        conn.execute(f"DROP TABLE {name}")
        conn.execute("DELETE FROM rheos_sink_progress WHERE sink = %s", (name,))
        conn.close()


def rows(name: str) -> list[tuple[str, int, int]]:
    with psycopg.connect(pg_app.DSN) as conn:
        return sorted(conn.execute(f"SELECT k, n, total FROM {name}").fetchall())


def start(data_dir: Path, name: str, kafka: str, topic: str) -> subprocess.Popen[bytes]:
    root = HERE.parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    env["RHEOS_TEST_CHECKPOINT_PAUSE"] = str(data_dir / "in-checkpoint")
    app = str(root / "tests" / "faults" / "pg_app.py")
    return subprocess.Popen(
        [sys.executable, app, str(data_dir), name, kafka, topic],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_kafka_to_postgres_exactly_once_through_kill_9(
    kafka: str, tmp_path: Path, pg_table: str
) -> None:
    topic = new_topic(kafka)
    events = [{"k": f"k{i % 13}", "v": i % 101} for i in range(N)]
    produce(kafka, topic, events)
    totals: dict[str, tuple[int, int]] = {}
    expected = []
    for e in events:
        n, t = totals.get(e["k"], (0, 0))
        totals[e["k"]] = (n + 1, t + e["v"])
        expected.append((e["k"], n + 1, t + e["v"]))

    def position() -> tuple[int, int]:
        return checkpoint_progress(tmp_path, "pg")

    pause = tmp_path / "in-checkpoint"

    for k in range(4):
        seen = position()
        proc = start(tmp_path, pg_table, kafka, topic)
        wait_until(lambda p=proc, s=seen: position()[0] > s[0] or p.poll() is not None)
        if k % 2:  # between the checkpoint's store commit and the sink's
            wait_until(lambda p=proc: pause.exists() or p.poll() is not None)
            time.sleep(0.06)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen = position()
    proc = start(tmp_path, pg_table, kafka, topic)
    wait_until(lambda: position()[0] > seen[0] and position()[1] >= N, limit=120)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert rows(pg_table) == sorted(expected)
