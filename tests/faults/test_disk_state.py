"""Keyed state on disk under ``kill -9``: a flow with ``state="disk"`` (a cache far smaller
than its keys, so most state is in the file) killed between checkpoints and inside one --
after the state file has committed a checkpoint the checkpoint store has not yet written --
restarts to the committed output of an uninterrupted in-memory run (timers due at the same
time may fire in another order after a restore, with either backend)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.faults import disk_state_app as app
from tests.waiting import checkpoint_progress, wait_until

import rheos as rh
from rheos.state.disk import STATE_FILE
from rheos.state.store import state_dir

HERE = Path(__file__).parent


def committed(data_dir: Path, topic: str) -> list[tuple[bytes | None, bytes]]:
    with rh.Log(data_dir).reader(topic) as reader:
        return [(record.key, record.value) for record in reader.read()]


def progress(data_dir: Path) -> tuple[int, int]:
    return checkpoint_progress(data_dir, "disk")


def state_file_checkpoint(data_dir: Path) -> int:
    """The checkpoint the disk state file last committed."""
    db = sqlite3.connect(state_dir(data_dir, "disk") / STATE_FILE)
    try:
        (cid,) = db.execute("SELECT id FROM checkpoint").fetchone()
    finally:
        db.close()
    return int(cid)


def start(data_dir: Path, pause: Path | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent / "src"), str(HERE.parent.parent)]),
    }
    if pause is not None:  # each checkpoint waits inside the store's transaction
        env["RHEOS_TEST_CHECKPOINT_PAUSE"] = str(pause)
        env["RHEOS_TEST_CHECKPOINT_PAUSE_S"] = "0.5"
    with (data_dir / "stderr.txt").open("ab") as errors:
        return subprocess.Popen(
            [sys.executable, str(HERE / "disk_state_app.py"), str(data_dir)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )


def kill(data_dir: Path, proc: subprocess.Popen[bytes]) -> None:
    assert proc.poll() is None, (data_dir / "stderr.txt").read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_kill_9_between_and_inside_checkpoints_restores_the_last_one_exactly(
    tmp_path: Path,
) -> None:
    reference = tmp_path / "reference"
    app.write_events(reference)
    app.build(str(reference), state="memory", paced=False).run(stop_after=app.N)
    expected = {topic: committed(reference, topic) for topic in app.OUTPUTS}
    assert all(expected.values())

    data_dir = tmp_path / "run"
    app.write_events(data_dir)
    errors = data_dir / "stderr.txt"
    rnd = random.Random(7)
    # 1. between two checkpoints: what the cache wrote back since the last one is dropped
    proc = start(data_dir)
    wait_until(lambda: progress(data_dir)[0] >= 1 or proc.poll() is not None)
    time.sleep(rnd.uniform(0.1, 0.3))
    kill(data_dir, proc)
    # 2. inside this run's first checkpoint: the state file has committed it, the store not
    pause = data_dir / "in-checkpoint"
    proc = start(data_dir, pause)
    wait_until(lambda: pause.exists() or proc.poll() is not None)
    kill(data_dir, proc)
    latest, position = progress(data_dir)
    assert 0 < position < app.N  # killed mid-stream
    assert state_file_checkpoint(data_dir) == latest + 1  # the next run rolls forward
    # 3. to the end, then stopped
    proc = start(data_dir)
    try:
        wait_until(
            lambda: progress(data_dir)[1] >= app.N or proc.poll() is not None,
            "a checkpoint past the last event",
            limit=120,
        )
        assert proc.poll() is None, errors.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, errors.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert progress(data_dir)[0] == state_file_checkpoint(data_dir)
    for topic in ("windows", "sessions"):
        assert committed(data_dir, topic) == expected[topic], topic
    # timers due at the same time fire in no set order (a restore re-registers them)
    assert sorted(committed(data_dir, "quiet")) == sorted(expected["quiet"])
