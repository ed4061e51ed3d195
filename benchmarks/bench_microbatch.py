"""Micro-batch against stream-first, a plain Python loop and Polars in one go.

Throughput: the events of ``bench_flows.write_events`` (1,000,000 JSON events by default,
5% up to 5 s late, one partition of the embedded log), for

* **W1** filter + map: ``value > 50``, then ``v = value * 2`` (``with_columns``);
* **W2** a 60 s tumbling window keyed by ``key`` (20 values): count and sum of ``value``,
  ``out_of_orderness="5s"``.

Rows: stream-first (the same flow, with expressions; for W1 also written with Python
functions, stream-first's fastest form); micro-batch for batch sizes 1 .. 100,000; a plain loop
(msgspec + dicts); Polars over all JSON lines at once (the columnar ceiling). Checkpoints are off
in both modes (micro-batch runs take none). Throughput is the best of ``--repeat`` runs (one run
for batch sizes 1 and 10). Every full micro-batch run's results are checked against
stream-first's (W1: equal; W2: same windows and counts, sums equal to 1e-9), and the number of
results against the plain loop.

Latency: a producer thread appends events at a fixed rate (``--rate``), each carrying its
append wall time; the sink takes ``now - append time`` of each result (W1), or of the event
whose arrival closed the window (W2). Reported as p50/p99 in ms.

    python benchmarks/bench_microbatch.py [--events N] [--rate R] [--seconds S] [--repeat R]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import tempfile
import threading
import time
from typing import Any

import msgspec
import numpy as np
import polars as pl

sys.path.insert(0, os.path.dirname(__file__))
from bench_flows import KEYS, TOPIC, WINDOW_MS, plain_w2, write_events

from rheos.connectors import callback_sink, log_source
from rheos.flows.expressions import col
from rheos.runtime import Flow
from rheos.runtime.microbatch import frame_sink
from rheos.transport import Log
from rheos.windowing import count, sum, tumbling

SIZES = [1, 10, 100, 1_000, 10_000, 100_000]


def sink_for(mode: str, seen: list[Any]) -> Any:
    """Results as frames (micro-batch) or dicts (stream-first); ``seen`` gets the counts."""
    if mode == "micro-batch":
        return frame_sink(lambda frame: seen.append(frame))
    return callback_sink(seen.append)


def w1(data_dir: str, mode: str, seen: list[Any], *, functions: bool = False) -> Flow:
    flow = Flow("w1", data_dir=data_dir, checkpoint_interval=None)
    src = flow.source(log_source(TOPIC), timestamp="ts", timestamp_unit="ms", out_of_orderness="5s")
    if functions:  # the same results, written for stream-first
        out = src.filter(lambda e: e["value"] > 50).map(lambda e: {**e, "v": e["value"] * 2})
    else:
        out = src.filter(col("value") > 50).with_columns(v=col("value") * 2)
    out.sink(sink_for(mode, seen))
    return flow


def w2(data_dir: str, mode: str, seen: list[Any], *, functions: bool = False) -> Flow:
    flow = Flow("w2", data_dir=data_dir, checkpoint_interval=None)
    (
        flow.source(log_source(TOPIC), timestamp="ts", timestamp_unit="ms", out_of_orderness="5s")
        .key_by("key")
        .window(tumbling("60s"))
        .aggregate(n=count(), total=sum("value"))
        .sink(sink_for(mode, seen))
    )
    return flow


def rows_of(seen: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in seen:
        out.extend(item.to_dicts() if isinstance(item, pl.DataFrame) else [item])
    return out


def throughput(
    build: Any,
    data_dir: str,
    n: int,
    mode: str,
    size: int | None,
    repeat: int,
    functions: bool = False,
) -> tuple[float, Any]:
    """Events/s, best of ``repeat`` runs, and the results of the last run."""
    best = 0.0
    seen: list[Any] = []
    for _ in range(repeat):
        seen = []
        flow = build(data_dir, mode, seen, functions=functions)
        gc.collect()
        started = time.perf_counter()
        flow.run(mode=mode, batch_size=size, stop_after=n, drain=True)
        best = max(best, n / (time.perf_counter() - started))
    return best, seen


def fingerprint(workload: str, rows: list[dict[str, Any]]) -> Any:
    """What must agree between runs, kept small (no live objects to slow the next run's GC):
    the results in order, encoded (so ``1`` and ``1.0``, another field order, another order of
    results or another last bit of a float sum differ)."""
    return msgspec.json.encode(rows)


def same_results(workload: str, got: Any, want: Any) -> bool:
    return bool(got == want)


def all_json(data_dir: str) -> list[Any]:
    log = Log(data_dir)
    reader = log.reader(TOPIC)
    batches = []
    while True:
        got = reader.poll(0.0, 100_000)
        if not got:
            break
        batches.extend(got)
    reader.close()
    log.close()
    return batches


def polars_once(batches: list[Any], workload: str, repeat: int) -> tuple[float, Any]:
    """Decode every JSON line and compute the answer in one go (``read_ndjson``)."""
    lines = b"\n".join(v for b in batches for v in b.values())
    best, result, height = float("inf"), None, 0
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        frame = pl.read_ndjson(io.BytesIO(lines))
        if workload == "W1":
            result = frame.filter(pl.col("value") > 50).with_columns(v=pl.col("value") * 2)
        else:
            result = frame.group_by(
                pl.col("key"), (pl.col("ts") - pl.col("ts") % WINDOW_MS).alias("start")
            ).agg(pl.len().alias("n"), pl.col("value").sum().alias("total"))
        best = min(best, time.perf_counter() - started)
        height = frame.height
    return height / best, result


def plain_once(data_dir: str, n: int, workload: str, repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        elapsed, result = _plain_time(data_dir, n, workload)
        best = min(best, elapsed)
    return n / best, result


def _plain_time(data_dir: str, n: int, workload: str) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    if workload == "W1":
        log = Log(data_dir)
        reader = log.reader(TOPIC)
        decode = msgspec.json.Decoder().decode
        out = []
        seen = 0
        while seen < n:
            for batch in reader.poll(max_records=10_000):
                for raw in batch.values():
                    e = decode(raw)
                    if e["value"] > 50:
                        e["v"] = e["value"] * 2
                        out.append(e)
                    seen += 1
        reader.close()
        log.close()
        result: Any = out
    else:
        result = plain_w2(data_dir, n)
    return time.perf_counter() - started, result


# -- latency --------------------------------------------------------------------------------


def latency(
    workload: str,
    mode: str,
    size: int | None,
    rate: int,
    seconds: float,
    functions: bool = False,
) -> list[float]:
    """p50 and p99 (ms) of append -> visible at a fixed input rate."""
    with tempfile.TemporaryDirectory(prefix="rheos-lat-") as data_dir:
        log = Log(data_dir)
        log.create_topic(TOPIC, 1)
        total = int(rate * seconds)
        appended: dict[int, float] = {}
        latencies: list[float] = []
        start_ts = 1_700_000_000_000
        step_ms = 10  # event time advances 10 ms per event: windows close as the rate allows

        def record(value: Any) -> None:
            now = time.time()
            if workload == "W1":
                latencies.append(now - value["at"])
            else:
                closing = (value["window_end"] + 5_000 - start_ts) // step_ms
                at = appended.get(int(closing))
                if at is not None:
                    latencies.append(now - at)

        def on_frame(frame: pl.DataFrame) -> None:
            now = time.time()
            if workload == "W1":
                latencies.extend((now - frame.get_column("at").to_numpy()).tolist())
            else:
                for value in frame.to_dicts():
                    record(value)

        sink: Any = frame_sink(on_frame) if mode == "micro-batch" else callback_sink(record)
        flow = Flow("lat", data_dir=data_dir, checkpoint_interval=None)
        src = flow.source(
            log_source(TOPIC), timestamp="ts", timestamp_unit="ms", out_of_orderness="5s"
        )
        if workload == "W1" and functions:
            src.filter(lambda e: e["value"] > 50).map(lambda e: {**e, "v": e["value"] * 2}).sink(
                sink
            )
        elif workload == "W1":
            src.filter(col("value") > 50).with_columns(v=col("value") * 2).sink(sink)
        else:
            src.key_by("key").window(tumbling("60s")).aggregate(n=count(), total=sum("value")).sink(
                sink
            )

        def produce() -> None:
            encode = msgspec.json.Encoder().encode
            per_tick = max(1, rate // 1000)
            with log.producer(TOPIC) as producer:
                began = time.perf_counter()
                for first in range(0, total, per_tick):
                    due = began + first / rate
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    now = time.time()
                    batch = []
                    for i in range(first, min(total, first + per_tick)):
                        appended[i] = now
                        batch.append(
                            encode(
                                {
                                    "ts": start_ts + i * step_ms,
                                    "key": KEYS[i % 20],
                                    "value": float((i * 37) % 100),
                                    "at": now,
                                }
                            )
                        )
                    producer.append(batch)

        thread = threading.Thread(target=produce)
        thread.start()
        flow.run(mode=mode, batch_size=size, batch_interval="50ms", stop_after=total, drain=False)
        thread.join()
        log.close()
        if not latencies:
            return [float("nan"), float("nan")]
        ms = np.asarray(latencies) * 1000
        return [float(np.percentile(ms, 50)), float(np.percentile(ms, 99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=20_000, help="latency runs: events/s")
    parser.add_argument("--seconds", type=float, default=3.0, help="latency runs: duration")
    parser.add_argument("--plot", default="docs/benchmarks/microbatch.png")
    parser.add_argument("--repeat", type=int, default=3, help="throughput: best of R runs")
    args = parser.parse_args()
    n = args.events
    table: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rheos-bench-") as data_dir:
        write_events(data_dir, n)
        batches = all_json(data_dir)
        for workload, build in [("W1", w1), ("W2", w2)]:
            plain_rate, plain_result = plain_once(data_dir, n, workload, args.repeat)
            expected_count = len(plain_result)
            del plain_result  # (live objects slow the garbage collector of later runs)
            polars_rate, _ = polars_once(batches, workload, args.repeat)
            configs: list[tuple[str, int | None, bool]] = [("stream-first", None, False)]
            if workload == "W1":
                configs.append(("stream-first", None, True))
            configs += [("micro-batch", s, False) for s in SIZES]
            reference: Any = None
            for mode, size, functions in configs:
                # batch sizes 1 and 10 are slow by design: they read the first 50,000 * size
                limit = n if size is None else min(n, 50_000 * size)
                repeat = args.repeat if limit == n else 1
                rate, seen = throughput(build, data_dir, limit, mode, size, repeat, functions)
                if limit == n:
                    rows = rows_of(seen)
                    assert len(rows) == expected_count, (mode, size)
                    got = fingerprint(workload, rows)
                    if reference is None:
                        reference = got
                    else:
                        assert same_results(workload, got, reference), (mode, size)
                    del rows
                del seen
                p50, p99 = latency(workload, mode, size, args.rate, args.seconds, functions)
                label = "stream-first fn" if functions else mode
                table.append(
                    {
                        "workload": workload,
                        "mode": label,
                        "batch": size,
                        "rate": rate,
                        "p50": p50,
                        "p99": p99,
                    }
                )
                print(
                    f"{workload} {label:<15} {size or '-':>7} {rate:>12,.0f} ev/s "
                    f"p50 {p50:8.1f} ms  p99 {p99:8.1f} ms",
                    flush=True,
                )
            table.append({"workload": workload, "mode": "plain loop", "rate": plain_rate})
            table.append({"workload": workload, "mode": "polars at once", "rate": polars_rate})
    print()
    print(
        f"{'workload':<8} {'mode':<15} {'batch':>8} {'events/s':>12} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'x stream':>9} {'% polars':>9}"
    )
    for row in table:
        sf = max(  # the faster way to run the workload stream-first
            r["rate"]
            for r in table
            if r["workload"] == row["workload"] and r["mode"].startswith("stream-first")
        )
        pol = next(
            r["rate"]
            for r in table
            if r["workload"] == row["workload"] and r["mode"] == "polars at once"
        )
        batch = row.get("batch") or "-"
        p50 = f"{row['p50']:.1f}" if "p50" in row else "-"
        p99 = f"{row['p99']:.1f}" if "p99" in row else "-"
        print(
            f"{row['workload']:<8} {row['mode']:<15} {batch!s:>8} {row['rate']:>12,.0f} "
            f"{p50:>8} {p99:>8} {row['rate'] / sf:>8.1f}x {row['rate'] / pol:>8.0%}"
        )
    plot(table, args.plot)


def plot(table: list[dict[str, Any]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install rheos[bench]): no plot")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, workload in zip(axes, ["W1", "W2"], strict=True):
        mb = [r for r in table if r["workload"] == workload and r["mode"] == "micro-batch"]
        sf = [
            r for r in table if r["workload"] == workload and r["mode"].startswith("stream-first")
        ]
        ax.plot([r["rate"] for r in mb], [r["p99"] for r in mb], "o-", label="micro-batch p99")
        ax.plot([r["rate"] for r in mb], [r["p50"] for r in mb], "s--", label="micro-batch p50")
        for r in mb:
            ax.annotate(f"{r['batch']:,}", (r["rate"], r["p99"]), fontsize=8)
        ax.plot([r["rate"] for r in sf], [r["p99"] for r in sf], "r^", label="stream-first p99")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("throughput (events/s)")
        ax.set_ylabel("latency append -> visible (ms)")
        ax.set_title(f"{workload}: latency vs throughput by batch size")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
