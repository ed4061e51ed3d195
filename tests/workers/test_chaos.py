"""Kill -9 workers of a flow split across 3 processes at random moments -- also right after
one starts and while one restores a task it just claimed -- and get exactly the committed
output and dead letters of one uninterrupted worker (as multisets).

Both runs end with a drained stop (every window closes), the split one once every task has
checkpointed the end of its partition and the output has settled, so that a flow with
windows compares as a stateless one does."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.waiting import wait_until
from tests.workers import app
from tests.workers.helpers import (
    caught_up,
    committed,
    dead_letters,
    events,
    kill,
    start,
    stop,
    workers,
    write_events,
)

N = 24_000
CASES = [("stateless", "stream-first"), ("keyed", "micro-batch")]
"""The flows of tests/workers/app.py under chaos (``"keyed"`` through a repartition topic),
each in one runtime mode: between them both modes and both kinds of flow (the suite's time
is kept for other faults; any flow runs in either mode, tests/microbatch)."""


def reference(data_dir: Path, flow: str) -> None:
    """One uninterrupted worker over the same events, in this process."""
    write_events(data_dir, N)
    summary = app.FLOWS[flow](str(data_dir)).run(stop_after=N, drain=True)
    assert summary.events_in == N


def settle(data_dir: Path) -> None:
    """Wait until the committed output has not grown for a second (steps after the sources,
    reading internal topics, catch up too)."""
    seen = [-1, time.monotonic()]

    def still() -> bool:
        now = sum(committed(data_dir, "out").values())
        if now != seen[0]:
            seen[:] = [now, time.monotonic()]
        return time.monotonic() - seen[1] >= 1.0

    wait_until(still, "the output to settle", limit=60)


def newest(data_dir: Path, known: set[str], ready: Callable[[dict[str, object]], bool]) -> int:
    """The pid of a worker not in ``known`` once ``ready`` holds of it."""
    found: list[int] = []

    def check() -> bool:
        for w in workers(data_dir):
            if w["id"] not in known and ready(w):
                found.append(int(w["pid"]))  # type: ignore[call-overload]
                return True
        return False

    wait_until(check, "a new worker", limit=60)
    return found[0]


def chaos(data_dir: Path, rnd: random.Random, done: Callable[[], bool]) -> list[bool]:
    """Six kills: at random, right after a worker starts, while a new worker restores the
    task it claimed -- twice. Returns, per kill, whether the output was still incomplete."""
    mid_stream = []
    for _ in range(2):
        wait_until(lambda: len(workers(data_dir)) == 3, "3 live workers", limit=60)
        time.sleep(rnd.uniform(0.1, 0.5))
        victim = rnd.choice(workers(data_dir))
        known = {w["id"] for w in workers(data_dir)}
        mid_stream.append(not done())
        kill(int(victim["pid"]))
        pid = newest(data_dir, known, lambda w: True)  # its status file is its first act
        mid_stream.append(not done())
        kill(pid)
        known = {w["id"] for w in workers(data_dir)} | known
        pid = newest(data_dir, known, lambda w: bool(w.get("tasks")))  # just claimed: restoring
        mid_stream.append(not done())
        kill(pid)
    return mid_stream


@pytest.mark.parametrize(("flow", "mode"), CASES)
def test_kill_workers_at_random(tmp_path: Path, flow: str, mode: str) -> None:
    reference(tmp_path / "one", flow)
    want_out = committed(tmp_path / "one", "out")
    want_dead = dead_letters(tmp_path / "one")
    assert want_dead and want_out
    if flow == "stateless":  # an output per good event
        assert sum(want_out.values()) + sum(want_dead.values()) == N

    data_dir = tmp_path / "three"
    write_events(data_dir, N)
    proc = start(data_dir, 3, mode, flow, extra=("--drain",))
    try:
        mid_stream = chaos(data_dir, random.Random(f"{flow}-{mode}"), lambda: caught_up(data_dir))
        wait_until(lambda: caught_up(data_dir), "every task at the end of its input", limit=120)
        settle(data_dir)
        stop(proc, data_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert committed(data_dir, "out") == want_out
    assert dead_letters(data_dir) == want_dead
    assert sum(mid_stream) >= 4, mid_stream  # most kills interrupted the work
    assert len(events(data_dir, "died")) == 6
    assert events(data_dir, "took over")  # dead workers' tasks were taken over
