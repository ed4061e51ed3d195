"""Records in and out: round trips, offsets, partitioning, segment rolls, where a reader starts,
tailing, and producers sharing a partition inside one process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rheos.errors import ConfigError, LogClosedError, OffsetOutOfRangeError
from rheos.transport import Log, Record, murmur2, partition_for_key
from rheos.transport.partition import now_ms

from .conftest import segment_files


def values_of(records: list[Record]) -> list[bytes]:
    return [r.value for r in records]


def test_round_trip_keys_headers_timestamps(log: Log) -> None:
    log.create_topic("t")
    headers = [(("trace", b"abc"), ("empty", b"")), None, ()]
    with log.producer("t") as p:
        assert p.append(
            [b"v0", b"", b"v2"],
            keys=[b"k0", None, b""],
            timestamps=[1_000, -5, 2**62],
            headers=headers,
        ) == [(0, 0, 3)]
    got = list(log.reader("t").read())
    assert got == [
        Record("t", 0, 0, 1_000, b"k0", b"v0", (("trace", b"abc"), ("empty", b""))),
        Record("t", 0, 1, -5, None, b"", ()),
        Record("t", 0, 2, 2**62, b"", b"v2", ()),
    ]


def test_no_keys_reads_back_none(log: Log) -> None:
    log.create_topic("t")
    with log.producer("t") as p:
        p.append([b"a", b"b"])
    assert [r.key for r in log.reader("t").read()] == [None, None]


def test_default_timestamp_is_append_time(log: Log) -> None:
    log.create_topic("t")
    before = now_ms()
    with log.producer("t") as p:
        p.append([b"a", b"b"])
        p.send(b"c")
        p.flush()
    after = now_ms()
    for r in log.reader("t").read():
        assert before <= r.timestamp <= after


def test_send_and_flush(log: Log) -> None:
    log.create_topic("t", partitions=2)
    with log.producer("t") as p:
        p.send(b"a", key=b"k", timestamp=7, headers=[("h", b"1")])
        p.send(b"b", partition=1)
        assert list(log.reader("t").read()) == []  # buffered, not written yet
    got = sorted(log.reader("t").read())
    p_k = partition_for_key(b"k", 2)
    assert Record("t", p_k, 0, 7, b"k", b"a", (("h", b"1"),)) in got
    assert any(r.partition == 1 and r.value == b"b" for r in got)


def test_offsets_are_dense_per_partition(log: Log) -> None:
    log.create_topic("t", partitions=3)
    with log.producer("t") as p:
        for i in range(20):
            p.append([b"%d" % j for j in range(i % 4 + 1)], keys=[b"key%d" % i] * (i % 4 + 1))
    by_partition: dict[int, list[int]] = {}
    for r in log.reader("t").read():
        by_partition.setdefault(r.partition, []).append(r.offset)
    assert sum(map(len, by_partition.values())) == sum(i % 4 + 1 for i in range(20))
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))


def test_append_reports_where_records_went(log: Log) -> None:
    log.create_topic("t")
    with log.producer("t") as p:
        assert p.append([b"a", b"b", b"c"]) == [(0, 0, 3)]
        assert p.append([b"d"]) == [(0, 3, 1)]
        assert p.append([]) == []


def test_mismatched_columns_are_refused_before_writing(log: Log) -> None:
    """Fewer timestamps (or keys, or headers) than values used to be written as a batch that
    passes its CRC but cannot be decoded, poisoning the partition for every reader."""
    log.create_topic("t", partitions=2)
    with log.producer("t") as p:
        with pytest.raises(ConfigError, match="2 values with 1 timestamps"):
            p.append([b"a", b"b"], timestamps=[1])
        with pytest.raises(ConfigError, match="keys"):
            p.append([b"a", b"b", b"c"], keys=[b"x"])
        with pytest.raises(ConfigError, match="headers"):
            p.append([b"a"], headers=[None, None])
        p.append([b"ok"], partition=0)
    assert [(r.partition, r.offset, r.value) for r in log.reader("t").read()] == [(0, 0, b"ok")]


# -- partitioning ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"", 275646681),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
    ],
)
def test_murmur2_kafka_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partition_is_the_same_in_another_process_with_another_hash_seed() -> None:
    keys = [b"AAPL", b"user-17", b"", b"\x00\xff" * 9, "é".encode()]
    here = [partition_for_key(k, 7) for k in keys]
    code = (
        "import sys; from rheos.transport import partition_for_key;"
        f"print([partition_for_key(k, 7) for k in {keys!r}], hash(b'salt'))"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout
        parts, salted = out.rsplit(" ", 1)
        assert parts == repr(here)
        outputs.add(salted.strip())
    assert len(outputs) == 2  # the seeds really did change Python's own hash


def test_keyed_records_follow_their_key(log: Log) -> None:
    log.create_topic("t", partitions=4)
    keys = [b"k%d" % (i % 10) for i in range(100)]
    with log.producer("t") as p:
        p.append([b"v%d" % i for i in range(100)], keys=keys)
    for r in log.reader("t").read():
        assert r.partition == partition_for_key(r.key or b"", 4)
    # records of one key keep their order inside their partition
    got = [r.value for r in log.reader("t").read() if r.key == b"k3"]
    assert got == [b"v%d" % i for i in range(3, 100, 10)]


def test_unkeyed_records_go_round_robin(log: Log) -> None:
    log.create_topic("t", partitions=3)
    with log.producer("t") as p:
        p.append([b"a", b"b", b"c", b"d"])
        p.append([b"e", b"f"])
        for v in (b"g", b"h", b"i"):
            p.send(v)
    counts = [0, 0, 0]
    order: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    for r in log.reader("t").read():
        counts[r.partition] += 1
        order[r.partition].append(r.value)
    assert counts == [3, 3, 3]
    assert order[0][:2] == [b"a", b"d"]


def test_explicit_partition_wins(log: Log) -> None:
    log.create_topic("t", partitions=3)
    with log.producer("t") as p:
        p.append([b"a", b"b"], keys=[b"x", b"y"], partition=2)
        with pytest.raises(OffsetOutOfRangeError, match="no partition 3"):
            p.append([b"c"], partition=3)
    assert {r.partition for r in log.reader("t").read()} == {2}


# -- segments -------------------------------------------------------------------------------


def test_segments_roll_and_reads_cross_them(log: Log) -> None:
    log.create_topic("t", segment_bytes=1_000)
    with log.producer("t") as p:
        for i in range(60):
            p.append([b"%03d" % i * 20, b"%03d" % i * 10])
    files = segment_files(log, "t")
    assert len(files) > 5
    assert all(f.stat().st_size <= 1_000 for f in files)
    got = list(log.reader("t").read())
    assert [r.offset for r in got] == list(range(120))
    assert got[51].value == b"025" * 10


def test_a_batch_bigger_than_a_segment_gets_its_own(log: Log) -> None:
    log.create_topic("t", segment_bytes=100)
    with log.producer("t") as p:
        p.append([b"x" * 500])
        p.append([b"y" * 500, b"z"])
    assert len(segment_files(log, "t")) == 2
    assert values_of(list(log.reader("t").read())) == [b"x" * 500, b"y" * 500, b"z"]


# -- where a reader starts ------------------------------------------------------------------


@pytest.fixture
def ten_batches(log: Log) -> Log:
    """Offsets 0..49 in batches of 5, over several segments; value = offset."""
    log.create_topic("t", segment_bytes=600)
    with log.producer("t") as p:
        for b in range(10):
            p.append([b"%d" % (b * 5 + i) for i in range(5)], timestamps=[b * 10] * 5)
    assert len(segment_files(log, "t")) >= 3
    return log


def test_read_from_beginning_end_and_offsets(ten_batches: Log) -> None:
    log = ten_batches
    assert [r.offset for r in log.reader("t").read()] == list(range(50))
    assert list(log.reader("t", start="end").read()) == []
    for start in (0, 3, 5, 17, 33, 49, 50):  # batch starts, middles, later segments, the end
        got = list(log.reader("t", start=start).read())
        assert [r.offset for r in got] == list(range(start, 50))
        assert [r.value for r in got] == [b"%d" % o for o in range(start, 50)]
    assert [r.offset for r in log.reader("t", start={0: 42}).read()] == list(range(42, 50))


def test_read_past_the_end_is_refused(ten_batches: Log) -> None:
    with pytest.raises(OffsetOutOfRangeError, match="offset 51") as info:
        ten_batches.reader("t", start=51)
    assert (info.value.topic, info.value.partition, info.value.offset) == ("t", 0, 51)


def test_reader_from_end_sees_only_new_records(ten_batches: Log) -> None:
    reader = ten_batches.reader("t", start="end")
    with ten_batches.producer("t") as p:
        p.append([b"new"])
    assert [(r.offset, r.value) for r in reader.read()] == [(50, b"new")]


def test_seek_and_positions(ten_batches: Log) -> None:
    reader = ten_batches.reader("t")
    reader.seek(0, 22)
    assert reader.positions() == {0: 22}
    assert next(iter(reader.read())).offset == 22
    assert reader.positions() == {0: 50}
    assert reader.end_offsets() == {0: 50}
    reader.seek(0, 40)
    assert reader.lag() == {0: 10}


def ms(t: int) -> datetime:
    return datetime.fromtimestamp(t / 1000, UTC)


def test_start_at_a_time_with_out_of_order_timestamps(log: Log) -> None:
    """The first record *in offset order* whose timestamp is >= T, even when earlier offsets
    carry later times and later offsets carry earlier ones."""
    log.create_topic("t", segment_bytes=300)
    ts = [50, 10, 70, 30, 30, 90, 20, 60, 100, 40, 80, 5, 110, 0, 95]
    with log.producer("t") as p:
        for i in range(0, len(ts), 2):
            p.append([b"%d" % j for j in range(i, min(i + 2, len(ts)))], timestamps=ts[i : i + 2])
    assert len(segment_files(log, "t")) > 2
    for t in range(-5, 120, 5):
        expected = next((o for o, x in enumerate(ts) if x >= t), len(ts))
        got = [r.offset for r in log.reader("t", start=ms(t)).read()]
        assert got == list(range(expected, len(ts))), t
    # a naive datetime counts as UTC
    naive = datetime(1970, 1, 1, 0, 0, 0, 60_000)
    assert next(iter(log.reader("t", start=naive).read())).offset == 2


def test_start_at_a_time_past_a_megabyte_of_older_records(log: Log) -> None:
    """A time seek skips older batches by their max timestamp. It used to stop after one
    1 MiB read that skipped everything, and start the reader in the middle of old records."""
    log.create_topic("t")
    with log.producer("t") as p:
        p.append([b"first"], timestamps=[100])
        for _ in range(150):
            p.append([b"x" * 10_000], timestamps=[50])
        p.append([b"late"], timestamps=[200])
    got = list(log.reader("t", start=ms(150)).read())
    assert [(r.offset, r.value) for r in got] == [(151, b"late")]


# -- tailing --------------------------------------------------------------------------------


def test_tailing_reader_is_woken_by_an_append(log: Log) -> None:
    log.create_topic("t", partitions=2)
    reader = log.reader("t", start="end")
    assert reader.poll(timeout=0.05) == []
    started = threading.Event()

    def produce() -> None:
        started.wait()
        with log.producer("t") as p:
            for i in range(5):
                p.append([b"%d" % i], partition=i % 2)

    thread = threading.Thread(target=produce)
    thread.start()
    started.set()
    got = []
    for r in reader.follow(timeout=5):
        got.append(r.value)
        if len(got) == 5:
            break
    thread.join()
    assert sorted(got) == [b"0", b"1", b"2", b"3", b"4"]
    assert reader.poll(timeout=0.01) == []


def test_follow_stops_after_its_timeout(log: Log) -> None:
    log.create_topic("t")
    with log.producer("t") as p:
        p.append([b"a"])
    assert values_of(list(log.reader("t").follow(timeout=0.05))) == [b"a"]


def test_closed_reader_and_producer(log: Log) -> None:
    log.create_topic("t")
    reader = log.reader("t")
    reader.close()
    with pytest.raises(LogClosedError):
        reader.poll()
    p = log.producer("t")
    p.close()
    with pytest.raises(LogClosedError):
        p.append([b"x"])


# -- producers sharing a partition inside one process ---------------------------------------


def test_two_producers_share_one_partition(log: Log) -> None:
    log.create_topic("t")
    p1 = log.producer("t")
    p2 = log.producer("t", durability="batch")
    assert p1.append([b"a"]) == [(0, 0, 1)]
    assert p2.append([b"b", b"c"]) == [(0, 1, 2)]
    p1.close()
    assert p2.append([b"d"]) == [(0, 3, 1)]  # closing one does not close the shared writer
    p2.close()
    assert values_of(list(log.reader("t").read())) == [b"a", b"b", b"c", b"d"]


def test_producers_share_however_the_data_dir_is_spelled(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Log objects of one directory, one by a relative path and one by a symlink, used to
    hold two writers of one partition, and the second failed on the first's lock."""
    Log(data_dir).create_topic("t")
    monkeypatch.chdir(data_dir.parent)
    (data_dir.parent / "link").symlink_to(data_dir)
    logs = [Log(data_dir), Log("data"), Log(data_dir.parent / "link")]
    producers = [lg.producer("t") for lg in logs]
    reader = logs[1].reader("t", start="end")
    for i, p in enumerate(producers):
        p.append([b"%d" % i])
    for p in producers:
        p.close()
    assert values_of(list(reader.read())) == [b"0", b"1", b"2"]


