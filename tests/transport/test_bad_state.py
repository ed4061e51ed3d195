"""Bad state on disk and bad input: each gets a clear error naming topic, partition and offset
where they apply, and no acknowledged record is ever dropped silently."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rheos.errors import CorruptLogError, OffsetOutOfRangeError, RecordTooLargeError
from rheos.transport import Log
from rheos.transport.format import parse_header
from rheos.transport.segment import index_path, timeindex_path

from .conftest import segment_files


def batches_in(path: Path) -> list[tuple[int, int, int, int]]:
    """(position, base offset, records, size) of every batch in a segment file."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        h = parse_header(data, pos)
        out.append((pos, h.base_offset, h.records, h.size))
        pos += h.size
    return out


def flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.fixture
def segmented(log: Log) -> Log:
    """Topic "t": offsets 0..59 in batches of 3 (value = offset, timestamp = 10 * offset)
    over several segments."""
    log.create_topic("t", segment_bytes=500)
    with log.producer("t") as p:
        for b in range(20):
            offs = range(b * 3, b * 3 + 3)
            p.append([b"value-%d" % o for o in offs], timestamps=[10 * o for o in offs])
    assert len(segment_files(log, "t")) >= 4
    return log


def offsets(log: Log, **kwargs: object) -> list[int]:
    with log.reader("t", **kwargs) as reader:  # type: ignore[arg-type]
        return [r.offset for r in reader.read()]


# -- corruption -----------------------------------------------------------------------------


def test_corrupt_byte_in_a_sealed_segment(segmented: Log) -> None:
    sealed = segment_files(segmented, "t")[1]
    pos, base, _, size = batches_in(sealed)[1]
    flip(sealed, pos + size - 3)  # inside the values of the segment's second batch
    reader = segmented.reader("t")
    with pytest.raises(CorruptLogError, match="CRC mismatch") as info:
        list(reader.read())
    err = info.value
    assert (err.topic, err.partition, err.offset) == ("t", 0, base)
    assert f"segment {sealed.name} at byte {pos}" in str(err)
    assert f"offset {base}" in str(err)
    # the records before it were served; reading from after it still works
    assert reader.positions() == {0: base}
    assert offsets(segmented, start=base + 3) == list(range(base + 3, 60))
    # a writer is not blocked by damage in a sealed segment (it only checks the active one)
    with segmented.producer("t") as p:
        assert p.append([b"x"]) == [(0, 60, 1)]


def test_damaged_batch_header_in_a_sealed_segment(segmented: Log) -> None:
    sealed = segment_files(segmented, "t")[0]
    pos, base, _, _ = batches_in(sealed)[2]
    flip(sealed, pos + 8)  # the magic byte
    with pytest.raises(CorruptLogError, match="bad batch header") as info:
        offsets(segmented)
    assert info.value.offset == base
    assert f"at byte {pos}" in str(info.value)


def test_writer_refuses_a_damaged_active_segment_with_valid_data_after(segmented: Log) -> None:
    active = segment_files(segmented, "t")[-1]
    assert len(batches_in(active)) >= 2
    pos, base, _, size = batches_in(active)[0]
    flip(active, pos + size - 1)
    before = active.read_bytes()
    with (
        segmented.producer("t") as p,
        pytest.raises(CorruptLogError, match="followed by valid ones") as info,
    ):
        p.append([b"x"])
    assert (info.value.topic, info.value.partition, info.value.offset) == ("t", 0, base)
    assert active.read_bytes() == before  # nothing was cut


@pytest.mark.parametrize("field", ["length", "magic", "base_offset", "count"])
def test_a_damaged_header_is_not_taken_for_a_torn_tail(segmented: Log, field: str) -> None:
    """A damaged length field made a batch look cut short, and the writer cut it *and every
    acknowledged batch after it* as a torn tail."""
    active = segment_files(segmented, "t")[-1]
    pos, base, _, _ = batches_in(active)[0]
    flip(active, pos + {"length": 2, "magic": 8, "base_offset": 12, "count": 20}[field])
    before = active.read_bytes()
    with (
        segmented.producer("t") as p,
        pytest.raises(CorruptLogError, match="followed by valid ones") as info,
    ):
        p.append([b"x"])
    assert info.value.offset == base
    assert active.read_bytes() == before


def test_reader_reports_a_damaged_header_in_the_active_segment(segmented: Log) -> None:
    """Damage followed by valid batches in the newest segment is corruption, not a write in
    flight: the reader raises (it used to wait on it forever), naming the right byte."""
    active = segment_files(segmented, "t")[-1]
    pos, base, _, _ = batches_in(active)[1]
    flip(active, pos + 8)
    with pytest.raises(CorruptLogError, match=f"at byte {pos} ") as info:
        offsets(segmented)
    assert info.value.offset == base


