"""Running flows: one run loop, two executors.

:class:`Flow` is the flow description of :mod:`rheos.flows` plus :meth:`Flow.run` and
:meth:`Flow.stop`; :func:`run_flow` runs any description. A :class:`Runner`
(:mod:`rheos.runtime.runner`) runs it: lifecycle and signals (:mod:`.lifecycle`), the run
loop, checkpoints (:mod:`.checkpointing`), the dead-letter policy (:mod:`.badevents`),
metrics and the :class:`RunSummary`; its executor (:mod:`.executor`) pushes the events, one
at a time through fused push functions (:mod:`.event_executor`, :mod:`.compile`:
stream-first) or a batch at a time through a columnar plan (:mod:`.microbatch`).

>>> import rheos.windowing as w
>>> from rheos.connectors import iterable_source, list_sink
>>> out = []
>>> flow = Flow("counts")
>>> events = [{"k": "a", "t": 1_000}, {"k": "b", "t": 2_000}, {"k": "a", "t": 11_000}]
>>> (flow.source(iterable_source(events), timestamp="t", timestamp_unit="ms")
...     .key_by("k").window(w.tumbling("10s")).aggregate(n=w.count()).sink(list_sink(out)))
>>> summary = flow.run()
>>> [(r["key"], r["window_start"], r["n"]) for r in out]
[('a', 0, 1), ('b', 0, 1), ('a', 10000, 1)]
>>> summary.events_in, summary.events_out, summary.late
(3, 3, 0)
"""

from __future__ import annotations

import copy
import os
import shutil
import threading
from typing import Any, Literal

from rheos.durations import Duration, to_ms
from rheos.errors import ConfigError
from rheos.flows import Flow as FlowDescription
from rheos.flows.backends import StateOption
from rheos.flows.steps import Graph, OnError, SourceStep
from rheos.runtime.checkpointing import FlowLock
from rheos.runtime.deadletters import dlq_topic
from rheos.runtime.event_executor import EventExecutor
from rheos.runtime.executor import Executor
from rheos.runtime.metrics import empty_snapshot, summary_snapshot
from rheos.runtime.projection import fields_read
from rheos.runtime.repartition import repartitioned
from rheos.runtime.runner import Runner, resolve_data_dir
from rheos.runtime.summary import CheckpointStats, RunSummary, SourceStats, StepStats
from rheos.runtime.workers import has_task_state, run_split, split_snapshot
from rheos.state import DEFAULT_KEEP, CheckpointInfo, CheckpointStore, store_path
from rheos.transport import Log
from rheos.windowing import Clock

Mode = Literal["stream-first", "micro-batch"]
MODE_ENV = "RHEOS_RUN_MODE"
"""The run mode when ``mode=`` is not given (``stream-first`` unless set)."""
DEFAULT_CHECKPOINT_INTERVAL = "5s"


def make_runner(
    flow: FlowDescription,
    *,
    mode: str | None,
    batch_size: int | None,
    batch_interval: Any,
    clock: Clock | None,
    data_dir: str | None = None,
    task: int | None = None,
    tasks: int = 1,
    bounded: bool = False,
) -> Runner:
    """The runner of ``mode``: stream-first (default) or micro-batch; of task ``task`` of
    ``tasks`` for a flow split across workers (:mod:`rheos.runtime.workers`). A bounded run
    with no mode given (nor ``RHEOS_RUN_MODE``) runs micro-batch when every step of the flow
    runs columnar there (:func:`bounded_mode`)."""
    graph = flow.graph()
    if task is not None:
        graph = repartitioned(graph, tasks)
    chosen = mode or os.environ.get(MODE_ENV)
    if chosen is None and bounded:
        chosen = bounded_mode(graph, resolve_data_dir(data_dir or flow.data_dir))
    return Runner(
        graph,
        executor=_executor(chosen or "stream-first", batch_size, batch_interval, bounded),
        data_dir=data_dir or flow.data_dir,
        clock=clock or flow.clock,
        checkpoint_interval_ms=getattr(
            flow, "checkpoint_interval_ms", _ms(DEFAULT_CHECKPOINT_INTERVAL)
        ),
        keep=getattr(flow, "keep_checkpoints", DEFAULT_KEEP),
        metrics=getattr(flow, "metrics_enabled", True),
        task=task,
        tasks=tasks,
    )


