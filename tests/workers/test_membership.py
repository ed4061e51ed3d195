"""Workers of one flow: a dead worker's tasks are taken over, a worker that joins takes a
share without stopping the others, and ``rheos status`` shows them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.waiting import wait_until
from tests.workers import app
from tests.workers.helpers import (
    ROOT,
    committed,
    events,
    kill,
    start,
    stop,
    workers,
    write_events,
)

from rheos.operations.dashboard import FlowServer

N = 12_000


def tasks_of(data_dir: Path) -> dict[str, list[int]]:
    return {w["id"]: list(w.get("tasks", [])) for w in workers(data_dir)}


def shared(data_dir: Path, n: int) -> bool:
    """``n`` live workers, every task claimed, none over its fair share."""
    owned = tasks_of(data_dir)
    every = sorted(t for tasks in owned.values() for t in tasks)
    share = -(-app.PARTITIONS // n)
    return (
        len(owned) == n and every == list(range(6)) and all(len(t) <= share for t in owned.values())
    )


def status(data_dir: Path) -> tuple[str, dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "rheos", "status", app.FLOW, "--data-dir", str(data_dir)]
    text = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    raw = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=env, check=True)
    return text, json.loads(raw.stdout)


def dashboard_metrics(data_dir: Path) -> dict[str, Any]:
    """What the dashboard of the flow polls (``api/metrics``), served over this data dir."""
    with FlowServer(app.FLOW, dict, data_dir=data_dir, port=0) as server:
        with urllib.request.urlopen(server.url + "api/metrics", timeout=10) as response:
            data = json.loads(response.read())
        with urllib.request.urlopen(server.url, timeout=10) as response:
            assert b'id="workers-section"' in response.read()
    return data  # type: ignore[no-any-return]


def test_takeover_join_and_status(tmp_path: Path) -> None:
    write_events(tmp_path, N)
    first = start(tmp_path, 2, "stream-first", "stateless", pace=0.1)
    second = None
    try:
        wait_until(lambda: shared(tmp_path, 2), "2 workers sharing the tasks")
        victim, survivor = sorted(workers(tmp_path), key=lambda w: w["id"])
        kill(int(victim["pid"]))
        # the survivor and the replacement take the dead worker's tasks over
        wait_until(lambda: len(events(tmp_path, "took over")) >= 1, "a takeover")
        wait_until(lambda: shared(tmp_path, 2), "2 workers sharing the tasks again")
        assert {e["previous"] for e in events(tmp_path, "took over")} == {victim["id"]}
        assert len(events(tmp_path, "died")) == 1

        # one more worker, started on its own (as on another machine): it gets a share
        second = start(tmp_path, 1, "stream-first", "stateless", pace=0.1)
        wait_until(lambda: shared(tmp_path, 3), "3 workers sharing the tasks")
        assert survivor["id"] in tasks_of(tmp_path)  # nobody was stopped for it
        assert len(events(tmp_path, "died")) == 1

        text, data = status(tmp_path)
        split = data["split"]
        assert isinstance(split, dict)
        assert len(split["workers"]) == 3
        assert sorted(t["task"] for t in split["tasks"]) == list(range(6))
        assert all(t["worker"] is not None for t in split["tasks"])
        assert "3 live workers, 6 tasks" in text
        assert "took over" in text and survivor["id"] in text
        served = dashboard_metrics(tmp_path)
        assert len(served["split"]["workers"]) == 3  # the dashboard's Workers section

        want = N - sum(1 for i in range(N) if i % 97 == 13 or i % 89 == 5)
        wait_until(lambda: sum(committed(tmp_path, "out").values()) >= want, limit=120)

        # the first command dies: its workers notice, stop, and the last worker takes all
        kill(first.pid)
        first.wait()
        wait_until(lambda: shared(tmp_path, 1), "the last worker running every task")
        assert [w["pid"] for w in workers(tmp_path)] == [second.pid]
    finally:
        for proc in (second, first):
            if proc is not None and proc.poll() is None:
                stop(proc, tmp_path)
    out = committed(tmp_path, "out")
    assert sum(out.values()) == len(out) == want  # each event once
