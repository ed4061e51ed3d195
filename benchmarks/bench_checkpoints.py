"""Checkpoint overhead and recovery time.

1. **W2 with checkpoints** (the workload of ``bench_flows.py``: a 60-second tumbling window
   keyed by 20 keys, count and sum, 1,000,000 events from the log): checkpoints every second
   against checkpoints off, alternating in the same process, best of ``--repeat``.
2. **Pauses with 1,000,000 keys of window state**: 3,000,000 events over 1,000,000 keys in a
   one-hour tumbling window, with checkpoints off, every second with the state read in a
   forked process (the default), and every second read on the flow's thread
   (``RHEOS_SNAPSHOT=inline``): the gap between the two events processed before and after
   each periodic checkpoint (the pause it causes; "inside": the time the flow's thread spent
   in it), the longest gap between two consecutive events anywhere (the cyclic garbage
   collector's full passes and the machine's other load show there too), and the p99 latency
   of a stream arriving at half the speed measured with checkpoints off (computed from each
   event's measured time).
3. **Recovery with 1,000,000 keys**: a running aggregate over 1,000,000 distinct keys; the
   time of the checkpoint that writes them all, and of the restore when the flow starts again
   (state loaded, sources sought, sinks recovered).

    python benchmarks/bench_checkpoints.py [--events N] [--keys K] [--repeat R]
        [--pause-events E] [--only w2|pauses|recovery]
"""

from __future__ import annotations

import argparse
import bisect
import gc
import itertools
import os
import statistics
import tempfile
import time
from typing import Any

import msgspec
from bench_flows import TOPIC, write_events  # type: ignore[import-not-found]

from rheos.connectors import list_sink, log_sink, log_source
from rheos.runtime import Flow
from rheos.runtime.checkpointing import Checkpointer
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


