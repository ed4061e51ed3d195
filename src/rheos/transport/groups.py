"""Committed offsets of consumer groups, in one SQLite file per data directory.

SQLite gives exactly what this needs: small rows, atomic multi-row commits (all partitions of
a commit land together or not at all), durability (``synchronous=FULL``), and safe use from
many processes at once. The offset committed for a partition is the *next* offset to read.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    committed_at INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
)
"""


BUSY_TIMEOUT_S = 30.0
"""How long a connection waits for another one's write (SQLite's busy timeout)."""


class GroupOffsets:
    """Durable, atomic committed offsets per (group, topic, partition)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        # Connections opening a new file at once (the tasks of a split flow, in threads or
        # processes) can be refused at once, without the busy timeout, while one of them
        # turns the file to WAL or creates the table: tried again until the timeout.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    self._db.close()
                    raise
                time.sleep(0.005)

    def close(self) -> None:
        self._db.close()

    def commit(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Store ``offsets`` (partition -> next offset to read) for ``group`` atomically."""
        now = time.time_ns() // 1_000_000
        rows = [(group, topic, p, o, now) for p, o in offsets.items()]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO group_offsets VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (grp, topic, partition) DO UPDATE SET "
                "next_offset = excluded.next_offset, committed_at = excluded.committed_at",
                rows,
            )

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The committed next offsets of ``group`` on ``topic`` (partitions never committed are
        absent)."""
        rows = self._db.execute(
            "SELECT partition, next_offset FROM group_offsets WHERE grp = ? AND topic = ?",
            (group, topic),
        ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def groups(self, topic: str | None = None) -> list[str]:
        if topic is None:
            rows = self._db.execute("SELECT DISTINCT grp FROM group_offsets ORDER BY grp")
        else:
            rows = self._db.execute(
                "SELECT DISTINCT grp FROM group_offsets WHERE topic = ? ORDER BY grp", (topic,)
            )
        return [str(r[0]) for r in rows.fetchall()]

    def delete_topic(self, topic: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM group_offsets WHERE topic = ?", (topic,))
