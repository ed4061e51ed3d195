"""A PostgreSQL sink that takes part in checkpoints: every result row lands exactly once.

``postgres_sink(dsn, table)`` inserts each event (a dict) as a row of ``table`` (columns
named by the dict's keys, or ``columns=``). It follows the idempotent side of the
:class:`~rheos.connectors.base.TransactionalWriter` contract:

* at a checkpoint, :meth:`~PostgresWriter.prepare` hands the rows written since the last one
  to the runtime, which stores them *inside* the checkpoint (so they survive a crash);
* after the checkpoint commits, :meth:`~PostgresWriter.commit` inserts them and records the
  checkpoint id in ``rheos_sink_progress (flow, sink, checkpoint)`` **in one PostgreSQL
  transaction** -- skipped if that id is already recorded;
* on recovery, :meth:`~PostgresWriter.recover` repeats the commit of the restored checkpoint
  (a no-op if it had happened).

So a crash at any point neither loses nor doubles a row, and readers of the table see rows a
checkpoint at a time. Without checkpoints (a bounded run, or ``checkpoint_interval=None``)
rows are inserted at every flush: at least once. After a replay the rows of the replayed
range are inserted again; give the table a key and pass ``on_conflict_update=[...]`` (its
key columns: an upsert) when that should replace them. Needs psycopg 3:
``pip install 'rheos[postgres]'``.
"""

from __future__ import annotations

from typing import Any

from rheos.connectors.base import BaseWriter, OpenContext
from rheos.errors import ConfigError

PROGRESS_TABLE = "rheos_sink_progress"


class PostgresSink:
    """Writes events as rows of a PostgreSQL table; build with :func:`postgres_sink`."""

    def __init__(
        self,
        dsn: str,
        table: str,
        *,
        columns: list[str] | None = None,
        name: str | None = None,
        conflict_key: list[str] | None = None,
    ) -> None:
        self.dsn = dsn
        self.table = table
        self.columns = columns
        self.name = name or table
        self.conflict_key = conflict_key

    def open(self, ctx: OpenContext) -> PostgresWriter:
        return PostgresWriter(self, ctx)

    def __repr__(self) -> str:
        return f"postgres_sink({self.table!r})"


class PostgresWriter(BaseWriter):
    """An open :class:`PostgresSink` (a transactional writer, see the module docs)."""

    def __init__(self, sink: PostgresSink, ctx: OpenContext) -> None:
        try:
            import psycopg  # an optional dependency: rheos[postgres]
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("postgres_sink needs psycopg: pip install 'rheos[postgres]'") from exc
        self.sink = sink
        self.flow = ctx.flow
        self._in_checkpoints = ctx.transactional
        self._sql = psycopg.sql
        self._conn = psycopg.connect(sink.dsn, autocommit=True)
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (flow text NOT NULL, "
            "sink text NOT NULL, checkpoint bigint NOT NULL, PRIMARY KEY (flow, sink))"
        )
        self._rows: list[dict[str, Any]] = []
        self._prepared: tuple[int, list[dict[str, Any]]] | None = None

    def write(self, value: Any, timestamp: int) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"postgres_sink {self.sink.table!r}: events must be dicts")
        self._rows.append(value)

    def flush(self) -> None:
        if not self._in_checkpoints and self._rows:
            rows, self._rows = self._rows, []
            with self._conn.transaction():
                self._insert(rows)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        sql = self._sql
        columns = self.sink.columns or list(rows[0])
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(*self.sink.table.split(".")),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )
        if self.sink.conflict_key:
            rest = [c for c in columns if c not in self.sink.conflict_key]
            statement += sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
                sql.SQL(", ").join(map(sql.Identifier, self.sink.conflict_key)),
                sql.SQL(", ").join(
                    sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                    for c in rest
                ),
            )
        with self._conn.cursor() as cur:
            cur.executemany(statement, [[row.get(c) for c in columns] for row in rows])

    def progress(self) -> int:
        """The last checkpoint whose rows are in the table (0: none)."""
        row = self._conn.execute(
            f"SELECT checkpoint FROM {PROGRESS_TABLE} WHERE flow = %s AND sink = %s",
            (self.flow, self.sink.name),
        ).fetchone()
        return 0 if row is None else int(row[0])

    # -- checkpoints (TransactionalWriter) ----------------------------------------------------
    def prepare(self, checkpoint: int) -> dict[str, Any]:
        rows, self._rows = self._rows, []
        if self._prepared is not None:  # that checkpoint was not stored: this one covers it
            rows = self._prepared[1] + rows
        self._prepared = (checkpoint, rows)
        return {"rows": rows}

    def commit(self, checkpoint: int) -> None:
        if self._prepared is not None and self._prepared[0] == checkpoint:
            self._apply(checkpoint, self._prepared[1])
            self._prepared = None

    def recover(self, checkpoint: int | None, prepared: Any) -> None:
        self._rows = []
        if checkpoint is not None and prepared is not None:
            self._apply(checkpoint, prepared["rows"])

    def _apply(self, checkpoint: int, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` and record ``checkpoint``, in one transaction, once."""
        with self._conn.transaction():
            self._conn.execute(
                f"INSERT INTO {PROGRESS_TABLE} VALUES (%s, %s, 0) ON CONFLICT DO NOTHING",
                (self.flow, self.sink.name),
            )
            row = self._conn.execute(
                f"SELECT checkpoint FROM {PROGRESS_TABLE} WHERE flow = %s AND sink = %s FOR UPDATE",
                (self.flow, self.sink.name),
            ).fetchone()
            if row is not None and int(row[0]) >= checkpoint:
                return  # already applied
            self._insert(rows)
            self._conn.execute(
                f"UPDATE {PROGRESS_TABLE} SET checkpoint = %s WHERE flow = %s AND sink = %s",
                (checkpoint, self.flow, self.sink.name),
            )

    def close(self) -> None:
        self.flush()
        self._conn.close()


def postgres_sink(
    dsn: str,
    table: str,
    *,
    columns: list[str] | None = None,
    name: str | None = None,
    on_conflict_update: list[str] | None = None,
) -> PostgresSink:
    """A sink inserting each event (a dict) as a row of ``table`` (see the module docs).

    ``on_conflict_update`` names the table's key columns to turn inserts into upserts.
    """
    return PostgresSink(dsn, table, columns=columns, name=name, conflict_key=on_conflict_update)


__all__ = ["PROGRESS_TABLE", "PostgresSink", "PostgresWriter", "postgres_sink"]
