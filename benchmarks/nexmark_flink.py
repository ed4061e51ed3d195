"""One Nexmark query in Flink SQL through PyFlink, for ``bench_nexmark.py``.

Runs in an interpreter with ``apache-flink`` installed (``pip install 'rheos[nexmark]'``,
best in a virtual environment of its own: it pins older pyarrow and numpy), reading the
events as three JSON-lines files (``person.jsonl``, ``auction.jsonl``, ``bid.jsonl``, one
schema each) with event time ``dateTime`` and a watermark that follows the newest event (the
generator's events are in order). Streaming mode, parallelism 1, local mini-cluster.

    python nexmark_flink.py QUERY CHECK_DIR DIR

runs the query over the small input in ``CHECK_DIR`` and collects its final rows (inserts
minus retractions), then times it over ``DIR`` into a blackhole sink, in the same JVM (so the
timed run starts warm). Prints one JSON object: ``jvm_s`` (starting the JVM and the table
environment, and a first trivial query), ``check_rows``, ``run_s`` (planning and running the
query over ``DIR``) and ``peak_rss`` (the JVM's peak resident size, bytes). Window bounds
come back as epoch milliseconds (a session's as its first bid's time and its last one's plus
the gap, which is what they are).

The SQL is the reference's (the nexmark/nexmark project's Flink queries), with windows as
table-valued functions; q7 takes the bids of each window ``[start, end)`` (the reference's
``BETWEEN`` also takes a bid at the end of the window into it); q4 averages as DOUBLE (Flink's
AVG of a BIGINT is a BIGINT); q6 is not supported by Flink SQL (an OVER aggregation over the
updating result of a join).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from typing import Any

TABLES = {
    "person": "id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING, "
    "`state` STRING, `dateTime` BIGINT",
    "auction": "id BIGINT, itemName STRING, initialBid BIGINT, reserve BIGINT, "
    "`dateTime` BIGINT, expires BIGINT, seller BIGINT, category BIGINT",
    "bid": "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, "
    "`dateTime` BIGINT",
}


def ms(column: str) -> str:
    """A window bound (a whole second, in UTC) as epoch milliseconds."""
    return f"1000 * UNIX_TIMESTAMP(CAST({column} AS STRING), 'yyyy-MM-dd HH:mm:ss.SSS')"


HOP = "TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND))"
CLOSED = """
    SELECT A.id, A.seller, A.category, A.expires, MAX(B.price) AS final
    FROM auction AS A JOIN bid AS B ON A.id = B.auction
    WHERE B.`dateTime` BETWEEN A.`dateTime` AND A.expires
    GROUP BY A.id, A.seller, A.category, A.expires"""

SQL = {
    "q0": "SELECT auction, bidder, price, channel, url, `dateTime` FROM bid",
    "q1": "SELECT auction, bidder, CAST(0.908 AS DOUBLE) * price AS price, channel, url, "
    "`dateTime` FROM bid",
    "q2": "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0",
    "q3": """SELECT P.name, P.city, P.`state`, A.id
             FROM auction AS A JOIN person AS P ON A.seller = P.id
             WHERE A.category = 10 AND P.`state` IN ('OR', 'ID', 'CA')""",
    "q4": f"SELECT category, AVG(CAST(final AS DOUBLE)) AS `avg` FROM ({CLOSED}) GROUP BY category",
    "q5": f"""SELECT C.auction, C.num, {ms("C.window_start")}, {ms("C.window_end")}
              FROM (SELECT auction, COUNT(*) AS num, window_start, window_end
                    FROM {HOP} GROUP BY auction, window_start, window_end) AS C
              JOIN (SELECT MAX(num) AS maxn, window_start, window_end
                    FROM (SELECT COUNT(*) AS num, window_start, window_end
                          FROM {HOP} GROUP BY auction, window_start, window_end)
                    GROUP BY window_start, window_end) AS M
                ON C.window_start = M.window_start AND C.window_end = M.window_end
               AND C.num >= M.maxn""",
    "q7": f"""SELECT B.auction, B.price, B.bidder, B.`dateTime`, {ms("M.window_start")},
                    {ms("M.window_end")}
             FROM bid AS B
             JOIN (SELECT MAX(price) AS maxprice, window_start, window_end
                   FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '10' SECOND))
                   GROUP BY window_start, window_end) AS M
               ON B.price = M.maxprice
             WHERE B.ts >= M.window_start AND B.ts < M.window_end""",
    "q8": f"""SELECT P.id, P.name, {ms("P.starttime")}
             FROM (SELECT id, name, window_start AS starttime, window_end AS endtime
                   FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(ts), INTERVAL '10' SECOND))
                   GROUP BY id, name, window_start, window_end) AS P
             JOIN (SELECT seller, window_start AS starttime, window_end AS endtime
                   FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(ts), INTERVAL '10' SECOND))
                   GROUP BY seller, window_start, window_end) AS A
               ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime""",
    "q11": """SELECT bidder, COUNT(*) AS bid_count, MIN(`dateTime`), MAX(`dateTime`) + 10000
              FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(ts),
                                 INTERVAL '10' SECOND))
              GROUP BY bidder, window_start, window_end""",
}
"""Flink SQL per query (q6: not supported by Flink SQL)."""


def main() -> None:
    query, check_folder, folder = sys.argv[1], sys.argv[2], sys.argv[3]
    started = time.perf_counter()
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", "1")
    config.set("table.local-time-zone", "UTC")
    list(env.execute_sql("SELECT 1").collect())
    result: dict[str, Any] = {"query": query, "jvm_s": time.perf_counter() - started}

    create_tables(env, check_folder)
    rows: Counter[tuple[Any, ...]] = Counter()
    with env.execute_sql(SQL[query]).collect() as results:
        for row in results:
            change = 1 if row.get_row_kind().name in ("INSERT", "UPDATE_AFTER") else -1
            rows[tuple(row)] += change
    result["check_rows"] = [list(r) for r, n in rows.items() for _ in range(n)]

    create_tables(env, folder)
    started = time.perf_counter()
    sink = f"CREATE TABLE sink WITH ('connector' = 'blackhole') AS {SQL[query]}"
    env.execute_sql(sink).wait()
    result["run_s"] = time.perf_counter() - started
    result["peak_rss"] = _jvm_peak_rss()
    print(json.dumps(result))


def create_tables(env: Any, folder: str) -> None:
    """The tables person, auction and bid over the files of ``folder`` (replacing any)."""
    for kind, columns in TABLES.items():
        path = os.path.join(folder, f"{kind}.jsonl")
        env.execute_sql(f"DROP TABLE IF EXISTS {kind}")
        env.execute_sql(
            f"""CREATE TABLE {kind} ({columns},
                    ts AS TO_TIMESTAMP_LTZ(`dateTime`, 3),
                    WATERMARK FOR ts AS ts)
                WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json')"""
        )


def _jvm_peak_rss() -> int | None:
    """The peak resident size (VmHWM) of this process's Java child, in bytes."""
    me = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = f.read().rsplit(")", 1)[1].split()[1]
            if parent != me:
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            continue
    return None


if __name__ == "__main__":
    main()
