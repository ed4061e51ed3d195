"""Flows for the repartitioning tests, and one task of them run as a program.

Each flow runs as one task of three -- reading partition ``task`` of the input topic and
writing partition ``task`` of the output topic ``out``, as a task of a flow split across
workers does -- or as one run over every partition.

    python repartition_app.py DATA_DIR KIND MODE TASK TASKS

runs task ``TASK`` of ``TASKS`` of flow ``KIND`` streaming, with checkpoints every 100 ms,
until SIGTERM, then drains it.
"""

from __future__ import annotations

import collections
import json
import sys
from typing import Any

import rheos as rh
from rheos.runtime.microbatch import MicroBatchRunner
from rheos.runtime.repartition import repartitioned
from rheos.runtime.runner import Runner

INPUT = "events"
OUTPUT = "out"
PARTITIONS = 3
FLOWS = ("keyed", "join", "global")


def event(i: int) -> dict[str, Any]:
    """Input event ``i``: times rise with ``i``; partitioned by ``user``, keyed by ``item``."""
    return {
        "user": f"u{i % 5}",
        "item": f"i{(i * 7) % 11}",
        "side": "left" if i % 3 else "right",
        "ts": 1_700_000_000_000 + i * 37,
        "amount": i % 13,
    }


def produce(data_dir: str, start: int, count: int) -> None:
    """Append events ``start`` to ``start + count`` to the input topic (keyed by user)."""
    log = rh.Log(data_dir)
    log.create_topic(INPUT, PARTITIONS, exist_ok=True)
    events = [event(i) for i in range(start, start + count)]
    with log.producer(INPUT) as producer:
        producer.append(
            [json.dumps(e).encode() for e in events],
            keys=[e["user"].encode() for e in events],
            timestamps=[e["ts"] for e in events],
        )


def with_pair(e: dict[str, Any]) -> dict[str, Any]:
    """A tuple field: a value the repartition topic carries exactly (JSON would not)."""
    return {**e, "pair": (e["item"], e["amount"] % 2)}


def pair_key(e: dict[str, Any]) -> tuple[str, int]:
    assert type(e["pair"]) is tuple  # came through exactly
    return e["pair"]  # type: ignore[no-any-return]


def is_left(e: dict[str, Any]) -> bool:
    return e["side"] == "left"


def is_right(e: dict[str, Any]) -> bool:
    return e["side"] == "right"


def build(kind: str) -> rh.Flow:
    """Flow ``kind`` (a task of it reads one partition of the input)."""
    flow = rh.Flow(f"rp-{kind}")
    events = flow.source(
        rh.log_source(INPUT),
        timestamp="ts",
        out_of_orderness="1s",
        idle_timeout=None,
    ).map(with_pair)
    if kind == "keyed":
        out = (
            events.key_by(pair_key)
            .window(rh.tumbling("1s"))
            .aggregate(n=rh.count(), total=rh.sum("amount"))
        )
    elif kind == "join":
        left = events.filter(is_left).key_by("item")
        right = events.filter(is_right).key_by("item")
        out = left.join(right, window=rh.tumbling("2s")).map(_joined)
    else:
        out = events.window(rh.tumbling("1s")).aggregate(n=rh.count(), total=rh.sum("amount"))
    out.sink(rh.log_sink(OUTPUT))
    return flow


def _joined(pair: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": pair["key"],
        "window_start": pair["window_start"],
        "left": pair["left"]["ts"],
        "right": pair["right"]["ts"],
    }


def runner(
    kind: str,
    mode: str,
    data_dir: str,
    task: int | None,
    tasks: int,
    checkpoint_ms: int | None = None,
) -> Runner:
    """A runner of task ``task`` of ``tasks`` (one run over everything if ``task`` is None)."""
    graph = build(kind).graph()
    if task is not None:
        graph = repartitioned(graph, tasks)
    if mode == "micro-batch":
        return MicroBatchRunner(
            graph,
            data_dir=data_dir,
            batch_size=64,
            batch_interval_ms=20,
            checkpoint_interval_ms=checkpoint_ms,
            task=task,
            tasks=tasks,
        )
    return Runner(
        graph, data_dir=data_dir, checkpoint_interval_ms=checkpoint_ms, task=task, tasks=tasks
    )


def output(data_dir: str, topics: list[str] | None = None) -> collections.Counter[str]:
    """The committed records of ``topics`` (the output topic), as a multiset of canonical
    JSON texts."""
    log = rh.Log(data_dir)
    out: collections.Counter[str] = collections.Counter()
    for topic in topics or [OUTPUT]:
        if not log.has_topic(topic):
            continue
        with log.reader(topic) as reader:
            for record in reader.read():
                if any(name == "rheos-control" for name, _ in record.headers):
                    continue
                out[json.dumps(json.loads(record.value), sort_keys=True)] += 1
    return out


if __name__ == "__main__":
    directory, flow_kind, run_mode, task_text, tasks_text = sys.argv[1:6]
    runner(flow_kind, run_mode, directory, int(task_text), int(tasks_text), 100).run(drain=True)
