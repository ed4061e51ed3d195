"""The checkpoint store: one SQLite file per flow, values in msgpack.

Why SQLite. A checkpoint must be atomic (all of it or none of it), durable when it returns,
incremental (only the keys that changed are written) and cheap to read back key by key. SQLite
gives all of that in one file with no server: a checkpoint is one transaction; in WAL mode with
``synchronous=FULL`` a committed transaction survives a crash of the process or the machine,
and a crash in the middle of one leaves the previous checkpoint intact (the half-written
transaction is never visible). It ships with Python.

Why msgpack. State is event data: it came from outside and must never be unpickled. Operator
state is plain data (see :mod:`rheos.windowing.operator`), and msgpack (``msgspec.msgpack``) is
compact, fast, and can only ever produce plain values.

Layout::

    checkpoints(id, created_ms, epoch, kind, meta, size_bytes)   one row per checkpoint
    state(op, key, ckpt, value)                                 versioned per-key state
    pins(ckpt, reason)                                          checkpoints kept past ``keep``

``state`` rows are *versions*: a checkpoint writes a row ``(op, key, ckpt=id, value)`` for every
key that changed since the previous one, ``value = NULL`` (a tombstone) when the key's state was
dropped. Restoring checkpoint ``c`` reads, per ``(op, key)``, the newest version at or before
``c``. ``meta`` is a msgpack map for everything small and whole (source and sink positions,
watermarks, operator-wide fields).

Generations. The newest ``keep`` checkpoints (default 3) stay restorable, plus any *pinned*
one (replay pins the checkpoint it rolled back from, so it can fail back). After each
checkpoint the versions no kept checkpoint can see are deleted -- only among the keys written
since the last collection, so the cost follows the rate of change, not the size of the state.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import msgspec

from rheos.errors import CheckpointError

DEFAULT_KEEP = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    kind TEXT NOT NULL,
    meta BLOB NOT NULL,
    size_bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    op TEXT NOT NULL,
    key BLOB NOT NULL,
    ckpt INTEGER NOT NULL,
    value BLOB,
    PRIMARY KEY (op, key, ckpt)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS state_by_ckpt ON state (ckpt);
CREATE TABLE IF NOT EXISTS pins (ckpt INTEGER PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode

Change = tuple[str, Any, Any]
"""``(operator, key, state or None)``: one changed key; ``None`` deletes the key."""


@dataclass(frozen=True)
class CheckpointInfo:
    """One stored checkpoint: id, wall-clock time (epoch ms), replay epoch, kind and meta."""

    id: int
    created_ms: int
    epoch: int
    kind: str
    meta: dict[str, Any]
    size_bytes: int


def _info(row: Any) -> CheckpointInfo:
    return CheckpointInfo(row[0], row[1], row[2], row[3], _decode(row[4]), row[5])


def store_path(data_dir: str | os.PathLike[str], flow: str) -> Path:
    """``<data_dir>/flows/<flow>/checkpoints.sqlite``."""
    return Path(data_dir) / "flows" / flow / "checkpoints.sqlite"


class CheckpointStore:
    """The checkpoints of one flow (see the module docs). Not thread-safe."""

    def __init__(self, path: str | os.PathLike[str], *, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise CheckpointError(f"checkpoint store: keep must be at least 1, got {keep}")
        self.path = Path(path)
        self.keep = keep
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(f"cannot open the checkpoint store {self.path}: {exc}") from exc

    @classmethod
    def for_flow(
        cls, data_dir: str | os.PathLike[str], flow: str, *, keep: int = DEFAULT_KEEP
    ) -> CheckpointStore:
        return cls(store_path(data_dir, flow), keep=keep)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    def write(
        self,
        meta: dict[str, Any],
        changes: Iterable[Change],
        *,
        epoch: int = 0,
        kind: str = "periodic",
        created_ms: int | None = None,
    ) -> CheckpointInfo:
        """Write one checkpoint in one transaction and return it (then collect garbage)."""
        db = self._db
        created = int(time.time() * 1000) if created_ms is None else created_ms
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                cid = self._next_id()
                size = 0
                rows = []
                for op, key, value in changes:
                    blob = None if value is None else _encode(value)
                    kb = _encode(key)
                    size += len(kb) + (len(blob) if blob is not None else 0)
                    rows.append((op, kb, cid, blob))
                db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)", rows)
                meta_blob = _encode(meta)
                size += len(meta_blob)
                db.execute(
                    "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                    (cid, created, epoch, kind, meta_blob, size),
                )
                self._collect()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(f"checkpoint store {self.path}: write failed: {exc}") from exc
        return CheckpointInfo(cid, created, epoch, kind, meta, size)

    def next_id(self) -> int:
        """The id the next :meth:`write` will get."""
        return self._next_id()

    def _next_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM checkpoints").fetchone()
        floor = self._setting("gc_floor", 0)
        return max(int(row[0] or 0), floor) + 1

    def _setting(self, name: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return default if row is None else int(row[0])

    def _set(self, name: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (name, value))

    def _collect(self) -> None:
        """Drop checkpoints past ``keep`` (unless pinned) and the versions nobody can see."""
        db = self._db
        ids = [r[0] for r in db.execute("SELECT id FROM checkpoints ORDER BY id DESC")]
        if len(ids) <= self.keep:
            return
        oldest_kept = ids[self.keep - 1]
        pins = sorted(r[0] for r in db.execute("SELECT ckpt FROM pins"))
        db.execute(
            f"DELETE FROM checkpoints WHERE id < ? AND id NOT IN ({','.join('?' * len(pins))})",
            (oldest_kept, *pins),
        )
        live = sorted({*(p for p in pins if p < oldest_kept), oldest_kept})
        floor = self._setting("gc_floor", 0)
        rows = db.execute(
            "SELECT s.op, s.key, s.ckpt, s.value IS NULL FROM state AS s JOIN "
            "(SELECT DISTINCT op, key FROM state WHERE ckpt > ? AND ckpt <= ?) AS t "
            "ON s.op = t.op AND s.key = t.key WHERE s.ckpt <= ? ORDER BY s.op, s.key, s.ckpt",
            (floor, oldest_kept, oldest_kept),
        ).fetchall()
        doomed: list[tuple[str, bytes, int]] = []
        for (op, key), group in groupby(rows, key=lambda r: (r[0], r[1])):
            versions = [(r[2], r[3]) for r in group]
            needed = set()
            for point in live:
                seen = [c for c, _ in versions if c <= point]
                if seen:
                    needed.add(seen[-1])
            kept = []
            for c, tomb in versions:
                if c in needed:
                    kept.append((c, tomb))
                else:
                    doomed.append((op, key, c))
            if kept and kept[0][1]:  # a tombstone with nothing older: nothing to delete
                doomed.append((op, key, kept[0][0]))
        db.executemany("DELETE FROM state WHERE op = ? AND key = ? AND ckpt = ?", doomed)
        self._set("gc_floor", oldest_kept)

    def pin(self, checkpoint: int, reason: str) -> None:
        """Keep ``checkpoint`` restorable whatever ``keep`` says (until :meth:`unpin`)."""
        self._db.execute("INSERT OR REPLACE INTO pins VALUES (?, ?)", (checkpoint, reason))

    def unpin(self, checkpoint: int) -> None:
        self._db.execute("DELETE FROM pins WHERE ckpt = ?", (checkpoint,))

    def pins(self) -> dict[int, str]:
        return {int(c): str(r) for c, r in self._db.execute("SELECT ckpt, reason FROM pins")}

    # -- reading -----------------------------------------------------------------------------

    def checkpoints(self) -> list[CheckpointInfo]:
        """Every kept checkpoint, oldest first."""
        rows = self._db.execute(
            "SELECT id, created_ms, epoch, kind, meta, size_bytes FROM checkpoints ORDER BY id"
        ).fetchall()
        return [_info(r) for r in rows]

    def latest(self) -> CheckpointInfo | None:
        """The newest checkpoint, or ``None`` when there is none."""
        row = self._db.execute(
            "SELECT id, created_ms, epoch, kind, meta, size_bytes FROM checkpoints "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _info(row)

    def get(self, checkpoint: int) -> CheckpointInfo:
        row = self._db.execute(
            "SELECT id, created_ms, epoch, kind, meta, size_bytes FROM checkpoints WHERE id = ?",
            (checkpoint,),
        ).fetchone()
        if row is None:
            kept = ", ".join(str(c.id) for c in self.checkpoints()) or "none"
            raise CheckpointError(
                f"checkpoint store {self.path}: no checkpoint {checkpoint} (kept: {kept})"
            )
        return _info(row)

    def at_or_before(self, created_ms: int) -> CheckpointInfo:
        """The newest checkpoint taken at or before ``created_ms`` (epoch ms)."""
        row = self._db.execute(
            "SELECT id FROM checkpoints WHERE created_ms <= ? ORDER BY id DESC LIMIT 1",
            (created_ms,),
        ).fetchone()
        if row is None:
            raise CheckpointError(
                f"checkpoint store {self.path}: no kept checkpoint at or before that time"
            )
        return self.get(int(row[0]))

    def state(self, checkpoint: int) -> Iterator[tuple[str, Any, Any]]:
        """``(operator, key, state)`` of every key live at ``checkpoint``."""
        self.get(checkpoint)  # raises if it is not kept
        cur = self._db.execute(
            "SELECT op, key, value, MAX(ckpt) FROM state WHERE ckpt <= ? GROUP BY op, key",
            (checkpoint,),
        )
        for op, key, value, _ in cur:
            if value is not None:
                yield op, _decode(key), _decode(value)

    def reverting_changes(self, target: int) -> list[Change]:
        """The changes that bring the newest state back to ``target``'s: every key written
        after ``target`` gets its value as of ``target`` (or a tombstone)."""
        self.get(target)
        db = self._db
        out: list[Change] = []
        for op, key in db.execute(
            "SELECT DISTINCT op, key FROM state WHERE ckpt > ?", (target,)
        ).fetchall():
            row = db.execute(
                "SELECT value FROM state WHERE op = ? AND key = ? AND ckpt <= ? "
                "ORDER BY ckpt DESC LIMIT 1",
                (op, key, target),
            ).fetchone()
            value = None if row is None or row[0] is None else _decode(row[0])
            out.append((op, _decode(key), value))
        return out

    def state_bytes(self) -> int:
        """Bytes of state kept (all versions)."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(LENGTH(key) + COALESCE(LENGTH(value), 0)), 0) FROM state"
        ).fetchone()
        return int(row[0])


__all__ = ["DEFAULT_KEEP", "Change", "CheckpointInfo", "CheckpointStore", "store_path"]
