"""A dead letter covered by a checkpoint whose sink commit a crash interrupted becomes visible
in the next run, even when that run has no bad event of its own (its dead-letter topic is
never opened): recovery finishes the commit of every topic the checkpoint prepared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
from tests.waiting import checkpoint_progress, wait_until

import rheos as rh
from rheos.runtime.deadletters import read_dead_letters

ROOT = Path(__file__).parent.parent.parent
APP = """
import sys
from pathlib import Path
from tests.faults.test_dead_letter_commit import build

build(Path(sys.argv[1])).run()
"""


def build(data_dir: Path) -> rh.Flow:
    flow = rh.Flow("dl", data_dir=data_dir, checkpoint_interval="0.1s")
    (
        flow.source(rh.log_source("in"), timestamp="t", timestamp_unit="ms")
        .map(lambda e: {**e, "half": 100 // e["d"]})
        .sink(rh.log_sink("out"))
    )
    return flow


def append(log: rh.Log, events: list[dict[str, int]]) -> None:
    with log.producer("in") as producer:
        producer.append([msgspec.json.encode(e) for e in events])


def test_a_crash_between_the_checkpoint_and_its_commit_loses_no_dead_letter(
    tmp_path: Path,
) -> None:
    log = rh.Log(tmp_path)
    log.create_topic("in", 1)
    append(log, [{"t": 1_000 + i, "d": 0 if i == 3 else 1} for i in range(10)])  # one bad
    app = tmp_path / "app.py"
    app.write_text(APP)
    pause = tmp_path / "in-checkpoint"
    env = {
        **os.environ,
        "RHEOS_TEST_CHECKPOINT_PAUSE": str(pause),
        "RHEOS_TEST_CHECKPOINT_PAUSE_S": "2",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    proc = subprocess.Popen([sys.executable, str(app), str(tmp_path)], env=env)
    try:
        # the first checkpoint pauses inside its transaction (the pause file appears), commits
        # in the store, then pauses again before committing its sinks: kill it there
        wait_until(lambda: pause.exists() or proc.poll() is not None, "a checkpoint")
        wait_until(
            lambda: checkpoint_progress(tmp_path, "dl")[1] == 10 or proc.poll() is not None,
            "the checkpoint stored",
        )
        assert proc.poll() is None and pause.exists()  # its sinks not committed yet
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(read_dead_letters(rh.Log(tmp_path), "dl")) == []  # prepared, not visible

    append(log, [{"t": 2_000 + i, "d": 1} for i in range(5)])  # no bad event this time
    summary = build(tmp_path).run(stop_after=5)
    assert summary.dead_lettered == {}
    letters = list(read_dead_letters(rh.Log(tmp_path), "dl"))
    assert [(x.step, x.error_type, x.event_time) for x in letters] == [
        ("map", "UserFunctionError", 1_003)
    ]
    with rh.Log(tmp_path).reader("out") as reader:
        assert len(list(reader.read())) == 14  # the nine good ones of the crashed run, once
