"""A flow split into three tasks over a three-partition topic gives the answers of one run.

Each task runs ``repartitioned(graph, 3)`` reading its own partition of the input; keyed
steps, joins and global windows read through repartition topics. The tasks run in threads
of this process (bounded, and streaming then drained); in the recovery test one task is a
process killed with SIGKILL and restarted. Output is compared with one run over every
partition, as a multiset.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.waiting import wait_until
from tests.workers import repartition_app as app

import rheos as rh
from rheos.runtime.microbatch import MicroBatchRunner
from rheos.runtime.repartition import repartitioned
from rheos.runtime.runner import Runner
from rheos.state import CheckpointStore, store_path

TASKS = 3
HERE = Path(__file__).parent
MODES = ["stream-first", "micro-batch"]


def single_run(kind: str, mode: str, data_dir: Path, events: int) -> object:
    app.produce(str(data_dir), 0, events)
    app.runner(kind, mode, str(data_dir), None, 1).run(bounded=True)
    return app.output(str(data_dir))


def in_threads(runners: list[Runner], run: Callable[[Runner], object]) -> list[threading.Thread]:
    """Start ``run(runner)`` for each runner in a thread; errors fail the test at join."""
    errors: list[BaseException] = []

    def go(runner: Runner) -> None:
        try:
            run(runner)
        except BaseException as exc:  # reported by join_all
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(r,), daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    threads[0].errors = errors  # type: ignore[attr-defined]
    threads[0].runners = runners  # type: ignore[attr-defined]
    return threads


def where(threads: list[threading.Thread]) -> list[object]:
    """Where each task is (for a task that did not end): draining? each source's state."""
    return [
        (
            r.task,
            r._draining,
            [(s.step.name, s.done, s.wm, getattr(s.reader, "_ended", None)) for s in r.sources],
        )
        for r in getattr(threads[0], "runners", [])
    ]


def join_all(threads: list[threading.Thread]) -> None:
    errors = threads[0].errors  # type: ignore[attr-defined]
    for thread in threads:
        thread.join(60)
        if thread.is_alive() and errors:  # (a task that failed leaves the others waiting)
            raise AssertionError(f"a task failed, the others wait: {where(threads)}") from errors[0]
        assert not thread.is_alive(), f"a task did not end: {where(threads)}"
    if errors:
        raise errors[0]


def task_output(data_dir: Path) -> object:
    return app.output(str(data_dir))


def read_to_end(data_dir: Path, runner: Runner, task: int) -> bool:
    """Whether ``runner`` (task ``task``) has read its input partition to its end."""
    with rh.Log(data_dir).reader(app.INPUT) as reader:
        end = reader.end_offsets()[task]
    sources = [s for s in runner.sources if s.step.name == "source"]
    return bool(sources) and sources[0].reader.positions().get(task, 0) >= end


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", app.FLOWS)
def test_bounded_tasks_equal_one_run(kind: str, mode: str, tmp_path: Path) -> None:
    expected = single_run(kind, mode, tmp_path / "one", 600)
    data_dir = tmp_path / "tasks"
    app.produce(str(data_dir), 0, 600)
    runners = [app.runner(kind, mode, str(data_dir), p, TASKS) for p in range(TASKS)]
    join_all(in_threads(runners, lambda r: r.run(bounded=True)))
    assert task_output(data_dir) == expected
    assert expected  # the flow has results


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", app.FLOWS)
def test_streaming_tasks_then_drained_equal_one_run(kind: str, mode: str, tmp_path: Path) -> None:
    """Checkpointed tasks; results appear while they stream (watermark records carry
    event time across the repartition topics), and after a drained stop they are one
    run's."""
    expected = single_run(kind, mode, tmp_path / "one", 900)
    data_dir = tmp_path / "tasks"
    app.produce(str(data_dir), 0, 450)
    runners = [app.runner(kind, mode, str(data_dir), p, TASKS, 100) for p in range(TASKS)]
    threads = in_threads(runners, lambda r: r.run(drain=True))
    try:
        try:
            wait_until(lambda: sum(task_output(data_dir).values()) > 0, "results")
        except AssertionError:
            raise AssertionError(f"no results before a drain: {where(threads)}") from None
        app.produce(str(data_dir), 450, 450)
        wait_until(lambda: all(read_to_end(data_dir, r, p) for p, r in enumerate(runners)))
    finally:
        for runner in runners:
            runner.stop()
    join_all(threads)
    assert task_output(data_dir) == expected