def _executor(mode: str, batch_size: int | None, batch_interval: Any, bounded: bool) -> Executor:
    """The executor of run mode ``mode``: per event (stream-first) or per batch (in batches
    of ``batch_size``, by default larger for a bounded run)."""
    if mode == "stream-first":
        return EventExecutor()
    if mode != "micro-batch":
        raise ConfigError(f"run mode must be 'stream-first' or 'micro-batch', got {mode!r}")
    from rheos.runtime.microbatch import (
        BOUNDED_BATCH_SIZE,
        DEFAULT_BATCH_SIZE,
        DEFAULT_INTERVAL_MS,
        BatchExecutor,
    )

    if batch_size is None:
        batch_size = BOUNDED_BATCH_SIZE if bounded else DEFAULT_BATCH_SIZE
    return BatchExecutor(
        batch_size=batch_size,
        batch_interval_ms=DEFAULT_INTERVAL_MS
        if batch_interval is None
        else to_ms(batch_interval, what="batch_interval"),
    )


def bounded_mode(graph: Graph, data_dir: str | None = None) -> Mode:
    """The mode a bounded run takes when none is given: ``"micro-batch"`` when every step
    of ``graph`` runs columnar in that mode (JSON log sources, expressions, fields as keys,
    windows with columnar aggregations: :func:`rheos.runtime.microbatch.plan.runs_columnar`)
    and its libraries are installed, else ``"stream-first"``. A bounded run has no latency
    to trade for throughput, and both modes give the same results.

    Given ``data_dir``, a source whose events the flow reads whole (see
    :mod:`rheos.runtime.projection`) is looked at too: records with a nested value or a
    ``null`` are decoded one by one in micro-batch mode, slower than stream-first mode
    decodes them (:func:`~rheos.runtime.microbatch.sources.decodes_in_bulk`)."""
    try:
        from rheos.runtime.microbatch.plan import runs_columnar
        from rheos.runtime.microbatch.sources import decodes_in_bulk
    except ImportError:  # the micro-batch extra (polars, numpy) is not installed
        return "stream-first"
    if not runs_columnar(graph):
        return "stream-first"
    whole = [s for s in graph.steps if isinstance(s, SourceStep) and fields_read(graph, s) is None]
    if data_dir is not None and not all(decodes_in_bulk(data_dir, s.source) for s in whole):
        return "stream-first"
    return "micro-batch"


