"""The cost of live metrics: W2 with metrics on against metrics off, in the same run.

W2 is the workload of ``bench_flows.py``: a 60-second tumbling window keyed by 20 keys, count
and sum, 1,000,000 JSON events from the embedded log (``--events N`` for quick runs). Each
configuration runs alternately with ``Flow(..., metrics=False)`` and with metrics on (the
default), ``--repeat`` times; the table shows the best and the median events/s of each and
how much slower metrics make it (target: at most 3%).

* **default**: as a flow runs by default (a snapshot every 0.5 s; chunks of up to 10,000
  records from the log);
* **snapshot every 50 ms**: ten times the default sampling rate, to show the steady cost of
  taking snapshots (a W2 run lasts about a second, so the default takes only a few);
* **100-record chunks**: the log source reads at most 100 records a poll, so the per-chunk
  work (one latency sample per chunk that produced output) runs 100 times as often.

    python benchmarks/bench_metrics.py [--events N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench_flows import TOPIC, write_events  # type: ignore[import-not-found]

import rheos.runtime.metrics as live_metrics
from rheos.connectors import list_sink
from rheos.connectors.log import LogSource
from rheos.runtime import Flow
from rheos.windowing import count, sum, tumbling

RESULTS = Path(__file__).resolve().parent / "results" / "metrics.json"


def w2(data_dir: str, n: int, *, metrics: bool, max_records: int) -> float:
    out: list[dict[str, object]] = []
    flow = Flow("w2", data_dir=data_dir, checkpoint_interval=None, metrics=metrics)
    (
        flow.source(
            LogSource(TOPIC, max_records=max_records),
            timestamp="ts",
            timestamp_unit="ms",
            out_of_orderness="5s",
        )
        .key_by("key")
        .window(tumbling("60s"))
        .aggregate(n=count(), total=sum("value"))
        .sink(list_sink(out))
    )
    started = time.perf_counter()
    summary = flow.run(stop_after=n, drain=True)
    elapsed = time.perf_counter() - started
    assert summary.events_in == n and summary.late == 0, summary
    return n / elapsed


def compare(data_dir: str, n: int, repeat: int, *, every_s: float, max_records: int) -> dict:
    live_metrics.SAMPLE_EVERY_S = every_s
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeat):
        for on in (False, True):
            rates[on].append(w2(data_dir, n, metrics=on, max_records=max_records))
    live_metrics.SAMPLE_EVERY_S = 0.5
    off, on = rates[False], rates[True]
    return {
        "off_best": max(off),
        "on_best": max(on),
        "off_median": statistics.median(off),
        "on_median": statistics.median(on),
        "slower_best": max(off) / max(on) - 1,
        "slower_median": statistics.median(off) / statistics.median(on) - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n = args.events
    configs = [
        ("default", 0.5, 10_000),
        ("snapshot every 50 ms", 0.05, 10_000),
        ("100-record chunks", 0.5, 100),
    ]
    results = {}
    with tempfile.TemporaryDirectory(prefix="rheos-bench-metrics-") as data_dir:
        write_events(data_dir, n)
        w2(data_dir, n, metrics=True, max_records=10_000)  # warm the page cache
        for name, every, chunk in configs:
            results[name] = compare(data_dir, n, args.repeat, every_s=every, max_records=chunk)
    print(f"W2, {n:,} events, metrics off vs on, alternating, {args.repeat} runs each")
    head = f"{'':<24}{'off best':>12}{'on best':>12}{'slower':>8}"
    print(head + f"{'off median':>13}{'on median':>12}{'slower':>8}")
    for name, r in results.items():
        print(
            f"{name:<24}{r['off_best']:>12,.0f}{r['on_best']:>12,.0f}{r['slower_best']:>+8.1%}"
            f"{r['off_median']:>13,.0f}{r['on_median']:>12,.0f}{r['slower_median']:>+8.1%}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"events": n, "repeat": args.repeat, **results}, indent=2))


if __name__ == "__main__":
    main()