def checkpoint_position(data_dir: Path, flow: str, task: int) -> tuple[int, int]:
    """Task ``task``'s latest checkpoint: its id and its input position ((0, 0) if none)."""
    path = store_path(data_dir, flow, task)
    if not path.exists():
        return 0, 0
    with CheckpointStore(path) as store:
        latest = store.latest()
    if latest is None:
        return 0, 0
    return latest.id, int(latest.meta["sources"]["source"]["positions"].get(task, 0))


def committed_to_others(data_dir: Path, flow: str) -> bool:
    """Whether everything task 0 wrote to the repartition topic is committed."""
    log = rh.Log(data_dir)
    for name in log.topic_names():
        if not name.endswith(".repartition"):
            continue
        ends = []
        for isolation in ("committed", "uncommitted"):
            with log.reader(name, partitions=[0, 1, 2], isolation=isolation) as reader:
                ends.append(reader.end_offsets())
        if ends[0] != ends[1]:
            return False
    return True


def latest_kind(data_dir: Path, flow: str, task: int) -> str | None:
    """What took task ``task``'s latest checkpoint (``"periodic"``, ``"drain"``...)."""
    path = store_path(data_dir, flow, task)
    if not path.exists():
        return None
    with CheckpointStore(path) as store:
        latest = store.latest()
    return None if latest is None else latest.kind


def start_task(data_dir: Path, kind: str, mode: str, errors: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RHEOS_TEST_CHECKPOINT_PAUSE": str(data_dir / "in-checkpoint"),
        "RHEOS_TEST_CHECKPOINT_PAUSE_S": "0.05",
        "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent / "src"), str(HERE.parent.parent)]),
    }
    with errors.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, str(HERE / "repartition_app.py"), str(data_dir), kind, mode, "0", "3"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


@pytest.mark.parametrize(("kind", "mode"), [("keyed", "stream-first"), ("join", "micro-batch")])
def test_task_killed_and_restarted_keeps_output_exactly_once(
    kind: str, mode: str, tmp_path: Path
) -> None:
    """Task 0 runs in a process killed with SIGKILL three times (once inside a checkpoint,
    between its store's commit and its sinks'; once while it drains alone, its end markers
    committed), with events still coming, and is restarted; tasks 1 and 2 run on. The
    committed output equals one uninterrupted run's."""
    expected = single_run(kind, mode, tmp_path / "one", 1800)
    data_dir = tmp_path / "tasks"
    errors = tmp_path / "stderr.txt"
    flow = f"rp-{kind}"
    app.produce(str(data_dir), 0, 500)
    others = [app.runner(kind, mode, str(data_dir), p, TASKS, 100) for p in (1, 2)]
    threads = in_threads(others, lambda r: r.run(drain=True))
    proc = start_task(data_dir, kind, mode, errors)
    try:
        for kill, more in enumerate((500, 500)):
            seen = checkpoint_position(data_dir, flow, 0)
            wait_until(
                lambda s=seen, p=proc: (
                    checkpoint_position(data_dir, flow, 0)[0] > s[0] or p.poll() is not None
                )
            )
            pause = data_dir / "in-checkpoint"
            pause.unlink(missing_ok=True)
            app.produce(str(data_dir), 500 * (kill + 1), more)
            if kill == 1:  # inside a checkpoint
                wait_until(lambda p=proc, f=pause: f.exists() or p.poll() is not None)
            assert proc.poll() is None, errors.read_text()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = start_task(data_dir, kind, mode, errors)
        # a drained stop of task 0 alone waits for the others' end markers: killed then
        seen = checkpoint_position(data_dir, flow, 0)
        wait_until(  # (once it runs, its signal handlers in place)
            lambda s=seen, p=proc: (
                checkpoint_position(data_dir, flow, 0)[0] > s[0] or p.poll() is not None
            )
        )
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda p=proc: latest_kind(data_dir, flow, 0) == "drain" or p.poll() is not None)
        assert proc.poll() is None, errors.read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        app.produce(str(data_dir), 1500, 300)
        proc = start_task(data_dir, kind, mode, errors)
        with rh.Log(data_dir).reader(app.INPUT) as reader:
            end = reader.end_offsets()[0]
        wait_until(
            lambda: checkpoint_position(data_dir, flow, 0)[1] >= end or proc.poll() is not None,
            "task 0 to read its partition",
        )
        wait_until(lambda: all(read_to_end(data_dir, r, p + 1) for p, r in enumerate(others)))
        # and what it sent to the others is committed (else a drain right now ends them at
        # the end marker of its killed drain: they would read the rest in their next run)
        wait_until(lambda: committed_to_others(data_dir, flow), "task 0's commit")
        assert proc.poll() is None, errors.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)  # a drained stop, with the others'
        for runner in others:
            runner.stop()
    assert proc.wait(60) == 0, errors.read_text()
    join_all(threads)
    assert task_output(data_dir) == expected


