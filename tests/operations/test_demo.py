"""``rheos demo``, started as a new user would: a fresh data directory, a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rheos.transport import Log


def test_demo_runs_end_to_end_on_real_data(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rheos", "--data-dir", str(tmp_path), "demo", "--month-ms", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = proc.stdout
    assert "560 real monthly quotes" in out
    alerts = [line for line in out.splitlines() if "ALERT" in line]
    assert len(alerts) > 10
    assert "done: 560 quotes in" in out
    log = Log(tmp_path)
    # what was printed is also in the log, keyed by symbol
    with log.reader("demo.alerts") as reader:
        assert sum(1 for _ in reader.read()) == len(alerts)
    with log.reader("demo.yearly") as reader:
        rows = list(reader.read())
    assert {r.key for r in rows} == {b"AAPL", b"AMZN", b"GOOG", b"IBM", b"MSFT"}
