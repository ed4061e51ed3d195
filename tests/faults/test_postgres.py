"""The PostgreSQL sink against a real server: exactly once through kill -9."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import msgspec
import pytest
from tests.faults import pg_app
from tests.waiting import checkpoint_progress, wait_until

import rheos as rh

N = 30_000
HERE = Path(__file__).parent


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


@pytest.mark.slow
def test_rows_land_exactly_once_through_kill_9(tmp_path: Path, pg_table: str) -> None:
    table = pg_table
    expected = write_events(tmp_path)
    for k in range(4):
        seen = position(tmp_path)
        proc = pg_app.start(tmp_path, table)
        wait_until(lambda p=proc, s=seen: position(tmp_path)[0] > s[0] or p.poll() is not None)
        if k % 2:  # kill between the checkpoint's store commit and the sink's commit
            wait_until(lambda p=proc: (tmp_path / "in-checkpoint").exists() or p.poll() is not None)
            time.sleep(0.06)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen = position(tmp_path)
    proc = pg_app.start(tmp_path, table)
    wait_until(lambda: position(tmp_path)[0] > seen[0] and position(tmp_path)[1] >= N)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert pg_app.rows(table) == expected


def test_without_checkpoints_rows_are_inserted_at_every_flush(
    tmp_path: Path, pg_table: str
) -> None:
    table = pg_table
    expected = write_events(tmp_path)
    flow = pg_app.build(str(tmp_path), table)
    summary = flow.run(bounded=True)
    assert summary.events_out == N and pg_app.rows(table) == expected
