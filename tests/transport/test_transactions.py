"""Transactional producers and committed readers: the log side of exactly-once output."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rheos.errors import ConfigError
from rheos.transport import Log


def values(log: Log, topic: str, **kw: object) -> list[bytes]:
    with log.reader(topic, **kw) as reader:  # type: ignore[arg-type]
        return [r.value for r in reader.read()]


def test_committed_readers_see_only_committed_records(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.create_topic("out", partitions=2)
    with log.producer("out", transactional=True) as p:
        p.append([b"a", b"b"], partition=0)
        assert values(log, "out") == []
        assert values(log, "out", isolation="uncommitted") == [b"a", b"b"]
        assert p.commit() == {0: 2}
        assert values(log, "out") == [b"a", b"b"]
        p.append([b"c"], partition=0)
        assert values(log, "out") == [b"a", b"b"]
        with log.reader("out") as r:
            assert r.end_offsets() == {0: 2, 1: 0}


def test_rollback_discards_the_uncommitted_tail_across_segments(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.create_topic("out", partitions=1, segment_bytes=200)
    with log.producer("out", transactional=True) as p:
        p.append([b"x" * 50, b"y" * 50])
        committed = p.commit()
        for i in range(10):  # several segments of uncommitted data
            p.append([b"%d" % i * 60])
        assert len(list((tmp_path / "topics/out/0").glob("*.log"))) > 2
        p.rollback_to(committed)
        assert values(log, "out", isolation="uncommitted") == [b"x" * 50, b"y" * 50]
        p.append([b"z"])
        p.commit()
    with log.reader("out") as r:
        got = [(rec.offset, rec.value) for rec in r.read()]
    assert got == [(0, b"x" * 50), (1, b"y" * 50), (2, b"z")]


def test_a_killed_transactional_writer_leaves_nothing_uncommitted_visible(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.create_topic("out", partitions=1)
    script = textwrap.dedent(
        f"""
        import os, signal
        from rheos.transport import Log
        p = Log({str(tmp_path)!r}).producer("out", transactional=True)
        p.append([b"kept-1", b"kept-2"])
        p.commit()
        p.append([b"lost"])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -9
    assert values(log, "out") == [b"kept-1", b"kept-2"]
    assert values(log, "out", isolation="uncommitted") == [b"kept-1", b"kept-2", b"lost"]
    with log.producer("out", transactional=True) as p:
        p.rollback_to({0: 2})  # what a recovering flow does with its checkpointed positions
    assert values(log, "out", isolation="uncommitted") == [b"kept-1", b"kept-2"]


def test_topics_never_written_transactionally_are_fully_visible(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.create_topic("plain", partitions=1)
    with log.producer("plain") as p:
        p.append([b"a"])
        with pytest.raises(ConfigError):
            p.commit()
    assert values(log, "plain") == [b"a"]


def test_isolation_is_checked(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.create_topic("t")
    with pytest.raises(ConfigError, match="isolation"):
        log.reader("t", isolation="dirty")  # type: ignore[arg-type]
