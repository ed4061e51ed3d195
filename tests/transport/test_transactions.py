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


def test_an_uncommitted_reader_follows_a_writer_cut_back_under_it(tmp_path: Path) -> None:
    """A recovering writer cuts the uncommitted tail an uncommitted reader has read and
    writes other batches there: the reader goes back to the cut and reads them (the same
    results written again), never a 'bad batch header' in the middle of a new batch."""
    log = Log(tmp_path)
    log.create_topic("out", partitions=1)
    with (
        log.producer("out", transactional=True) as p,
        log.reader("out", isolation="uncommitted") as reader,
    ):
        p.append([b"a"])
        committed = p.commit()
        p.append([b"old-1", b"old-2", b"old-3"])
        p.flush()
        assert [r.value for r in reader.read()] == [b"a", b"old-1", b"old-2", b"old-3"]
        p.rollback_to(committed)
        for value in (b"new-1" * 7, b"new-2" * 7, b"new-3" * 7, b"next"):
            p.append([value])
        p.flush()
        again = [(r.offset, r.value) for r in reader.read()]
        assert again == [(1, b"new-1" * 7), (2, b"new-2" * 7), (3, b"new-3" * 7), (4, b"next")]
        p.append([b"more"])
        p.flush()
        assert [(r.offset, r.value) for r in reader.read()] == [(5, b"more")]


def test_commit_upto_leaves_what_came_after_uncommitted(tmp_path: Path) -> None:
    """A checkpoint covers what was written before it; its commit, which comes while the
    flow writes on, makes only that visible."""
    log = Log(tmp_path)
    log.create_topic("out", partitions=2)
    with log.producer("out", transactional=True) as p:
        p.append([b"a", b"b"], partition=0)
        p.flush()
        covered = p.positions()
        p.append([b"c"], partition=0)
        p.append([b"d"], partition=1)
        assert p.commit(upto=covered) == {0: 2, 1: 0}
        assert values(log, "out") == [b"a", b"b"]
        assert p.commit() == {0: 3, 1: 1}
        assert sorted(values(log, "out")) == [b"a", b"b", b"c", b"d"]
