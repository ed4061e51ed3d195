"""The PostgreSQL sink against a real server: exactly once through kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import psycopg
import pytest
from tests.faults import pg_app
from tests.waiting import checkpoint_progress, wait_until

import rheos as rh

N = 30_000
HERE = Path(__file__).parent


@pytest.fixture
def table() -> Iterator[str]:
    conn = psycopg.connect(pg_app.DSN, autocommit=True)  # the real local server
    name = f"rheos_test_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE TABLE {name} (k text, n bigint, total bigint)")
    try:
        yield name
    finally:
        conn.execute(f"DROP TABLE {name}")
        conn.execute("DELETE FROM rheos_sink_progress WHERE sink = %s", (name,))
        conn.close()


def rows(table: str) -> list[tuple[str, int, int]]:
    with psycopg.connect(pg_app.DSN) as conn:
        return sorted(conn.execute(f"SELECT k, n, total FROM {table}").fetchall())


def write_events(data_dir: Path) -> list[tuple[str, int, int]]:
    log = rh.Log(data_dir)
    log.create_topic("events", 1)
    events = [{"k": f"k{i % 13}", "v": i % 101} for i in range(N)]
    with log.producer("events") as p:
        p.append([msgspec.json.encode(e) for e in events])
    totals: dict[str, tuple[int, int]] = {}
    expected = []
    for e in events:
        n, t = totals.get(e["k"], (0, 0))
        totals[e["k"]] = (n + 1, t + e["v"])
        expected.append((e["k"], n + 1, t + e["v"]))
    return sorted(expected)


def position(data_dir: Path) -> tuple[int, int]:
    return checkpoint_progress(data_dir, "pg")


def start(data_dir: Path, table: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent / "src")])}
    env["RHEOS_TEST_CHECKPOINT_PAUSE"] = str(data_dir / "in-checkpoint")
    return subprocess.Popen(
        [sys.executable, str(HERE / "pg_app.py"), str(data_dir), table],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_rows_land_exactly_once_through_kill_9(tmp_path: Path, table: str) -> None:
    expected = write_events(tmp_path)
    for k in range(4):
        seen = position(tmp_path)
        proc = start(tmp_path, table)
        wait_until(lambda p=proc, s=seen: position(tmp_path)[0] > s[0] or p.poll() is not None)
        if k % 2:  # kill between the checkpoint's store commit and the sink's commit
            wait_until(lambda p=proc: (tmp_path / "in-checkpoint").exists() or p.poll() is not None)
            time.sleep(0.06)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen = position(tmp_path)
    proc = start(tmp_path, table)
    wait_until(lambda: position(tmp_path)[0] > seen[0] and position(tmp_path)[1] >= N)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert rows(table) == expected


def test_without_checkpoints_rows_are_inserted_at_every_flush(tmp_path: Path, table: str) -> None:
    expected = write_events(tmp_path)
    flow = pg_app.build(str(tmp_path), table)
    summary = flow.run(bounded=True)
    assert summary.events_out == N and rows(table) == expected
