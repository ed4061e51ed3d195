"""The flow of the PostgreSQL crash test: log events -> running totals -> a PostgreSQL table.

``python pg_app.py DATA_DIR TABLE`` runs it until SIGTERM.
"""

from __future__ import annotations

import sys

import rheos as rh
from rheos.connectors.postgres import postgres_sink

DSN = "host=127.0.0.1 port=5432 user=rheos password=rheos dbname=test"


def build(data_dir: str, table: str) -> rh.Flow:
    flow = rh.Flow("pg", data_dir=data_dir, checkpoint_interval="0.1s")
    (
        flow.source(rh.log_source("events"))
        .key_by("k")
        .aggregate(total=rh.sum("v"), n=rh.count())
        .map(lambda r: {"k": r["key"], "n": r["n"], "total": r["total"]})
        .sink(postgres_sink(DSN, table))
    )
    return flow


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2]).run()
