"""Each Nexmark query's bounded results equal the same query in DuckDB SQL, in both modes.

The events come from the generator at 2,000 events per second of event time, so 40,000 events
span 20 s: several tumbling windows, sliding windows and sessions, and a few thousand
auctions closing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import rheos as rh
from rheos.nexmark import (
    QUERIES,
    GeneratorConfig,
    build,
    build_from_files,
    build_from_topics,
    generate,
    write_jsonl_by_kind,
    write_topics,
)

CONFIG = GeneratorConfig(events=40_000, events_per_second=2_000, seed=7)
MODES = ("stream-first", "micro-batch")

SQL = {
    "q0": "SELECT kind, auction, bidder, price, channel, url, dateTime FROM bid",
    "q1": """SELECT kind, auction, bidder, CAST(0.908 AS DOUBLE) * price AS price, channel, url,
                    dateTime FROM bid""",
    "q2": "SELECT auction, price FROM bid WHERE auction % 123 = 0",
    "q3": """SELECT P.name, P.city, P.state, A.id
             FROM auction AS A JOIN person AS P ON A.seller = P.id
             WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA')""",
    "q4": """SELECT category, AVG(final) FROM (
                 SELECT MAX(B.price) AS final, A.category
                 FROM auction AS A JOIN bid AS B ON A.id = B.auction
                 WHERE B.dateTime BETWEEN A.dateTime AND A.expires
                 GROUP BY A.id, A.category)
             GROUP BY category""",
    "q5": """WITH hops AS (
                 SELECT auction, (dateTime // 2000 - k) * 2000 AS starttime
                 FROM bid CROSS JOIN range(5) AS r(k)),
             counts AS (
                 SELECT auction, starttime, count(*) AS num FROM hops GROUP BY ALL)
             SELECT auction, num, starttime, starttime + 10000 FROM counts
             WHERE num = (SELECT max(num) FROM counts AS c WHERE c.starttime = counts.starttime)""",
    "q6": """WITH closed AS (
                 SELECT A.id, A.seller, A.expires, MAX(B.price) AS final
                 FROM auction AS A JOIN bid AS B ON A.id = B.auction
                 WHERE B.dateTime BETWEEN A.dateTime AND A.expires
                 GROUP BY A.id, A.seller, A.expires)
             SELECT seller, id, AVG(final) OVER (
                 PARTITION BY seller ORDER BY expires, id
                 ROWS BETWEEN 9 PRECEDING AND CURRENT ROW)
             FROM closed""",
    "q7": """WITH highest AS (
                 SELECT dateTime // 10000 * 10000 AS starttime, MAX(price) AS price
                 FROM bid GROUP BY ALL)
             SELECT B.auction, B.price, B.bidder, B.dateTime, H.starttime, H.starttime + 10000
             FROM bid AS B JOIN highest AS H
               ON B.dateTime // 10000 * 10000 = H.starttime AND B.price = H.price""",
    "q8": """SELECT P.id, P.name, P.starttime
             FROM (SELECT id, name, dateTime // 10000 * 10000 AS starttime FROM person) AS P
             JOIN (SELECT DISTINCT seller, dateTime // 10000 * 10000 AS starttime
                   FROM auction) AS A
               ON P.id = A.seller AND P.starttime = A.starttime""",
    "q11": """WITH marked AS (
                  SELECT bidder, dateTime,
                         CASE WHEN dateTime - lag(dateTime) OVER (
                                  PARTITION BY bidder ORDER BY dateTime) < 10000
                              THEN 0 ELSE 1 END AS starts
                  FROM bid),
              numbered AS (
                  SELECT bidder, dateTime, sum(starts) OVER (
                      PARTITION BY bidder ORDER BY dateTime ROWS UNBOUNDED PRECEDING) AS session
                  FROM marked)
              SELECT bidder, count(*), min(dateTime), max(dateTime) + 10000
              FROM numbered GROUP BY bidder, session""",
}

