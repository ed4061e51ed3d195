"""Keyed state on disk: one SQLite file per flow, a table per stateful step, a bounded cache.

A flow run with ``state="disk"`` (:mod:`rheos.flows.backends`) keeps the per-key state of
its windows and keyed ``process`` steps here rather than in Python dicts, so the memory it
needs does not grow with the number of keys:

* :class:`StateDB` -- the file (``<data_dir>/flows/<flow>/state.sqlite`` for a
  checkpointed run; a file removed at close otherwise). WAL mode, one connection, one
  write transaction always open: between two checkpoints what the cache writes back stays
  uncommitted, so a crash (``kill -9``) leaves the file as of the last checkpoint.
* :class:`WindowTable` -- ``(window start, key) -> (creation seq, accumulators)`` for
  tumbling and sliding windows, indexed by ``(start, seq)``: the windows a watermark
  closes are read by their start, in the order the keys came, without scanning the rest.
* :class:`KeyTable` -- ``key -> value`` for the state of a keyed ``process`` step (its
  timers go to :class:`TimerTable` at each checkpoint), and for a session window's
  sessions and last finalized session of each key;
* :class:`DiskHeap` -- a session window's heaps (sessions by end, finalized sessions by
  when they can be forgotten): the smallest items in memory, the rest in a table in heap
  order, so closing the sessions a watermark passes reads only those.

The cache. Each table keeps its ``cache_keys`` most recently used keys in memory (an LRU;
a window's key counts once per open window). A key read is counted as changed (callers
change state in place), and a changed key is written back when it leaves the cache, when
more than :data:`DIRTY_KEYS` changes wait (the oldest go: write-behind) and at every
checkpoint -- which so has at most that many to write. Keys and values are msgpack, as in
the checkpoint store: nothing is pickled.

Checkpoints. At a checkpoint the runtime writes every changed cached key and then commits
the transaction together with the whole checkpoint record (meta, source positions, the
other steps' changes) -- :meth:`StateDB.commit` -- before the checkpoint store writes the
same checkpoint. A crash between the two leaves the state file one checkpoint ahead; the
next run writes that checkpoint into the store from the record first (it rolls forward),
so source positions, sinks and state always agree. See docs/concepts/state.md.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from heapq import heappop, heappush
from pathlib import Path
from typing import Any

from rheos.errors import CheckpointError
from rheos.state.store import decode_value, encode_value, state_dir
from rheos.windowing.operator import key_from_plain, key_to_plain

STATE_FILE = "state.sqlite"
"""The disk state of a checkpointed run, in the flow's folder."""

SQLITE_CACHE_KIB = 65_536
"""SQLite's own page cache, per file (64 MiB): part of the memory bound."""

DIRTY_KEYS = 10_000
"""Changed keys a step's cache holds at most (fewer with a smaller cache): a checkpoint's
pause writes at most these, the rest is written back as it goes."""

_SCRATCH_COMMIT = 16
"""Write-backs between two commits of a scratch file."""

_PAGE = 4096
"""Rows of a closing window read at a time."""

_EVICT_SHARE = 8
"""When a cache is over its size, it writes back 1/8 of it at once (one ``executemany``)."""

_SCRATCH = "state-scratch-"
"""Scratch files: ``state-scratch-<pid>-<random>.sqlite``."""

_GONE = object()
"""A deleted key in a :class:`KeyTable`'s cache (deleted in the file at write-back)."""


def encode_key(key: Hashable) -> bytes:
    """A key as stored (msgpack of its plain form; tuples become arrays)."""
    return encode_value(key_to_plain(key) if isinstance(key, tuple) else key)


def decode_key(data: bytes) -> Hashable:
    return key_from_plain(decode_value(data))


def _remove_orphans(folder: Path) -> None:
    """Remove the scratch files of runs whose process has ended (killed: no close)."""
    for path in folder.glob(f"{_SCRATCH}*"):
        try:
            pid = int(path.name[len(_SCRATCH) :].split("-", 1)[0])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:  # another user's live process
            continue


