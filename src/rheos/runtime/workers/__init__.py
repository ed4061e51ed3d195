"""Running one flow in several processes: tasks, workers, takeovers.

A flow over log or Kafka sources splits into **tasks**, one per partition index
(:mod:`.tasks`): task ``p`` runs the whole flow
(:func:`rheos.runtime.repartition.repartitioned`) over partition ``p`` of every source, writes
partition ``p`` of the log topics it writes, and keeps its state -- checkpoints, lock, saved
metrics -- in ``<data_dir>/flows/<flow>/tasks/<p>/``. **Workers**
(:mod:`.worker`) are processes that claim tasks through files in the data directory
(:mod:`.membership`) and run each claimed task in a thread; ``Flow.run(workers=N)`` and
``rheos run --workers N`` start N of them and restart those that die (:mod:`.supervisor`).
See docs/concepts/scale-out.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rheos.errors import ConfigError
from rheos.flows.steps import Graph
from rheos.runtime.metrics import empty_snapshot
from rheos.runtime.runner import Runner
from rheos.runtime.summary import RunSummary
from rheos.runtime.workers.membership import tasks_dir
from rheos.runtime.workers.status import split_status
from rheos.runtime.workers.supervisor import supervise, supervise_bounded
from rheos.runtime.workers.tasks import prepare_task_topics, task_count
from rheos.runtime.workers.worker import Worker, run_tasks_bounded
from rheos.state import store_path
from rheos.transport import Log

TaskRunnerFactory = Callable[[int, int], Runner]
"""``make(task, tasks)``: the runner of task ``task`` of ``tasks``."""


def split_snapshot(graph: Graph, data_dir: str) -> dict[str, Any]:
    """A metrics snapshot of a flow running split across workers: the counters of its
    tasks' saved metrics added up (each task's runner saves them every second)."""
    snap = empty_snapshot(graph)
    snap["running"] = True
    split = split_status(data_dir, graph.name)
    for task in split["tasks"] if split is not None else []:
        for name in ("events_in", "events_out", "consumer_lag", "state_size", "dead_lettered"):
            snap[name] += task[name] or 0
    return snap


def has_task_state(data_dir: str, flow: str) -> bool:
    """Whether ``flow`` has run split into tasks: some task has a checkpoint store."""
    folder = tasks_dir(data_dir, flow)
    return folder.is_dir() and any(folder.glob("*/checkpoints.sqlite"))


def run_split(
    graph: Graph,
    data_dir: str,
    make: TaskRunnerFactory,
    *,
    workers: int,
    bounded: bool = False,
    drain: bool = False,
    timeout: float | None = None,
    progress: bool | None = None,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Run ``graph`` split into tasks over ``workers`` processes (this one when 1); see the
    module docs. ``stop`` ends a streaming run when set."""
    if workers < 1:
        raise ConfigError(f"flow {graph.name!r}: workers must be at least 1, got {workers}")
    if not bounded:
        single = store_path(data_dir, graph.name)
        if single.exists():
            raise ConfigError(
                f"flow {graph.name!r} has checkpoints of a single-process run ({single}): "
                "its state cannot be split into tasks. Run it without workers=, or reset it "
                "(Flow.reset()) to start it afresh across workers"
            )
    log = Log(data_dir)
    try:
        tasks = task_count(graph, log)
        prepare_task_topics(graph, log, tasks)
    finally:
        log.close()
    started = time.perf_counter()
    summary = _run(
        graph.name, data_dir, tasks, make, workers, bounded, drain, timeout, progress, stop
    )
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _run(
    name: str,
    data_dir: str,
    tasks: int,
    make: TaskRunnerFactory,
    workers: int,
    bounded: bool,
    drain: bool,
    timeout: float | None,
    progress: bool | None,
    stop: threading.Event | None,
) -> RunSummary:
    def factory(task: int) -> Runner:
        return make(task, tasks)

    if bounded:
        if workers == 1:
            return run_tasks_bounded(name, list(range(tasks)), factory, progress=progress)
        return supervise_bounded(
            name,
            data_dir,
            workers,
            tasks,
            lambda mine: run_tasks_bounded(name, mine, factory, progress=False),
        )
    stop = stop or threading.Event()
    if workers == 1:
        worker = Worker(name, data_dir, tasks, factory, drain=drain, stop_event=stop)
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, worker.stop, args=("timeout",))
            timer.daemon = True
            timer.start()
        try:
            return worker.run()
        finally:
            if timer is not None:
                timer.cancel()

    def start_worker(parent: int) -> RunSummary:
        return Worker(name, data_dir, tasks, factory, drain=drain, parent=parent).run()

    return supervise(name, data_dir, workers, start_worker, stop=stop, timeout=timeout)


__all__ = ["TaskRunnerFactory", "Worker", "has_task_state", "run_split", "split_snapshot"]