@pytest.mark.parametrize("mode", MODES)
def test_stop_after_counts_a_tasks_input_not_its_repartition_topics(
    mode: str, tmp_path: Path
) -> None:
    """Each task stops after the events of its own partition (the events it reads back from
    the repartition topic are not input), drains, and together they give one run's answer."""
    expected = single_run("keyed", mode, tmp_path / "one", 600)
    data_dir = tmp_path / "tasks"
    app.produce(str(data_dir), 0, 600)
    with rh.Log(data_dir).reader(app.INPUT) as reader:
        sizes = reader.end_offsets()
    runners = [app.runner("keyed", mode, str(data_dir), p, TASKS, 100) for p in range(TASKS)]
    threads = in_threads(runners, lambda r: r.run(stop_after=sizes[r.task or 0], drain=True))
    join_all(threads)
    assert task_output(data_dir) == expected


@pytest.mark.parametrize("mode", MODES)
def test_an_upstream_task_that_never_runs_stops_holding_back_after_idle_timeout(
    mode: str, tmp_path: Path
) -> None:
    """Task 1 of 2 never runs: task 0's windows still close while it streams, once task 1
    has been silent for the sources' idle timeout (as an idle partition would)."""
    log = rh.Log(tmp_path)
    log.create_topic(app.INPUT, 2)
    with log.producer(app.INPUT) as producer:
        events = [app.event(i) for i in range(300)]
        producer.append([json.dumps(e).encode() for e in events], partition=0)
    flow = rh.Flow("idle")
    (
        flow.source(rh.log_source(app.INPUT), timestamp="ts", idle_timeout="1s")
        .key_by("item")
        .window(rh.tumbling("1s"))
        .aggregate(n=rh.count())
        .sink(rh.log_sink(app.OUTPUT))
    )
    graph = repartitioned(flow.graph(), 2)
    runner: Runner
    if mode == "micro-batch":
        runner = MicroBatchRunner(
            graph, data_dir=str(tmp_path), batch_interval_ms=20, task=0, tasks=2
        )
    else:
        runner = Runner(graph, data_dir=str(tmp_path), task=0, tasks=2)
    threads = in_threads([runner], lambda r: r.run())
    try:
        wait_until(lambda: sum(app.output(str(tmp_path)).values()) > 0, "windows to close")
    finally:
        runner.stop()
    join_all(threads)