def test_missing_segment_in_the_middle(segmented: Log) -> None:
    files = segment_files(segmented, "t")
    gone = files[1]
    first_missing, first_after = int(gone.stem), int(files[2].stem)
    gone.unlink()
    reader = segmented.reader("t")
    with pytest.raises(CorruptLogError, match="is missing") as info:
        list(reader.read())
    assert info.value.offset == first_missing
    assert f"offset {first_missing}" in str(info.value)
    with pytest.raises(CorruptLogError, match="is missing"):
        offsets(segmented, start=first_missing + 1)
    # what is there is still readable
    assert offsets(segmented, start=first_after) == list(range(first_after, 60))


@pytest.mark.parametrize("which", ["index", "timeindex", "both", "garbage"])
def test_missing_or_damaged_index_files(segmented: Log, which: str) -> None:
    for seg in segment_files(segmented, "t"):
        for path in (index_path(seg), timeindex_path(seg)):
            if which == "garbage":
                path.write_bytes(b"\xff" * 40)
            elif which in (path.suffix[1:], "both"):
                path.unlink()
    assert offsets(segmented) == list(range(60))
    for start in (0, 4, 31, 59):
        assert offsets(segmented, start=start) == list(range(start, 60))
    for t in (0, 5, 300, 590, 591):
        when = datetime.fromtimestamp(t / 1000, UTC)
        expected = next((o for o in range(60) if 10 * o >= t), 60)
        assert offsets(segmented, start=when) == list(range(expected, 60))
    assert segmented.describe("t")[0].next_offset == 60
    # the writer rebuilds the active segment's index and goes on
    with segmented.producer("t") as p:
        assert p.append([b"x"], timestamps=[10_000]) == [(0, 60, 1)]
    active = segment_files(segmented, "t")[-1]
    assert index_path(active).stat().st_size > 0
    assert offsets(segmented, start=datetime.fromtimestamp(9, UTC)) == [60]


def test_torn_tail_is_never_served_and_cut_by_the_next_writer(
    segmented: Log, caplog: pytest.LogCaptureFixture
) -> None:
    active = segment_files(segmented, "t")[-1]
    pos, base, count, size = batches_in(active)[-1]
    good = active.read_bytes()
    with open(active, "r+b") as f:  # the last batch was being written when the power went
        f.truncate(pos + size - 5)
    with open(active, "ab") as f:
        f.write(b"\x00" * 37)
    reader = segmented.reader("t", start="end")
    # readers serve only whole, CRC-valid batches; the torn batch's length fits in the file,
    # and it used to be counted in the end offset (a reader from "end" then skipped the next
    # records the writer appended)
    assert offsets(segmented) == list(range(base))
    assert segmented.describe("t")[0].next_offset == base
    assert reader.positions() == {0: base}
    with pytest.raises(OffsetOutOfRangeError, match="past the end"):
        segmented.reader("t", start=base + count)
    with (
        caplog.at_level(logging.WARNING, logger="rheos.transport"),
        segmented.producer("t") as p,
    ):
        assert p.append([b"new"]) == [(0, base, 1)]
    assert "cut a torn tail" in caplog.text
    assert f"offset {base}" in caplog.text
    assert active.read_bytes()[:pos] == good[:pos]
    assert [r.value for r in reader.read()] == [b"new"]
    assert offsets(segmented) == list(range(base + 1))


# -- bad input ------------------------------------------------------------------------------


def test_oversize_record(log: Log) -> None:
    log.create_topic("t", max_record_bytes=100)
    with log.producer("t") as p:
        p.append([b"a" * 100])  # exactly the limit is fine
        with pytest.raises(
            RecordTooLargeError, match="record 2 of the append is 101 bytes"
        ) as info:
            p.append([b"b", b"c", b"d" * 101, b"e"])
        assert (info.value.topic, info.value.partition, info.value.offset) == ("t", 0, 3)
        assert "nothing of this append was written" in str(info.value)
        # the key counts too
        with pytest.raises(RecordTooLargeError):
            p.append([b"v" * 60], keys=[b"k" * 41])
        assert p.append([b"f"]) == [(0, 1, 1)]  # offsets unchanged by the failed appends
    with log.reader("t") as reader:
        assert [r.value for r in reader.read()] == [b"a" * 100, b"f"]


def test_oversize_record_in_an_append_over_several_partitions(log: Log) -> None:
    """The other partitions' share of the append used to be written before the partition
    holding the oversize record refused it."""
    log.create_topic("t", partitions=3, max_record_bytes=10)
    with log.producer("t") as p:
        with pytest.raises(RecordTooLargeError, match="record 4 of the append") as info:
            p.append([b"a", b"b", b"c", b"d", b"x" * 11])
        assert info.value.topic == "t"
        with pytest.raises(RecordTooLargeError):
            p.append([b"a", b"b", b"c"], keys=[b"1", b"2", b"3" * 10])
    with log.reader("t") as reader:
        assert list(reader.read()) == []
