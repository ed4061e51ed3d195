"""Checking a topic on disk: every batch's CRC and framing, offsets, and the indexes.

:func:`check_topic` reads every segment of every partition from its first byte (as crash
recovery does for the newest one), and reports each thing that is wrong as a
:class:`Finding` naming the topic, partition, segment file, byte position and offset:

* ``damaged`` -- a batch whose CRC, header or length is wrong *with valid data after it*:
  acknowledged records are at risk, and readers stop there with ``CorruptLogError``;
* ``torn tail`` -- the newest segment ends in an incomplete or damaged last batch and
  nothing valid follows: an append cut short by a crash, never acknowledged; the next writer
  cuts it off (``rheos`` reports it, nothing is lost);
* ``offset gap`` -- a segment does not start where the one before it ended;
* ``index`` -- an index file is missing, unreadable or disagrees with the batches (indexes are
  hints: readers check each entry and a writer rebuilds them, so this is not data loss).

Nothing is repaired and nothing is skipped silently: the check reads only.

>>> import tempfile
>>> from rheos.transport import Log
>>> log = Log(tempfile.mkdtemp())
>>> with log.producer("t", create_partitions=1) as p:
...     _ = p.append([b"a", b"b"])
>>> check_topic(log, "t").ok
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rheos.transport.log import Log
from rheos.transport.segment import (
    ScanResult,
    list_segments,
    load_index,
    plausible,
    read_header_at,
    scan_segment,
    segment_path,
)


@dataclass(frozen=True)
class Finding:
    """One thing wrong in a topic's files."""

    kind: str
    """``damaged``, ``torn tail``, ``offset gap`` or ``index``."""
    topic: str
    partition: int
    segment: str
    position: int | None
    offset: int | None
    detail: str

    @property
    def data_at_risk(self) -> bool:
        """Whether acknowledged records may be unreadable (``damaged`` or ``offset gap``)."""
        return self.kind in ("damaged", "offset gap")

    def __str__(self) -> str:
        where = f"topic {self.topic!r}, partition {self.partition}, {self.segment}"
        if self.position is not None:
            where += f" at byte {self.position}"
        if self.offset is not None:
            where += f" (offset {self.offset})"
        return f"{self.kind}: {where}: {self.detail}"


@dataclass
class TopicCheck:
    """What :func:`check_topic` found in one topic."""

    topic: str
    partitions: int = 0
    segments: int = 0
    batches_bytes: int = 0
    records: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No acknowledged record is at risk (a torn tail or a stale index is not a risk)."""
        return not any(f.data_at_risk for f in self.findings)


def check_topic(log: Log, topic: str) -> TopicCheck:
    """Read every batch of ``topic`` and report what is wrong (see the module docs)."""
    result = TopicCheck(topic, partitions=log.partitions(topic))
    for partition in range(result.partitions):
        _check_partition(log.topic_dir(topic) / str(partition), topic, partition, result)
    return result


def _check_partition(folder: Path, topic: str, partition: int, out: TopicCheck) -> None:
    bases = list_segments(folder)
    expected: int | None = None
    for n, base in enumerate(bases):
        path = segment_path(folder, base)
        newest = n == len(bases) - 1
        out.segments += 1
        if expected is not None and base != expected:
            detail = f"the segment starts at offset {base}, the one before ended at {expected}"
            out.findings.append(
                Finding("offset gap", topic, partition, path.name, None, expected, detail)
            )
        size = path.stat().st_size
        fd = os.open(path, os.O_RDONLY)
        try:
            scan = scan_segment(fd, size, 0, base)
            out.batches_bytes += scan.end_pos
            out.records += scan.next_offset - base
            if scan.bad_pos is not None:
                out.findings.append(_bad_batch(scan, size, newest, topic, partition, path.name))
            index = _index_problem(path, fd, scan.end_pos)
            if index is not None:
                pos, offset, detail = index
                out.findings.append(
                    Finding("index", topic, partition, path.name, pos, offset, detail)
                )
        finally:
            os.close(fd)
        expected = scan.next_offset


def _bad_batch(
    scan: ScanResult, size: int, newest: bool, topic: str, partition: int, segment: str
) -> Finding:
    if newest and not scan.good_after_bad:
        kind = "torn tail"
        consequence = (
            f"{size - (scan.bad_pos or 0)} bytes never acknowledged, cut off when a writer "
            "next opens the partition"
        )
    elif scan.good_after_bad:
        kind = "damaged"
        consequence = (
            "valid batches follow it: the records from here on cannot be read (readers stop "
            "with CorruptLogError)"
        )
    else:
        kind = "damaged"
        consequence = "the rest of this segment cannot be read, and later segments follow it"
    return Finding(
        kind, topic, partition, segment, scan.bad_pos, scan.next_offset,
        f"{scan.bad_reason}; {consequence}",
    )  # fmt: skip


def _index_problem(
    segment: Path, fd: int, end_pos: int
) -> tuple[int | None, int | None, str] | None:
    """What is wrong with ``segment``'s index files, checked entry by entry against the batch
    headers they point at (as readers check them), or ``None``."""
    index = load_index(segment, max(end_pos, 1))
    if index is None:
        if end_pos == 0:
            return None  # an empty segment has no entries to keep
        return None, None, "missing or unreadable; rebuilt from the batches when a writer opens"
    for offset, pos in zip(index.offsets, index.positions, strict=True):
        if pos >= end_pos:
            continue  # it points into a torn tail: reported with it
        header = read_header_at(fd, pos)
        if header is None or not plausible(header, offset):
            return pos, offset, "the offset index points where no batch of that offset starts"
    for ts, offset in zip(index.max_times, index.time_offsets, strict=True):
        if offset < 0:
            return None, offset, f"the time index holds a negative offset for time {ts}"
    return None


__all__ = ["Finding", "TopicCheck", "check_topic"]
