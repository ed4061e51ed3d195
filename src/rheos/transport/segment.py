"""Segment files and their indexes.

A partition is a folder of segments. Segment ``00000000000000001234.log`` holds the batches
whose first offset is 1234 or more, up to the base offset of the next segment. Beside it:

- ``.index``: a sparse offset index, pairs ``(offset, position)`` of i64, one every
  ``INDEX_INTERVAL`` bytes of batches, so reading from an offset seeks, never scans;
- ``.timeindex``: pairs ``(max timestamp so far, offset)`` of i64, written when the largest
  timestamp in the segment grows, so reading from a time seeks too.

Indexes are hints: each entry is checked against the batch header it points at, and a
missing or damaged index is rebuilt from the segment's batch headers.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rheos.transport.format import HEADER_SIZE, MAGIC, BatchHeader, check_crc, parse_header

INDEX_INTERVAL = 4096
ENTRY = struct.Struct("<qq")


def segment_path(folder: Path, base_offset: int) -> Path:
    return folder / f"{base_offset:020d}.log"


def index_path(segment: Path) -> Path:
    return segment.with_suffix(".index")


def timeindex_path(segment: Path) -> Path:
    return segment.with_suffix(".timeindex")


def list_segments(folder: Path) -> list[int]:
    """Base offsets of the segments in ``folder``, ascending."""
    bases = []
    for entry in os.scandir(folder):
        name = entry.name
        if name.endswith(".log") and len(name) == 24 and name[:20].isdigit():
            bases.append(int(name[:20]))
    bases.sort()
    return bases


@dataclass
class SegmentIndex:
    """In-memory sparse indexes of one segment (offset -> position, time -> offset)."""

    offsets: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    max_times: list[int] = field(default_factory=list)
    time_offsets: list[int] = field(default_factory=list)
    last_indexed_pos: int = -INDEX_INTERVAL
    max_ts: int | None = None

    def add(self, header: BatchHeader, pos: int) -> tuple[bytes, bytes]:
        """Record a batch; return the bytes to append to the index and time index files."""
        idx = tim = b""
        if pos - self.last_indexed_pos >= INDEX_INTERVAL:
            self.offsets.append(header.base_offset)
            self.positions.append(pos)
            self.last_indexed_pos = pos
            idx = ENTRY.pack(header.base_offset, pos)
        if self.max_ts is None or header.max_ts > self.max_ts:
            self.max_ts = header.max_ts
            self.max_times.append(header.max_ts)
            self.time_offsets.append(header.base_offset)
            tim = ENTRY.pack(header.max_ts, header.base_offset)
        return idx, tim

    def position_for(self, offset: int) -> tuple[int, int]:
        """The last indexed (offset, position) at or before ``offset``; (base, 0) if none."""
        i = bisect.bisect_right(self.offsets, offset) - 1
        if i < 0:
            return -1, 0
        return self.offsets[i], self.positions[i]

    def offset_for_time(self, timestamp: int) -> int | None:
        """An offset at or before the first batch whose max timestamp is >= ``timestamp``."""
        i = bisect.bisect_left(self.max_times, timestamp)
        if i >= len(self.max_times):
            return None
        return self.time_offsets[i - 1] if i > 0 else None

    def truncate_to(self, end_pos: int) -> None:
        while self.positions and self.positions[-1] >= end_pos:
            self.positions.pop()
            self.offsets.pop()
        self.last_indexed_pos = self.positions[-1] if self.positions else -INDEX_INTERVAL


def load_index(segment: Path, size: int) -> SegmentIndex | None:
    """Read a segment's index files; ``None`` if they are missing or inconsistent."""
    try:
        raw = index_path(segment).read_bytes()
        traw = timeindex_path(segment).read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) % ENTRY.size or len(traw) % ENTRY.size:
        return None
    index = SegmentIndex()
    for offset, pos in ENTRY.iter_unpack(raw):
        if pos >= size or (index.positions and pos <= index.positions[-1]):
            return None
        index.offsets.append(offset)
        index.positions.append(pos)
    for ts, offset in ENTRY.iter_unpack(traw):
        if index.max_times and ts <= index.max_times[-1]:
            return None
        index.max_times.append(ts)
        index.time_offsets.append(offset)
    if index.positions:
        index.last_indexed_pos = index.positions[-1]
    index.max_ts = index.max_times[-1] if index.max_times else None
    return index


