"""The soak benchmark for one minute: a live feed through ``rheos produce``, the flow killed
with SIGKILL every 20 s and restarted; its committed output equals an uninterrupted
run's, and its memory stays flat (benchmarks/soak.py runs the same for ten minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.slow
def test_one_minute_of_soak_with_kill_9(tmp_path: Path) -> None:
    results = tmp_path / "soak.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RHEOS_")}
    args = ["--seconds", "60", "--rate", "10000", "--kill-every", "20", "--results", str(results)]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), *args],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "windows equal to an uninterrupted run: True" in done.stdout
    assert "alerts equal to an uninterrupted run:  True" in done.stdout
    assert "memory flat (last quarter <= 1.25x second): True" in done.stdout
    samples = json.loads(results.read_text())["samples"]
    assert samples[-1]["kills"] == 2
    assert any(s["committed_p99_ms"] is not None for s in samples)