class StateDB:
    """The disk state of one run of a flow (see the module docs)."""

    def __init__(self, path: Path, *, flow: str, durable: bool) -> None:
        self.path = path
        self.flow = flow
        self.durable = durable
        """Checkpointed: committed at checkpoints only, kept at close. Otherwise the file
        is scratch space (committed whenever the cache writes back, removed at close)."""
        self.tables: list[WindowTable | KeyTable | TimerTable | DiskHeap] = []
        self._writes = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
            db.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            db.execute(
                "CREATE TABLE IF NOT EXISTS checkpoint "
                "(one INTEGER PRIMARY KEY, id INTEGER NOT NULL, record BLOB NOT NULL)"
            )
            db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise self.error("cannot open it", exc) from exc

    @classmethod
    def open(cls, data_dir: str, flow: str, task: int | None, *, durable: bool) -> StateDB:
        """The state file of a run: the flow's own when the run checkpoints, else a scratch
        file beside it (or in the temporary folder when the data directory is not usable)."""
        folder = state_dir(data_dir, flow, task)
        if durable:
            return cls(folder / STATE_FILE, flow=flow, durable=True)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _remove_orphans(folder)
            fd, name = tempfile.mkstemp(
                prefix=f"{_SCRATCH}{os.getpid()}-", suffix=".sqlite", dir=folder
            )
        except OSError:
            fd, name = tempfile.mkstemp(prefix="rheos-state-", suffix=".sqlite")
        os.close(fd)
        return cls(Path(name), flow=flow, durable=False)

    def error(self, what: str, exc: BaseException, step: str | None = None) -> CheckpointError:
        where = f"flow {self.flow!r}" + (f", step {step!r}" if step is not None else "")
        err = CheckpointError(f"{where}: disk state {self.path}: {what}: {exc}")
        err.located(flow=self.flow, step=step)
        return err

    def execute(self, sql: str, args: Any = (), *, step: str | None = None) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, args)
        except sqlite3.Error as exc:
            raise self.error("cannot read or write it", exc, step) from exc

    def executemany(self, sql: str, rows: list[Any], *, step: str | None = None) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self.error(f"cannot write {len(rows)} keys", exc, step) from exc

    def table_name(self, step: str) -> str:
        """The table of step ``step`` (any step name: hex-encoded)."""
        return "s_" + step.encode().hex()

    def wrote_back(self) -> None:
        """A cache wrote keys back: a scratch file commits every :data:`_SCRATCH_COMMIT`
        write-backs (its WAL stays small)."""
        if not self.durable:
            self._writes += 1
            if self._writes >= _SCRATCH_COMMIT:
                self._cycle()

    def _cycle(self) -> None:
        self._writes = 0
        self.execute("COMMIT")
        self.execute("BEGIN")

    # -- checkpoints -------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every changed cached key of every table (still uncommitted)."""
        for table in self.tables:
            table.flush()

    def commit(self, checkpoint: int, record: bytes) -> None:
        """Commit the state as of checkpoint ``checkpoint``, with its ``record`` (encoded by
        the runtime), in one transaction: after a crash, the file is as of here."""
        self.flush()
        self.execute("INSERT OR REPLACE INTO checkpoint VALUES (0, ?, ?)", (checkpoint, record))
        self._cycle()

    def committed(self) -> tuple[int, bytes] | None:
        """The last committed checkpoint's id and record (``None``: none yet)."""
        row = self.execute("SELECT id, record FROM checkpoint WHERE one = 0").fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def reset(self) -> None:
        """Forget every key (a run starting with no checkpoint to restore)."""
        for table in self.tables:
            table.clear()
        self.execute("DELETE FROM checkpoint")
        self._cycle()

    def close(self) -> None:
        """Close the file; what was not committed is dropped. A scratch file is removed."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")
        self._conn.close()
        if not self.durable:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)


class _Cache:
    """An LRU of ``cache_keys`` entries. Entries read or written since they were last written
    back are changed (:attr:`dirty`, oldest change first); at most :attr:`dirty_max` of them:
    past that the oldest changes are written back at once (write-behind), so a checkpoint
    has at most that many keys to write."""

    def __init__(self, db: StateDB, step: str, cache_keys: int) -> None:
        self.db = db
        self.step = step
        self.size = cache_keys
        self.batch = max(1, cache_keys // _EVICT_SHARE)
        self.dirty_max = min(cache_keys, DIRTY_KEYS)
        self.behind_batch = max(1, self.dirty_max // _EVICT_SHARE)
        """Fewer than :attr:`dirty_max`: the change just counted is never in the batch."""
        self.entries: OrderedDict[Any, Any] = OrderedDict()
        self.dirty: OrderedDict[Any, None] = OrderedDict()

    def mark(self, ck: Any) -> bool:
        """Count ``ck`` changed now; whether the oldest changes are due to be written."""
        dirty = self.dirty
        dirty[ck] = None
        dirty.move_to_end(ck)
        return len(dirty) > self.dirty_max

    def behind(self) -> list[tuple[Any, Any]]:
        """The oldest changed entries (a batch), now unchanged (they stay cached)."""
        dirty, entries = self.dirty, self.entries
        return [
            (ck, entries[ck])
            for ck in [dirty.popitem(last=False)[0] for _ in range(self.behind_batch)]
        ]

    def evict(self) -> tuple[list[Any], list[tuple[Any, Any]]]:
        """Take the least recently used entries out (a batch): their keys, and the changed
        ones with their values (to write back)."""
        entries, dirty = self.entries, self.dirty
        gone = []
        out = []
        for _ in range(min(self.batch, len(entries))):
            ck, value = entries.popitem(last=False)
            gone.append(ck)
            if ck in dirty:
                del dirty[ck]
                out.append((ck, value))
        return gone, out

    def changed(self) -> list[tuple[Any, Any]]:
        """Every changed entry (now counted unchanged; they stay cached)."""
        entries = self.entries
        out = [(ck, entries[ck]) for ck in self.dirty]
        self.dirty = OrderedDict()
        return out


class WindowKeys:
    """The keys of one open window of a :class:`WindowTable`, as the window operator sees
    a window's dict (``get``, setting a new key, ``len``); ``items()`` is the window's
    close: its keys by creation seq, then gone from the table."""

    __slots__ = ("count", "start", "table")

    def __init__(self, table: WindowTable, start: int, count: int = 0) -> None:
        self.table = table
        self.start = start
        self.count = count

    def get(self, key: Hashable, default: Any = None) -> Any:
        state = self.table.get(self.start, key)
        return default if state is None else state

    def __setitem__(self, key: Hashable, state: list[Any]) -> None:
        self.count += 1
        self.table.put(self.start, key, state)

    def __len__(self) -> int:
        return self.count

    def items(self) -> Iterator[tuple[Hashable, list[Any]]]:
        return self.table.close(self.start)


class WindowTable:
    """The open windows of one tumbling or sliding window step (see the module docs).

    ``dump(state)`` gives a state's accumulators as plain data, ``load(data)`` takes them
    back (the window operator's, as its checkpoints use them).
    """

    def __init__(
        self,
        db: StateDB,
        step: str,
        cache_keys: int,
        dump: Callable[[list[Any]], list[Any]],
        load: Callable[[list[Any]], list[Any]],
    ) -> None:
        self.db = db
        self.step = step
        self._dump = dump
        self._load = load
        t = db.table_name(step)
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {t} (start INTEGER NOT NULL, key BLOB NOT NULL, "
            "seq INTEGER NOT NULL, accs BLOB NOT NULL, PRIMARY KEY (start, key)) WITHOUT ROWID",
            step=step,
        )
        db.execute(f"CREATE INDEX IF NOT EXISTS {t}_close ON {t} (start, seq)", step=step)
        self._get = f"SELECT seq, accs FROM {t} WHERE start = ? AND key = ?"
        self._put = (  # an update in place: the (start, seq) index is left alone
            f"INSERT INTO {t} VALUES (?, ?, ?, ?) "
            "ON CONFLICT (start, key) DO UPDATE SET accs = excluded.accs"
        )
        self._scan = (
            f"SELECT key, seq, accs FROM {t} WHERE start = ? AND seq > ? ORDER BY seq LIMIT {_PAGE}"
        )
        self._drop = f"DELETE FROM {t} WHERE start = ?"
        self._clear = f"DELETE FROM {t}"
        self._cache = _Cache(db, step, cache_keys)
        self._by_start: dict[int, set[Hashable]] = {}
        """The cached keys of each window."""
        self._spilled: set[int] = set()
        """The windows with keys in the file (the others' keys are all in the cache: a key
        not found there is new, and the file is not asked)."""
        db.tables.append(self)

    def keys_of(self, start: int) -> WindowKeys:
        """A new open window (the window operator's ``new_keys``)."""
        return WindowKeys(self, start)

    def open_windows(self, counts: dict[int, int]) -> dict[int, WindowKeys]:
        """The open windows of a restored checkpoint, from their key counts."""
        self._spilled.update(counts)
        return {start: WindowKeys(self, start, n) for start, n in counts.items()}

    @staticmethod
    def counts(windows: dict[int, Any]) -> dict[int, int]:
        """The key count of each open window (for the checkpoint's meta)."""
        return {start: len(keys) for start, keys in windows.items()}

    @property
    def cached(self) -> int:
        """Keys in memory now (at most ``cache_keys`` between two calls)."""
        return len(self._cache.entries)

    def get(self, start: int, key: Hashable) -> list[Any] | None:
        cache = self._cache
        ck = (start, key)
        state = cache.entries.get(ck)
        if state is not None:
            cache.entries.move_to_end(ck)
            if cache.mark(ck):
                self._write(cache.behind())
                self.db.wrote_back()
            return state  # type: ignore[no-any-return]
        if start not in self._spilled:
            return None
        row = self.db.execute(self._get, (start, encode_key(key)), step=self.step).fetchone()
        if row is None:
            return None
        state = [row[0], *self._load(decode_value(row[1]))]
        self._insert(ck, state)
        return state

    def put(self, start: int, key: Hashable, state: list[Any]) -> None:
        """A new key of window ``start``."""
        self._insert((start, key), state)

    def _insert(self, ck: tuple[int, Hashable], state: list[Any]) -> None:
        cache = self._cache
        cache.entries[ck] = state
        if cache.mark(ck):
            self._write(cache.behind())
            self.db.wrote_back()
        keys = self._by_start.get(ck[0])
        if keys is None:
            keys = self._by_start[ck[0]] = set()
        keys.add(ck[1])
        if len(cache.entries) > cache.size:
            gone, out = cache.evict()
            by_start = self._by_start
            for start, key in gone:
                by_start[start].discard(key)
            self._write(out)
            self.db.wrote_back()

    def _write(self, entries: list[tuple[Any, Any]]) -> None:
        dump = self._dump
        rows = [
            (start, encode_key(key), state[0], encode_value(dump(state)))
            for (start, key), state in entries
        ]
        if rows:
            self._spilled.update(row[0] for row in rows)
            self.db.executemany(self._put, rows, step=self.step)

    def flush(self) -> None:
        """Write every changed cached key (they stay cached)."""
        self._write(self._cache.changed())

    def close(self, start: int) -> Iterator[tuple[Hashable, list[Any]]]:
        """Window ``start`` closes: its keys by creation seq, then none left of it."""
        cache = self._cache
        out = []
        for key in self._by_start.pop(start, ()):
            ck = (start, key)
            state = cache.entries.pop(ck)
            if ck in cache.dirty:
                del cache.dirty[ck]
                out.append((ck, state))
        self._write(out)
        load = self._load
        after = -1  # a page at a time, no statement left open while rows go downstream
        while True:
            page = self.db.execute(self._scan, (start, after), step=self.step).fetchall()
            for kb, seq, accs in page:
                yield decode_key(kb), [seq, *load(decode_value(accs))]
            if len(page) < _PAGE:
                break
            after = page[-1][1]
        self.db.execute(self._drop, (start,), step=self.step)
        self._spilled.discard(start)

    def clear(self) -> None:
        self._cache.entries.clear()
        self._cache.dirty.clear()
        self._by_start.clear()
        self._spilled.clear()
        self.db.execute(self._clear, step=self.step)


class KeyTable:
    """``key -> value`` for one step: the per-key state of a keyed ``process`` step, or a
    session window's sessions and last finalized session (see the module docs).

    ``dump``/``load`` turn a value into plain data and back (default: it is plain data).
    ``in_place``: callers change a value they read in place (a read counts as a change);
    otherwise they replace it (``table[key] = value``) and a read changes nothing.
    """

    def __init__(
        self,
        db: StateDB,
        step: str,
        cache_keys: int,
        *,
        suffix: str = "",
        dump: Callable[[Any], Any] | None = None,
        load: Callable[[Any], Any] | None = None,
        in_place: bool = True,
    ) -> None:
        self.db = db
        self.step = step
        self._dump = dump
        self._load = load
        self._in_place = in_place
        t = db.table_name(step) + suffix
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {t} (key BLOB PRIMARY KEY, value BLOB NOT NULL) "
            "WITHOUT ROWID",
            step=step,
        )
        self._get = f"SELECT value FROM {t} WHERE key = ?"
        self._put = (
            f"INSERT INTO {t} VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        self._del = f"DELETE FROM {t} WHERE key = ?"
        self._clear = f"DELETE FROM {t}"
        self._cache = _Cache(db, step, cache_keys)
        self.count = 0
        """Keys with state (set from the checkpoint on restore)."""
        db.tables.append(self)

    def __len__(self) -> int:
        return self.count

    def __setitem__(self, key: Hashable, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Hashable) -> None:
        self.put(key, None)

    def pop(self, key: Hashable, default: Any = None) -> Any:
        """Delete the state of ``key``; return ``default`` (the old value is not read)."""
        self.put(key, None)
        return default

    @property
    def cached(self) -> int:
        return len(self._cache.entries)

    def _stored(self, key: Hashable) -> Any:
        """The value of ``key`` (``_GONE``: none), from the cache, else from the file into
        the cache (unchanged: a key without a value is cached too, so asking again for a
        key that has none does not read the file)."""
        cache = self._cache
        entries = cache.entries
        value = entries.get(key)
        if value is not None:
            entries.move_to_end(key)
            return value
        row = self.db.execute(self._get, (encode_key(key),), step=self.step).fetchone()
        if row is None:
            value = _GONE
        else:
            value = decode_value(row[0])
            if self._load is not None:
                value = self._load(value)
        entries[key] = value
        if len(entries) > cache.size:
            self._write(cache.evict()[1])
            self.db.wrote_back()
        return value

    def get(self, key: Hashable) -> Any:
        """The value of ``key`` (``None``: none)."""
        value = self._stored(key)
        if value is _GONE:
            return None
        if self._in_place:
            self._changed(key)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        """Set the value of ``key`` (``None``: delete it)."""
        old = self._stored(key)
        if value is None:
            if old is _GONE:
                return
            self.count -= 1
            value = _GONE
        elif old is _GONE:
            self.count += 1
        cache = self._cache
        cache.entries[key] = value
        cache.entries.move_to_end(key)
        self._changed(key)

    def _changed(self, key: Hashable) -> None:
        cache = self._cache
        if cache.mark(key):
            self._write(cache.behind())
            self.db.wrote_back()

    def _write(self, entries: list[tuple[Any, Any]]) -> None:
        puts, dels = [], []
        dump = self._dump
        for key, value in entries:
            if value is _GONE:
                dels.append((encode_key(key),))
                continue
            try:
                puts.append((encode_key(key), encode_value(value if dump is None else dump(value))))
            except (TypeError, ValueError) as exc:
                raise self.db.error(
                    f"the state of key {key!r} is not plain data (msgpack)", exc, self.step
                ) from exc
        if puts:
            self.db.executemany(self._put, puts, step=self.step)
        if dels:
            self.db.executemany(self._del, dels, step=self.step)

    def flush(self) -> None:
        self._write(self._cache.changed())

    def clear(self) -> None:
        """Forget every key, in the file too."""
        self._cache.entries.clear()
        self._cache.dirty.clear()
        self.count = 0
        self.db.execute(self._clear, step=self.step)


_UNKNOWN: Any = object()


class DiskHeap:
    """A min-heap of ``(int, ..., int, key)`` tuples whose integers are unique (a session
    window's heap of session ends, or of finalized sessions to forget): the smallest items
    in memory -- at most ``cache`` of them -- the rest in a table ordered like the heap."""

    def __init__(self, db: StateDB, step: str, suffix: str, width: int, cache: int) -> None:
        self.db = db
        self.step = step
        self.width = width
        self.cap = max(2, cache)
        self.mem: list[tuple[Any, ...]] = []
        self._min: tuple[Any, ...] | None = _UNKNOWN
        """The file's smallest item (``None``: the file has none)."""
        t = db.table_name(step) + suffix
        cols = [f"a{i}" for i in range(width)]
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {t} ({', '.join(c + ' INTEGER NOT NULL' for c in cols)}"
            f", key BLOB NOT NULL, PRIMARY KEY ({', '.join(cols)})) WITHOUT ROWID",
            step=step,
        )
        self._put = f"INSERT OR REPLACE INTO {t} VALUES ({', '.join('?' * (width + 1))})"
        self._first = f"SELECT * FROM {t} ORDER BY {', '.join(cols)} LIMIT 1"
        self._del = f"DELETE FROM {t} WHERE {' AND '.join(c + ' = ?' for c in cols)}"
        self._clear = f"DELETE FROM {t}"
        db.tables.append(self)

    def push(self, item: tuple[Any, ...]) -> None:
        heappush(self.mem, item)
        if len(self.mem) > self.cap:
            items = sorted(self.mem)
            keep = self.cap // 2
            self.mem = items[:keep]  # a sorted list is a heap
            self._write(items[keep:])
            self.db.wrote_back()

    def _write(self, items: list[tuple[Any, ...]]) -> None:
        if items:
            rows = [(*item[:-1], encode_key(item[-1])) for item in items]
            self.db.executemany(self._put, rows, step=self.step)
            self._min = _UNKNOWN

    def _file_min(self) -> tuple[Any, ...] | None:
        if self._min is _UNKNOWN:
            row = self.db.execute(self._first, step=self.step).fetchone()
            self._min = None if row is None else (*row[:-1], decode_key(row[-1]))
        return self._min

    def peek(self) -> tuple[Any, ...] | None:
        first = self.mem[0] if self.mem else None
        stored = self._file_min()
        if stored is None or (first is not None and first[:-1] < stored[:-1]):
            return first
        return stored

    def pop(self) -> tuple[Any, ...]:
        item = self.peek()
        assert item is not None, "pop from an empty heap"
        if item is self._min:
            self.db.execute(self._del, item[:-1], step=self.step)
            self._min = _UNKNOWN
            return item
        return heappop(self.mem)

    def flush(self) -> None:
        """Move the items in memory to the file (a checkpoint: the file holds the heap)."""
        self._write(self.mem)
        self.mem = []

    def clear(self) -> None:
        self.mem = []
        self._min = None
        self.db.execute(self._clear, step=self.step)


class TimerTable:
    """The pending timers of one keyed ``process`` step, written at checkpoints: ``key ->
    [time, ...]`` for the keys whose timers changed (the timers themselves stay in memory)."""

    def __init__(self, db: StateDB, step: str) -> None:
        self.db = db
        self.step = step
        t = db.table_name(step) + "_timers"
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {t} (key BLOB PRIMARY KEY, times BLOB NOT NULL) "
            "WITHOUT ROWID",
            step=step,
        )
        self._put = f"INSERT OR REPLACE INTO {t} VALUES (?, ?)"
        self._del = f"DELETE FROM {t} WHERE key = ?"
        self._all = f"SELECT key, times FROM {t}"
        self._clear = f"DELETE FROM {t}"
        db.tables.append(self)

    def write(self, changes: list[tuple[Hashable, list[int]]]) -> None:
        """The timers of the keys whose timers changed (an empty list: none left)."""
        puts = [(encode_key(k), encode_value(ts)) for k, ts in changes if ts]
        dels = [(encode_key(k),) for k, ts in changes if not ts]
        if puts:
            self.db.executemany(self._put, puts, step=self.step)
        if dels:
            self.db.executemany(self._del, dels, step=self.step)

    def read(self) -> Iterator[tuple[Hashable, list[int]]]:
        for kb, tb in self.db.execute(self._all, step=self.step).fetchall():
            yield decode_key(kb), decode_value(tb)

    def flush(self) -> None:
        return None

    def clear(self) -> None:
        self.db.execute(self._clear, step=self.step)


__all__ = [
    "DIRTY_KEYS",
    "SQLITE_CACHE_KIB",
    "STATE_FILE",
    "DiskHeap",
    "KeyTable",
    "StateDB",
    "TimerTable",
    "WindowKeys",
    "WindowTable",
    "decode_key",
    "encode_key",
]
