"""One partition of a topic: the single writer that appends to it, and cursors that read it.

Writing (:class:`PartitionWriter`): an exclusive ``flock`` on the partition's ``writer.lock``
makes the writer the only one across processes. On open, the active (last) segment is read
in full and every batch CRC-checked; a torn tail (a batch cut short or failing its CRC with
nothing valid after it) is cut off; a bad batch *followed by valid ones* is corruption, and
the writer refuses to open rather than drop acknowledged records. Each append is one
``write`` of whole framed batches, then an ``fdatasync`` if the durability policy says so.

Reading (:class:`PartitionCursor`): cursors never take a lock. They serve only complete,
CRC-valid batches; a bad batch at the very end of the newest segment is treated as a write in
flight (or a torn tail the next writer will cut) and is waited on, never served. A bad batch
anywhere else raises :class:`~rheos.errors.CorruptLogError` naming topic, partition, offset.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rheos.errors import (
    CorruptLogError,
    DiskFullError,
    OffsetOutOfRangeError,
    PartitionLockedError,
    RecordTooLargeError,
)
from rheos.transport.format import (
    HEADER_SIZE,
    BatchHeader,
    Headers,
    RecordBatch,
    check_crc,
    decode_batch,
    encode_batch_parts,
    parse_header,
)
from rheos.transport.segment import (
    SegmentIndex,
    index_path,
    list_segments,
    load_index,
    plausible,
    read_header_at,
    scan_segment,
    segment_path,
    timeindex_path,
    valid_after,
    write_index,
)

log = logging.getLogger("rheos.transport")

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


IOV_MAX = 1024
_SYNCER: ThreadPoolExecutor | None = None
_SYNCER_LOCK = threading.Lock()


def _writev_all(fd: int, parts: list[bytes]) -> None:
    """Write ``parts`` in order with as few ``writev`` calls as possible (short writes too)."""
    i = 0
    while i < len(parts):
        group = parts[i : i + IOV_MAX]
        want = sum(map(len, group))
        done = os.writev(fd, group)
        if done == want:
            i += len(group)
            continue
        # a short write: skip the parts written in full, keep the rest of the cut one
        for j, part in enumerate(group):
            if done < len(part):
                parts = [part[done:], *group[j + 1 :], *parts[i + len(group) :]]
                i = 0
                break
            done -= len(part)


def _sync_and_close(fds: tuple[int, ...]) -> None:
    try:
        for fd in fds:
            os.fsync(fd)
    finally:
        for fd in fds:
            os.close(fd)


def _background_sync(fds: tuple[int, ...]) -> None:
    global _SYNCER
    with _SYNCER_LOCK:
        if _SYNCER is None:
            _SYNCER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rheos-seal")
        _SYNCER.submit(_sync_and_close, fds)


def oversize_record(
    values: Sequence[bytes], keys: Sequence[bytes | None] | None, limit: int
) -> tuple[int, int] | None:
    """The index and size of the first record whose key plus value exceed ``limit``, if any
    (one fast pass when none does)."""
    biggest = max(map(len, values), default=0)
    if keys is not None:
        biggest += max((len(k) for k in keys if k is not None), default=0)
    if biggest <= limit:
        return None
    for i, value in enumerate(values):
        size = len(value) + (len(keys[i] or b"") if keys is not None else 0)
        if size > limit:
            return i, size
    return None


COMMITTED_FILE = "committed"
_MARK = struct.Struct("<QI")


def write_committed(folder: Path, offset: int) -> None:
    """Durably record that records below ``offset`` are committed (atomic: write + rename)."""
    body = struct.pack("<Q", offset)
    tmp = folder / (COMMITTED_FILE + ".tmp")
    with open(tmp, "wb") as f:
        f.write(_MARK.pack(offset, zlib.crc32(body)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / COMMITTED_FILE)


def read_committed(folder: Path) -> int | None:
    """The committed mark of a partition, or ``None`` if it was never written transactionally."""
    try:
        raw = (folder / COMMITTED_FILE).read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) != _MARK.size:
        raise CorruptLogError(f"the {COMMITTED_FILE} mark file has {len(raw)} bytes")
    offset, crc = _MARK.unpack(raw)
    if zlib.crc32(raw[:8]) != crc:
        raise CorruptLogError(f"the {COMMITTED_FILE} mark file fails its CRC")
    return int(offset)


class PartitionWriter:
    """The one writer of a partition. Not thread-safe by itself; the producer layer locks."""

    def __init__(
        self,
        folder: Path,
        topic: str,
        partition: int,
        *,
        segment_bytes: int,
        max_record_bytes: int,
        fsync_every_batch: bool,
    ) -> None:
        self.folder = folder
        self.topic = topic
        self.partition = partition
        self.segment_bytes = segment_bytes
        self.max_record_bytes = max_record_bytes
        self.fsync_every_batch = fsync_every_batch
        self.dirty = False
        self.recovered_bytes = 0
        self.rolls = 0
        self._closed = False
        folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(folder / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._lock_fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self._lock_fd)
            raise PartitionLockedError(
                f"another writer (pid {holder}) holds this partition; only one process may "
                "write a partition at a time",
                topic=topic,
                partition=partition,
            ) from None
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, str(os.getpid()).encode(), 0)
        try:
            self._open_active()
        except BaseException:
            self._release_lock()
            raise

    # -- opening and recovery ---------------------------------------------------------------

    def _open_active(self) -> None:
        bases = list_segments(self.folder)
        if not bases:
            self._create_segment(0)
            return
        base = bases[-1]
        path = segment_path(self.folder, base)
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        size = os.fstat(fd).st_size
        scan = scan_segment(fd, size, 0, base)
        if scan.bad_pos is not None:
            if scan.good_after_bad:
                os.close(fd)
                raise CorruptLogError(
                    f"segment {path.name} has a damaged batch ({scan.bad_reason}) followed by "
                    "valid ones; refusing to cut acknowledged records. Move the segment aside "
                    "or restore it from a copy",
                    topic=self.topic,
                    partition=self.partition,
                    offset=scan.next_offset,
                )
            self.recovered_bytes = size - scan.end_pos
            log.warning(
                "topic %r partition %d: cut a torn tail of %d bytes at offset %d (%s); "
                "it was never acknowledged",
                self.topic,
                self.partition,
                self.recovered_bytes,
                scan.next_offset,
                scan.bad_reason,
            )
            os.ftruncate(fd, scan.end_pos)
            os.fsync(fd)
        self._fd = fd
        self.base = base
        self.pos = scan.end_pos
        self.next_offset = scan.next_offset
        self.index = scan.seg_index
        write_index(path, self.index, fsync=False)
        self._open_index_files(path)

    def _open_index_files(self, path: Path) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        self._idx_fd = os.open(index_path(path), flags, 0o644)
        self._tim_fd = os.open(timeindex_path(path), flags, 0o644)

    def _create_segment(self, base: int) -> None:
        path = segment_path(self.folder, base)
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self.base = base
        self.pos = 0
        self.next_offset = base
        self.index = SegmentIndex()
        for p in (index_path(path), timeindex_path(path)):
            p.write_bytes(b"")
        self._open_index_files(path)
        fsync_dir(self.folder)

    def _roll(self) -> None:
        """Seal the active segment and start a new one.

        Under the ``batch`` policy the sealed segment is already durable. Otherwise it is
        fsynced by a background thread, so an append never waits for a whole segment to reach
        the disk (the policy never promised that).
        """
        self.rolls += 1
        fds = (self._fd, self._idx_fd, self._tim_fd)
        if self.fsync_every_batch:
            _sync_and_close(fds)
        else:
            _background_sync(fds)
        self.dirty = False
        self._create_segment(self.next_offset)

    # -- appending --------------------------------------------------------------------------

    def append(
        self,
        values: Sequence[bytes],
        timestamps: Sequence[int],
        keys: Sequence[bytes | None] | None = None,
        headers: Sequence[Headers | None] | None = None,
        *,
        max_batch_records: int = 65_536,
    ) -> int:
        """Append records as one or more batches; return the offset of the first one.

        Either every record is written or none is (a failed write is cut back off).
        """
        n = len(values)
        if n == 0:
            return self.next_offset
        self._check_sizes(values, keys)
        now = now_ms()
        first = self.next_offset
        parts: list[bytes] = []
        headers_written: list[tuple[BatchHeader, int]] = []
        offset = first
        size = 0
        for start in range(0, n, max_batch_records):
            stop = min(n, start + max_batch_records)
            chunk, header = encode_batch_parts(
                offset,
                values[start:stop],
                timestamps[start:stop],
                keys[start:stop] if keys is not None else None,
                headers[start:stop] if headers is not None else None,
                now,
            )
            parts.extend(chunk)
            headers_written.append((header, size))
            size += header.size
            offset += stop - start
        if self.pos > 0 and self.pos + size > self.segment_bytes:
            self._roll()
        self._write(parts, size, first)
        idx_parts, tim_parts = [], []
        for header, rel in headers_written:
            idx, tim = self.index.add(header, self.pos + rel)
            idx_parts.append(idx)
            tim_parts.append(tim)
        self.pos += size
        self.next_offset = offset
        self._write_index_entries(b"".join(idx_parts), b"".join(tim_parts))
        return first

    def _write_index_entries(self, idx_blob: bytes, tim_blob: bytes) -> None:
        """Append index entries. The records are already written (and acknowledged once this
        returns), so a failure here (a full disk) must not fail the append: the index files are
        emptied instead, which readers treat as "scan the segment" (an index with entries
        missing in the middle would make a time seek skip records)."""
        try:
            if idx_blob:
                os.write(self._idx_fd, idx_blob)
            if tim_blob:
                os.write(self._tim_fd, tim_blob)
        except OSError as exc:
            log.warning(
                "topic %r partition %d: could not write the segment index (%s); emptied it, "
                "reads of this segment will scan",
                self.topic,
                self.partition,
                exc.strerror,
            )
            for fd in (self._idx_fd, self._tim_fd):
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)

    def _check_sizes(self, values: Sequence[bytes], keys: Sequence[bytes | None] | None) -> None:
        found = oversize_record(values, keys, self.max_record_bytes)
        if found is not None:
            i, size = found
            raise RecordTooLargeError(
                f"record {i} of the append is {size} bytes, over the topic's "
                f"max_record_bytes of {self.max_record_bytes}; nothing of this append was written",
                topic=self.topic,
                partition=self.partition,
                offset=self.next_offset + i,
            )

    def _write(self, parts: list[bytes], size: int, first_offset: int) -> None:
        try:
            _writev_all(self._fd, parts)
            if self.fsync_every_batch:
                os.fdatasync(self._fd)
            else:
                self.dirty = True
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.pos)
            if exc.errno in _DISK_FULL:
                raise DiskFullError(
                    f"the disk is full ({exc.strerror}); the append of {size} bytes to "
                    f"{self.folder} was cut back and nothing of it is kept; free space there "
                    "and append again",
                    topic=self.topic,
                    partition=self.partition,
                    offset=first_offset,
                ) from exc
            raise

    def truncate_to(self, offset: int) -> None:
        """Cut every record at or after ``offset`` (a batch boundary) off the partition.

        Used to discard an uncommitted tail when a transactional writer recovers.
        """
        if offset == self.next_offset:
            return
        bases = list_segments(self.folder)
        if not bases[0] <= offset < self.next_offset:
            raise OffsetOutOfRangeError(
                f"cannot truncate to offset {offset}: the partition holds "
                f"{bases[0]}..{self.next_offset - 1}",
                topic=self.topic,
                partition=self.partition,
                offset=offset,
            )
        for fd in (self._fd, self._idx_fd, self._tim_fd):
            os.close(fd)
        base = max(b for b in bases if b <= offset)
        path = segment_path(self.folder, base)
        fd = os.open(path, os.O_RDWR)
        try:
            pos, at = 0, base
            while at < offset:
                header = read_header_at(fd, pos)
                if header is None or not plausible(header, at) or header.next_offset > offset:
                    raise CorruptLogError(
                        f"offset {offset} is not a batch boundary; cannot truncate there",
                        topic=self.topic,
                        partition=self.partition,
                        offset=offset,
                    )
                pos += header.size
                at = header.next_offset
            os.ftruncate(fd, pos)
            os.fsync(fd)
        finally:
            os.close(fd)
        for b in bases:
            if b > base:
                later = segment_path(self.folder, b)
                for p in (later, index_path(later), timeindex_path(later)):
                    p.unlink(missing_ok=True)
        fsync_dir(self.folder)
        self._open_active()

    def sync(self) -> None:
        """Make everything appended so far durable (fdatasync)."""
        if self.dirty and not self._closed:
            os.fdatasync(self._fd)
            self.dirty = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.dirty:
                os.fdatasync(self._fd)
            for fd in (self._fd, self._idx_fd, self._tim_fd):
                os.close(fd)
        finally:
            self._release_lock()

    def _release_lock(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)


def whole_batch_at(fd: int, pos: int, size: int, expected_base: int) -> BatchHeader | None:
    """The header of the batch at ``pos`` if it is sound and complete, else ``None``.

    Positioning walks batch headers with it. The last batch (no sound header after it) must
    also pass its CRC, so that a torn tail whose length happens to fit is never counted as
    records; damage further back is left for the read to report.
    """
    header = read_header_at(fd, pos)
    if header is None or not plausible(header, expected_base) or pos + header.size > size:
        return None
    after = read_header_at(fd, pos + header.size)
    if after is not None and plausible(after, header.next_offset):
        return header
    return header if check_crc(os.pread(fd, header.size, pos), 0, header) else None


class PartitionCursor:
    """Reads one partition forward from an offset. Lock-free; safe beside a live writer."""

    def __init__(self, folder: Path, topic: str, partition: int) -> None:
        self.folder = folder
        self.topic = topic
        self.partition = partition
        self.next_offset = 0
        self._base: int | None = None
        self._fd: int | None = None
        self._pos = 0
        self._batch_base = 0
        self.committed_only = False
        self._mark_key: tuple[int, int] | None = None
        self._mark: int | None = None
        self._last_cut: int | None = None
        """The offset where the cursor last went back to a cut (see :meth:`_cut_back`)."""

    def committed_limit(self) -> int | None:
        """For a committed reader: the partition's committed mark, if it has one (cached by
        the mark file's inode and mtime)."""
        if not self.committed_only:
            return None
        try:
            st = os.stat(self.folder / COMMITTED_FILE)
        except FileNotFoundError:
            self._mark_key = self._mark = None
            return None
        key = (st.st_ino, st.st_mtime_ns)
        if key != self._mark_key:
            mark = read_committed(self.folder)
            self._mark_key, self._mark = key, mark
        return self._mark

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._base = None

    # -- positioning ------------------------------------------------------------------------

    def _segments(self) -> list[int]:
        try:
            bases = list_segments(self.folder)
        except FileNotFoundError:
            bases = []
        if not bases:
            raise CorruptLogError(
                "the partition folder holds no segment file",
                topic=self.topic,
                partition=self.partition,
            )
        return bases

    def start_offset(self) -> int:
        """The first offset the partition still holds (retention deletes older segments)."""
        return self._segments()[0]

    def end_offset(self) -> int:
        """The offset the next appended record will get (as far as complete data shows)."""
        base = self._segments()[-1]
        path = segment_path(self.folder, base)
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            pos, offset = self._indexed_start(path, fd, size, base, None)
            while (header := whole_batch_at(fd, pos, size, offset)) is not None:
                pos += header.size
                offset = header.next_offset
            return offset
        finally:
            os.close(fd)

    def _indexed_start(
        self, path: Path, fd: int, size: int, base: int, target: int | None
    ) -> tuple[int, int]:
        """A verified (position, offset) to start walking from towards ``target`` (or the end)."""
        index = load_index(path, size)
        if index is None or not index.offsets:
            return 0, base
        if target is None:
            candidates = list(zip(index.positions, index.offsets, strict=True))[::-1]
        else:
            off, pos = index.position_for(target)
            candidates = [(pos, off)] if off >= 0 else []
        for pos, off in candidates[:4]:
            header = read_header_at(fd, pos)
            if header is not None and plausible(header, off):
                return pos, off
        return 0, base

    def seek(self, offset: int) -> None:
        """Position the cursor so the next read starts at ``offset``."""
        bases = self._segments()
        if offset < bases[0]:
            raise OffsetOutOfRangeError(
                f"offset {offset} is below the first kept offset {bases[0]} "
                "(older segments were deleted by retention)",
                topic=self.topic,
                partition=self.partition,
                offset=offset,
            )
        base = max(b for b in bases if b <= offset)
        self._open(base)
        assert self._fd is not None
        path = segment_path(self.folder, base)
        size = os.fstat(self._fd).st_size
        pos, at = self._indexed_start(path, self._fd, size, base, offset)
        while (header := whole_batch_at(self._fd, pos, size, at)) is not None:
            if header.next_offset > offset:
                break
            pos += header.size
            at = header.next_offset
        if at < offset and offset > self.end_offset():
            raise OffsetOutOfRangeError(
                f"offset {offset} is past the end of the partition ({at})",
                topic=self.topic,
                partition=self.partition,
                offset=offset,
            )
        self._pos = pos
        self._batch_base = at
        self.next_offset = offset

    def seek_time(self, timestamp: int) -> int:
        """Position at the first record whose timestamp is >= ``timestamp``; return its offset.

        Segments whose largest timestamp is older are skipped by their time index; inside the
        segment, the time index gives a batch to start from and batches whose largest
        timestamp is older are skipped without being decoded.
        """
        bases = self._segments()
        start = bases[-1]
        for base in bases:
            path = segment_path(self.folder, base)
            try:
                index = load_index(path, path.stat().st_size)
            except FileNotFoundError:
                continue
            if index is not None and index.max_ts is not None and index.max_ts < timestamp:
                continue
            hint = index.offset_for_time(timestamp) if index is not None else None
            start = base if hint is None else hint
            break
        self.seek(start)
        while True:
            before = self.next_offset
            batches = self.read(1 << 20, skip_below_ts=timestamp)
            if not batches and self.next_offset == before:
                break  # the end: batches that were only skipped still move the cursor on
            for batch in batches:
                ts = batch.timestamps
                for i in range(batch.start, batch.stop):
                    if ts[i] >= timestamp:
                        target = batch.base_offset + i
                        self.seek(target)
                        return target
        return self.next_offset

    def _open(self, base: int) -> None:
        if self._base == base and self._fd is not None:
            return
        self.close()
        path = segment_path(self.folder, base)
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise CorruptLogError(
                f"segment file {path.name} is missing",
                topic=self.topic,
                partition=self.partition,
                offset=base,
            ) from None
        self._base = base
        self._pos = 0

    # -- reading ----------------------------------------------------------------------------

    def read(
        self, max_bytes: int = 1 << 20, *, skip_below_ts: int | None = None
    ) -> list[RecordBatch]:
        """Return the complete batches from the current position, up to about ``max_bytes``.

        Returns an empty list when there is nothing new. The first batch is sliced so it starts
        exactly at the cursor's offset.
        """
        if self._fd is None:
            self.seek(self.next_offset)
        limit = self.committed_limit()
        if limit is not None and self.next_offset >= limit:
            return []
        out: list[RecordBatch] = []
        budget = max_bytes
        while budget > 0:
            cut = self._last_cut
            got = self._read_segment(budget, out, skip_below_ts, limit)
            budget -= got
            if got == 0 and cut == self._last_cut and not self._advance_segment():
                break  # (after a cut back, read on from the cut)
        return out

    def _read_segment(
        self,
        budget: int,
        out: list[RecordBatch],
        skip_below_ts: int | None,
        limit: int | None = None,
    ) -> int:
        assert self._fd is not None
        data = os.pread(self._fd, max(budget, HEADER_SIZE), self._pos)
        used = 0
        pos = 0
        while pos + HEADER_SIZE <= len(data):
            header = parse_header(data, pos)
            if not plausible(header, self._batch_base):
                self._bad_batch("bad batch header")
                break
            if limit is not None and header.next_offset > limit:
                break  # not committed yet (marks fall on batch boundaries)
            if pos + header.size > len(data):
                if pos == 0 and header.size > len(data):
                    # a single batch larger than the budget: read it whole
                    data = os.pread(self._fd, header.size, self._pos)
                    if len(data) < header.size:
                        break
                    continue
                break
            if not check_crc(data, pos, header):
                self._bad_batch("CRC mismatch")
                break
            if skip_below_ts is None or header.max_ts >= skip_below_ts:
                batch = decode_batch(data, pos, header, self.topic, self.partition)
                if header.base_offset < self.next_offset:
                    batch = batch.slice(self.next_offset - header.base_offset)
                if len(batch):
                    out.append(batch)
            pos += header.size
            used += header.size
            self._pos += header.size
            self.next_offset = header.next_offset
            self._batch_base = header.next_offset
        return used

    def _bad_batch(self, reason: str) -> None:
        """A bad batch at the end of the newest segment is pending; anywhere else it's corrupt
        -- unless the partition was cut back under the cursor (see :meth:`_cut_back`)."""
        assert self._fd is not None and self._base is not None
        pos = self._pos  # _read_segment has advanced it to the start of the bad batch
        size = os.fstat(self._fd).st_size
        if self._cut_back():
            return
        bases = self._segments()
        if self._base == bases[-1]:
            header = read_header_at(self._fd, pos)
            end = pos + header.size if header is not None and plausible(header, None) else pos
            if end >= size or not valid_after(self._fd, size, end):
                return  # a write in flight, or a torn tail the next writer will cut
        raise CorruptLogError(
            f"{reason} in segment {self._base:020d}.log at byte {pos}",
            topic=self.topic,
            partition=self.partition,
            offset=self.next_offset,
        )

    def _cut_back(self) -> bool:
        """Whether a recovering transactional writer cut the partition back under this
        (uncommitted) cursor and wrote again: its offset is past the end, or no longer at its
        byte position. The cursor then goes back to the cut (the partition's committed mark,
        where recovery cuts) and reads the records written again from there."""
        if self.committed_only or self._last_cut == self.next_offset:
            return False  # committed records are never cut; bad twice here: damaged
        pos, offset = self._pos, self.next_offset
        end = self.end_offset()
        if offset <= end:
            self.seek(offset)
            if self._pos == pos:
                return False  # still a batch boundary: a write in flight, or damage
        mark = read_committed(self.folder)
        self.seek(min(offset, end, offset if mark is None else mark))
        self._last_cut = offset
        return True

    def _advance_segment(self) -> bool:
        """At the end of a segment, move to the next one if the writer rolled."""
        if not self._at_segment_end() or self._base == self.next_offset:
            return False
        if segment_path(self.folder, self.next_offset).exists():
            # The writer rolled: everything of the old segment was written before the new
            # file was created, and the new file's name says no record is in between.
            self._open(self.next_offset)
            self._batch_base = self.next_offset
            return True
        bases = self._segments()
        if self.next_offset in bases:  # the writer rolled just after the check above
            self._open(self.next_offset)
            self._batch_base = self.next_offset
            return True
        later = [b for b in bases if b > (self._base or 0)]
        if later and self._at_segment_end():
            if self.next_offset < bases[0]:
                raise OffsetOutOfRangeError(
                    f"offset {self.next_offset} was deleted by retention while this reader was "
                    f"behind; the first kept offset is {bases[0]}",
                    topic=self.topic,
                    partition=self.partition,
                    offset=self.next_offset,
                )
            raise CorruptLogError(
                f"the segment holding offset {self.next_offset} is missing (the next segment "
                f"starts at offset {later[0]})",
                topic=self.topic,
                partition=self.partition,
                offset=self.next_offset,
            )
        return bool(later)

    def _at_segment_end(self) -> bool:
        assert self._fd is not None
        return self._pos >= os.fstat(self._fd).st_size
