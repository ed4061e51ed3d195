"""Keyed state larger than memory: the in-memory backend against ``state="disk"``.

A W2-like flow -- a tumbling window keyed by ``key``, count and sum of ``value`` -- over
``--keys N`` distinct keys (default 2,000,000), every key open at once: ``--visits V`` events
per key (default 2), all in one one-hour window that closes at the end of the input, so the
state holds all N keys before it emits N rows. Keys come in a scattered order (event ``i``
has key ``(i * 7919) mod N``): with N far above the cache, almost every event reads its key
back from the file -- the disk backend's worst case, not a hot-key workload.

Each backend runs in a process of its own (``--backend`` runs one and prints a JSON line):
events/s over the whole run (state built, window closed, rows counted by a callback sink)
and the peak resident memory (``VmHWM``) of that process. The disk backend's file is in a
temporary folder under ``--dir`` (default: the current folder; not /tmp, which may be
memory). The table gives both and the ratios.

``--hot``: the first pass over the keys as above, then every later event on 10,000 hot keys
(all N keys still open): a workload whose keys repeat within the cache.

``--checkpointed`` runs the same flow over a log topic (the events written first, not
timed) with a checkpoint every second, as a streaming run with a data directory does, and
adds the checkpoints' longest periodic pause: for the disk backend, writing the cache's
changed keys and committing the file on the flow's thread; for the in-memory one, a fork.

    python benchmarks/bench_state.py [--keys N] [--visits V] [--cache-keys C] [--hot]
                                     [--checkpointed]
    python benchmarks/bench_state.py --keys 20000000      # 20M keys: minutes, GBs in memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

import rheos as rh

START = 1_700_000_000_000
TOPIC = "events"


HOT_KEYS = 10_000
"""``--hot``: the keys every event after the first pass goes to."""


def events(keys: int, visits: int, hot: bool = False) -> Iterator[dict[str, Any]]:
    n = keys * visits
    step = 7919 if keys % 7919 else 7907
    for i in range(n):
        of = keys if not hot or i < keys else min(keys, HOT_KEYS)
        yield {"key": (i * step) % of, "ts": START + i // 1_000, "value": i % 100}


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_log(folder: str, keys: int, visits: int, hot: bool) -> None:
    log = rh.Log(folder)
    log.create_topic(TOPIC, 1)
    encode = msgspec.json.Encoder().encode
    with log.producer(TOPIC) as producer:
        batch: list[bytes] = []
        for event in events(keys, visits, hot):
            batch.append(encode(event))
            if len(batch) == 50_000:
                producer.append(batch)
                batch = []
        if batch:
            producer.append(batch)
    log.close()


def run_one(
    backend: str,
    keys: int,
    visits: int,
    cache_keys: int,
    folder: str,
    checkpointed: bool,
    hot: bool,
) -> dict[str, Any]:
    state: Any = "memory" if backend == "memory" else rh.disk_state(cache_keys=cache_keys)
    rows = [0]

    def counted(row: Any) -> None:
        rows[0] += 1

    if checkpointed:
        write_log(folder, keys, visits, hot)
    baseline = peak_rss_mib()
    flow = rh.Flow("bench-state", data_dir=folder, state=state, checkpoint_interval="1s")
    source: Any = (
        rh.log_source(TOPIC)
        if checkpointed
        else rh.iterable_source(events(keys, visits, hot), batch_size=10_000)
    )
    flow.source(source, timestamp="ts").key_by("key").window(rh.tumbling("1h")).aggregate(
        n=rh.count(), total=rh.sum("value")
    ).sink(rh.callback_sink(counted))
    started = time.perf_counter()
    summary = flow.run(stop_after=keys * visits, drain=True) if checkpointed else flow.run()
    elapsed = time.perf_counter() - started
    assert rows[0] == keys, (rows[0], keys)
    pauses = [h["pause_s"] for h in summary.checkpoints.history if h["kind"] == "periodic"]
    return {
        "backend": backend,
        "keys": keys,
        "events": keys * visits,
        "seconds": round(elapsed, 2),
        "events_per_s": round(keys * visits / elapsed),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "baseline_rss_mib": round(baseline, 1),
        "checkpoints": len(pauses),
        "max_pause_ms": round(max(pauses, default=0.0) * 1000, 1),
    }


def in_process(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one backend in a fresh process (its peak memory is its own)."""
    cmd = [
        sys.executable,
        __file__,
        "--backend",
        backend,
        "--keys",
        str(args.keys),
        "--visits",
        str(args.visits),
        "--cache-keys",
        str(args.cache_keys),
        "--dir",
        args.dir,
        *(["--checkpointed"] if args.checkpointed else []),
        *(["--hot"] if args.hot else []),
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=2_000_000)
    parser.add_argument("--visits", type=int, default=2)
    parser.add_argument("--cache-keys", type=int, default=rh.disk_state().cache_keys)
    parser.add_argument("--dir", default=os.getcwd())
    parser.add_argument("--backend", choices=("memory", "disk"))
    parser.add_argument("--only", choices=("memory", "disk"), help="run one backend only")
    parser.add_argument("--checkpointed", action="store_true", help="from a log, checkpointed")
    parser.add_argument("--hot", action="store_true", help="events after the first pass: hot keys")
    args = parser.parse_args()
    if args.backend is not None:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-state-") as folder:
            result = run_one(
                args.backend,
                args.keys,
                args.visits,
                args.cache_keys,
                folder,
                args.checkpointed,
                args.hot,
            )
            print(json.dumps(result))
        return
    backends = [args.only] if args.only else ["memory", "disk"]
    results = {b: in_process(b, args) for b in backends}
    print(
        f"W2-like tumbling window, {args.keys:,} keys x {args.visits} events, "
        f"disk cache {args.cache_keys:,} keys"
        + (f", then on {HOT_KEYS:,} hot keys" if args.hot else "")
        + (", from a log, a checkpoint every second" if args.checkpointed else "")
    )
    head = f"{'backend':<8} {'events/s':>10} {'seconds':>8} {'peak RSS MiB':>13}"
    print(head + (f" {'checkpoints':>12} {'longest pause ms':>17}" if args.checkpointed else ""))
    for b, r in results.items():
        line = f"{b:<8} {r['events_per_s']:>10,} {r['seconds']:>8} {r['peak_rss_mib']:>13,.0f}"
        if args.checkpointed:
            line += f" {r['checkpoints']:>12} {r['max_pause_ms']:>17}"
        print(line)
    if len(results) == 2:
        mem, disk = results["memory"], results["disk"]
        print(
            f"disk/memory: throughput {disk['events_per_s'] / mem['events_per_s']:.2f}x, "
            f"peak RSS {disk['peak_rss_mib'] / mem['peak_rss_mib']:.2f}x"
        )


if __name__ == "__main__":
    main()
