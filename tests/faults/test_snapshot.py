"""Forked snapshots (rheos.runtime.snapshot): the same checkpoints as the in-process path, a
failed snapshot process's keys in the next checkpoint, and a kill -9 of the flow while its
snapshot process writes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.faults import snapshot_app
from tests.waiting import wait_until

import rheos as rh
from rheos.runtime import MODE_ENV
from rheos.runtime.snapshot import HOLD_ENV, SNAPSHOT_ENV
from rheos.state import CheckpointStore, store_path

HERE = Path(__file__).parent


@pytest.fixture(params=["stream-first", "micro-batch"])
def run_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(MODE_ENV, request.param)
    return str(request.param)


def stored_state(data_dir: Path) -> list[tuple[str, bytes, bytes, int]]:
    """The latest checkpoint's rows as SQLite holds them (bytes), and which checkpoint
    wrote each."""
    with CheckpointStore(store_path(data_dir, "snap")) as store:
        latest = store.latest()
    assert latest is not None
    db = sqlite3.connect(store_path(data_dir, "snap"))
    try:
        rows = db.execute(
            "SELECT op, key, value, MAX(ckpt) FROM state WHERE ckpt <= ? GROUP BY op, key "
            "ORDER BY op, key",
            (latest.id,),
        ).fetchall()
    finally:
        db.close()
    return [(op, key, value, ckpt) for op, key, value, ckpt in rows if value is not None]


def kinds(data_dir: Path) -> dict[int, str]:
    with CheckpointStore(store_path(data_dir, "snap")) as store:
        return {c.id: c.kind for c in store.checkpoints()}


def run_to_end(data_dir: Path, snapshot: str, monkeypatch: pytest.MonkeyPatch) -> rh.RunSummary:
    monkeypatch.setenv(SNAPSHOT_ENV, snapshot)
    snapshot_app.write_events(data_dir)
    return snapshot_app.build(str(data_dir)).run(stop_after=snapshot_app.N)


def test_forked_snapshots_store_what_the_inline_path_stores(
    tmp_path: Path, run_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Window, process (state and timers) and join state: the keys whose final state a
    periodic (forked) checkpoint wrote are byte for byte what the in-process path stores,
    and so is every operator's meta."""
    forked = run_to_end(tmp_path / "fork", "fork", monkeypatch)
    inline = run_to_end(tmp_path / "inline", "inline", monkeypatch)
    assert forked.checkpoints.failures == 0
    for summary in (forked, inline):
        assert any(h["kind"] == "periodic" for h in summary.checkpoints.history)
    got, want = stored_state(tmp_path / "fork"), stored_state(tmp_path / "inline")
    assert [row[:3] for row in got] == [row[:3] for row in want]
    ops = {row[0] for row in got}
    assert len(ops) == 3, ops  # the window, the process step, the join
    # the a* keys stopped changing halfway: a periodic checkpoint wrote their final state
    periodic = {c for c, kind in kinds(tmp_path / "fork").items() if kind == "periodic"}
    by_periodic = {row[0] for row in got if row[3] in periodic}
    assert by_periodic == ops
    with (
        CheckpointStore(store_path(tmp_path / "fork", "snap")) as a,
        CheckpointStore(store_path(tmp_path / "inline", "snap")) as b,
    ):
        meta_a, meta_b = a.latest(), b.latest()
        assert meta_a is not None and meta_b is not None
        assert meta_a.meta["operators"] == meta_b.meta["operators"]
    assert not list((tmp_path / "fork" / "flows" / "snap").glob("snapshot-*"))


