"""One worker: claims tasks of a flow, runs each in a thread, hands some back when others join.

The loop (every :data:`POLL_S`): count the live workers; the fair share is
``ceil(tasks / live)``. Over it, the worker hands back its highest tasks at a clean point
(their runners stop: a last checkpoint, no drain) and releases their claims; under it, it
claims free tasks (a task whose worker died is free as soon as the operating system has freed
that worker's locks) and starts a runner for each, which resumes from the task's latest
checkpoint. Signals are handled in the worker's main thread only: SIGTERM or SIGINT stops
every task runner (drained if the run asked for it) and ends the worker.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rheos.runtime.checkpointing import FlowLock
from rheos.runtime.runner import Runner
from rheos.runtime.summary import RunSummary
from rheos.runtime.workers import summaries
from rheos.runtime.workers.membership import Membership, live_workers, record_event

POLL_S = 0.5
"""How often a worker looks for free tasks, dead workers and newcomers."""
HANDBACK = "handback"
"""The stop reason of a task runner handed back to the other workers."""

log = logging.getLogger("rheos.workers")

RunnerFactory = Callable[[int], Runner]
"""Makes the runner of task ``p`` (the flow's graph for task ``p`` of its tasks)."""


@dataclass
class TaskRun:
    """A claimed task and its runner's thread."""

    task: int
    runner: Runner
    thread: threading.Thread | None = None
    summary: RunSummary | None = None
    error: BaseException | None = None
    handing_back: bool = False


@dataclass
class Worker:
    """Runs the tasks it claims of one flow until stopped (see the module docs)."""

    flow: str
    data_dir: str
    tasks: int
    make_runner: RunnerFactory
    drain: bool = False
    parent: int | None = None
    """The pid of the process that started this worker: the worker stops if it goes."""
    poll_s: float = POLL_S
    member: Membership = field(init=False)
    running: dict[int, TaskRun] = field(default_factory=dict)
    total: RunSummary = field(init=False)
    stop_event: threading.Event = field(default_factory=threading.Event)
    """Set to stop the worker (:meth:`stop` sets it)."""
    _reason: str = "stopped"

    def __post_init__(self) -> None:
        self.member = Membership(self.data_dir, self.flow)
        self.total = RunSummary(self.flow, "streaming")

    def stop(self, reason: str = "stopped") -> None:
        """Stop every task runner and end :meth:`run` (thread-safe)."""
        self._reason = reason
        self.stop_event.set()

    def run(self) -> RunSummary:
        """Run until stopped; the summary adds up every task run of this worker."""
        flow_lock = FlowLock(self.data_dir, self.flow)
        flow_lock.acquire(shared=True)  # no single-process run or reset meanwhile
        self.member.join()
        record_event(self.data_dir, self.flow, "started", worker=self.member.id, pid=os.getpid())
        restore = self._install_signals()
        error: BaseException | None = None
        try:
            # one look before claiming: workers started together see each other first
            self.stop_event.wait(self.poll_s)
            while not self.stop_event.is_set():
                if self.parent is not None and os.getppid() != self.parent:
                    self.stop("parent gone")
                    break
                self._raise(self._reap())
                self._balance()
                self._heartbeat()
                self.stop_event.wait(self.poll_s)
            self._raise(self._reap())
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                failed = self._stop_all(self._reason)
                if error is None and failed is not None:
                    error = failed
                    raise failed
            finally:
                restore()
                self.total.stopped = self._reason
                result: dict[str, Any] = {"summary": summaries.to_json(self.total)}
                if error is not None:
                    result["error"] = f"{type(error).__name__}: {error}"
                self.member.leave(result)
                flow_lock.release()
        return self.total

    # -- tasks ---------------------------------------------------------------------------------
    def _balance(self) -> None:
        """Hand back what is over the fair share; claim free tasks up to it."""
        live = max(1, len(live_workers(self.data_dir, self.flow)))
        share = math.ceil(self.tasks / live)
        active = sorted(p for p, run in self.running.items() if not run.handing_back)
        for task in reversed(active[share:]):
            self._hand_back(task)
        if len(active) >= share or any(run.handing_back for run in self.running.values()):
            return
        for task in range(self.tasks):
            if len(active) >= share:
                break
            if task in self.running:
                continue
            previous = self.member.claim(task)
            if previous is None:
                continue
            if previous:
                log.warning(
                    "flow %r: worker %s takes over task %d from worker %s, which died",
                    self.flow,
                    self.member.id,
                    task,
                    previous,
                )
                record_event(
                    self.data_dir,
                    self.flow,
                    "took over",
                    worker=self.member.id,
                    task=task,
                    previous=previous,
                )
            self._start(task)
            active.append(task)

    def _start(self, task: int) -> None:
        try:
            runner = self.make_runner(task)
        except BaseException:
            self.member.release(task, clean=True)
            raise
        run = TaskRun(task, runner)
        run.thread = threading.Thread(
            target=self._run_task, args=(run,), name=f"rheos-task-{task}", daemon=True
        )
        self.running[task] = run
        run.thread.start()

    def _run_task(self, run: TaskRun) -> None:
        try:
            run.summary = run.runner.run(drain=self.drain)
        except BaseException as exc:
            run.error = exc
            log.error(
                "flow %r: task %d failed in worker %s: %s",
                self.flow,
                run.task,
                self.member.id,
                "".join(traceback.format_exception(exc)).rstrip(),
            )
            self.stop_event.set()  # the worker ends; whoever started it decides what next

    def _hand_back(self, task: int) -> None:
        run = self.running[task]
        run.handing_back = True
        log.info("flow %r: worker %s hands task %d back", self.flow, self.member.id, task)
        run.runner.stop(HANDBACK, drain=False)

    def _reap(self) -> BaseException | None:
        """Collect the task runs that ended: add up their summaries, release their claims;
        return the error of one that failed."""
        error = None
        for task, run in list(self.running.items()):
            if run.thread is not None and run.thread.is_alive():
                continue
            del self.running[task]
            self.member.release(task, clean=run.error is None)
            if run.summary is not None:
                summaries.add(self.total, run.summary)
            if run.error is not None and error is None:
                error = run.error
        return error

    @staticmethod
    def _raise(error: BaseException | None) -> None:
        if error is not None:
            raise error

    def _stop_all(self, reason: str) -> BaseException | None:
        """Stop every task runner (drained if the run asked for it) and wait for them."""
        for run in self.running.values():
            run.runner.stop(reason)
        for run in self.running.values():
            if run.thread is not None:
                run.thread.join()
        return self._reap()

    def _heartbeat(self) -> None:
        self.member.write(
            {
                "state": "running",
                "tasks": sorted(self.running),
                "handing_back": sorted(p for p, r in self.running.items() if r.handing_back),
            }
        )

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            self.stop("signal")

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, OSError):
                previous[sig] = signal.signal(sig, handler)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


def run_tasks_bounded(
    flow: str, tasks: list[int], make_runner: RunnerFactory, *, progress: bool | None = None
) -> RunSummary:
    """Run ``tasks`` each bounded, all at once (a thread each: the tasks of a repartitioned
    flow wait for each other's end markers between its stages); their summaries added up.
    When one fails, the others are stopped and its error is raised."""
    total = RunSummary(flow, "bounded")
    runners = {task: make_runner(task) for task in tasks}
    done: dict[int, RunSummary] = {}
    errors: list[BaseException] = []

    def one(task: int) -> None:
        try:
            shown = progress if len(tasks) == 1 else False
            done[task] = runners[task].run(bounded=True, progress=shown)
        except BaseException as exc:  # raised below, once every task has stopped
            errors.append(exc)
            for other in runners.values():
                other.stop("another task failed")

    threads = [threading.Thread(target=one, args=(t,), name=f"{flow}-task-{t}") for t in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    for task in tasks:
        summaries.add(total, done[task])
    total.stopped = "exhausted"
    return total


__all__ = ["HANDBACK", "POLL_S", "TaskRun", "Worker", "run_tasks_bounded"]
