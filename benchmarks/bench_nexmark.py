"""Nexmark: rheos stream-first, rheos micro-batch and Flink SQL on the same events.

The events are those of ``rheos nexmark generate`` (1,000,000 by default, seed 0, the
reference generator's defaults: 10,000 events per second of event time, so 100 s of it),
written once as three JSON-lines files, one per kind (``person.jsonl``, ``auction.jsonl``,
``bid.jsonl``), and as three log topics. Each query reads only the kinds it uses, in every
engine. Rows, per query:

* **rheos stream-first**: a streaming run over the files (they end: the final watermark closes
  every window and fires every timer), results into a sink that counts them;
* **rheos micro-batch**: the same flow and files, ``mode="micro-batch"``, batches of
  100,000, results as Polars frames (``frame_sink``);
* **rheos micro-batch, log**: the same over the log topics, which a micro-batch run decodes in
  bulk; streaming, stopped after the topics' last record and drained;
* **Flink SQL** through PyFlink (``--flink-python``, an interpreter with ``apache-flink``):
  the reference's SQL in streaming mode, parallelism 1, over the same files into a blackhole
  sink; its JVM start is reported apart, and its run starts warm (the same JVM first runs the
  query on the check input).

Throughput is Nexmark events per second: the number of events generated (all kinds) over the
run's wall time, the same for every engine. Each run is a process of its own; peak RSS is its
largest resident size (rheos: the Python process; Flink: the JVM, without the Python driver).

Correctness: on a small input (40,000 events at 2,000 per second, seed 7, the tests' input),
each query's bounded rheos results in both modes are compared with Flink's final rows
(inserts minus retractions), as multisets. q6 is not supported by Flink SQL.

    python benchmarks/bench_nexmark.py [--events N] [--queries q0,q5]
        [--flink-python /path/to/venv/bin/python] [--no-flink]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import rheos as rh
from rheos.flows import SourceStep
from rheos.nexmark import (
    QUERIES,
    GeneratorConfig,
    build_from_files,
    build_from_topics,
    write_jsonl_by_kind,
    write_topics,
)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "nexmark.json")
BATCH = 100_000
CHECK = GeneratorConfig(events=40_000, events_per_second=2_000, seed=7)
COLUMNS = {
    "q0": ("auction", "bidder", "price", "channel", "url", "dateTime"),
    "q1": ("auction", "bidder", "price", "channel", "url", "dateTime"),
    "q2": ("auction", "price"),
    "q3": ("name", "city", "state", "id"),
    "q4": ("category", "avg"),
    "q5": ("auction", "num", "window_start", "window_end"),
    "q6": ("seller", "auction", "avg"),
    "q7": ("auction", "price", "bidder", "dateTime", "window_start", "window_end"),
    "q8": ("id", "name", "starttime"),
    "q11": ("bidder", "bid_count", "starttime", "endtime"),
}
"""The columns of each query's results, in the order of the Flink SQL's."""
KIND_OF_SOURCE = {"persons": "person", "auctions": "auction", "bids": "bid"}


# -- one run, in a process of its own ---------------------------------------------------
def run_one(query: str, how: str, folder: str, events: int) -> dict[str, Any]:
    """Run ``query`` as ``how`` (``stream-first``, ``micro-batch`` or ``micro-batch-log``)."""
    counted = [0]
    mode = "stream-first" if how == "stream-first" else "micro-batch"
    if mode == "micro-batch":
        from rheos.runtime.microbatch import frame_sink

        sink: Any = frame_sink(lambda frame: counted.__setitem__(0, counted[0] + len(frame)))
    else:
        sink = rh.callback_sink(lambda row: counted.__setitem__(0, counted[0] + 1))
    data = os.path.join(folder, "data")
    options: dict[str, Any] = {"mode": mode, "progress": False}
    if mode == "micro-batch":
        options["batch_size"] = BATCH
    if how == "micro-batch-log":
        flow = build_from_topics(query, "nexmark", sink, data_dir=data)
        options.update(stop_after=_records(flow, events), drain=True)
    else:
        flow = build_from_files(query, os.path.join(folder, "files"), sink, data_dir=data)
    started = time.perf_counter()
    summary = flow.run(**options)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "read": summary.events_in,
        "results": counted[0],
        "peak_rss": _peak_rss(),
    }


def _peak_rss() -> int:
    """This process's peak resident size (VmHWM), in bytes. Not ``getrusage``: after a fork
    and exec, Linux reports the parent's peak there when it was larger."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _records(flow: rh.Flow, events: int) -> int:
    """How many records the topics a flow reads hold (the generator's 1 : 3 : 46)."""
    share = {"person": 1, "auction": 3, "bid": 46}
    kinds = [KIND_OF_SOURCE[s.name] for s in flow.steps if isinstance(s, SourceStep)]
    groups, rest = divmod(events, 50)
    total = 0
    for kind in kinds:
        before = {"person": 0, "auction": 1, "bid": 4}[kind]
        total += groups * share[kind] + max(0, min(rest - before, share[kind]))
    return total


