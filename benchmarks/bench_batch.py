"""Bounded against streaming runs on user-shaped events written through ``rheos produce``.

1,000,000 JSON events of a common shape (``--events N`` for quick runs) -- ``ts`` (epoch ms),
``user`` (10,000 values), ``city`` (20), ``category`` (8), ``amount`` (2 decimals) -- with 5%
up to 5 s late, are written to a JSON-lines file and produced into one partition of a fresh
data directory with the CLI (``rheos topic create`` + ``rheos produce TOPIC --file``), as a
user would. A second topic (half as many events, the same shape) is the right side of the
join. Workloads, each with ``out_of_orderness="5s"``, checkpoints off, ``list_sink``:

* **W1** filter + map: ``amount > 100``, then ``v = amount * 2`` (expressions);
* **W2** a 60 s tumbling window keyed by ``city``: count and sum of ``amount``;
* **S** a session window keyed by ``city``, 1 s of inactivity: count and sum of ``amount``;
* **J** a 10 s tumbling window join of the two topics keyed by ``user``.

(No idle timeout: see :func:`source`.)

Each runs stream-first and micro-batch (``--batch-size``, 100,000 by default), streaming
(``flow.run(stop_after=N, drain=True)``) and bounded (``flow.run(bounded=True)``), then
bounded with no mode given, as a user runs a report (the run picks its executor:
``rheos.runtime.bounded_mode``; the row names it).
Baselines over the same JSON lines, for W1 and W2: a plain loop decoding each line with
orjson, and Polars ``read_ndjson`` + ``filter``/``group_by`` (the columnar ceiling). Last,
``rheos run app.py --bounded`` (W2: no mode given, then each mode) as a user runs it, the
rate its summary line reports.

Throughput is the best of ``--repeat`` runs (a workload's streaming and bounded runs take
turns, and which goes first alternates: the first run after another workload's finds a
fresher heap), in events read per second; compare rows only within one run of this script
(the ratios), not across machines or runs. Results are checked: bounded against streaming, and
micro-batch against stream-first (the same rows, sums to 9 significant digits).

    python benchmarks/bench_batch.py [--events N] [--repeat R] [--batch-size B]
                                     [--extra-fields K] [--out FILE]

``--extra-fields K`` gives every event K more fields that no workload reads (ids, flags,
counters, coordinates, a nested object, a null: :func:`extra_fields`), as the events of
real apps have: stream-first mode decodes only the fields a flow reads where it can
(:mod:`rheos.runtime.projection`), micro-batch mode and the baselines decode them all.

The table is also written as JSON to ``benchmarks/results/batch.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from rheos.connectors import list_sink, log_source
from rheos.flows.expressions import col
from rheos.runtime import Flow
from rheos.windowing import count, session, sum, tumbling

RESULTS = Path(__file__).resolve().parent / "results" / "batch.json"
TOPIC = "w2"
RIGHT = "w2-right"
CITIES = [f"city-{i:02d}" for i in range(20)]
CATEGORIES = ["books", "games", "food", "garden", "music", "sports", "toys", "travel"]
WINDOW_MS = 60_000
START = 1_700_000_000_000


def write_jsonl(path: str, n: int, seed: int, step_ms: int = 10, extra: int = 0) -> None:
    """``n`` events, ``step_ms`` apart in event time, 5% of them up to 5 s late; ``extra``
    more fields no workload reads (:func:`extra_fields`)."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        lines = []
        for i in range(n):
            ts = START + i * step_ms
            if rnd.random() < 0.05:
                ts -= rnd.randint(1, 5_000)
            event = {
                "ts": ts,
                "user": f"u{rnd.randrange(10_000):05d}",
                "city": CITIES[rnd.randrange(20)],
                "category": CATEGORIES[rnd.randrange(8)],
                "amount": round(rnd.random() * 200, 2),
            }
            if extra:
                event.update(extra_fields(rnd, extra))
            lines.append(orjson.dumps(event))
            if len(lines) == 50_000:
                f.write(b"\n".join(lines) + b"\n")
                lines = []
        if lines:
            f.write(b"\n".join(lines) + b"\n")