def write_index(segment: Path, index: SegmentIndex, *, fsync: bool) -> None:
    """Write both index files of ``segment`` in full (atomically, by rename)."""
    for path, pairs in (
        (index_path(segment), zip(index.offsets, index.positions, strict=True)),
        (timeindex_path(segment), zip(index.max_times, index.time_offsets, strict=True)),
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(ENTRY.pack(a, b) for a, b in pairs))
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)


class ScanResult(NamedTuple):
    """What a scan of a segment found."""

    seg_index: SegmentIndex
    end_pos: int  # end of the last good batch
    next_offset: int  # offset after the last good batch
    bad_pos: int | None  # where a bad batch starts, if any
    bad_reason: str
    good_after_bad: bool  # a valid batch follows the bad one: corruption, not a torn tail


def read_header_at(f_fd: int, pos: int) -> BatchHeader | None:
    raw = os.pread(f_fd, HEADER_SIZE, pos)
    if len(raw) < HEADER_SIZE:
        return None
    return parse_header(raw)


def plausible(header: BatchHeader, expected_base: int | None) -> bool:
    if header.magic != MAGIC or header.records == 0 or header.length < HEADER_SIZE - 4:
        return False
    return expected_base is None or header.base_offset == expected_base


def scan_segment(fd: int, size: int, start_pos: int, start_offset: int) -> ScanResult:
    """Validate every batch from ``start_pos`` (CRC included) up to ``size``.

    Reads the segment in large chunks. Stops at the first bad batch and reports whether any
    valid batch can be found after it (which means corruption inside the log, not a torn tail).
    """
    index = SegmentIndex()
    pos, offset = start_pos, start_offset
    chunk = b""
    chunk_pos = pos
    while pos < size:
        if pos + HEADER_SIZE > chunk_pos + len(chunk):
            chunk = os.pread(fd, max(1 << 22, HEADER_SIZE), pos)
            chunk_pos = pos
        if pos + HEADER_SIZE > size:
            return ScanResult(index, pos, offset, pos, "incomplete batch header", False)
        header = parse_header(chunk, pos - chunk_pos)
        if not plausible(header, offset):
            return ScanResult(
                index, pos, offset, pos, "bad batch header", valid_after(fd, size, pos)
            )
        if pos + header.size > size:
            # A torn tail, unless a damaged length field hides valid batches after it.
            after = valid_after(fd, size, pos)
            return ScanResult(index, pos, offset, pos, "batch cut short", after)
        if pos + header.size > chunk_pos + len(chunk):
            chunk = os.pread(fd, max(1 << 22, header.size), pos)
            chunk_pos = pos
        if not check_crc(chunk, pos - chunk_pos, header):
            after = valid_after(fd, size, pos + header.size)
            return ScanResult(index, pos, offset, pos, "CRC mismatch", after)
        index.add(header, pos)
        pos += header.size
        offset = header.next_offset
    return ScanResult(index, pos, offset, None, "", False)


def valid_after(fd: int, size: int, pos: int) -> bool:
    """Is there a complete, CRC-valid batch starting anywhere after ``pos``? (Bounded search.)"""
    limit = min(size, pos + (1 << 24))
    data = os.pread(fd, limit - pos, pos)
    magic_at = 8
    i = 0
    while True:
        j = data.find(bytes([MAGIC]), i + magic_at)
        if j < 0:
            return False
        start = j - magic_at
        i = start + 1
        if start < 0 or start + HEADER_SIZE > len(data):
            continue
        header = parse_header(data, start)
        if (
            plausible(header, None)
            and start + header.size <= len(data)
            and check_crc(data, start, header)
        ):
            return True
