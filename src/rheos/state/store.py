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
The collection is a few set-based statements in a transaction of its own, run in a thread
beside the flow once the checkpoint has committed (SQLite works without holding the GIL);
the store's next use waits for it. A crash in the middle of one leaves it undone, and the
next collection does it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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

_BIG_INT = 1
"""msgpack extension code of an integer outside msgpack's 64 bits (a sum of big amounts, an
id from a decimal string): its two's-complement bytes, big-endian."""


def _ext(code: int, data: memoryview) -> Any:
    if code == _BIG_INT:
        return int.from_bytes(data, "big", signed=True)
    raise ValueError(f"checkpoint: unknown msgpack extension type {code}")


def _big_ints(value: Any) -> Any:
    """``value`` with every integer msgpack cannot hold as an extension value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -(2**63) <= value < 2**64:
            return value
        size = (value.bit_length() + 8) // 8
        return msgspec.msgpack.Ext(_BIG_INT, value.to_bytes(size, "big", signed=True))
    if isinstance(value, list | tuple):
        return [_big_ints(v) for v in value]
    if isinstance(value, dict):
        return {_big_ints(k): _big_ints(v) for k, v in value.items()}
    return value


_plain_encode = msgspec.msgpack.Encoder().encode


def _encode(value: Any) -> bytes:
    """msgpack of ``value``; integers beyond 64 bits go as extension values (rare: the
    walk only runs when the plain encoder refused)."""
    try:
        return _plain_encode(value)
    except OverflowError:
        return _plain_encode(_big_ints(value))


_decode = msgspec.msgpack.Decoder(ext_hook=_ext).decode
encode_value = _encode
"""msgpack of plain data, as checkpoints store it (the disk state uses it too)."""
decode_value = _decode
_raw_list = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode

Change = tuple[str, Any, Any]
"""``(operator, key, state or None)``: one changed key; ``None`` deletes the key."""

Row = tuple[str, bytes, bytes | None]
"""One changed key as stored: ``(operator, msgpack key, msgpack state or None)``."""


def encode_changes(changes: list[Change]) -> tuple[list[Row], int]:
    """The rows of ``changes`` and their size in bytes. One msgpack array each for keys and
    values (about 10x faster than one call per key), cut back into each one's bytes
    without decoding them."""
    keys = _raw_list(_encode([key for _, key, _ in changes]))
    values = _raw_list(_encode([value for _, _, value in changes]))
    size = 0
    rows: list[Row] = []
    for (op, _, value), kr, vr in zip(changes, keys, values, strict=True):
        kb = bytes(kr)
        blob = None if value is None else bytes(vr)
        size += len(kb) + (len(blob) if blob is not None else 0)
        rows.append((op, kb, blob))
    return rows, size


@dataclass(frozen=True)
class CheckpointInfo:
    """One stored checkpoint: id, wall-clock time (epoch ms), replay epoch, kind and meta."""

    id: int
    created_ms: int
    epoch: int
    kind: str
    meta: dict[str, Any]
    size_bytes: int


class PendingWrite:
    """A checkpoint being written beside the caller (:meth:`CheckpointStore.write_beside`)."""

    def __init__(self, path: Path, info: CheckpointInfo) -> None:
        self.path = path
        self.info = info
        self.committed = threading.Event()
        self.error: BaseException | None = None

    def done(self) -> bool:
        """Whether the write has ended (committed, or failed: :meth:`result` says)."""
        return self.committed.is_set()

    def result(self) -> CheckpointInfo:
        """Wait for the write; the checkpoint, or :class:`CheckpointError` if it failed."""
        self.committed.wait()
        if self.error is not None:
            raise CheckpointError(
                f"checkpoint store {self.path}: write failed: {self.error}"
            ) from self.error
        return self.info


def _info(row: Any) -> CheckpointInfo:
    return CheckpointInfo(row[0], row[1], row[2], row[3], _decode(row[4]), row[5])


def _setting(db: sqlite3.Connection, name: str, default: int) -> int:
    row = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
    return default if row is None else int(row[0])


def state_dir(data_dir: str | os.PathLike[str], flow: str, task: int | None = None) -> Path:
    """Where a flow keeps its checkpoints, lock and saved metrics: ``<data_dir>/flows/<flow>``,
    or ``<data_dir>/flows/<flow>/tasks/<task>`` for one task of a flow split across workers."""
    folder = Path(data_dir) / "flows" / flow
    return folder if task is None else folder / "tasks" / str(task)


def store_path(data_dir: str | os.PathLike[str], flow: str, task: int | None = None) -> Path:
    """``<data_dir>/flows/<flow>/checkpoints.sqlite`` (a task's: in its :func:`state_dir`)."""
    return state_dir(data_dir, flow, task) / "checkpoints.sqlite"


class CheckpointStore:
    """The checkpoints of one flow (see the module docs). One thread uses a store; it
    collects old versions in a thread of its own."""

    def __init__(self, path: str | os.PathLike[str], *, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise CheckpointError(f"checkpoint store: keep must be at least 1, got {keep}")
        self.path = Path(path)
        self.keep = keep
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy: threading.Thread | None = None
        """Writing a checkpoint and collecting old versions, beside the caller."""
        self._busy_error: BaseException | None = None
        try:
            self._conn = self._connect()
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(f"cannot open the checkpoint store {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=60, check_same_thread=False)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA cache_size=-262144")  # up to 256 MiB: keys are written at random
        db.execute("PRAGMA temp_store=MEMORY")
        return db

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, once the store's work beside the caller (a checkpoint being
        written, old versions being collected) is done."""
        self._wait()
        return self._conn

    def busy(self) -> bool:
        """Whether the store is still writing a checkpoint or collecting beside the caller
        (its next use would wait)."""
        return self._busy is not None and self._busy.is_alive()

    def _wait(self) -> None:
        if self._busy is not None:
            self._busy.join()
            self._busy = None
        error, self._busy_error = self._busy_error, None
        if error is not None:
            raise CheckpointError(
                f"checkpoint store {self.path}: collecting old state failed: {error}"
            ) from error

    @classmethod
    def for_flow(
        cls,
        data_dir: str | os.PathLike[str],
        flow: str,
        *,
        keep: int = DEFAULT_KEEP,
        task: int | None = None,
    ) -> CheckpointStore:
        return cls(store_path(data_dir, flow, task), keep=keep)

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self._conn.close()

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
        """Write one checkpoint in one transaction and return it; old versions are then
        collected beside the caller (see the module docs)."""
        return self.write_beside(
            meta, changes, epoch=epoch, kind=kind, created_ms=created_ms
        ).result()

    def write_beside(
        self,
        meta: dict[str, Any],
        changes: Iterable[Change],
        *,
        epoch: int = 0,
        kind: str = "periodic",
        created_ms: int | None = None,
        inside: Callable[[], None] | None = None,
    ) -> PendingWrite:
        """Encode one checkpoint now (so the caller may change its state the moment this
        returns), and write it in a thread beside the caller, which goes on meanwhile:
        :meth:`PendingWrite.done` says when it has committed. The store's next use waits
        for it. ``inside`` runs inside the transaction, before it commits (crash tests)."""
        db = self._db
        created = int(time.time() * 1000) if created_ms is None else created_ms
        cid = self._next_id()
        changes = changes if isinstance(changes, list) else list(changes)
        rows, size = encode_changes(changes)
        meta_blob = _encode(meta)
        size += len(meta_blob)
        pending = PendingWrite(self.path, CheckpointInfo(cid, created, epoch, kind, meta, size))
        record = (cid, created, epoch, kind, meta_blob, size)
        self._start(db, [rows], record, pending, inside)
        return pending

    def write_rows_beside(
        self,
        info: CheckpointInfo,
        meta_blob: bytes,
        slices: Iterable[list[Row]],
        *,
        inside: Callable[[], None] | None = None,
        then: Callable[[], None] | None = None,
    ) -> PendingWrite:
        """Write a checkpoint encoded elsewhere (a snapshot process: see
        :mod:`rheos.state.staging`) in a thread beside the caller, as :meth:`write_beside`
        does: ``info`` (its id from :meth:`next_id`), its meta as msgpack, its rows a slice at
        a time. ``then`` runs in that thread once the transaction has ended."""
        db = self._db
        if info.id != self._next_id():
            raise CheckpointError(
                f"checkpoint store {self.path}: checkpoint {info.id} is not the next one"
            )
        pending = PendingWrite(self.path, info)
        record = (info.id, info.created_ms, info.epoch, info.kind, meta_blob, info.size_bytes)
        self._start(db, slices, record, pending, inside, then)
        return pending

    def _start(
        self,
        db: sqlite3.Connection,
        slices: Iterable[list[Row]],
        record: tuple[int, int, int, str, bytes, int],
        pending: PendingWrite,
        inside: Callable[[], None] | None,
        then: Callable[[], None] | None = None,
    ) -> None:
        self._busy = threading.Thread(
            target=self._write_then_collect,
            args=(db, slices, record, pending, inside, then),
            name=f"rheos-checkpoint-{self.path.parent.name}",
            daemon=True,
        )
        self._busy.start()

    def _write_then_collect(
        self,
        db: sqlite3.Connection,
        slices: Iterable[list[Row]],
        record: tuple[int, int, int, str, bytes, int],
        pending: PendingWrite,
        inside: Callable[[], None] | None,
        then: Callable[[], None] | None,
    ) -> None:
        """The checkpoint's transaction, then the collection's (beside the caller: SQLite
        works without holding the GIL). A crash in the middle of either leaves it undone:
        the previous checkpoint stays the latest; the next collection does this one's."""
        cid = record[0]
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for rows in slices:
                    db.executemany(
                        f"INSERT OR REPLACE INTO state VALUES (?, ?, {int(cid)}, ?)", rows
                    )
                db.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)", record)
                if inside is not None:
                    inside()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except BaseException as exc:
            pending.error = exc
            return
        finally:
            if then is not None:
                then()
            pending.committed.set()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._collect(db, self.keep)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except BaseException as exc:
            self._busy_error = exc

    def next_id(self) -> int:
        """The id the next :meth:`write` will get."""
        return self._next_id()

    def _next_id(self) -> int:
        db = self._db
        row = db.execute("SELECT MAX(id) FROM checkpoints").fetchone()
        floor = _setting(db, "gc_floor", 0)
        return max(int(row[0] or 0), floor) + 1

    @staticmethod
    def _collect(db: sqlite3.Connection, keep: int) -> None:
        """Drop checkpoints past ``keep`` (unless pinned) and the versions nobody can see.

        Set-based, inside SQLite, and only among the keys written since the last collection:
        a version ``o`` of a key written again at ``r`` is seen by the checkpoints in ``[o, r)``
        at most; it goes when no kept checkpoint is in that range. A tombstone with nothing
        older left goes too (it hides nothing).
        """
        ids = [r[0] for r in db.execute("SELECT id FROM checkpoints ORDER BY id DESC")]
        if len(ids) <= keep:
            return
        oldest_kept = ids[keep - 1]
        pins = sorted(r[0] for r in db.execute("SELECT ckpt FROM pins"))
        db.execute(
            f"DELETE FROM checkpoints WHERE id < ? AND id NOT IN ({','.join('?' * len(pins))})",
            (oldest_kept, *pins),
        )
        live = sorted({*(p for p in pins if p < oldest_kept), oldest_kept})
        floor = _setting(db, "gc_floor", 0)
        db.execute("CREATE TEMP TABLE IF NOT EXISTS gc_live (p INTEGER PRIMARY KEY)")
        db.execute("DELETE FROM gc_live")
        db.executemany("INSERT INTO gc_live VALUES (?)", [(p,) for p in live])
        # a version o of a key rewritten at r in (floor, oldest_kept] is seen by the kept
        # checkpoints in [o, r) at most: none of them, and it goes
        db.execute(
            "DELETE FROM state WHERE (op, key, ckpt) IN ("
            " SELECT o.op, o.key, o.ckpt FROM state AS r"
            " JOIN state AS o ON o.op = r.op AND o.key = r.key AND o.ckpt < r.ckpt"
            " WHERE r.ckpt > ? AND r.ckpt <= ?"
            " AND NOT EXISTS (SELECT 1 FROM gc_live WHERE p >= o.ckpt AND p < r.ckpt))",
            (floor, oldest_kept),
        )
        db.execute(  # then a tombstone with nothing older left hides nothing
            "DELETE FROM state WHERE ckpt > ? AND ckpt <= ? AND value IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM state AS o WHERE o.op = state.op AND o.key = state.key"
            " AND o.ckpt < state.ckpt)",
            (floor, oldest_kept),
        )
        db.execute("INSERT OR REPLACE INTO settings VALUES ('gc_floor', ?)", (oldest_kept,))

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


__all__ = [
    "DEFAULT_KEEP",
    "Change",
    "CheckpointInfo",
    "CheckpointStore",
    "PendingWrite",
    "Row",
    "decode_value",
    "encode_changes",
    "encode_value",
    "state_dir",
    "store_path",
]