def run_flow(
    flow: FlowDescription,
    *,
    bounded: bool = False,
    stop_after: int | None = None,
    timeout: float | None = None,
    drain: bool = False,
    clock: Clock | None = None,
    data_dir: str | None = None,
    progress: bool | None = None,
    mode: Mode | None = None,
    batch_size: int | None = None,
    batch_interval: Any = None,
    workers: int | None = None,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Run ``flow`` once (see :meth:`Flow.run`)."""
    directory = resolve_data_dir(data_dir or flow.data_dir)
    if split_run(flow, directory, workers, bounded):
        if stop_after is not None:
            raise ConfigError(
                f"flow {flow.name!r}: stop_after cannot be used with workers (each task "
                "would stop on its own count); use timeout="
            )

        def make(task: int, tasks: int) -> Runner:
            return make_runner(
                flow,
                mode=mode,
                batch_size=batch_size,
                batch_interval=batch_interval,
                clock=clock,
                data_dir=directory,
                task=task,
                tasks=tasks,
                bounded=bounded,
            )

        return run_split(
            flow.graph(),
            directory,
            make,
            workers=workers or 1,
            bounded=bounded,
            drain=drain,
            timeout=timeout,
            progress=progress,
            stop=stop,
        )
    runner = make_runner(
        flow,
        mode=mode,
        batch_size=batch_size,
        batch_interval=batch_interval,
        clock=clock,
        data_dir=data_dir,
        bounded=bounded,
    )
    return runner.run(
        bounded=bounded, stop_after=stop_after, timeout=timeout, drain=drain, progress=progress
    )


def split_run(flow: FlowDescription, data_dir: str, workers: int | None, bounded: bool) -> bool:
    """Whether a run of ``flow`` is split into tasks: whenever ``workers`` is given (1 is one
    worker of a flow split across workers, as on each of several machines), and for a
    streaming run of a flow whose state already lives per task (it goes on that way, in one
    worker). Without ``workers`` a flow runs whole, its state in its own folder."""
    if workers is not None and workers < 1:
        raise ConfigError(f"flow {flow.name!r}: workers must be at least 1, got {workers}")
    if workers is not None:
        return True
    return not bounded and has_task_state(data_dir, flow.name)


def _ms(interval: Duration | None) -> int | None:
    return None if interval is None else to_ms(interval, what="checkpoint_interval")


class Flow(FlowDescription):
    """A flow you can run. See :class:`rheos.flows.Flow` for building it.

    ``checkpoint_interval`` (default ``"5s"``; ``None`` turns checkpoints off) is how often a
    streaming run checkpoints its state, source positions and sink positions, and
    ``keep_checkpoints`` how many checkpoints stay restorable (see
    :mod:`rheos.runtime.checkpointing`). ``metrics=False`` turns live metrics off
    (:meth:`metrics` then only reports the last run's summary).
    """

    def __init__(
        self,
        name: str,
        *,
        data_dir: Any = None,
        clock: Clock | None = None,
        on_error: OnError = "dead-letter",
        state: StateOption = "memory",
        checkpoint_interval: Duration | None = DEFAULT_CHECKPOINT_INTERVAL,
        keep_checkpoints: int = DEFAULT_KEEP,
        metrics: bool = True,
        dead_letter_sink: Any = None,
        late_sink: Any = None,
    ) -> None:
        super().__init__(
            name,
            data_dir=data_dir,
            clock=clock,
            on_error=on_error,
            dead_letter_sink=dead_letter_sink,
            late_sink=late_sink,
            state=state,
        )
        self.metrics_enabled = metrics
        self.checkpoint_interval_ms = _ms(checkpoint_interval)
        if keep_checkpoints < 1:
            raise ConfigError(f"flow {name!r}: keep_checkpoints must be at least 1")
        self.keep_checkpoints = keep_checkpoints
        self._runner: Runner | None = None
        self._split_stop: threading.Event | None = None
        self._lock = threading.Lock()
        self.last_summary: RunSummary | None = None
        self._last_metrics: dict[str, Any] | None = None

    def run(
        self,
        *,
        bounded: bool = False,
        stop_after: int | None = None,
        timeout: float | None = None,
        drain: bool = False,
        clock: Clock | None = None,
        progress: bool | None = None,
        mode: Mode | None = None,
        batch_size: int | None = None,
        batch_interval: Any = None,
        workers: int | None = None,
    ) -> RunSummary:
        """Run the flow and return its :class:`RunSummary`.

        ``mode="stream-first"`` (default; ``RHEOS_RUN_MODE`` changes the default) processes
        one event at a time; ``mode="micro-batch"`` hands batches of up to ``batch_size``
        events (or what arrived within ``batch_interval``, e.g. ``"50ms"``) to every step and
        runs expressions and window aggregations columnar, with the same results
        (:mod:`rheos.runtime.microbatch`).

        Streaming (default): events are processed as they are read; returns when every
        source is exhausted (after a final watermark that closes all windows), or on
        :meth:`stop`, SIGINT/SIGTERM, after ``stop_after`` input events or ``timeout``
        seconds (``drain=True`` then closes the open windows too). A log source never ends.

        Bounded (``bounded=True``): reads every source to its end (log topics: their end at
        the start of the run) and computes the batch answer: no event is late and arrival
        order does not matter. Shows a progress bar when standard output is a terminal
        (``progress=`` forces it on or off). With no ``mode`` given, a bounded run of a flow
        whose every step runs columnar runs in micro-batch mode (:func:`bounded_mode`;
        ``RunSummary.executor`` says which ran), in batches of 100,000 events unless
        ``batch_size`` is given.

        Consumer groups (``log_source(..., group=)``) commit their offsets when the run ends
        with every event read accounted for: a bounded run, exhausted sources, or a stop with
        ``drain=True``. A stop without draining commits nothing, so the next run reads those
        events again. With checkpoints (streaming runs over log sources with a data directory,
        see the class docs) the checkpoint is the flow's progress instead: the run resumes
        from the latest one, state included, and log sinks are exactly once. A stop takes a
        last checkpoint; with ``drain=True`` after closing every window -- which finishes the
        flow: a later run resumes with every window closed, so older events are late.

        ``workers=N`` runs the flow in N processes (``1``: in this one), split into one task
        per partition of its log or Kafka sources (docs/concepts/scale-out.md): a worker that
        dies is replaced and its tasks are taken over from their checkpoints; other workers of
        the flow, started elsewhere on the same data directory, share the tasks; the summary
        adds up every task's. A flow once run that way keeps its state per task: later
        streaming runs go on split into tasks, in one worker unless ``workers`` says more.
        """
        if split_run(self, self.resolved_data_dir, workers, bounded):
            stop = threading.Event()
            with self._lock:
                self._split_stop = stop
            try:
                summary = run_flow(
                    self,
                    bounded=bounded,
                    stop_after=stop_after,
                    timeout=timeout,
                    drain=drain,
                    clock=clock,
                    progress=progress,
                    mode=mode,
                    batch_size=batch_size,
                    batch_interval=batch_interval,
                    workers=workers,
                    stop=stop,
                )
            finally:
                with self._lock:
                    self._split_stop = None
            self.last_summary = summary
            return summary
        runner = make_runner(
            self,
            mode=mode,
            batch_size=batch_size,
            batch_interval=batch_interval,
            clock=clock,
            bounded=bounded,
        )
        with self._lock:
            self._runner = runner
        try:
            summary = runner.run(
                bounded=bounded,
                stop_after=stop_after,
                timeout=timeout,
                drain=drain,
                progress=progress,
            )
        finally:
            with self._lock:
                self._runner = None
                live = getattr(runner, "metrics", None)
                self._last_metrics = live.latest if live is not None else None
        self.last_summary = summary
        return summary

    def metrics(self) -> dict[str, Any]:
        """A snapshot of the flow's metrics: live while it runs (refreshed twice a second on
        the run's thread), else those of its last run; a plain, JSON-ready dict described in
        :mod:`rheos.runtime.metrics`. Safe to call from any thread.

        >>> from rheos.connectors import iterable_source, list_sink
        >>> flow = Flow("m")
        >>> flow.source(iterable_source([1, 2, 3])).map(lambda x: x * 10).sink(list_sink([]))
        >>> flow.metrics()["events_in"]
        0
        >>> _ = flow.run()
        >>> m = flow.metrics()
        >>> m["running"], m["events_in"], m["events_out"], m["stopped"]
        (False, 3, 3, 'exhausted')
        """
        with self._lock:
            runner = self._runner
            live = getattr(runner, "metrics", None) if runner is not None else None
            snap = live.latest if live is not None else None
            last = self._last_metrics
            split = self._split_stop is not None
        if snap is not None:
            return copy.deepcopy(snap)
        graph = self.graph()
        if runner is not None:  # a run without live metrics, or not started yet
            return summary_snapshot(graph, RunSummary(self.name, "running"), running=True)
        if split:  # split across workers: its tasks' saved metrics, added up
            return split_snapshot(graph, self.resolved_data_dir)
        if last is not None:
            return copy.deepcopy(last)
        if self.last_summary is not None:
            return summary_snapshot(graph, self.last_summary, running=False)
        return empty_snapshot(graph)

    def stop(self) -> None:
        """Stop a running :meth:`run` from another thread (it returns soon after)."""
        with self._lock:
            if self._runner is not None:
                self._runner.stop()
            if self._split_stop is not None:
                self._split_stop.set()

    def replay_dead_letters(self, *, drain: bool = False) -> RunSummary:
        """Send the dead letters of ``<name>.dlq`` not replayed yet back through this flow --
        with its code as it is now -- exactly once (see :mod:`rheos.runtime.deadletters`).

        Replayed events join the state of the flow's latest checkpoint: a window they fall in
        emits when the flow's watermark passes it on the flow's next run, or at once with
        ``drain=True`` (every open window closes, as a drained stop does). A flow with windows
        or keyed state and no checkpoint (one only ever run bounded) has no state to join:
        run it again over its input with the fixed code instead; this raises saying so.

        The replay runs event by event (the stream-first runtime) whatever mode the flow runs
        in: dead letters are few, and checkpoints are the same in both modes, so a flow run in
        micro-batch mode replays from its latest checkpoint and goes on in micro-batch mode
        from the replay's, with the results of a flow run in stream-first mode throughout."""
        if has_task_state(self.resolved_data_dir, self.name):
            raise ConfigError(
                f"flow {self.name!r} runs split across workers (its state lives per task): "
                "replaying its dead letters is not supported yet"
            )
        runner = make_runner(
            self, mode="stream-first", batch_size=None, batch_interval=None, clock=None
        )
        summary = runner.replay_dead_letters(drain=drain)
        self.last_summary = summary
        return summary

    def reset(self) -> None:
        """Forget everything this flow has kept in its data directory, to start it afresh:
        its checkpoints and saved metrics (the folder ``flows/<name>``) and its topics
        ``<name>.dlq`` and ``<name>.late``. Its input and output topics are left alone.
        Refused while the flow runs (:class:`~rheos.errors.CheckpointError`)."""
        data_dir = self.resolved_data_dir
        folder = store_path(data_dir, self.name).parent
        if folder.exists():
            lock = FlowLock(data_dir, self.name)
            lock.acquire()
            try:
                shutil.rmtree(folder)
            finally:
                lock.release()
        if os.path.isdir(data_dir):
            log = Log(data_dir)
            try:
                for topic in (dlq_topic(self.name), f"{self.name}.late"):
                    log.delete_topic(topic, missing_ok=True)
            finally:
                log.close()

    def checkpoints(self) -> list[CheckpointInfo]:
        """The flow's kept checkpoints, oldest first (empty if it has none)."""
        path = store_path(self.resolved_data_dir, self.name)
        if not path.exists():
            return []
        with CheckpointStore(path) as store:
            return store.checkpoints()

    @property
    def resolved_data_dir(self) -> str:
        """The data directory a run uses: ``data_dir``, else ``RHEOS_DATA_DIR``, else default."""
        return resolve_data_dir(self.data_dir)


__all__ = [
    "DEFAULT_CHECKPOINT_INTERVAL",
    "MODE_ENV",
    "CheckpointStats",
    "Flow",
    "Mode",
    "RunSummary",
    "Runner",
    "SourceStats",
    "StepStats",
    "bounded_mode",
    "make_runner",
    "run_flow",
]