def in_subprocess(args: list[str], python: str = sys.executable) -> dict[str, Any]:
    """Run a command and return the JSON object it prints last."""
    proc = subprocess.Popen(
        [python, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{err[-3000:]}")
    line = [x for x in out.splitlines() if x.startswith("{")][-1]
    result: dict[str, Any] = json.loads(line)
    return result


# -- the check ---------------------------------------------------------------------------
def rheos_rows(query: str, folder: str, mode: str) -> Counter[tuple[Any, ...]]:
    out: list[dict[str, Any]] = []
    data = tempfile.mkdtemp(prefix="nexmark-check-")
    try:
        flow = build_from_files(query, folder, rh.list_sink(out), data_dir=data)
        flow.run(bounded=True, mode=mode, progress=False)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(data, ignore_errors=True)
    if query == "q4":  # running averages: the last per category is the answer
        out = list({row["category"]: row for row in out}.values())
    return Counter(tuple(row[c] for c in COLUMNS[query]) for row in out)


# -- the table -----------------------------------------------------------------------------
def rate(events: int, seconds: float | None) -> float | None:
    return None if seconds is None else events / seconds


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f}"


def k(n: float | None) -> str:
    return "-" if n is None else f"{n / 1000:,.0f} k"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def table(report: dict[str, Any]) -> str:
    head = (
        "| query | stream-first | RSS MiB | micro-batch | RSS MiB | micro-batch, log | RSS MiB "
        "| Flink SQL | RSS MiB | micro-batch / Flink | stream-first / Flink | same rows |"
    )
    lines = [head, "|---" + "|--:" * 10 + "|:-:|"]
    events = report["events"]
    for query, row in report["queries"].items():
        sf, mb, log = row.get("stream-first"), row.get("micro-batch"), row.get("micro-batch-log")
        fl = row.get("flink")
        r_sf = rate(events, sf and sf["seconds"])
        r_mb = rate(events, mb and mb["seconds"])
        r_log = rate(events, log and log["seconds"])
        r_fl = rate(events, fl and fl["run_s"])
        best_mb = max([r for r in (r_mb, r_log) if r is not None], default=None)
        lines.append(
            f"| {query} | {k(r_sf)} | {mib(sf and sf['peak_rss'])} | {k(r_mb)} "
            f"| {mib(mb and mb['peak_rss'])} | {k(r_log)} | {mib(log and log['peak_rss'])} "
            f"| {k(r_fl)} | {mib(fl and fl['peak_rss'])} | {ratio(best_mb, r_fl)} "
            f"| {ratio(r_sf, r_fl)} | {row.get('same_rows', '-')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument("--flink-python", default=None, help="a Python with apache-flink")
    parser.add_argument("--no-flink", action="store_true")
    parser.add_argument("--dir", default=None, help="where the events go (default: a temp dir)")
    parser.add_argument("--run-one", nargs=4, metavar=("QUERY", "HOW", "DIR", "EVENTS"))
    args = parser.parse_args()
    if args.run_one:
        query, how, folder, events = args.run_one
        print(json.dumps(run_one(query, how, folder, int(events))))
        return

    queries = args.queries.split(",")
    flink = None if args.no_flink else (args.flink_python or _python_with_flink())
    folder = args.dir or tempfile.mkdtemp(prefix="nexmark-bench-")
    config = GeneratorConfig(events=args.events)
    started = time.perf_counter()
    write_jsonl_by_kind(config, os.path.join(folder, "files"))
    write_jsonl_by_kind(CHECK, os.path.join(folder, "check"))
    log = rh.Log(os.path.join(folder, "data"))
    try:
        write_topics(config, log, "nexmark")
    finally:
        log.close()
    print(f"{args.events:,} events generated in {time.perf_counter() - started:.1f} s", flush=True)

    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "events": args.events,
        "batch_size": BATCH,
        "flink": flink,
        "queries": {},
    }
    me = os.path.abspath(__file__)
    for query in queries:
        row: dict[str, Any] = {}
        for how in ("stream-first", "micro-batch", "micro-batch-log"):
            row[how] = in_subprocess([me, "--run-one", query, how, folder, str(args.events)])
            seconds = row[how]["seconds"]
            print(f"{query} {how}: {args.events / seconds:,.0f} events/s", flush=True)
        if flink is not None and query != "q6":
            flink_script = os.path.join(HERE, "nexmark_flink.py")
            check, files = os.path.join(folder, "check"), os.path.join(folder, "files")
            result = in_subprocess([flink_script, query, check, files], python=flink)
            rows = Counter(tuple(r) for r in result.pop("check_rows"))
            same = all(
                rheos_rows(query, check, mode) == rows for mode in ("stream-first", "micro-batch")
            )
            row["flink"] = result
            row["same_rows"] = f"yes ({sum(rows.values())})" if same else "NO"
            print(
                f"{query} Flink SQL: {args.events / result['run_s']:,.0f} events/s "
                f"(JVM start {result['jvm_s']:.1f} s), same rows: {row['same_rows']}",
                flush=True,
            )
        report["queries"][query] = row
    print()
    print(table(report))
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(report, f, indent=1)
    if args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)


def _python_with_flink() -> str | None:
    try:
        import pyflink  # noqa: F401
    except ImportError:
        return None
    return sys.executable


if __name__ == "__main__":
    main()