def start(data_dir: Path, hold: Path | None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        SNAPSHOT_ENV: "fork",
        "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent / "src"), str(HERE.parent.parent)]),
    }
    env.pop(HOLD_ENV, None)
    if hold is not None:
        hold.mkdir(exist_ok=True)
        env[HOLD_ENV] = str(hold)
    with (data_dir / "stderr.txt").open("ab") as errors:
        return subprocess.Popen(
            [sys.executable, str(HERE / "snapshot_app.py"), str(data_dir)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )


def children(hold: Path) -> list[int]:
    return [int(p.name.split("-")[1]) for p in hold.glob("child-*")]


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaped counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def progress(data_dir: Path) -> tuple[int, int]:
    path = store_path(data_dir, "snap")
    if not path.exists():
        return 0, 0
    with CheckpointStore(path) as store:
        latest = store.latest()
    if latest is None:
        return 0, 0
    (source,) = latest.meta["sources"].values()
    return latest.id, int(source["positions"][0])


def finish(data_dir: Path, proc: subprocess.Popen[bytes]) -> None:
    """Let ``proc`` checkpoint past the last event, then stop it with SIGTERM."""
    errors = data_dir / "stderr.txt"
    try:
        wait_until(
            lambda: progress(data_dir)[1] >= snapshot_app.N or proc.poll() is not None,
            "a checkpoint past the last event",
        )
        assert proc.poll() is None, errors.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, errors.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bytes, bytes]]:
    monkeypatch.setenv(SNAPSHOT_ENV, "inline")
    data_dir = tmp_path / "reference"
    snapshot_app.write_events(data_dir, distinct=True)
    snapshot_app.build(str(data_dir)).run(stop_after=snapshot_app.N)
    return [row[:3] for row in stored_state(data_dir)]


@pytest.mark.slow
def test_a_killed_snapshot_process_leaves_its_keys_to_the_next_checkpoint(
    tmp_path: Path, run_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first snapshot process is killed with SIGKILL: the flow goes on, and since every
    key is changed once only, only the failed snapshot's keys given back to the nodes put
    them in a later checkpoint."""
    data_dir, hold = tmp_path / "run", tmp_path / "hold"
    snapshot_app.write_events(data_dir, distinct=True)
    proc = start(data_dir, hold)
    wait_until(lambda: children(hold) or proc.poll() is not None, "a snapshot process")
    assert proc.poll() is None, (data_dir / "stderr.txt").read_text()
    (first,) = children(hold)
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: gone(first), "the snapshot process to end")
    (hold / "release").touch()
    finish(data_dir, proc)
    assert [row[:3] for row in stored_state(data_dir)] == reference(tmp_path, monkeypatch)
    assert not list((data_dir / "flows" / "snap").glob("snapshot-*"))


@pytest.mark.slow
def test_kill_9_of_the_flow_while_its_snapshot_process_runs(
    tmp_path: Path, run_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow is killed while a snapshot process is writing: the snapshot process dies
    with it, the previous checkpoint stays the latest and valid, and a restart ends with
    the state of an uninterrupted run."""
    data_dir, hold = tmp_path / "run", tmp_path / "hold"
    snapshot_app.write_events(data_dir, distinct=True)
    proc = start(data_dir, hold)
    wait_until(lambda: len(children(hold)) >= 1 or proc.poll() is not None, "a snapshot")
    assert proc.poll() is None, (data_dir / "stderr.txt").read_text()
    before = progress(data_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (child,) = children(hold)
    wait_until(lambda: gone(child), "the snapshot process to die with the flow")
    assert progress(data_dir) == before  # nothing of the unfinished checkpoint
    finish(data_dir, start(data_dir, None))
    assert [row[:3] for row in stored_state(data_dir)] == reference(tmp_path, monkeypatch)
    assert not list((data_dir / "flows" / "snap").glob("snapshot-*"))


@pytest.mark.slow
def test_snapshots_failing_again_and_again_stop_the_flow_with_its_name(tmp_path: Path) -> None:
    """One failed snapshot is retried at the next checkpoint; three in a row are an error
    that names the flow (the flow does not go on without checkpoints)."""
    data_dir, hold = tmp_path / "run", tmp_path / "hold"
    snapshot_app.write_events(data_dir, distinct=True)
    proc = start(data_dir, hold)
    killed: set[int] = set()
    try:
        while proc.poll() is None:
            wait_until(
                lambda: set(children(hold)) - killed or proc.poll() is not None,
                "a snapshot process",
            )
            for pid in set(children(hold)) - killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.wait() != 0
    assert len(killed) == 3
    errors = (data_dir / "stderr.txt").read_text()
    assert "CheckpointError" in errors and "flow 'snap'" in errors, errors
    assert "3 checkpoints in a row failed" in errors and "killed by signal 9" in errors, errors
    assert progress(data_dir) == (0, 0)
