"""The first hour of a new user, through the command line: a fresh folder, no ``RHEOS_*``
variable, so the default data directory ``./.rheos`` is the one in use throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.waiting import wait_until

USERS = [f"u{i}" for i in range(5)]
T0 = 1_700_000_000_000

APP = """
import rheos as rh

flow = rh.Flow("clicks-per-user", checkpoint_interval="1s")
(flow.source(rh.log_source("clicks"), timestamp="ts")
    .key_by("user")
    .window(rh.tumbling("10s"))
    .aggregate(n=rh.count())
    .sink(rh.log_sink("counts")))
"""


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RHEOS_")}


def rheos(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rheos", *args],
        cwd=cwd,
        env=env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rheos", *args],
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events(n: int = 120, field: str = "ts") -> str:
    return "".join(
        json.dumps({"user": USERS[i % 5], field: T0 + i * 1_000, "amount": i}) + "\n"
        for i in range(n)
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "events.jsonl").write_text(events())
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def produce_clicks(folder: Path, partitions: int = 2) -> None:
    assert (
        rheos(folder, "topic", "create", "clicks", "--partitions", str(partitions)).returncode == 0
    )
    done = rheos(folder, "produce", "clicks", "--file", "events.jsonl", "--key", "user")
    assert done.returncode == 0, done.stderr


def consumed(folder: Path, topic: str) -> list[dict]:
    done = rheos(folder, "consume", topic, "--from", "beginning")
    if "no such topic" in done.stderr:
        return []  # nothing written yet
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["value"] for line in done.stdout.splitlines()]


def test_the_default_data_directory_checkpoints_and_keeps_status(folder: Path) -> None:
    """Items 1 and 4: a streaming run on ./.rheos checkpoints, shows as running in ``rheos
    status`` without --dashboard, and leaves its metrics and checkpoints behind."""
    produce_clicks(folder, partitions=2)
    run = start(folder, "run", "app.py")
    try:
        wait_until(
            lambda: "running (pid" in rheos(folder, "status", "clicks-per-user").stdout,
            what="rheos status to see the running flow",
        )
        wait_until(lambda: len(consumed(folder, "counts")) >= 10, what="window results")
    finally:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "checkpoints:" in out
    listing = rheos(folder, "checkpoints", "clicks-per-user")
    assert listing.returncode == 0, listing.stderr
    assert "stop" in listing.stdout
    status = rheos(folder, "status", "clicks-per-user")
    assert status.returncode == 0, status.stderr
    assert "not running; last run signal" in status.stdout
    assert (folder / ".rheos" / "flows" / "clicks-per-user" / "metrics.json").exists()


def test_an_empty_partition_does_not_hold_windows_open(folder: Path) -> None:
    """Item 3: every event in partition 0, partition 1 never gets one: a streaming run still
    closes windows (the default idle timeout), and Ctrl-C keeps the open ones in its last
    checkpoint."""
    assert rheos(folder, "topic", "create", "clicks", "--partitions", "2").returncode == 0
    done = rheos(folder, "produce", "clicks", "--file", "events.jsonl", "--partition", "0")
    assert done.returncode == 0, done.stderr
    run = start(folder, "run", "app.py")
    try:
        wait_until(lambda: len(consumed(folder, "counts")) >= 10, what="window results")
    finally:
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    # 120 s of events in 10 s windows, 5 users: two events of each user in each window; every
    # window but the last closed (the last too once the quiet source follows the clock)
    results = consumed(folder, "counts")
    assert 11 * 5 <= len(results) <= 12 * 5
    assert {r["n"] for r in results} == {2}


NOTS = """
import rheos as rh

flow = rh.Flow("nots")
(flow.source(rh.log_source("clicks"), timestamp="time")
    .key_by("user")
    .window(rh.tumbling("10s"))
    .aggregate(n=rh.count())
    .sink(rh.log_sink("nots-counts")))
"""


def test_a_run_whose_every_event_went_bad(folder: Path) -> None:
    """Items 1, 7 and 8: the dead letters of a bounded run on ./.rheos are kept (and not
    written twice by a second run); a run where every event went bad warns and exits 1."""
    produce_clicks(folder)
    (folder / "nots.py").write_text(NOTS)
    for _ in range(2):
        done = rheos(folder, "run", "nots.py", "--bounded")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "rheos: warning: flow 'nots': every one of the 120 events read went bad" in (
            done.stderr
        )
        assert "every event of flow 'nots' went bad" in done.stderr
    listing = rheos(folder, "dlq", "nots")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count("EventError") == 120
    assert "120 already there from an earlier run" in done.stdout


def test_most_events_bad_warns_but_succeeds(folder: Path) -> None:
    produce_clicks(folder)
    (folder / "mostly.py").write_text(
        NOTS.replace('timestamp="time"', 'timestamp="ts"').replace(
            '.key_by("user")',
            '.map(lambda e: e if e["amount"] % 4 == 0 else e["nope"]).key_by("user")',
        )
    )
    done = rheos(folder, "run", "mostly.py", "--bounded")
    assert done.returncode == 0, done.stderr
    assert "rheos: warning: flow 'nots': 90 of the 120 events read went bad" in done.stderr
    assert "KeyError" in done.stderr


BAD_FILE = """
import rheos as rh

