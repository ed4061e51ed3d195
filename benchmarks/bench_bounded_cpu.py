"""Bounded against streaming runs in CPU seconds, for a machine shared with other work.

The events, workloads and runs of ``bench_batch.py`` (user-shaped JSON events produced with
``rheos produce``; W1, W2, S, J), but timed in CPU seconds of this process
(``time.process_time()``: every thread, the reading threads of micro-batch mode included)
rather than wall-clock seconds, streaming and bounded runs taking turns in one process. On a
machine whose load changes from one second to the next this is the comparison that holds;
on an idle machine ``bench_batch.py`` measures what a user waits for (micro-batch mode
decodes in threads beside the flow, which CPU time does not show).

Per workload and mode (``stream-first``, ``micro-batch`` with ``--batch-size``, and
``chosen``: no mode given, the bounded run picks its executor, rheos.runtime.bounded_mode):
events per CPU second streaming and bounded, and their ratio -- of the best runs and of the
median ones. Which of the two runs first alternates from round to round (the first run after
another's finds a fresher heap). ``--clock wall`` times wall-clock seconds instead, for an
idle machine: many rounds of it, with the medians, are what shows a few per cent.

    python benchmarks/bench_bounded_cpu.py [--events N] [--repeat R] [--workloads W1,W2]
                                           [--extra-fields K] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_batch import RIGHT, TOPIC, WORKLOADS, cli, write_jsonl

from rheos.runtime import Flow

MODES = ("stream-first", "micro-batch", "chosen")
RESULTS = Path(__file__).resolve().parent / "results" / "bounded_cpu.json"


def cpu_seconds(
    data_dir: str, workload: str, mode: str, bounded: bool, batch: int, n: int, wall: bool
) -> float:
    out: list[Any] = []
    flow = Flow(f"bench-{workload}", data_dir=data_dir, checkpoint_interval=None)
    WORKLOADS[workload](flow, out)
    asked = None if mode == "chosen" else mode
    size = batch if mode == "micro-batch" else None
    clock = time.perf_counter if wall else time.process_time
    gc.collect()
    started = clock()
    if bounded:
        summary = flow.run(bounded=True, mode=asked, batch_size=size, progress=False)
    else:
        summary = flow.run(stop_after=n, drain=True, mode=asked, batch_size=size)
    took = clock() - started
    assert summary.events_in == n and summary.late == 0, summary
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of R runs")
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON results go")
    parser.add_argument(
        "--extra-fields", type=int, default=0, help="K more fields per event that no step reads"
    )
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    wall = args.clock == "wall"
    unit = "/s" if wall else "/cpu-s"
    n = args.events
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rheos-bench-bounded-") as folder:
        data_dir = os.path.join(folder, "data")
        events, right = os.path.join(folder, "events.jsonl"), os.path.join(folder, "right.jsonl")
        write_jsonl(events, n, seed=7, extra=args.extra_fields)
        write_jsonl(right, n // 2, seed=8, step_ms=20, extra=args.extra_fields)
        cli(data_dir, "topic", "create", TOPIC, "--partitions", "1")
        cli(data_dir, "produce", TOPIC, "--file", events)
        cli(data_dir, "topic", "create", RIGHT, "--partitions", "1")
        cli(data_dir, "produce", RIGHT, "--file", right)
        print(
            f"{'':<3} {'mode':<13} {'streaming':>14} {'bounded':>14}  bounded/streaming "
            "(best, median)"
        )
        for workload in args.workloads.split(","):
            total = n + n // 2 if workload == "J" else n
            times: dict[tuple[str, bool], list[float]] = {}
            for r in range(args.repeat):
                for mode in MODES:
                    for bounded in (False, True) if r % 2 == 0 else (True, False):
                        took = cpu_seconds(
                            data_dir, workload, mode, bounded, args.batch_size, total, wall
                        )
                        times.setdefault((mode, bounded), []).append(took)
            for mode in MODES:
                streaming, bounded_s = min(times[(mode, False)]), min(times[(mode, True)])
                ratio = streaming / bounded_s
                median = statistics.median(times[(mode, False)]) / statistics.median(
                    times[(mode, True)]
                )
                rows.append(
                    {
                        "workload": workload,
                        "mode": mode,
                        f"streaming_per{unit.replace('/', '_')}": round(total / streaming),
                        f"bounded_per{unit.replace('/', '_')}": round(total / bounded_s),
                        "ratio_best": round(ratio, 3),
                        "ratio_median": round(median, 3),
                    }
                )
                print(
                    f"{workload:<3} {mode:<13} {total / streaming:>10,.0f}{unit} "
                    f"{total / bounded_s:>10,.0f}{unit}  {ratio:.2f}x, {median:.2f}x",
                    flush=True,
                )
    report = {"events": n, "repeat": args.repeat, "clock": args.clock, "rows": rows}
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
