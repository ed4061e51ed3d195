"""Consumer groups (committed offsets) and retention (deleting whole old segments)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rheos.errors import OffsetOutOfRangeError
from rheos.transport import Log
from rheos.transport.groups import GroupOffsets

from .conftest import segment_files


def fill(log: Log, topic: str, partition: int, count: int, size: int = 100) -> None:
    with log.producer(topic) as p:
        for i in range(count):
            p.append([b"%d" % i + b"." * size], partition=partition)


def test_group_commits_and_resumes(log: Log, data_dir: Path) -> None:
    log.create_topic("t", partitions=2)
    for part in (0, 1):
        fill(log, "t", part, 10, size=1)
    reader = log.reader("t", group="g")
    first = [(r.partition, r.offset) for r in reader.read()]
    assert len(first) == 20
    reader.commit()
    assert log.groups.committed("g", "t") == {0: 10, 1: 10}
    reader.close()
    log.close()
    for part in (0, 1):
        fill(Log(data_dir), "t", part, 3, size=1)

    # a new Log object (as a restarted process would) resumes where the group stopped
    again = Log(data_dir)
    rest = [(r.partition, r.offset) for r in again.reader("t", group="g").read()]
    assert sorted(rest) == [(p, o) for p in (0, 1) for o in range(10, 13)]
    # another group starts from its own start
    assert len(list(again.reader("t", group="other").read())) == 26
    assert again.groups.groups("t") == ["g"]  # only committed groups are listed
    again.close()


def test_commit_explicit_offsets_and_start_for_uncommitted(log: Log) -> None:
    log.create_topic("t", partitions=3)
    for part in range(3):
        fill(log, "t", part, 5, size=1)
    reader = log.reader("t", group="g")
    reader.commit({0: 4, 2: 1})
    reader.close()
    # committed partitions resume; the never-committed partition 1 starts at `start`
    resumed = log.reader("t", group="g", start="end").positions()
    assert resumed == {0: 4, 1: 5, 2: 1}


def test_multi_partition_commit_is_atomic(data_dir: Path) -> None:
    """A commit of several partitions lands whole or not at all: a commit that fails in the
    middle (here: a partition value SQLite cannot store) leaves the previous one intact."""
    data_dir.mkdir(parents=True)
    groups = GroupOffsets(data_dir / "groups.sqlite")
    groups.commit("g", "t", {0: 1, 1: 1, 2: 1})
    with pytest.raises(OverflowError):
        groups.commit("g", "t", {0: 7, 1: 2**70, 2: 7})
    assert groups.committed("g", "t") == {0: 1, 1: 1, 2: 1}
    groups.commit("g", "t", {0: 7, 2: 9})
    groups.close()
    reopened = GroupOffsets(data_dir / "groups.sqlite")
    assert reopened.committed("g", "t") == {0: 7, 1: 1, 2: 9}
    reopened.close()


def test_deleting_a_topic_forgets_its_groups(log: Log) -> None:
    log.create_topic("t")
    log.groups.commit("g", "t", {0: 3})
    log.delete_topic("t")
    log.create_topic("t")
    assert log.groups.committed("g", "t") == {}


# -- retention ------------------------------------------------------------------------------


def test_retention_by_bytes(log: Log) -> None:
    log.create_topic("t", segment_bytes=1_000, retention_bytes=3_000)
    reader_before = log.reader("t", group="slow")
    reader_before.commit({0: 0})
    fill(log, "t", 0, 100)  # ~15 KB: rolls every few records, retention runs on rolls
    files = segment_files(log, "t")
    total = sum(f.stat().st_size for f in files)
    assert total <= 3_000 + 1_000  # at most one segment over the limit
    start = int(files[0].stem)
    assert start > 0
    # whole segments went: what is left is contiguous up to the end
    got = [r.offset for r in log.reader("t").read()]
    assert got == list(range(start, 100))
    # a group committed below the start resumes at the start
    assert log.reader("t", group="slow").positions() == {0: start}
    # an explicit offset below the start is refused, naming where
    with pytest.raises(OffsetOutOfRangeError, match="below the first kept offset") as info:
        log.reader("t", start=start - 1)
    assert (info.value.topic, info.value.partition, info.value.offset) == ("t", 0, start - 1)
    assert log.describe("t")[0].start_offset == start


def test_retention_by_age(log: Log) -> None:
    log.create_topic("t", segment_bytes=500, retention_ms="1h")
    fill(log, "t", 0, 20)
    files = segment_files(log, "t")
    assert len(files) >= 5
    assert log.enforce_retention() == 0  # nothing is old yet
    old = time.time() - 7200
    for f in files[:3]:
        os.utime(f, (old, old))
    assert log.enforce_retention("t") == 3
    assert segment_files(log, "t") == files[3:]
    start = int(files[3].stem)
    assert [r.offset for r in log.reader("t").read()] == list(range(start, 20))


def test_retention_never_deletes_the_newest_segment(log: Log) -> None:
    log.create_topic("t", segment_bytes=500, retention_ms="1s", retention_bytes=1)
    fill(log, "t", 0, 20)
    old = time.time() - 3600
    for f in segment_files(log, "t"):
        os.utime(f, (old, old))
    log.enforce_retention()
    files = segment_files(log, "t")
    assert len(files) == 1
    kept = [r.offset for r in log.reader("t").read()]
    assert kept and kept[-1] == 19
    with log.producer("t") as p:  # and the partition goes on
        assert p.append([b"x"]) == [(0, 20, 1)]


def test_retention_only_for_topics_that_ask(log: Log) -> None:
    log.create_topic("keep", segment_bytes=500)
    fill(log, "keep", 0, 20)
    old = time.time() - 10**7
    for f in segment_files(log, "keep"):
        os.utime(f, (old, old))
    assert log.enforce_retention() == 0
    assert len(list(log.reader("keep").read())) == 20


def test_a_reader_left_behind_by_retention_is_told_so(log: Log) -> None:
    """A tailing reader behind the retention point used to get a CorruptLogError about a
    missing segment; it is retention, so it gets OffsetOutOfRangeError, and can seek on."""
    log.create_topic("t", segment_bytes=300, retention_bytes=600)
    fill(log, "t", 0, 1)
    reader = log.reader("t")
    assert [r.offset for r in reader.read()] == [0]
    fill(log, "t", 0, 30)
    start = int(segment_files(log, "t")[0].stem)
    assert start > 1
    with pytest.raises(OffsetOutOfRangeError, match="deleted by retention") as info:
        list(reader.read())
    assert info.value.offset == 1
    reader.seek(0, start)
    assert [r.offset for r in reader.read()] == list(range(start, 31))


def test_tasks_opening_a_new_group_file_at_once_all_get_it(tmp_path) -> None:
    """The tasks of a split flow open the group offsets of a new data directory at once:
    SQLite refuses some of them at once (not after its busy timeout) while another turns
    the file to WAL; each is let in (before: about 3 opens in 100 failed, and a task that
    failed left the others waiting for its end marker)."""
    import threading

    errors: list[BaseException] = []
    for attempt in range(100):
        path = tmp_path / f"{attempt}.sqlite"
        start = threading.Barrier(4)

        def open_and_commit(task: int, path=path, start=start) -> None:
            start.wait()
            try:
                groups = GroupOffsets(path)
                groups.commit("g", "t", {task: task + 1})
                groups.close()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_and_commit, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not errors:
            groups = GroupOffsets(path)
            assert groups.committed("g", "t") == {0: 1, 1: 2, 2: 3, 3: 4}
            groups.close()
    assert not errors, errors[:3]