def extra_fields(rnd: random.Random, k: int) -> dict[str, Any]:
    """``k`` fields of the kinds apps add to their events (ids, versions, flags, counters,
    coordinates, a nested object, a null), named ``x00``, ``x01``..."""
    kinds: list[Callable[[], Any]] = [
        lambda: f"{rnd.getrandbits(64):016x}",
        lambda: rnd.randrange(1_000),
        lambda: round(rnd.uniform(-90, 90), 6),
        lambda: rnd.random() < 0.5,
        lambda: rnd.choice(["ios", "android", "web"]),
        lambda: {"id": rnd.randrange(10_000), "tier": rnd.choice(["free", "pro"])},
        lambda: None,
        lambda: f"5.{rnd.randrange(20)}.{rnd.randrange(10)}",
    ]
    return {f"x{j:02d}": kinds[j % len(kinds)]() for j in range(k)}


def cli(data_dir: str, *args: str) -> None:
    """``rheos --data-dir DATA_DIR ARGS...`` as a user runs it."""
    cmd = [sys.executable, "-m", "rheos", "--data-dir", data_dir, *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


# -- flows ----------------------------------------------------------------------------------


def source(flow: Flow, topic: str = TOPIC) -> Any:
    # No idle timeout: every event is in the log from the start, so no partition is idle, but
    # a round of 100,000 events can take more than the default 5 s on a busy machine, and a
    # source not polled meanwhile would be taken for idle and let the watermark run ahead.
    return flow.source(
        log_source(topic),
        timestamp="ts",
        timestamp_unit="ms",
        out_of_orderness="5s",
        idle_timeout=None,
    )


def w1(flow: Flow, out: list[Any]) -> None:
    source(flow).filter(col("amount") > 100).with_columns(v=col("amount") * 2).sink(list_sink(out))


def w2(flow: Flow, out: list[Any]) -> None:
    (
        source(flow)
        .key_by("city")
        .window(tumbling("60s"))
        .aggregate(n=count(), total=sum("amount"))
        .sink(list_sink(out))
    )


def sessions(flow: Flow, out: list[Any]) -> None:
    (
        source(flow)
        .key_by("city")
        .window(session("1s"))
        .aggregate(n=count(), total=sum("amount"))
        .sink(list_sink(out))
    )


def join(flow: Flow, out: list[Any]) -> None:
    left = source(flow).key_by("user")
    right = source(flow, RIGHT).key_by("user")
    left.join(right, window=tumbling("10s")).sink(list_sink(out))


WORKLOADS: dict[str, Callable[[Flow, list[Any]], None]] = {
    "W1": w1,
    "W2": w2,
    "S": sessions,
    "J": join,
}


def run_flow(
    data_dir: str, workload: str, mode: str, bounded: bool, batch: int, n: int
) -> tuple[float, list[Any]]:
    """Seconds of one run, and its results."""
    out: list[Any] = []
    flow = Flow(f"bench-{workload}", data_dir=data_dir, checkpoint_interval=None)
    WORKLOADS[workload](flow, out)
    size = batch if mode == "micro-batch" else None
    asked = None if mode == "chosen" else mode  # "chosen": no mode given, as a user runs it
    gc.collect()
    started = time.perf_counter()
    if bounded:
        summary = flow.run(bounded=True, mode=asked, batch_size=size, progress=False)
    else:
        summary = flow.run(stop_after=n, drain=True, mode=asked, batch_size=size)
    elapsed = time.perf_counter() - started
    assert summary.events_in == n and summary.late == 0, summary
    EXECUTORS[workload] = summary.executor
    return elapsed, out


EXECUTORS: dict[str, str] = {}
"""The executor the last run of each workload took (a bounded run with no mode given
chooses one: rheos.runtime.bounded_mode)."""


def canonical(rows: list[Any]) -> list[Any]:
    """Results in a comparable order, sums rounded to 9 significant digits."""

    def norm(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.9g}")
        if isinstance(value, dict):
            return tuple(sorted((k, norm(v)) for k, v in value.items()))
        return value

    return sorted((norm(r) for r in rows), key=repr)


# -- baselines ------------------------------------------------------------------------------


def plain(lines: list[bytes], workload: str) -> Any:
    loads = orjson.loads
    if workload == "W1":
        out = []
        for line in lines:
            e = loads(line)
            if e["amount"] > 100:
                e["v"] = e["amount"] * 2
                out.append(e)
        return out
    groups: dict[tuple[str, int], list[Any]] = {}
    get = groups.get
    for line in lines:
        e = loads(line)
        ts = e["ts"]
        k = (e["city"], ts - ts % WINDOW_MS)
        acc = get(k)
        if acc is None:
            groups[k] = [1, e["amount"]]
        else:
            acc[0] += 1
            acc[1] += e["amount"]
    return groups


def polars(data: bytes, workload: str) -> Any:
    frame = pl.read_ndjson(io.BytesIO(data))
    if workload == "W1":
        return frame.filter(pl.col("amount") > 100).with_columns(v=pl.col("amount") * 2)
    return frame.group_by(
        pl.col("city"), (pl.col("ts") - pl.col("ts") % WINDOW_MS).alias("start")
    ).agg(pl.len().alias("n"), pl.col("amount").sum().alias("total"))


def best(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    fastest, result = float("inf"), None
    for _ in range(repeat):
        result = None
        gc.collect()
        started = time.perf_counter()
        result = fn()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest, result


# -- rheos run ------------------------------------------------------------------------------

APP = """\
import rheos as rh

out = []
flow = rh.Flow("bench-cli", checkpoint_interval=None)
(
    flow.source(rh.log_source("w2"), timestamp="ts", timestamp_unit="ms", out_of_orderness="5s")
    .key_by("city")
    .window(rh.tumbling("60s"))
    .aggregate(n=rh.count(), total=rh.sum("amount"))
    .sink(rh.list_sink(out))
)
"""


def cli_runs(folder: str, data_dir: str, repeat: int, batch: int) -> list[tuple[str, float]]:
    """Events/s of ``rheos run app.py --bounded`` (W2, both modes), as its summary line
    says (the run, without the start-up of the command)."""
    app = os.path.join(folder, "app.py")
    with open(app, "w") as f:
        f.write(APP)
    base = [sys.executable, "-m", "rheos", "--data-dir", data_dir, "run", app, "--bounded"]
    runs = [
        ("rheos run app.py --bounded (no mode given)", base),
        ("rheos run app.py --bounded --mode stream-first", [*base, "--mode", "stream-first"]),
        (
            f"rheos run --bounded --mode micro-batch {batch:,}",
            [*base, "--mode", "micro-batch", "--batch-size", str(batch)],
        ),
    ]
    out = []
    for label, cmd in runs:
        rate = 0.0
        for _ in range(repeat):
            said = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            found = re.search(r"\(([\d,]+) events/s\)", said)
            assert found is not None, said
            rate = max(rate, float(found.group(1).replace(",", "")))
        out.append((label, rate))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of R runs")
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--workloads", default="W1,W2,S,J")
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON results go")
    parser.add_argument(
        "--extra-fields", type=int, default=0, help="K more fields per event that no step reads"
    )
    args = parser.parse_args()
    n, repeat, batch = args.events, args.repeat, args.batch_size
    table: list[tuple[str, str, float, str]] = []

    def row(workload: str, label: str, events: int, seconds: float, note: str = "") -> float:
        rate = events / seconds
        table.append((workload, label, rate, note))
        print(f"{workload:<3} {label:<46} {rate:>12,.0f} ev/s  {note}", flush=True)
        return rate

    with tempfile.TemporaryDirectory(prefix="rheos-bench-batch-") as folder:
        data_dir = os.path.join(folder, "data")
        events = os.path.join(folder, "events.jsonl")
        right = os.path.join(folder, "right.jsonl")
        write_jsonl(events, n, seed=7, extra=args.extra_fields)
        write_jsonl(right, n // 2, seed=8, step_ms=20, extra=args.extra_fields)
        started = time.perf_counter()
        cli(data_dir, "topic", "create", TOPIC, "--partitions", "1")
        cli(data_dir, "produce", TOPIC, "--file", events)
        cli(data_dir, "topic", "create", RIGHT, "--partitions", "1")
        cli(data_dir, "produce", RIGHT, "--file", right)
        print(
            f"produced {n:,} + {n // 2:,} events with the CLI in "
            f"{time.perf_counter() - started:.1f}s\n"
        )
        with open(events, "rb") as f:
            data = f.read()
        lines = data.splitlines()
        for workload in args.workloads.split(","):
            total = n + n // 2 if workload == "J" else n
            baseline: dict[str, float] = {}
            if workload in ("W1", "W2"):
                seconds, _ = best(repeat, lambda w=workload: plain(lines, w))
                baseline["plain"] = row(workload, "plain orjson loop over the lines", n, seconds)
                seconds, _ = best(repeat, lambda w=workload: polars(data, w))
                baseline["polars"] = row(workload, "Polars read_ndjson + query", n, seconds)
            first: list[Any] | None = None
            for mode in ("stream-first", "micro-batch"):
                label = mode if mode == "stream-first" else f"micro-batch {batch:,}"
                fastest = {False: float("inf"), True: float("inf")}
                results: dict[bool, list[Any]] = {}
                for r in range(repeat):  # streaming and bounded in turn, each first in turn
                    for bounded in (False, True) if r % 2 == 0 else (True, False):
                        seconds, got = run_flow(data_dir, workload, mode, bounded, batch, total)
                        fastest[bounded] = min(fastest[bounded], seconds)
                        results[bounded] = canonical(got)
                        del got
                assert results[True] == results[False], f"{workload} {mode}: bounded differs"
                if first is None:
                    first = results[False]
                assert results[False] == first, f"{workload}: the modes differ"
                results.clear()
                streaming = total / fastest[False]
                for bounded in (False, True):
                    rate = total / fastest[bounded]
                    notes = [f"{rate / streaming:.2f}x streaming"] if bounded else []
                    notes += [f"{rate / value:.2f}x {name}" for name, value in baseline.items()]
                    kind = "bounded" if bounded else "streaming"
                    row(workload, f"{label}, {kind}", total, fastest[bounded], ", ".join(notes))
                if mode == "stream-first":
                    default_streaming = streaming
            seconds = float("inf")
            for _ in range(repeat):
                took, got = run_flow(data_dir, workload, "chosen", True, batch, total)
                seconds = min(seconds, took)
            assert canonical(got) == first, f"{workload}: the chosen mode differs"
            del got
            rate = total / seconds
            notes = [f"{rate / default_streaming:.2f}x stream-first streaming"]
            notes += [f"{rate / value:.2f}x {name}" for name, value in baseline.items()]
            label = f"bounded, no mode given ({EXECUTORS[workload]})"
            row(workload, label, total, seconds, ", ".join(notes))
        for label, rate in cli_runs(folder, data_dir, repeat, batch):
            row("W2", label, n, n / rate)
    print()
    print(f"{'':<3} {'run':<46} {'events/s':>12}  ratios (same run)")
    for workload, label, rate, note in table:
        print(f"{workload:<3} {label:<46} {rate:>12,.0f}  {note}")
    rows = [
        {"workload": w, "run": label, "events_per_s": round(rate), "ratios": note}
        for w, label, rate, note in table
    ]
    report = {"events": n, "extra_fields": args.extra_fields, "repeat": repeat}
    Path(args.out).write_text(json.dumps({**report, "batch_size": batch, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
