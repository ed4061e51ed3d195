"""Real crashes: a writer subprocess is killed with SIGKILL in the middle of appending, several
times in a row, and every append it acknowledged must be there afterwards."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rheos.transport import Log

from .crash_writer import expected_timestamp, expected_value

WRITER = Path(__file__).with_name("crash_writer.py")


def run_and_kill(data_dir: Path, durability: str, run: int, rng: random.Random) -> list[str]:
    """Start a writer, let it acknowledge some appends, SIGKILL it; return its ack lines."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir), "crash", durability, str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    wanted = rng.randint(5, 60)
    try:
        while len(lines) < wanted:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"writer exited early: {proc.stderr.read()}")  # type: ignore[union-attr]
            lines.append(line)
        time.sleep(rng.random() * 0.02)  # a random moment, most likely inside an append
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # every line the writer printed was printed after its append returned
    return lines + [x for x in rest.splitlines(keepends=True) if x.endswith("\n")]


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["batch", "os"])
def test_sigkill_mid_stream_keeps_every_acknowledged_record(
    data_dir: Path, durability: str
) -> None:
    log = Log(data_dir)
    log.create_topic("crash", segment_bytes=32 * 1024)
    rng = random.Random(durability)
    acked: dict[int, tuple[int, int]] = {}  # offset -> (run, seq)
    for run in range(1, 7):
        for line in run_and_kill(data_dir, durability, run, rng):
            first, count, line_run, seq0 = map(int, line.split())
            assert line_run == run
            for i in range(count):
                assert first + i not in acked, "an acknowledged offset was handed out again"
                acked[first + i] = (run, seq0 + i)

    with log.reader("crash") as reader:
        records = list(reader.read())
    # offsets are dense; nothing acknowledged is missing
    assert [r.offset for r in records] == list(range(len(records)))
    assert max(acked) < len(records)
    for r in records:
        run, seq = map(int, (r.key or b"").split(b":"))
        # every record kept, acknowledged or not, is whole and what its writer wrote
        assert r.value == expected_value(run, seq)
        assert r.timestamp == expected_timestamp(run, seq)
        if r.offset in acked:
            assert acked[r.offset] == (run, seq)
    print(
        f"durability {durability}: {len(acked)} acknowledged records, {len(records)} kept "
        f"({len(records) - len(acked)} written but not acknowledged when killed)"
    )
    # within one run, what was kept is a prefix of what the writer sent
    by_run: dict[int, list[int]] = {}
    for r in records:
        run, seq = map(int, (r.key or b"").split(b":"))
        by_run.setdefault(run, []).append(seq)
    for seqs in by_run.values():
        assert seqs == list(range(len(seqs)))
    assert len(list(Path(log.topic_dir("crash"), "0").glob("*.log"))) > 1  # rolls happened

    # the next writer appends fine, right after what survived
    with log.producer("crash", durability=durability) as p:
        assert p.append([b"after"]) == [(0, len(records), 1)]
    with log.reader("crash", start=len(records)) as reader:
        assert [r.value for r in reader.read()] == [b"after"]
    log.close()
