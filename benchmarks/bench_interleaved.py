"""The rows of ``bench_batch.py`` run in turn, round after round, in one process.

On a machine whose speed drifts (a shared host), runs made one after the other compare
moments as much as code: a slow minute during one row and not the next moves a ratio by
20 % or more. Here every round runs each row once -- the plain orjson loop, Polars, and the
flow stream-first and micro-batch, streaming and bounded -- and each row keeps its best
round, so the ratios compare runs made within seconds of each other. Each round starts one
row further on, so that no row always runs first (on the freshest heap) or last.

The events are ``bench_batch.py``'s (5 fields, 5 % up to 5 s late; ``--extra-fields K``
adds K that no step reads), written to a JSON-lines file and produced into the log with
``rheos produce``, as a user does.

    python benchmarks/bench_interleaved.py [--events N] [--rounds R] [--workloads W1,W2]
        [--extra-fields K] [--both-readers]

``--both-readers`` adds micro-batch rows whose fields are read by the other bulk reader
(Arrow's JSON reader where msgspec's structs read them, and the other way round: see
``rheos.runtime.microbatch.jsondecode.STRUCTS_FROM``).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_batch import TOPIC, WORKLOADS, cli, plain, polars, write_jsonl  # (this folder)

from rheos.runtime import Flow
from rheos.runtime.microbatch import jsondecode


def flow_run(
    data_dir: str, workload: str, mode: str, bounded: bool, n: int, other: bool = False
) -> None:
    if other:  # the other bulk reader of fields: msgspec's below the limit, Arrow's above
        limit = jsondecode.STRUCTS_FROM
        jsondecode.STRUCTS_FROM = 0 if limit > 1000 else 10**9
        try:
            return flow_run(data_dir, workload, mode, bounded, n)
        finally:
            jsondecode.STRUCTS_FROM = limit
    out: list[Any] = []
    flow = Flow(f"bench-{workload}", data_dir=data_dir, checkpoint_interval=None)
    WORKLOADS[workload](flow, out)
    size = 100_000 if mode == "micro-batch" else None
    if bounded:
        summary = flow.run(bounded=True, mode=mode, batch_size=size, progress=False)
    else:
        summary = flow.run(stop_after=n, drain=True, mode=mode, batch_size=size)
    assert summary.events_in == n and summary.late == 0, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--extra-fields", type=int, default=0)
    parser.add_argument("--both-readers", action="store_true")
    args = parser.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "events.jsonl")
        data_dir = str(Path(tmp) / "data")
        write_jsonl(path, n, seed=1, extra=args.extra_fields)
        cli(data_dir, "produce", TOPIC, "--file", path, "--create-partitions", "1")
        data = Path(path).read_bytes()
        lines = data.split(b"\n")[:-1]
        for workload in args.workloads.split(","):
            rows: dict[str, Callable[[], Any]] = {
                "plain orjson loop": lambda w=workload: plain(lines, w),
                "Polars read_ndjson + query": lambda w=workload: polars(data, w),
            }
            for mode in ("stream-first", "micro-batch"):
                for bounded in (False, True):
                    label = f"{mode}, {'bounded' if bounded else 'streaming'}"
                    rows[label] = lambda w=workload, m=mode, b=bounded: flow_run(
                        data_dir, w, m, b, n
                    )
                    if mode == "micro-batch" and args.both_readers:
                        rows[f"{label}, other reader"] = lambda w=workload, b=bounded: flow_run(
                            data_dir, w, "micro-batch", b, n, other=True
                        )
            best = dict.fromkeys(rows, float("inf"))
            runs = list(rows.items())
            for r in range(args.rounds):  # each round starts one row further on
                for label, run in runs[r % len(runs) :] + runs[: r % len(runs)]:
                    gc.collect()
                    started = time.perf_counter()
                    run()
                    best[label] = min(best[label], time.perf_counter() - started)
            base, top = best["plain orjson loop"], best["Polars read_ndjson + query"]
            print(f"\n{workload}, {n:,} events, best of {args.rounds} rounds")
            print(f"    {'run':<42} {'events/s':>11}  {'/ plain':>8}  {'/ Polars':>8}")
            for label, seconds in best.items():
                ratios = f"{base / seconds:>7.2f}x  {top / seconds:>7.2f}x"
                print(f"    {label:<42} {n / seconds:>11,.0f}  {ratios}")


if __name__ == "__main__":
    main()
