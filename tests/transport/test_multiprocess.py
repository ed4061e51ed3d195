"""Several processes on one data directory: a writer, readers tailing it, and a second writer
that must be refused on the same partition but works on another one."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rheos.transport import Log

from .conftest import run_python

HERE = Path(__file__).parent


def start(script: str, *args: object, stdin: bool = False) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / script), *map(str, args)],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc


def expect_line(proc: subprocess.Popen[str], expected: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != expected:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"expected {expected!r}, got {line!r}; stderr: {err}")


SECOND_WRITER = """
import sys
from rheos.errors import PartitionLockedError
from rheos.transport import Log
log = Log(sys.argv[1])
with log.producer("mp") as p:
    try:
        p.append([b"intruder"], partition=0)
    except PartitionLockedError as exc:
        print("refused:", exc)
    else:
        print("NOT REFUSED")
    for i in range(0, 600, 50):
        p.append([b"B-%d" % j for j in range(i, i + 50)], partition=1)
print("wrote partition 1")
"""


@pytest.mark.slow
def test_writer_and_tailing_readers_in_separate_processes(log: Log, data_dir: Path) -> None:
    log.create_topic("mp", partitions=2)
    n_a, n_b = 3000, 600
    readers = [start("proc_reader.py", data_dir, "mp", "collect", n_a + n_b) for _ in range(2)]
    writer = None
    try:
        for r in readers:
            expect_line(r, "ready")
        writer = start("proc_writer.py", data_dir, "mp", 0, n_a, "A", stdin=True)
        expect_line(writer, "locked")

        second = run_python(SECOND_WRITER, str(data_dir))
        assert second.returncode == 0, second.stderr
        refused, wrote = second.stdout.splitlines()
        assert refused.startswith("refused: another writer (pid ")
        assert str(writer.pid) in refused
        assert "only one process may write a partition" in refused
        assert "topic 'mp', partition 0" in refused
        assert wrote == "wrote partition 1"

        expect_line(writer, "done")
        outputs = [r.communicate(timeout=60)[0] for r in readers]
    finally:
        for r in readers:
            r.kill()
        if writer is not None:
            writer.communicate("", timeout=30)
    assert writer.returncode == 0
    for out in outputs:
        got: dict[int, list[tuple[int, str]]] = {0: [], 1: []}
        for line in out.splitlines():
            part, off, value = line.split()
            got[int(part)].append((int(off), value))
        # every record, in order, exactly once
        assert got[0] == [(i, f"A-{i}") for i in range(n_a)]
        assert got[1] == [(i, f"B-{i}") for i in range(n_b)]
    # the lock is free again once the writer process is gone
    with log.producer("mp") as p:
        assert p.append([b"x"], partition=0) == [(0, n_a, 1)]


@pytest.mark.slow
def test_cross_process_wake_latency(log: Log, data_dir: Path) -> None:
    """How soon a reader in another process sees a new record. Printed, not asserted."""
    log.create_topic("lat")
    reader = start("proc_reader.py", data_dir, "lat", "latency")
    samples = []
    try:
        expect_line(reader, "ready")
        assert reader.stdout is not None
        with log.producer("lat") as p:
            for _ in range(60):
                p.append([str(time.monotonic_ns()).encode()])
                samples.append(int(reader.stdout.readline()) / 1e6)
            p.append([b"stop"])
        reader.communicate(timeout=30)
    finally:
        reader.kill()
    assert len(samples) == 60
    samples.sort()
    print(
        f"\ncross-process wake latency over {len(samples)} records: "
        f"median {statistics.median(samples):.2f} ms, "
        f"p90 {samples[int(len(samples) * 0.9)]:.2f} ms, max {samples[-1]:.2f} ms"
    )
