"""Kafka source -> PostgreSQL sink, exactly once through kill -9: the Kafka offsets live in
rheos's checkpoint, the rows and the checkpoint id in one PostgreSQL transaction."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from tests.faults import pg_app
from tests.waiting import checkpoint_progress, wait_until

from .helpers import new_topic, produce

N = 20_000
HERE = Path(__file__).parent


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
        proc = pg_app.start(tmp_path, pg_table, kafka, topic)
        wait_until(lambda p=proc, s=seen: position()[0] > s[0] or p.poll() is not None)
        if k % 2:  # between the checkpoint's store commit and the sink's
            wait_until(lambda p=proc: pause.exists() or p.poll() is not None)
            time.sleep(0.06)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen = position()
    proc = pg_app.start(tmp_path, pg_table, kafka, topic)
    wait_until(lambda: position()[0] > seen[0] and position()[1] >= N, limit=120)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert pg_app.rows(pg_table) == sorted(expected)
