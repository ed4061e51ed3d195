"""The cost of a repartition topic: the same keyed flow split into two tasks, with and without one.

W2 (a 60 s tumbling count + sum by ``key``, 20 keys) over ``--events`` JSON events in a
two-partition log topic keyed by ``key``, run bounded as two tasks, each a process of its own
reading one partition:

* **without** a repartition topic: each task runs the flow as it is (correct here only
  because the input is already partitioned by the key the flow keys by);
* **with** one: each task runs ``repartitioned(graph, 2)``, so its events go through
  ``w2.key_by.repartition`` (encoded, written, committed, read back by the task of their
  key) before the window, as any ``key_by`` does in a flow split into tasks;
* and, beside them, one run over both partitions.

Both modes (stream-first and micro-batch). The table shows events/s (the input over the wall
time until both tasks are done, best of ``--repeat``) and the ratio with/without; results are
checked equal to the one run's.

    python benchmarks/bench_repartition.py [--events N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from rheos.connectors import list_sink, log_source
from rheos.flows.steps import Graph
from rheos.runtime import Flow
from rheos.runtime.microbatch import MicroBatchRunner
from rheos.runtime.repartition import repartitioned
from rheos.runtime.runner import Runner
from rheos.transport import Log
from rheos.windowing import count, sum, tumbling

TOPIC = "bench"
KEYS = [f"k{i:02d}" for i in range(20)]
TASKS = 2


def write_events(data_dir: str, n: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    encode = msgspec.json.Encoder().encode
    log = Log(data_dir)
    log.create_topic(TOPIC, TASKS)
    start = 1_700_000_000_000
    with log.producer(TOPIC) as producer:
        for a in range(0, n, 50_000):
            events = [
                {"id": i, "ts": start + i * 10, "key": KEYS[rnd.randrange(20)], "value": i % 97}
                for i in range(a, min(n, a + 50_000))
            ]
            producer.append([encode(e) for e in events], keys=[e["key"].encode() for e in events])
    log.close()


def w2(out: list[Any]) -> Graph:
    flow = Flow("w2")
    (
        flow.source(
            log_source(TOPIC),
            timestamp="ts",
            timestamp_unit="ms",
            out_of_orderness="5s",
        )
        .key_by("key")
        .window(tumbling("60s"))
        .aggregate(n=count(), total=sum("value"))
        .sink(list_sink(out))
    )
    return flow.graph()


def run_task(data_dir: str, mode: str, task: int | None, through_topic: bool, done: Any) -> None:
    out: list[Any] = []
    graph = w2(out)
    if through_topic:
        graph = repartitioned(graph, TASKS)
    tasks = 1 if task is None else TASKS
    runner: Runner
    if mode == "micro-batch":
        runner = MicroBatchRunner(
            graph, data_dir=data_dir, batch_size=100_000, metrics=False, task=task, tasks=tasks
        )
    else:
        runner = Runner(graph, data_dir=data_dir, metrics=False, task=task, tasks=tasks)
    runner.run(bounded=True, progress=False)
    done.put(sorted(json.dumps(r, sort_keys=True) for r in out))


def timed(
    data_dir: str, mode: str, tasks: list[int | None], through_topic: bool
) -> tuple[float, list[str]]:
    """Run ``tasks`` as processes at once; the wall time until all are done, and the output."""
    ctx = multiprocessing.get_context("fork")
    done = ctx.Queue()
    started = time.perf_counter()
    procs = [
        ctx.Process(target=run_task, args=(data_dir, mode, t, through_topic, done)) for t in tasks
    ]
    for proc in procs:
        proc.start()
    results = [done.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0, f"a task failed ({mode}, through_topic={through_topic})"
    elapsed = time.perf_counter() - started
    return elapsed, sorted(r for result in results for r in result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=2, help="best of R runs")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "repartition.json")
    )
    args = parser.parse_args()
    n = args.events
    rows = []
    with tempfile.TemporaryDirectory(prefix="rheos-bench-") as data_dir:
        write_events(data_dir, n)
        for mode in ("stream-first", "micro-batch"):
            best: dict[str, float] = {}
            answers: dict[str, list[str]] = {}
            for _ in range(args.repeat):  # alternating, so that the machine's load is shared
                for name, tasks, topic in (
                    ("one run", [None], False),
                    ("2 tasks, no topic", [0, 1], False),
                    ("2 tasks, repartition topic", [0, 1], True),
                ):
                    if topic:
                        for folder in Path(data_dir, "topics").glob("w2.*.repartition"):
                            Log(data_dir).delete_topic(folder.name)
                    elapsed, answer = timed(data_dir, mode, tasks, topic)
                    best[name] = min(best.get(name, float("inf")), elapsed)
                    answers[name] = answer
            assert len(set(map(tuple, answers.values()))) == 1, f"{mode}: the answers differ"
            rows.append((mode, {name: n / t for name, t in best.items()}))
    print(f"{n:,} events, {TASKS} partitions keyed by the flow's key")
    print(f"events/s, best of {args.repeat}\n")
    head = ("mode", "one run", "2 tasks, no topic", "2 tasks, topic", "topic/no topic")
    print(f"{head[0]:<14} {head[1]:>10} {head[2]:>18} {head[3]:>15} {head[4]:>15}")
    for mode, rates in rows:
        ratio = rates["2 tasks, repartition topic"] / rates["2 tasks, no topic"]
        print(
            f"{mode:<14} {rates['one run']:>10,.0f} {rates['2 tasks, no topic']:>18,.0f} "
            f"{rates['2 tasks, repartition topic']:>15,.0f} {ratio:>14.2f}x"
        )
    Path(args.out).write_text(
        json.dumps({"events": n, "tasks": TASKS, "rows": dict(rows)}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