def pause_events(keys: int, events: int) -> str:
    """A data directory with ``events`` events over ``keys`` keys in topic ``keys``."""
    data_dir = tempfile.mkdtemp(prefix="rheos-bench-pause-")
    log = Log(data_dir)
    log.create_topic("keys", 1)
    encode = msgspec.json.Encoder().encode
    start = 1_700_000_000_000
    with log.producer("keys") as p:
        for first in range(0, events, 10_000):  # read (and decoded) a batch at a time
            p.append(
                [
                    encode({"k": i % keys, "v": i % 7, "ts": start + i // 1_000})
                    for i in range(first, min(events, first + 10_000))
                ]
            )
    return data_dir


def latencies(gaps: list[float], rate: float) -> list[float]:
    """The latency of each event of a stream arriving at ``rate`` events/s, evenly spaced,
    served with the measured per-event times ``gaps`` (Lindley's recursion: an event waits
    for the one before it, then takes its own time); a pause delays every event that
    arrives during it."""
    out = []
    done = 0.0
    every = 1 / rate
    for i, gap in enumerate(gaps):
        arrive = i * every
        done = max(done, arrive) + gap
        out.append(done - arrive)
    return out


def pauses(data_dir: str, events: int, interval: str | None, snapshot: str) -> dict[str, Any]:
    """Window state over the keys of ``data_dir``, checkpointed every ``interval`` (or not),
    the state read in a forked process or on the flow's thread (``snapshot``): the longest
    gap between two consecutive events processed (a checkpoint's pause shows there), and
    the time each event took (for :func:`latencies`)."""
    os.environ["RHEOS_SNAPSHOT"] = snapshot
    gc.collect()  # the previous run's state, not in this run's pauses
    stamps: list[float] = []
    mark = stamps.append
    clock = time.perf_counter
    name = f"pauses-{interval}-{snapshot}-{time.monotonic_ns()}"
    flow = Flow(name, data_dir=data_dir, checkpoint_interval=interval)
    (
        flow.source(log_source("keys"), timestamp="ts", timestamp_unit="ms")
        .inspect(lambda e: mark(clock()))
        .key_by("k")
        .window(tumbling("1h"))
        .aggregate(n=count(), total=sum("v"))
        .sink(list_sink([]))
    )
    takes: list[tuple[float, float]] = []
    take = Checkpointer._take

    def timed_take(self: Checkpointer, kind: str) -> Any:  # where each checkpoint stops the flow
        started = clock()
        try:
            return take(self, kind)
        finally:
            takes.append((started, clock()))

    Checkpointer._take = timed_take  # type: ignore[method-assign]
    try:
        summary = flow.run(stop_after=events)
    finally:
        Checkpointer._take = take  # type: ignore[method-assign]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    at_checkpoints = [  # the gap between the events before and after each checkpoint
        stamps[i] - stamps[i - 1]
        for i in (bisect.bisect(stamps, start) for start, _ in takes)
        if 0 < i < len(stamps)
    ]
    return {
        "gaps": gaps,
        "longest_ms": max(gaps) * 1000,
        "at_checkpoint_ms": max(at_checkpoints, default=0.0) * 1000,
        # the gap where the next 10,000 events are read and decoded, checkpoint or not
        "read_ms": statistics.median([g for g in gaps if g > 0.005] or [0.0]) * 1000,
        "checkpoints": summary.checkpoints.count,
        "checkpoint_pause_ms": max(
            [h.get("pause_s", 0.0) for h in summary.checkpoints.history if h["kind"] == "periodic"],
            default=0.0,
        )
        * 1000,
        "events_per_s": events / (stamps[-1] - stamps[0]),
    }


def pause_table(keys: int, events: int) -> None:
    """Checkpoints off, every second with forked snapshots, every second in-process: the
    longest pause and the p99 latency of a stream at half the speed measured with
    checkpoints off."""
    data_dir = pause_events(keys, events)
    runs = {
        "off": pauses(data_dir, events, None, "fork"),
        "every 1s, forked": pauses(data_dir, events, "1s", "fork"),
        "every 1s, inline": pauses(data_dir, events, "1s", "inline"),
    }
    rate = runs["off"]["events_per_s"] / 2
    print(f"pauses, {keys:,} keys of window state, {events:,} events")
    print(f"  (p99 latency: events arriving at {rate:,.0f}/s, half the speed with checkpoints off)")
    for what, got in runs.items():
        lat = sorted(latencies(got["gaps"], rate))
        p99, worst = lat[int(len(lat) * 0.99)] * 1000, lat[-1] * 1000
        print(
            f"  checkpoints {what:<17} pause at a checkpoint {got['at_checkpoint_ms']:>7.1f} ms "
            f"(inside {got['checkpoint_pause_ms']:>6.1f}; a read {got['read_ms']:>4.1f}), "
            f"longest pause {got['longest_ms']:>6.1f} ms, p99 latency {p99:>7.1f} ms, "
            f"max {worst:>7.1f} ms, {got['events_per_s']:>8,.0f} events/s "
            f"({got['checkpoints']} checkpoints)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pause-events", type=int, default=3_000_000)
    parser.add_argument(
        "--only", choices=["w2", "pauses", "recovery"], help="run one part of the three"
    )
    args = parser.parse_args()
    if args.only in (None, "pauses"):
        pause_table(args.keys, args.pause_events)
    if args.only == "pauses":
        return
    if args.only == "recovery":
        report_recovery(args.keys)
        return
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
    if args.only is None:
        report_recovery(args.keys)


def report_recovery(keys: int) -> None:
    rec = recovery(keys)
    print(f"recovery, {keys:,} keys of running-aggregate state")
    print(
        f"  first run {rec['run_s']:.2f} s; its checkpoint of every key {rec['checkpoint_s']:.2f} s"
    )
    print(f"  ({rec['checkpoint_mb']:.1f} MB); restore on restart {rec['restore_s']:.2f} s")


if __name__ == "__main__":
    main()
