"""Starting N worker processes of a flow, restarting those that die, adding up their results.

:func:`supervise` forks the workers (before anything is opened in them: each opens its own
log, checkpoint stores and sinks), then watches them: a worker killed by a signal (``kill
-9``, the out-of-memory killer) is logged, recorded in ``workers/events.jsonl`` and replaced
by a new one, which takes a share of the tasks -- the tasks of the dead one are taken over by
whichever worker claims them first. A worker that fails with an error stops the run: every
other worker is stopped and the error raised. A stop (SIGINT/SIGTERM to this process, the
``stop`` event, ``timeout``) sends SIGTERM to every worker and waits for them: each stops its
task runners at a checkpoint. The summaries the workers leave are added up.

:func:`supervise_bounded` runs a bounded run: worker ``i`` of ``n`` runs tasks ``i``, ``i +
n``, ... one after the other; a worker that dies fails the run (a bounded run keeps no
checkpoint to resume from).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from rheos.errors import RheosError
from rheos.runtime.summary import RunSummary
from rheos.runtime.workers import summaries
from rheos.runtime.workers.membership import (
    read_json,
    record_event,
    result_path,
    worker_id,
    write_json,
)

WATCH_S = 0.2
"""How often the supervisor looks at its workers."""

log = logging.getLogger("rheos.workers")


def _child(body: Callable[[], RunSummary | None], result: Callable[[], Any] | None) -> None:
    """In a forked worker: run ``body`` and exit, never returning to the parent's code."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        summary = body()
        if result is not None and summary is not None:
            write_json(result(), {"summary": summaries.to_json(summary)})
        code = 0
    except BaseException as exc:
        traceback.print_exc()
        if result is not None:
            with contextlib.suppress(BaseException):
                write_json(result(), {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _fork(body: Callable[[], RunSummary | None], result: Callable[[], Any] | None) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    # Clients of earlier runs that only reference cycles keep alive are destroyed first: a
    # Kafka producer's librdkafka threads still running when the process forks can leave
    # one of their locks held in the child, whose own Kafka clients then wait on it forever.
    gc.collect()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        _child(body, result)
    return pid


class _Stopper:
    """SIGINT/SIGTERM (main thread only), a stop event or a deadline end a supervised run."""

    def __init__(self, stop: threading.Event, timeout: float | None) -> None:
        self.stop = stop
        self.reason = "stopped"
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, OSError):
                    self.previous[sig] = signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.reason = "signal"
        self.stop.set()

    def done(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = "timeout"
            return True
        return self.stop.is_set()

    def restore(self) -> None:
        for sig, old in self.previous.items():
            signal.signal(sig, old)


def supervise(
    flow: str,
    data_dir: str,
    workers: int,
    start_worker: Callable[[int], RunSummary],
    *,
    stop: threading.Event,
    timeout: float | None = None,
) -> RunSummary:
    """Run ``workers`` processes each calling ``start_worker(parent_pid)`` until stopped;
    see the module docs."""
    parent = os.getpid()
    children: dict[int, str] = {}
    results: list[dict[str, Any]] = []
    failure: tuple[str, str] | None = None

    def spawn() -> None:
        pid = _fork(lambda: start_worker(parent), lambda: result_path(data_dir, flow, worker_id()))
        children[pid] = worker_id(pid)

    def collect(wid: str) -> dict[str, Any] | None:
        path = result_path(data_dir, flow, wid)
        got = read_json(path)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return got

    stopper = _Stopper(stop, timeout)
    try:
        for _ in range(workers):
            spawn()
        while failure is None and not stopper.done():
            for pid in list(children):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
                wid = children.pop(pid)
                got = collect(wid)
                if os.WIFSIGNALED(status):
                    sig = signal.Signals(os.WTERMSIG(status)).name
                    log.warning(
                        "flow %r: worker %s (pid %d) died (%s); starting another; its tasks "
                        "go to the others",
                        flow,
                        wid,
                        pid,
                        sig,
                    )
                    record_event(data_dir, flow, "died", worker=wid, pid=pid, signal=sig)
                    spawn()
                elif got is not None and "error" in got:
                    failure = (wid, str(got["error"]))
                elif os.WEXITSTATUS(status) != 0:
                    failure = (wid, f"exit status {os.WEXITSTATUS(status)}")
                else:
                    record_event(data_dir, flow, "left", worker=wid, pid=pid)
                    if got is not None:
                        results.append(got)
            stop.wait(WATCH_S)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid, wid in children.items():
            _, status = os.waitpid(pid, 0)
            got = collect(wid)
            if got is not None and "error" in got and failure is None:
                failure = (wid, str(got["error"]))
            elif got is not None:
                results.append(got)
            record_event(data_dir, flow, "stopped", worker=wid, pid=pid)
        stopper.restore()
    if failure is not None:
        raise RheosError(f"flow {flow!r}: worker {failure[0]} failed: {failure[1]}")
    total = _added(flow, "streaming", results)
    total.stopped = stopper.reason
    return total


def supervise_bounded(
    flow: str,
    data_dir: str,
    workers: int,
    tasks: int,
    run_tasks: Callable[[list[int]], RunSummary],
) -> RunSummary:
    """A bounded run over ``tasks`` tasks in ``workers`` processes; see the module docs."""
    children: dict[int, str] = {}
    for i in range(min(workers, tasks)):
        mine = list(range(i, tasks, workers))
        wid = f"bounded-{os.getpid()}-{i}"
        pid = _fork(_bounded_body(run_tasks, mine), _at(result_path(data_dir, flow, wid)))
        children[pid] = wid
    results, failures = [], []
    for pid, wid in children.items():
        _, status = os.waitpid(pid, 0)
        path = result_path(data_dir, flow, wid)
        got = read_json(path)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        if got is not None and "summary" in got:
            results.append(got)
        else:
            why = got.get("error") if got is not None else f"exit status {status}"
            failures.append(f"worker {i_of(wid)}: {why}")
    if failures:
        raise RheosError(f"flow {flow!r}: bounded run across workers failed: {'; '.join(failures)}")
    total = _added(flow, "bounded", results)
    total.stopped = "exhausted"
    return total


def i_of(wid: str) -> str:
    return wid.rsplit("-", 1)[-1]


def _bounded_body(
    run_tasks: Callable[[list[int]], RunSummary], tasks: list[int]
) -> Callable[[], RunSummary]:
    return lambda: run_tasks(tasks)


def _at(path: Any) -> Callable[[], Any]:
    return lambda: path


def _added(flow: str, mode: str, results: list[dict[str, Any]]) -> RunSummary:
    total = RunSummary(flow, mode)
    for got in results:
        if "summary" in got:
            summaries.add(total, summaries.from_json(got["summary"]))
    return total


__all__ = ["supervise", "supervise_bounded"]
