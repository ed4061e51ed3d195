"""A full disk: the append that fails raises DiskFullError naming where, keeps nothing of
itself, and the log stays readable and appendable once there is space again."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rheos.errors import DiskFullError
from rheos.transport import Log
from rheos.transport.segment import index_path, timeindex_path

from .conftest import run_python, segment_files
from .test_bad_state import batches_in


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB tmpfs file system (needs root and a kernel that allows the mount)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def assert_no_partial_tail(log: Log, topic: str) -> None:
    for seg in segment_files(log, topic):
        parsed = batches_in(seg)
        end = parsed[-1][0] + parsed[-1][3] if parsed else 0
        assert end == seg.stat().st_size


@pytest.mark.parametrize("durability", ["batch", "os"])
def test_disk_full_on_a_real_small_file_system(small_disk: Path, durability: str) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 96 * 1024)
    log = Log(small_disk / "data")
    log.create_topic("t", segment_bytes=48 * 1024)
    rng = random.Random(durability)
    acked: list[bytes] = []
    with log.producer("t", durability=durability) as p:
        with pytest.raises(DiskFullError) as info:
            for i in range(10_000):
                batch = [b"%d-%d|" % (i, j) * rng.randint(1, 300) for j in range(rng.randint(1, 9))]
                p.append(batch)
                acked.extend(batch)
        err = info.value
        assert (err.topic, err.partition, err.offset) == ("t", 0, len(acked))
        assert "nothing of it is kept" in str(err)
        with pytest.raises(DiskFullError):  # still full: the same clear error, not another one
            p.append([b"y" * 20_000])
        assert_no_partial_tail(log, "t")
        with log.reader("t") as reader:
            assert [r.value for r in reader.read()] == acked

        filler.unlink()  # space again: the same producer goes on
        assert p.append([b"after"]) == [(0, len(acked), 1)]
    log.close()
    log = Log(small_disk / "data")  # and a new writer opens fine
    with log.producer("t") as p:
        assert p.append([b"again"]) == [(0, len(acked) + 1, 1)]
    with log.reader("t") as reader:
        assert [r.value for r in reader.read()] == [*acked, b"after", b"again"]
    assert_no_partial_tail(log, "t")
    log.close()


FSIZE_WRITER = """
import resource, signal, sys
from rheos.errors import DiskFullError
from rheos.transport import Log
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
log = Log(sys.argv[1])
acked = 0
with log.producer("t", durability=sys.argv[3]) as p:
    try:
        for i in range(100_000):
            p.append([b"%08d" % (acked + j) * (1 + (i * 37) % 50) for j in range(1 + i % 7)])
            acked += 1 + i % 7
    except DiskFullError as exc:
        print(acked)
        print(exc)
    try:
        p.append([b"z" * 5000])
    except DiskFullError:
        print("full again")
"""


@pytest.mark.parametrize("durability", ["batch", "os"])
def test_disk_full_simulated_with_a_file_size_limit(data_dir: Path, durability: str) -> None:
    """Simulates a full disk without privileges: the writer runs in a subprocess with
    RLIMIT_FSIZE set and SIGXFSZ ignored, so a write past the limit fails with EFBIG, which
    the writer treats like ENOSPC. (The tmpfs test above uses a real full file system.)"""
    log = Log(data_dir)
    log.create_topic("t")
    done = run_python(FSIZE_WRITER, str(data_dir), "150000", durability)
    assert done.returncode == 0, done.stderr
    acked_text, message, again = done.stdout.splitlines()
    acked = int(acked_text)
    assert acked > 100
    assert message.startswith("the disk is full (File too large)")
    assert f"(topic 't', partition 0, offset {acked})" in message
    assert again == "full again"
    assert_no_partial_tail(log, "t")
    with log.reader("t") as reader:
        got = [r.value for r in reader.read()]
    assert len(got) == acked
    assert all(v[:8] == b"%08d" % o for o, v in enumerate(got))
    with log.producer("t") as p:  # without the limit, appends go on
        assert p.append([b"after"]) == [(0, acked, 1)]
    log.close()


def test_the_disk_filling_up_between_data_and_index(small_disk: Path) -> None:
    """The records fit on the disk but their index entries do not. The append used to raise a
    bare OSError although its records were written (and stayed in the log); an index is a
    hint, so the append succeeds and the segment's index is emptied (reads then scan)."""
    log = Log(small_disk / "data")
    log.create_topic("t")
    with log.producer("t", durability="batch") as p:
        p.append([b"first"], timestamps=[5])  # opens the writer: every file exists now
        seg = segment_files(log, "t")[0]
        index_path(seg).write_bytes(b"")  # the next entry will need a new page of the disk
        timeindex_path(seg).write_bytes(b"")
        st = os.statvfs(small_disk)
        page = st.f_bsize
        used_by_seg = seg.stat().st_size
        free_after_seg = st.f_bavail * page - (page - used_by_seg % page) % page
        (small_disk / "filler").write_bytes(b"\0" * (free_after_seg - page))
        # exactly one free page: enough for the next batch's data, none for its index entry
        big = b"v" * (page - used_by_seg % page + 100)
        assert p.append([big], timestamps=[10]) == [(0, 1, 1)]
        with log.reader("t") as reader:
            assert [r.value for r in reader.read()] == [b"first", big]
        with log.reader("t", start=datetime.fromtimestamp(0.008, UTC)) as reader:
            assert [r.offset for r in reader.read()] == [1]
        with pytest.raises(DiskFullError):
            p.append([b"x" * 3 * page])
        (small_disk / "filler").unlink()
        assert p.append([b"after"], timestamps=[20]) == [(0, 2, 1)]
    log.close()
    log = Log(small_disk / "data")
    with log.producer("t") as p:
        assert p.append([b"again"], timestamps=[30]) == [(0, 3, 1)]
    with log.reader("t", start=datetime.fromtimestamp(0.015, UTC)) as reader:
        assert [r.value for r in reader.read()] == [b"after", b"again"]
    log.close()
