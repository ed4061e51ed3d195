"""``rheos demo``, started as a new user would: a fresh data directory, a real process."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from rheos.operations.dashboard import server_file
from rheos.runtime.metrics import snapshot_path
from rheos.state import CheckpointStore, store_path
from rheos.transport import Log


def rheos(data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rheos", "--data-dir", str(data), *args]


def count(log: Log, topic: str) -> int:
    with log.reader(topic) as reader:
        return sum(1 for _ in reader.read())


def test_demo_runs_end_to_end_on_real_data(tmp_path: Path) -> None:
    proc = subprocess.run(
        rheos(tmp_path, "demo", "--month-ms", "20", "--duration", "120", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = proc.stdout
    assert "560 real monthly quotes" in out
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/", out)
    alerts = [line for line in out.splitlines() if "ALERT" in line]
    assert len(alerts) > 10
    assert len([line for line in out.splitlines() if line.strip().startswith("LATE")]) == 3
    assert "done (the data set was replayed)" in out
    assert f"alerts: {len(alerts)} (topic demo.alerts)" in out
    assert "late: 3 (topic demo.late)" in out
    assert "dead letters: 3 (topic demo.dlq" in out
    for error in ("cannot decode a json value", "raised KeyError", "'2001-13-45'"):
        assert error in out
    n_checkpoints = int(re.findall(r"checkpoints: (\d+) \(every", out)[0])
    assert n_checkpoints >= 1

    log = Log(tmp_path)
    try:
        # what was printed is also in the log (committed by the checkpoints)
        assert count(log, "demo.alerts") == len(alerts)
        assert count(log, "demo.late") == 3
        assert count(log, "demo.dlq") == 3
        with log.reader("demo.yearly") as reader:
            keys = {r.key for r in reader.read()}
        assert keys == {b"AAPL", b"AMZN", b"GOOG", b"IBM", b"MSFT"}
    finally:
        log.close()
    with CheckpointStore(store_path(tmp_path, "demo")) as store:
        kept = store.checkpoints()
    assert kept and kept[-1].kind == "drain"
    assert not server_file(tmp_path, "demo").exists()  # the server is gone with the demo
    saved = json.loads(snapshot_path(tmp_path, "demo").read_text())
    assert (saved["late"], saved["dead_lettered"], saved["running"]) == (3, 3, False)

    status = subprocess.run(
        rheos(tmp_path, "status", "demo", "--json"), capture_output=True, text=True, check=True
    )
    report = json.loads(status.stdout)
    assert report["source"] == "last run" and report["checkpoint"]["kind"] == "drain"


def test_demo_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        rheos(tmp_path, "demo", "--month-ms", "100", "--no-dashboard"),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # the flow is running once the first alert is out
        lines.append(line)
        if "ALERT" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "done (Ctrl-C)" in rest
    assert "checkpoints: " in rest
    with CheckpointStore(store_path(tmp_path, "demo")) as store:
        assert store.latest() is not None and store.latest().kind == "drain"  # type: ignore[union-attr]


def test_demo_stops_after_duration(tmp_path: Path) -> None:
    proc = subprocess.run(
        rheos(tmp_path, "demo", "--month-ms", "200", "--duration", "1", "--no-dashboard"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "done (--duration)" in proc.stdout