COLUMNS = {
    "q0": ("kind", "auction", "bidder", "price", "channel", "url", "dateTime"),
    "q1": ("kind", "auction", "bidder", "price", "channel", "url", "dateTime"),
    "q2": ("auction", "price"),
    "q3": ("name", "city", "state", "id"),
    "q4": ("category", "avg"),
    "q5": ("auction", "num", "window_start", "window_end"),
    "q6": ("seller", "auction", "avg"),
    "q7": ("auction", "price", "bidder", "dateTime", "window_start", "window_end"),
    "q8": ("id", "name", "starttime"),
    "q11": ("bidder", "bid_count", "starttime", "endtime"),
}


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(generate(CONFIG))


@pytest.fixture(scope="module")
def database(events: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for kind in ("person", "auction", "bid"):
        table = pa.Table.from_pylist([e for e in events if e["kind"] == kind])
        con.register(f"{kind}_arrow", table)
        con.execute(f"CREATE TABLE {kind} AS SELECT * FROM {kind}_arrow")
    return con


def run(query: str, events: list[dict[str, Any]], mode: str, tmp_path: Any) -> list[Any]:
    out: list[dict[str, Any]] = []
    flow = build(query, rh.iterable_source(events), rh.list_sink(out), data_dir=tmp_path)
    flow.run(bounded=True, mode=mode, batch_size=4096)  # type: ignore[arg-type]
    return rows(query, out)


def rows(query: str, out: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    if query == "q4":  # a running average per category: its last value is the answer
        out = list({row["category"]: row for row in out}.values())
    return [tuple(row[c] for c in COLUMNS[query]) for row in out]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("query", list(QUERIES))
def test_query_equals_duckdb(
    query: str,
    mode: str,
    events: list[dict[str, Any]],
    database: duckdb.DuckDBPyConnection,
    tmp_path: Any,
) -> None:
    expected = Counter(database.execute(SQL[query]).fetchall())
    got = Counter(run(query, events, mode, tmp_path))
    assert got == expected
    assert expected, f"{query} has no result on the test's events: a weak test"


def test_every_query_has_sql() -> None:
    assert set(SQL) == set(QUERIES) == set(COLUMNS)


@pytest.fixture(scope="module")
def topics(tmp_path_factory: pytest.TempPathFactory) -> str:
    data = str(tmp_path_factory.mktemp("nexmark-log"))
    log = rh.Log(data)
    try:
        write_topics(CONFIG, log, "nexmark")
    finally:
        log.close()
    return data


@pytest.mark.parametrize("query", list(QUERIES))
def test_query_over_topics_equals_duckdb_in_micro_batch(
    query: str, topics: str, database: duckdb.DuckDBPyConnection
) -> None:
    """One topic per kind: read in bulk and columnar in micro-batch mode, the same answers."""
    out: list[dict[str, Any]] = []
    flow = build_from_topics(query, "nexmark", rh.list_sink(out), data_dir=topics)
    flow.run(bounded=True, mode="micro-batch", batch_size=4096)
    assert Counter(rows(query, out)) == Counter(database.execute(SQL[query]).fetchall())


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = str(tmp_path_factory.mktemp("nexmark-files"))
    write_jsonl_by_kind(CONFIG, folder)
    return folder


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("query", list(QUERIES))
def test_streaming_over_one_file_per_kind_equals_duckdb(
    query: str, mode: str, files: str, database: duckdb.DuckDBPyConnection, tmp_path: Any
) -> None:
    """Streaming, not bounded: the files are read side by side, each query's persons,
    auctions and bids arriving in the order the runtime polls them, the watermark the
    smallest of the sources'; the answers are the same."""
    out: list[dict[str, Any]] = []
    flow = build_from_files(query, files, rh.list_sink(out), data_dir=tmp_path)
    flow.run(mode=mode, batch_size=4096)  # type: ignore[arg-type]
    assert Counter(rows(query, out)) == Counter(database.execute(SQL[query]).fetchall())
