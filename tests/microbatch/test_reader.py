"""The columnar log reader of micro-batch mode.

A record that does not decode costs a per-record read of the records of its poll and partition
only: that stretch is read by the stream-first reader (good records as rows, bad ones as
rejects with the same error and place as in stream-first mode), and the polls after it are
decoded in bulk again. Read-ahead and :meth:`ColumnarLogReader.seek` neither lose nor repeat
an event, and positions cover only what was returned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from rheos.connectors import log_source
from rheos.connectors.base import Chunk, OpenContext
from rheos.runtime.microbatch.sources import BULK_FROM, ColumnarLogReader, Part
from rheos.transport import Log

encode = msgspec.json.encode
PER_BATCH = BULK_FROM  # (smaller polls are decoded per record)
"""Records per record batch: about 100 KB, over a poll's 64 KB budget, so one batch a poll."""
BAD = [b"{not json", b"\x00\xff\xfe garbage", b'{"k": "k1", "v": ']


def good(i: int) -> bytes:
    return encode({"k": f"k{i % 3}", "v": i, "ts": 1_000 * i, "pad": "x" * 60})


def write(path: Path, batches: list[list[bytes]], *, partitions: int = 1) -> None:
    """One record batch per item of ``batches``; ``partitions`` > 1 gets each of them whole."""
    log = Log(path)
    log.create_topic("in", partitions)
    with log.producer("in") as producer:
        for batch in batches:
            for p in range(partitions):
                producer.append(batch, partition=p)
    log.close()


def with_bad(n: int, bad: dict[int, bytes]) -> list[list[bytes]]:
    """``n`` records in batches of ``PER_BATCH``, record ``i`` replaced by ``bad[i]``."""
    values = [bad.get(i, good(i)) for i in range(n)]
    return [values[at : at + PER_BATCH] for at in range(0, n, PER_BATCH)]


def offsets(part: Part) -> list[int]:
    assert part.chunk is not None and part.chunk.offsets is not None
    return list(part.chunk.offsets)


def rejects(part: Part) -> list[tuple[Any, ...]]:
    assert part.chunk is not None
    return [where(part.chunk, o, raw, exc) for o, raw, exc in part.chunk.rejects or ()]


def where(chunk: Chunk, offset: int | None, raw: bytes, exc: Exception) -> tuple[Any, ...]:
    place = tuple(getattr(exc, name, None) for name in ("topic", "partition", "offset"))
    return (chunk.partition, offset, raw, type(exc).__name__, str(exc), place)


def read_all(reader: ColumnarLogReader, ends: dict[int, int]) -> list[list[Part]]:
    """Every poll's parts until ``ends``; checks after each poll that the positions are right
    after what was returned (events and rejects), never at what was read ahead."""
    polls = []
    last = {p: o - 1 for p, o in reader.positions().items()}
    while reader.positions() != ends:
        parts = reader.poll(1.0)
        assert parts, "a poll with records left returned nothing"
        for part in parts:
            seen = offsets(part) + [o for _, o, *_ in rejects(part)]
            last[part.partition] = max(last[part.partition], *seen)
        assert reader.positions() == {p: last[p] + 1 for p in ends}
        polls.append(parts)
    return polls


def stream_first(ctx: OpenContext) -> tuple[list[tuple[int, int, Any]], list[tuple[Any, ...]]]:
    """``(partition, offset, value)`` of every event, and every reject, as stream-first reads."""
    reader = log_source("in").open(ctx)
    events, bad = [], []
    while chunks := reader.poll(0.0):
        for chunk in chunks:
            assert chunk.offsets is not None
            pairs = zip(chunk.offsets, chunk.values, strict=True)
            events += [(chunk.partition, o, v) for o, v in pairs]
            bad += [where(chunk, o, raw, exc) for o, raw, exc in chunk.rejects or ()]
    reader.close()
    return sorted(events, key=lambda e: (e[0], e[1])), bad


def columnar(polls: list[list[Part]]) -> tuple[list[tuple[int, int, Any]], list[tuple[Any, ...]]]:
    events, bad = [], []
    for part in (part for parts in polls for part in parts):
        pairs = zip(offsets(part), part.get_rows(), strict=True)
        events += [(part.partition, o, v) for o, v in pairs]
        bad += rejects(part)
    return sorted(events, key=lambda e: (e[0], e[1])), bad


