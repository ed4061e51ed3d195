"""A real data set nobody here wrote: the monthly stock prices (2000-2010) that ship with
``vega_datasets`` (``stocks.csv``: symbol, date, price; read offline from the package).

A quarterly window per symbol must equal the same GROUP BY computed by DuckDB.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import vega_datasets

from ._rh import rh

STOCKS = Path(vega_datasets.__file__).parent / "_data" / "stocks.csv"
QUARTER_MS = 91 * 86_400_000


def month(event: dict[str, Any]) -> datetime:
    return datetime.strptime(event["date"], "%b %d %Y").replace(tzinfo=UTC)


def duckdb_rows() -> dict[tuple[str, int], tuple[Any, ...]]:
    query = f"""
        WITH s AS (
            SELECT symbol, price,
                   epoch_ms(strptime(date, '%b %d %Y')) AS ts
            FROM read_csv('{STOCKS}', header = true, all_varchar = true,
                          columns = {{'symbol': 'VARCHAR', 'date': 'VARCHAR', 'price': 'VARCHAR'}})
        ), t AS (SELECT symbol, CAST(price AS DOUBLE) AS price, ts,
                        ts - (ts % {QUARTER_MS}) AS ws FROM s)
        SELECT symbol, ws, count(*), sum(price), min(price), max(price),
               arg_min(price, ts), arg_max(price, ts)
        FROM t GROUP BY symbol, ws
    """
    return {(r[0], r[1]): r[2:] for r in duckdb.sql(query).fetchall()}


def rheos_rows(**run: Any) -> tuple[dict[tuple[str, int], tuple[Any, ...]], Any]:
    flow = rh.Flow("stocks")
    out: list = []
    (
        flow.source(rh.csv_source(STOCKS), timestamp=month, out_of_orderness=run.pop("bound", 0))
        .key_by("symbol")
        .window(rh.tumbling(f"{QUARTER_MS}ms"))
        .aggregate(
            n=rh.count(),
            total=rh.sum("price"),
            lo=rh.min("price"),
            hi=rh.max("price"),
            open=rh.first("price"),
            close=rh.last("price"),
        )
        .sink(rh.list_sink(out))
    )
    summary = flow.run(**run)
    table = {
        (r["key"], r["window_start"]): (r["n"], r["total"], r["lo"], r["hi"], r["open"], r["close"])
        for r in out
    }
    assert len(table) == len(out)
    return table, summary


def same(a: dict[Any, tuple[Any, ...]], b: dict[Any, tuple[Any, ...]]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        n, total, *rest = a[key]
        m, total_b, *rest_b = b[key]
        assert (n, rest) == (m, rest_b), key
        assert total == pytest.approx(total_b), key


def test_bounded_quarterly_window_equals_duckdb_group_by() -> None:
    expected = duckdb_rows()
    assert len(expected) > 150  # 5 symbols over ten years of quarters
    got, summary = rheos_rows(bounded=True)
    same(got, expected)
    assert summary.events_in == 560 and summary.late == 0
    assert summary.out_of_order > 0  # the file is sorted by symbol, then date


def test_streaming_with_enough_out_of_orderness_equals_duckdb() -> None:
    got, summary = rheos_rows(bound="4000d")
    same(got, duckdb_rows())
    assert summary.late == 0


def test_streaming_with_no_bound_loses_nothing() -> None:
    got, summary = rheos_rows()
    expected = duckdb_rows()
    assert summary.late > 0
    assert sum(r[0] for r in got.values()) + summary.late == sum(r[0] for r in expected.values())
    assert len(summary.late_events) == summary.late  # no late sink, no data dir: kept in memory