flow = rh.Flow("from-file")
(flow.source(rh.jsonl_source("clicks.jsonl"), timestamp="ts")
    .key_by("user")
    .window(rh.tumbling("1h"))
    .aggregate(n=rh.count())
    .sink(rh.stdout_sink()))
"""


@pytest.mark.parametrize("mode", ["stream-first", "micro-batch"])
def test_a_bad_line_in_a_file_is_dead_lettered(folder: Path, mode: str) -> None:
    """Item 5: one bad line of a JSON-lines file is a dead letter naming file and line."""
    lines = events(20).splitlines()
    lines.insert(3, '{"user": "u1", "ts": oops}')
    (folder / "clicks.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "fromfile.py").write_text(BAD_FILE)
    done = rheos(folder, "run", "fromfile.py", "--bounded", "--mode", mode)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert sum(r["n"] for r in results) == 20
    listing = rheos(folder, "dlq", "from-file")
    assert "clicks.jsonl/0@4" in listing.stdout
    assert "cannot decode JSON in clicks.jsonl line 4" in listing.stdout


def test_errors_are_messages_not_tracebacks(folder: Path) -> None:
    """Item 6 and 8: a flow file with a syntax error, a missing input file, a missing topic,
    an unknown flow's dead letters: one line each, and a non-zero exit."""
    (folder / "syntax.py").write_text('import rheos as rh\nflow = rh.Flow("x"\n')
    (folder / "missing.py").write_text(BAD_FILE.replace("clicks.jsonl", "nowhere.jsonl"))
    cases = [
        (("run", "syntax.py"), "syntax.py line 2: '(' was never closed"),
        (("run", "missing.py"), "no such file: nowhere.jsonl"),
        (("produce", "nosuch", "--file", "events.jsonl"), "--create-partitions"),
        (("dlq", "nosuch"), "flow 'nosuch' has no dead letters"),
    ]
    for args, message in cases:
        done = rheos(folder, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)


def test_help_is_plain_text_and_says_what_it_means(folder: Path) -> None:
    """Item 8: no reST markup in help; ``dlq --help`` is about dead letters only; ``replay
    --from`` says it is the checkpoint's wall-clock time."""
    for args in (("--help",), ("dlq", "--help"), ("replay", "--help"), ("run", "--help")):
        done = rheos(folder, *args)
        assert done.returncode == 0
        assert (
            ":func:" not in done.stdout and ":mod:" not in done.stdout and "``" not in (done.stdout)
        )
    dlq = rheos(folder, "dlq", "--help").stdout
    assert "rheos checkpoints FLOW lists" not in dlq and "--latest" not in dlq
    replay = " ".join(rheos(folder, "replay", "--help").stdout.split())
    assert "wall-clock time" in replay and "not event time" in replay


def test_a_flow_without_a_sink_says_so(folder: Path) -> None:
    (folder / "nosink.py").write_text(
        "import rheos as rh\nflow = rh.Flow('quiet')\n"
        "flow.source(rh.jsonl_source('events.jsonl')).map(lambda e: e)\n"
    )
    done = rheos(folder, "run", "nosink.py", "--bounded")
    assert done.returncode == 0, done.stderr
    assert "rheos: warning: flow 'quiet' has no sink" in done.stderr


def test_replayed_dead_letters_reach_the_output(folder: Path) -> None:
    """Item 8: ``rheos dlq APP --replay`` of a streaming flow: the fixed events join the
    state of its checkpoint and their windows emit on its next run, or at once with
    --drain; a bounded-only flow is told to run again instead."""
    produce_clicks(folder, partitions=1)
    waiting = APP.replace('timestamp="ts"', 'timestamp="ts", idle_timeout=None')
    broken = waiting.replace(
        '.key_by("user")',
        '.map(lambda e: e if e["amount"] < 110 or e["amount"] % 2 else e["x"]).key_by("user")',
    )
    (folder / "app.py").write_text(broken)
    run = start(folder, "run", "app.py")
    try:  # the windows before 110 s close; the last one stays open (its events are later)
        wait_until(lambda: len(consumed(folder, "counts")) >= 11 * 5, what="window results")
    finally:
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=60)
    assert sum(r["n"] for r in consumed(folder, "counts")) == 110
    (folder / "app.py").write_text(waiting)
    done = rheos(folder, "dlq", "app.py", "--replay", "--drain")
    assert done.returncode == 0, done.stderr
    last = [r for r in consumed(folder, "counts") if r["window_start"] == T0 + 110_000]
    assert sorted((r["key"], r["n"]) for r in last) == [(u, 2) for u in USERS]
    (folder / "nots.py").write_text(NOTS)
    rheos(folder, "run", "nots.py", "--bounded")
    refused = rheos(folder, "dlq", "nots.py", "--replay")
    assert refused.returncode == 2
    assert "Run the flow again over its input" in refused.stderr
