"""Fixtures shared by test folders."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from tests.faults import pg_app


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A fresh table ``(k, n, total)`` on the local PostgreSQL server (the real one, which
    ``./scripts/test`` installs and starts), dropped afterwards with its sink progress."""
    conn = psycopg.connect(pg_app.DSN, autocommit=True)
    name = f"rheos_test_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE TABLE {name} (k text, n bigint, total bigint)")
    try:
        yield name
    finally:
        conn.execute(f"DROP TABLE {name}")
        conn.execute("DELETE FROM rheos_sink_progress WHERE sink = %s", (name,))
        conn.close()