@pytest.mark.parametrize("read_ahead", [True, False])
@pytest.mark.parametrize("bounded", [True, False])
@pytest.mark.parametrize(
    "bad",
    [
        {2 * PER_BATCH + PER_BATCH // 2: BAD[0]},
        {2 * PER_BATCH + 10: BAD[0], 2 * PER_BATCH + 11: BAD[1], 3 * PER_BATCH - 1: BAD[2]},
    ],
    ids=["one", "several"],
)
def test_only_the_stretch_with_a_bad_record_is_read_per_record(
    tmp_path: Path, read_ahead: bool, bounded: bool, bad: dict[int, bytes]
) -> None:
    n = 5 * PER_BATCH
    write(tmp_path, with_bad(n, bad))
    ctx = OpenContext("f", str(tmp_path), bounded=bounded)
    reader = ColumnarLogReader(log_source("in"), ctx, max_records=PER_BATCH, read_ahead=read_ahead)
    polls = read_all(reader, {0: n})
    assert reader.exhausted is bounded
    reader.close()
    # one record batch a poll: the poll holding the bad records is read per record (rows,
    # rejects), every other one -- before and after it -- is one frame
    assert len(polls) == 5
    for k, parts in enumerate(polls):
        if k == 2:
            assert all(p.frame is None and p.rows is not None for p in parts)
            assert sorted(o for p in parts for _, o, *_ in rejects(p)) == sorted(bad)
        else:
            assert [p.frame is not None for p in parts] == [True]
            assert offsets(parts[0]) == list(range(k * PER_BATCH, (k + 1) * PER_BATCH))
    # the same events and rejects (error, message, topic, partition, offset) as stream-first
    want = stream_first(ctx)
    assert columnar(polls) == want
    assert len(want[0]) == n - len(bad) and len(want[1]) == len(bad)
    ctx.close()


def test_other_partitions_of_the_poll_stay_columnar(tmp_path: Path) -> None:
    log = Log(tmp_path)
    log.create_topic("in", 2)
    with log.producer("in") as producer:  # partition 0 has a bad record, partition 1 not
        producer.append([BAD[1] if i == 7 else good(i) for i in range(PER_BATCH)], partition=0)
        producer.append([good(i) for i in range(PER_BATCH + 100)], partition=1)
    log.close()
    ctx = OpenContext("f", str(tmp_path))
    reader = ColumnarLogReader(log_source("in"), ctx, max_records=10_000)
    polls = read_all(reader, {0: PER_BATCH, 1: PER_BATCH + 100})
    reader.close()
    assert [p.partition for p in polls[0]] == [0, 1]  # one poll
    kinds = {(p.partition, p.frame is not None) for parts in polls for p in parts}
    assert kinds == {(0, False), (1, True)}
    assert columnar(polls) == stream_first(ctx)
    ctx.close()


@pytest.mark.parametrize("read_ahead", [True, False])
def test_a_bad_last_record_then_columnar_again(tmp_path: Path, read_ahead: bool) -> None:
    n = 2 * PER_BATCH
    write(tmp_path, with_bad(n, {n - 1: BAD[0]}))
    ctx = OpenContext("f", str(tmp_path))
    reader = ColumnarLogReader(log_source("in"), ctx, max_records=PER_BATCH, read_ahead=read_ahead)
    polls = read_all(reader, {0: n})
    assert [[p.frame is not None for p in parts] for parts in polls] == [[True], [False]]
    assert [o for p in polls[-1] for _, o, *_ in rejects(p)] == [n - 1]
    assert reader.poll(0.0) == [] and reader.positions() == {0: n}
    log = Log(tmp_path)
    with log.producer("in") as producer:
        producer.append([good(i) for i in range(n, n + PER_BATCH)])
    polls += read_all(reader, {0: n + PER_BATCH})
    reader.close()
    assert [p.frame is not None for p in polls[-1]] == [True]  # the reject is not repeated
    assert columnar(polls) == stream_first(ctx)
    log.close()
    ctx.close()


def test_seek_drops_the_read_ahead_and_loses_no_event(tmp_path: Path) -> None:
    write(tmp_path, with_bad(3 * PER_BATCH, {}), partitions=2)
    ctx = OpenContext("f", str(tmp_path))
    reader = ColumnarLogReader(log_source("in"), ctx, max_records=PER_BATCH, read_ahead=True)
    first = reader.poll(1.0)  # one batch of one partition; the other one's is read ahead
    assert [(p.partition, len(p)) for p in first] == [(0, PER_BATCH)]
    reader.seek({0: 10})  # partition 1 continues after what was returned: from 0
    assert reader.positions() == {0: 10, 1: 0}
    polls = read_all(reader, {0: 3 * PER_BATCH, 1: 3 * PER_BATCH})
    reader.close()
    events, bad = columnar(polls)
    assert not bad
    want = {(p, o) for p in (0, 1) for o in range(3 * PER_BATCH)} - {(0, o) for o in range(10)}
    assert [(p, o) for p, o, _ in events] == sorted(want)  # each once
    ctx.close()


def test_positions_and_commit_after_a_stretch_cover_what_was_returned(tmp_path: Path) -> None:
    n = 3 * PER_BATCH
    write(tmp_path, with_bad(n, {PER_BATCH + 3: BAD[0]}))
    ctx = OpenContext("f", str(tmp_path))
    reader = ColumnarLogReader(
        log_source("in", group="g"), ctx, max_records=PER_BATCH, read_ahead=True
    )
    reader.poll(1.0)
    stretch = reader.poll(1.0)  # the next batch is read ahead meanwhile
    assert rejects(stretch[0])[0][1] == PER_BATCH + 3
    assert reader.positions() == {0: 2 * PER_BATCH}
    reader.commit()
    reader.close()
    again = ColumnarLogReader(log_source("in", group="g"), ctx, max_records=PER_BATCH)
    parts = again.poll(1.0)
    assert offsets(parts[0])[0] == 2 * PER_BATCH and parts[0].frame is not None
    again.close()
    ctx.close()


@pytest.mark.parametrize("read_ahead", [True, False])
@pytest.mark.parametrize("size", [1, 7, 999, BULK_FROM - 1, BULK_FROM, BULK_FROM + 1, 5_000])
def test_a_poll_returns_at_most_its_size_and_keeps_the_rest(
    tmp_path: Path, size: int, read_ahead: bool
) -> None:
    write(tmp_path, with_bad(3 * PER_BATCH, {}), partitions=2)
    ctx = OpenContext("f", str(tmp_path))
    reader = ColumnarLogReader(log_source("in"), ctx, max_records=size, read_ahead=read_ahead)
    polls = read_all(reader, {0: 3 * PER_BATCH, 1: 3 * PER_BATCH})
    reader.close()
    assert all(sum(map(len, parts)) <= size for parts in polls)
    # small polls are decoded per record (msgspec), the others in bulk
    assert all((p.frame is not None) == (len(p) >= BULK_FROM) for ps in polls for p in ps)
    assert columnar(polls) == stream_first(ctx)  # every event once, in order
    ctx.close()
