"""Starting ``rheos run --workers``, reading what workers say of themselves, and the output."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from tests.workers import app

import rheos as rh
from rheos.runtime import MODE_ENV
from rheos.runtime.deadletters import read_dead_letters
from rheos.runtime.workers.membership import read_events, worker_statuses
from rheos.state import CheckpointStore, store_path

ROOT = Path(__file__).parent.parent.parent
APP = Path(__file__).parent / "app.py"
RUN = (sys.executable, "-m", "rheos", "run")


def write_events(data_dir: Path, n: int, *, seed: int = 5) -> int:
    """``n`` events in ``events`` (6 partitions, keyed by user); returns how many are bad."""
    rnd = random.Random(seed)
    log = rh.Log(data_dir)
    log.create_topic(app.EVENTS, app.PARTITIONS, exist_ok=True)
    encode = msgspec.json.encode
    bad = 0
    values, keys = [], []
    for i in range(n):
        user = f"u{rnd.randrange(500)}"
        event: dict[str, Any] = {
            "i": i,
            "user": user,
            "ts": 1_700_000_000_000 + i * 10,
            "d": rnd.randint(1, 9),
            "profile": {"name": f"user {user}", "tags": ["a", "b"], "score": rnd.random()},
        }
        if i % 97 == 13:
            event["d"] = 0
            bad += 1
        elif i % 89 == 5:
            del event["d"]
            bad += 1
        values.append(encode(event))
        keys.append(user.encode())
    with log.producer(app.EVENTS) as producer:  # small record batches, as a live stream has
        for i in range(0, n, 300):
            producer.append(values[i : i + 300], keys=keys[i : i + 300])
    log.close()
    return bad


def start(
    data_dir: Path,
    workers: int,
    mode: str,
    flow: str,
    *,
    pace: float = 0.15,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """``rheos run app.py --workers N`` in its own process; its stderr goes to a file."""
    env = {
        **os.environ,
        MODE_ENV: mode,
        "RHEOS_TEST_WORKERS_FLOW": flow,
        app.PACE_ENV: str(pace),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    if mode == "micro-batch":
        extra = ("--batch-size", "100", *extra)
    with (data_dir / "stderr.txt").open("ab") as errors:
        return subprocess.Popen(
            [*RUN, str(APP), "--workers", str(workers), "--data-dir", str(data_dir), *extra],
            env=env,
            stdout=errors,
            stderr=errors,
        )


def caught_up(data_dir: Path) -> bool:
    """Whether every task's latest checkpoint has read its partition of ``events`` to the end
    (its output up to there is then committed, or will be by the stop's checkpoint)."""
    log = rh.Log(data_dir)
    try:
        with log.reader(app.EVENTS) as reader:
            ends = reader.end_offsets()
    finally:
        log.close()
    return tasks_read_to(data_dir, app.FLOW, ends)


def tasks_read_to(data_dir: Path, flow: str, ends: dict[int, int]) -> bool:
    """Whether the latest checkpoint of each task ``p`` of ``ends`` has read its source's
    partition ``p`` to ``ends[p]``."""
    for task, end in ends.items():
        path = store_path(data_dir, flow, task)
        if not path.exists():
            return False
        with CheckpointStore(path) as store:
            latest = store.latest()
        if latest is None:
            return False
        positions = latest.meta["sources"]["source"]["positions"]
        if int(positions.get(str(task), positions.get(task, 0))) < end:
            return False
    return True


def stop(proc: subprocess.Popen[bytes], data_dir: Path) -> None:
    """SIGTERM the supervisor; it stops its workers at a checkpoint and exits."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    assert code in (0, 130), (data_dir / "stderr.txt").read_text()


def workers(data_dir: Path) -> list[dict[str, Any]]:
    return worker_statuses(str(data_dir), app.FLOW)


def events(data_dir: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_events(str(data_dir), app.FLOW, last=1000) if e["event"] == kind]


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def committed(data_dir: Path, topic: str) -> Counter[bytes]:
    """The committed records of ``topic``, as a multiset of values."""
    log = rh.Log(data_dir)
    try:
        if not log.has_topic(topic):
            return Counter()
        with log.reader(topic) as reader:
            return Counter(record.value for record in reader.read())
    finally:
        log.close()


def dead_letters(data_dir: Path) -> Counter[tuple[Any, ...]]:
    """The committed dead letters of the flow: source position, step and value."""
    log = rh.Log(data_dir)
    try:
        out: Counter[tuple[Any, ...]] = Counter()
        for letter in read_dead_letters(log, app.FLOW):
            where = (letter.source_topic, letter.source_partition, letter.source_offset)
            out[(*where, letter.step, letter.value)] += 1
        return out
    finally:
        log.close()


def as_json(values: Counter[bytes]) -> list[Any]:
    return sorted(json.loads(v)["i"] for v in values.elements())
