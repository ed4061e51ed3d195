"""Checkpoint overhead and recovery time.

1. **W2 with checkpoints** (the workload of ``bench_flows.py``: a 60-second tumbling window
   keyed by 20 keys, count and sum, 1,000,000 events from the log): checkpoints every second
   against checkpoints off, alternating in the same process, best of ``--repeat``.
2. **Pauses with 1,000,000 keys of window state**: 3,000,000 events over 1,000,000 keys in a
   one-hour tumbling window, with checkpoints every second and off; the longest gap between
   two consecutive events processed (where a checkpoint stops the flow) and the p99 time of a
   1,000-event stretch.
3. **Recovery with 1,000,000 keys**: a running aggregate over 1,000,000 distinct keys; the
   time of the checkpoint that writes them all, and of the restore when the flow starts again
   (state loaded, sources sought, sinks recovered).

    python benchmarks/bench_checkpoints.py [--events N] [--keys K] [--repeat R]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time

import msgspec
from bench_flows import TOPIC, write_events  # type: ignore[import-not-found]

from rheos.connectors import list_sink, log_sink, log_source
from rheos.runtime import Flow
from rheos.transport import Log
from rheos.windowing import count, sum, tumbling


def w2(data_dir: str, n: int, interval: str | None, name: str) -> tuple[float, int]:
    out: list[dict[str, object]] = []
    flow = Flow(name, data_dir=data_dir, checkpoint_interval=interval)
    (
        flow.source(log_source(TOPIC), timestamp="ts", timestamp_unit="ms", out_of_orderness="5s")
        .key_by("key")
        .window(tumbling("60s"))
        .aggregate(n=count(), total=sum("value"))
        .sink(list_sink(out))
    )
    started = time.perf_counter()
    summary = flow.run(stop_after=n, drain=True)
    return time.perf_counter() - started, summary.checkpoints.count


def recovery(keys: int) -> dict[str, float]:
    data_dir = tempfile.mkdtemp(prefix="rheos-bench-ckpt-")
    log = Log(data_dir)
    log.create_topic("keys", 1)
    encode = msgspec.json.Encoder().encode
    with log.producer("keys") as p:
        for start in range(0, keys, 100_000):
            p.append([encode({"k": i, "v": i % 7}) for i in range(start, start + 100_000)])

    def build() -> Flow:
        flow = Flow("many-keys", data_dir=data_dir, checkpoint_interval="1h")
        (
            flow.source(log_source("keys"))
            .key_by("k")
            .aggregate(total=sum("v"))
            .sink(log_sink("totals"))
        )
        return flow

    started = time.perf_counter()
    first = build().run(stop_after=keys)  # the stop writes every key in one checkpoint
    run_s = time.perf_counter() - started
    second = build().run(timeout=0.01)
    return {
        "run_s": run_s,
        "checkpoint_s": first.checkpoints.last_s,
        "checkpoint_mb": first.checkpoints.last_bytes / 1e6,
        "restore_s": second.checkpoints.restore_s,
    }


def pauses(keys: int, events: int, interval: str | None) -> dict[str, float]:
    """Window state over ``keys`` keys, checkpointed every ``interval`` (or not): the longest
    gap between two consecutive events processed (a checkpoint's pause shows there), and
    the p99 of those gaps per 1,000 events."""
    data_dir = tempfile.mkdtemp(prefix="rheos-bench-pause-")
    log = Log(data_dir)
    log.create_topic("keys", 1)
    encode = msgspec.json.Encoder().encode
    start = 1_700_000_000_000
    with log.producer("keys") as p:
        for first in range(0, events, 100_000):
            p.append(
                [
                    encode({"k": i % keys, "v": i % 7, "ts": start + i // 1_000})
                    for i in range(first, min(events, first + 100_000))
                ]
            )
    stamps: list[float] = []
    mark = stamps.append
    clock = time.perf_counter
    flow = Flow("pauses", data_dir=data_dir, checkpoint_interval=interval)
    (
        flow.source(log_source("keys"), timestamp="ts", timestamp_unit="ms")
        .inspect(lambda e: mark(clock()))
        .key_by("k")
        .window(tumbling("1h"))
        .aggregate(n=count(), total=sum("v"))
        .sink(list_sink([]))
    )
    summary = flow.run(stop_after=events)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    per_1000 = sorted(stamps[i + 1_000] - stamps[i] for i in range(0, len(stamps) - 1_000, 1_000))
    return {
        "longest_ms": max(gaps) * 1000,
        "p99_per_1000_ms": per_1000[int(len(per_1000) * 0.99)] * 1000,
        "checkpoints": summary.checkpoints.count,
        "checkpoint_pause_ms": summary.checkpoints.max_pause_s * 1000,
        "events_per_s": events / (stamps[-1] - stamps[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pause-events", type=int, default=3_000_000)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="rheos-bench-w2-")
    write_events(data_dir, args.events)
    times: dict[str | None, list[float]] = {None: [], "1s": [], "100ms": []}
    taken: dict[str | None, int] = {}
    for r in range(args.repeat):
        for interval, runs in times.items():
            seconds, taken[interval] = w2(data_dir, args.events, interval, f"w2-{interval}-{r}")
            runs.append(seconds)
    best_off = min(times[None])
    print(f"W2, {args.events:,} events, best of {args.repeat}")
    print(f"  checkpoints off           {args.events / best_off:>12,.0f} events/s")
    for interval in ("1s", "100ms"):
        best = min(times[interval])
        print(
            f"  checkpoints every {interval:<6}  {args.events / best:>12,.0f} events/s "
            f"({taken[interval]} checkpoints; {(best / best_off - 1) * 100:+.1f}% time)"
        )
    print(f"pauses, {args.keys:,} keys of window state, {args.pause_events:,} events")
    for interval in (None, "1s"):
        got = pauses(args.keys, args.pause_events, interval)
        print(
            f"  checkpoints {interval or 'off':<4} longest pause {got['longest_ms']:>8.1f} ms, "
            f"p99 of 1,000-event stretches {got['p99_per_1000_ms']:>6.1f} ms, "
            f"{got['events_per_s']:>10,.0f} events/s ({got['checkpoints']} checkpoints)"
        )
    rec = recovery(args.keys)
    print(f"recovery, {args.keys:,} keys of running-aggregate state")
    print(
        f"  first run {rec['run_s']:.2f} s; its checkpoint of every key {rec['checkpoint_s']:.2f} s"
    )
    print(f"  ({rec['checkpoint_mb']:.1f} MB); restore on restart {rec['restore_s']:.2f} s")


if __name__ == "__main__":
    main()