def test_threads_appending_to_one_partition(log: Log) -> None:
    log.create_topic("t")
    producers = [log.producer("t") for _ in range(4)]

    def work(i: int) -> None:
        for j in range(50):
            producers[i].append([b"%d-%d" % (i, j)] * 3)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in producers:
        p.close()
    got = list(log.reader("t").read())
    assert [r.offset for r in got] == list(range(600))
    for i in range(4):  # each producer's records in its own order, batches kept together
        mine = [r.value for r in got if r.value.startswith(b"%d-" % i)]
        assert mine == [b"%d-%d" % (i, j) for j in range(50) for _ in range(3)]


def test_start_time_is_exact_to_the_millisecond(log: Log) -> None:
    """A start time was turned into milliseconds through a float, and 1.001 s became 1000 ms:
    the reader then started one record early (found by the property test)."""
    log.create_topic("t")
    with log.producer("t") as p:
        p.append([b"a", b"b", b"c"], timestamps=[1000, 1001, 1002])
    for when, first in [
        (datetime.fromtimestamp(1.001, UTC), 1),
        (datetime(1970, 1, 1, 0, 0, 1, 1000, tzinfo=UTC), 1),
        (datetime(1970, 1, 1, 0, 0, 1, 500, tzinfo=UTC), 1),  # 1000.5 ms: the next whole ms
        (datetime(1970, 1, 1, 0, 0, 1, 0, tzinfo=UTC), 0),
    ]:
        with log.reader("t", start=when) as reader:
            assert next(iter(reader.read())).offset == first, when
