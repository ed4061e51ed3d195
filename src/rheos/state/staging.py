"""A checkpoint staged in a file: how a snapshot process hands one to the store.

A forked snapshot (:mod:`rheos.runtime.snapshot`) encodes the checkpoint in a process of its
own and must not touch SQLite there (the parent's threads may hold its locks, and a
connection does not cross a fork), so it writes the checkpoint to a plain file with
:func:`write_staged`; the parent's store thread reads it back with :func:`read_staged` and
writes it in one transaction (:meth:`~rheos.state.CheckpointStore.write_rows_beside`).

The file is a sequence of frames, each a 4-byte big-endian length and a msgpack body: first
``[id, created_ms, epoch, kind, meta (msgpack bytes), size_bytes, rows]``, then the rows
``[[op, key bytes, value bytes or nil], ...]`` in slices of at most :data:`SLICE_ROWS` (so
the reading thread never holds the GIL long). A file with fewer rows than its first frame
says is refused: it is only a hand-over, never a checkpoint of its own (a crash leaves the
previous checkpoint, in SQLite, the latest).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from rheos.errors import CheckpointError
from rheos.state.store import CheckpointInfo, Row, _decode, _encode, encode_changes

SLICE_ROWS = 20_000
"""Rows per frame of a staged file."""

_HEAD = 4
_rows_of = msgspec.msgpack.Decoder(list[tuple[str, bytes, bytes | None]]).decode
_head_of = msgspec.msgpack.Decoder(tuple[int, int, int, str, bytes, int, int]).decode


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_staged(path: Path, info: CheckpointInfo, changes: list[tuple[str, Any, Any]]) -> None:
    """Encode ``info`` (its meta) and ``changes`` into a new file at ``path`` with plain file
    writes only (a forked process may do nothing else). ``info.size_bytes`` is ignored: the
    size is counted here."""
    rows, size = encode_changes(changes)
    meta_blob = _encode(info.meta)
    size += len(meta_blob)
    head = _encode([info.id, info.created_ms, info.epoch, info.kind, meta_blob, size, len(rows)])
    frames = [head] + [
        _encode(rows[at : at + SLICE_ROWS]) for at in range(0, len(rows), SLICE_ROWS)
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for frame in frames:
            _write_all(fd, len(frame).to_bytes(_HEAD, "big") + frame)
    finally:
        os.close(fd)


class StagedCheckpoint:
    """A staged file read back: its checkpoint, meta as msgpack, and rows a slice at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 - read by slices, closed by them
        try:
            head = _head_of(self._frame())
        except (msgspec.DecodeError, CheckpointError) as exc:
            self._file.close()
            raise CheckpointError(f"staged checkpoint {path}: unreadable: {exc}") from exc
        cid, created, epoch, kind, self.meta_blob, size, self.count = head
        self.info = CheckpointInfo(cid, created, epoch, kind, _decode(self.meta_blob), size)

    def _frame(self) -> bytes:
        head = self._file.read(_HEAD)
        if len(head) < _HEAD:
            raise CheckpointError(f"staged checkpoint {self.path}: cut short")
        size = int.from_bytes(head, "big")
        body = self._file.read(size)
        if len(body) < size:
            raise CheckpointError(f"staged checkpoint {self.path}: cut short")
        return body

    def slices(self) -> Iterator[list[Row]]:
        """The rows, a slice at a time; :class:`CheckpointError` if the file holds fewer
        than it says (the transaction reading them then rolls back)."""
        try:
            left = self.count
            while left > 0:
                rows = _rows_of(self._frame())
                left -= len(rows)
                yield rows
        finally:
            self._file.close()

    def remove(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


__all__ = ["SLICE_ROWS", "StagedCheckpoint", "write_staged"]
