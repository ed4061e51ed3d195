"""Kill -9 at random moments, restart, and get exactly the output of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from tests.faults import chaos_app
from tests.waiting import checkpoint_progress, wait_until

import rheos as rh
from rheos.runtime import MODE_ENV
from rheos.state import CheckpointStore, store_path

N = 200_000
KILLS = 12
HERE = Path(__file__).parent


def write_events(data_dir: Path, n: int, seed: int = 11) -> None:
    rnd = random.Random(seed)
    log = rh.Log(data_dir)
    log.create_topic(chaos_app.EVENTS, 1)
    encode = msgspec.json.encode
    with log.producer(chaos_app.EVENTS) as producer:
        batch = []
        for i in range(n):
            ts = 1_700_000_000_000 + i * 5 - (rnd.randint(0, 1500) if rnd.random() < 0.1 else 0)
            event = {"i": i, "key": f"k{rnd.randrange(300)}", "ts": ts, "v": rnd.randint(-9, 99)}
            batch.append(encode(event))
            if len(batch) == 20_000:
                producer.append(batch)
                batch = []
        if batch:
            producer.append(batch)


def committed(data_dir: Path, topic: str) -> dict[int, list[tuple[bytes | None, bytes]]]:
    log = rh.Log(data_dir)
    out: dict[int, list[tuple[bytes | None, bytes]]] = {}
    with log.reader(topic) as reader:
        for record in reader.read():
            out.setdefault(record.partition, []).append((record.key, record.value))
    return out


def progress(data_dir: Path) -> tuple[int, int]:
    return checkpoint_progress(data_dir, "chaos")


def start(data_dir: Path, pause_file: Path, log: Path, mode: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        MODE_ENV: mode,
        "RHEOS_TEST_CHECKPOINT_PAUSE": str(pause_file),
        "RHEOS_TEST_CHECKPOINT_PAUSE_S": "0.05",
        "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent / "src"), str(HERE.parent.parent)]),
    }
    with log.open("ab") as errors:
        return subprocess.Popen(
            [sys.executable, str(HERE / "chaos_app.py"), str(data_dir)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )


MODES = ("stream-first", "micro-batch")


def chaos_run(data_dir: Path, kills: int, seed: int) -> int:
    """Run the app, SIGKILL it ``kills`` times (some inside a checkpoint), then let it
    finish and stop it; return how many kills landed inside a checkpoint. The runs
    alternate between the two runtime modes."""
    rnd = random.Random(seed)
    pause = data_dir / "in-checkpoint"
    errors = data_dir / "stderr.txt"
    inside = 0
    positions: list[int] = []
    for k in range(kills):
        pause.unlink(missing_ok=True)
        last = progress(data_dir)
        proc = start(data_dir, pause, errors, MODES[k % 2])
        # once this process has restored and checkpointed progress of its own:
        wait_until(
            lambda p=proc, seen=last: progress(data_dir)[0] > seen[0] or p.poll() is not None
        )
        if k % 3 == 1:  # inside a checkpoint's transaction
            pause.unlink(missing_ok=True)
            wait_until(lambda p=proc: pause.exists() or p.poll() is not None)
            inside += 1
        else:
            time.sleep(rnd.uniform(0.0, 0.4))
        assert proc.poll() is None, errors.read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        positions.append(progress(data_dir)[1])
    before = progress(data_dir)[0]
    proc = start(data_dir, pause, errors, MODES[kills % 2])
    try:  # wait for a checkpoint of this process (its handlers are in place) past the end
        wait_until(
            lambda: (
                (progress(data_dir)[0] > before and progress(data_dir)[1] >= N)
                or proc.poll() is not None
            ),
            limit=120,
        )
        assert proc.poll() is None, errors.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, errors.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    mid_stream = [p for p in positions if 0 < p < N]
    assert len(mid_stream) >= kills // 2, positions  # most kills interrupted the work
    return inside


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """Killed in either mode (the runs alternate; micro-batch: batches of 10,000 read and
    decoded ahead; each run resumes from the other mode's checkpoint), the committed output
    is exactly that of one uninterrupted stream-first run."""
    reference, chaos = tmp_path / "reference", tmp_path / "chaos"
    for d in (reference, chaos):
        write_events(d, N)
    summary = chaos_app.build(str(reference)).run(stop_after=N)
    assert summary.events_in == N and summary.checkpoints.count >= 1
    expected = {t: committed(reference, t) for t in ("windows", "running")}
    assert sum(map(len, expected["running"].values())) == N

    inside = chaos_run(chaos, KILLS, seed=5)
    assert inside >= 3
    with CheckpointStore(store_path(chaos, "chaos")) as store:
        assert len(store.checkpoints()) <= 3 + len(store.pins())
    for topic in ("windows", "running"):
        assert committed(chaos, topic) == expected[topic], topic
    assert not rh.Log(chaos).has_topic("chaos.dlq")
