"""Running a flow: one run loop, and the executor its mode chooses.

A :class:`Runner` runs one flow once. It owns the run: its data directory and its stop
(:mod:`rheos.runtime.lifecycle`: :meth:`Runner.stop`, SIGINT/SIGTERM), its checkpoints
(:mod:`rheos.runtime.checkpointing`, handed only what they record), its dead-letter policy
(:mod:`rheos.runtime.badevents`), its live metrics and its :class:`RunSummary`, and the
streaming loop's control: which sources are read, ``stop_after`` and ``timeout``, stops and
drains, idle sources, and the flushes, checkpoints and metric samples between two rounds of
reads. How events go through the flow is its executor's (:mod:`rheos.runtime.executor`):
per event (:class:`~rheos.runtime.event_executor.EventExecutor`, stream-first, the default)
or per batch (:class:`~rheos.runtime.microbatch.executor.BatchExecutor`, micro-batch).

A streaming run ends when every source is exhausted (the final watermark closes every
window), or when it is stopped: :meth:`Runner.stop`, SIGINT/SIGTERM, ``stop_after`` or
``timeout``; a log source never ends in streaming mode.

Idle sources. While no source has data, the runner polls the trackers' idle timeouts and the
flow watermark follows (see :mod:`rheos.windowing.watermarks` for the rule: a partition
silent for ``idle_timeout`` stops holding the watermark; when all of a source's partitions
are idle its watermark follows the clock from its last event), and processing-time windows
advance with the clock.

Bounded mode (``bounded=True``) is the executor's whole: every source read to its end, its
events pushed in event-time order with a perfect watermark, then every window closed -- but
for a flow whose results no order of its events changes (stateless steps, and windows whose
aggregations add in any order: :func:`~rheos.runtime.bounded.order_free`): the streaming
loop runs over the sources read to their ends, the watermark held at its lowest until then.

>>> import rheos as rh
>>> out = []
>>> flow = rh.Flow("doc-runner", checkpoint_interval=None)
>>> _ = flow.source(rh.iterable_source([{"t": 1}, {"t": 2}]), timestamp="t").sink(
...     rh.list_sink(out))
>>> summary = Runner(flow.graph(), metrics=False).run()
>>> summary.events_in, summary.stopped
(2, 'exhausted')
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

from rheos.connectors.base import OpenContext
from rheos.connectors.repartition_topic import WATERMARK_OF
from rheos.errors import BadEventsWarning, CheckpointError, RheosWarning
from rheos.flows.steps import Graph, SinkStep
from rheos.runtime.badevents import BadEvents, replay_letters
from rheos.runtime.bounded import backlog, in_arrival_order, progress_bar
from rheos.runtime.build import Compiled
from rheos.runtime.checkpointing import Checkpointed, Checkpointer, FlowLock, start_checkpoints
from rheos.runtime.deadletters import DeadLetters
from rheos.runtime.event_executor import EventExecutor
from rheos.runtime.executor import Executor, RunParts, flush_writers
from rheos.runtime.lifecycle import Lifecycle, resolve_data_dir, usable_data_dir
from rheos.runtime.metrics import FlowMetrics, save_snapshot, snapshot_path
from rheos.runtime.source_run import SourceRun
from rheos.runtime.summary import RunSummary
from rheos.state import DEFAULT_KEEP
from rheos.windowing import MAX_WATERMARK, MIN_WATERMARK, Clock, SystemClock


class Runner:
    """Runs one flow once; see the module docs. Use :meth:`Flow.run` rather than this.

    ``executor``: how events go through the flow (per event when not given; a
    :class:`~rheos.runtime.microbatch.executor.BatchExecutor` for micro-batch mode)."""

    def __init__(
        self,
        graph: Graph,
        *,
        executor: Executor | None = None,
        data_dir: str | None = None,
        clock: Clock | None = None,
        checkpoint_interval_ms: int | None = None,
        keep: int = DEFAULT_KEEP,
        metrics: bool = True,
        task: int | None = None,
        tasks: int = 1,
    ) -> None:
        self.graph = graph
        self.executor: Executor = executor if executor is not None else EventExecutor()
        self.task = task
        """The task this run is, of ``tasks``, in a flow split across workers (``None``: the
        whole flow; see :mod:`rheos.runtime.workers`): its sources read partition ``task``
        only, and its checkpoints, lock and metrics live in the task's folder."""
        self.tasks = tasks
        self.metrics_on = metrics
        self.metrics: FlowMetrics | None = None
        """Live metrics of the current (or last) run (:mod:`rheos.runtime.metrics`)."""
        self.checkpoint_interval_ms = checkpoint_interval_ms
        self.keep = keep
        self.checkpointer: Checkpointer | None = None
        self.bad = BadEvents()
        """The run's dead-letter policy."""
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.data_dir = resolve_data_dir(data_dir)
        self.lifecycle = Lifecycle(graph.name, task)
        self._on_disk = True
        """Whether the data directory can be written (checked when a run starts)."""
        self._accounted = False
        """Every event read has reached its sinks or the flow's final state: offsets may be
        committed (a bounded run, exhausted sources, or a drained stop without discards)."""
        self._tick: Callable[[int], Any] | None = None
        """A bounded run's progress bar (:meth:`_run_to_ends`), told the events run so far."""
        self._draining: str | None = None
        """Why a drained stop of a flow split into tasks is under way: it no longer reads its
        own sources and reads its repartition topics to their end markers."""

    # -- what the metrics and the summary read --------------------------------------------------
    @property
    def sources(self) -> list[SourceRun]:
        """The flow's sources, as the executor opened them."""
        return self.executor.sources

    @property
    def compiled(self) -> Compiled | None:
        return self.executor.compiled

    @property
    def flow_wm(self) -> int:
        """The flow watermark the nodes have seen."""
        return self.executor.flow_wm

    @property
    def dead(self) -> DeadLetters | None:
        return self.bad.dead

    # -- control ------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped", *, drain: bool | None = None) -> None:
        """Ask the run to stop (thread-safe); it finishes the current chunk and returns.
        ``drain`` overrides the run's own ``drain`` for this stop (a task handed back to the
        other workers of its flow stops at a checkpoint without closing its windows)."""
        self.lifecycle.stop(reason, drain=drain)

    # -- running ------------------------------------------------------------------------------
    def run(
        self,
        *,
        bounded: bool = False,
        stop_after: int | None = None,
        timeout: float | None = None,
        drain: bool = False,
        progress: bool | None = None,
    ) -> RunSummary:
        """Run to the end (see the module docs) and return the :class:`RunSummary`.

        ``stop_after`` stops after that many input events, ``timeout`` after that many
        seconds; ``drain=True`` closes every open window when a streaming run is stopped
        (otherwise open windows are dropped with the run, as with a crash).
        """
        started = time.perf_counter()
        if not any(isinstance(step, SinkStep) for step in self.graph.steps):
            warnings.warn(
                f"flow {self.graph.name!r} has no sink: its results go nowhere (add "
                ".sink(rh.stdout_sink()) to see them, or rh.log_sink(TOPIC) to keep them)",
                RheosWarning,
                stacklevel=3,
            )
        mode = "bounded" if bounded else "streaming"
        summary = RunSummary(self.graph.name, mode, executor=self.executor.name)
        ctx = self._context(bounded)
        self._on_disk = usable_data_dir(self.data_dir, self.graph.name)
        late_topic = f"{self.graph.name}.late" if self._on_disk else None
        restore = self.lifecycle.install_signals()
        wanted = not bounded and self._on_disk and self.checkpoint_interval_ms is not None
        lock = self._start_checkpoints(ctx, wanted)
        executor = self.executor
        try:
            compiled = self._open(ctx, late_topic)
            self._restore(compiled)
            executor.wire()
            if self.metrics_on:
                self.metrics = FlowMetrics(self.graph, mode)
                self.metrics.watch_sinks(compiled.sink_counters)
                if self._on_disk:
                    self.metrics.save_to = snapshot_path(self.data_dir, self.graph.name, self.task)
                self.metrics.sample(self)
                executor.metrics = self.metrics
                executor.sample = partial(self.metrics.sample, self)
            if bounded and in_arrival_order(self.graph):
                summary.stopped = self._run_to_ends(progress)
            elif bounded:
                executor.run_bounded(progress)
                summary.stopped = "exhausted"
                self._accounted = True
            else:
                summary.stopped = self._run_streaming(stop_after, timeout, drain)
            if self._accounted and self.checkpointer is None:
                for src in self.sources:
                    src.reader.commit()
            if self.metrics is not None:
                self.metrics.sample(self, running=False, stopped=summary.stopped)
        finally:
            restore()
            self._shut(ctx, lock)
        summary.elapsed_s = time.perf_counter() - started
        self._fill(summary)
        if self.metrics is not None and self.metrics.latest is not None and self._on_disk:
            save_snapshot(
                snapshot_path(self.data_dir, self.graph.name, self.task), self.metrics.latest
            )
        note = summary.bad_events_note()
        if note is not None:
            warnings.warn(note, BadEventsWarning, stacklevel=3)
        return summary

    def _context(self, bounded: bool) -> OpenContext:
        ctx = OpenContext(self.graph.name, self.data_dir, bounded, self.clock)
        ctx.task, ctx.tasks = self.task, self.tasks
        ctx.shared[WATERMARK_OF] = self._watermark_of
        return ctx

    def _watermark_of(self, names: tuple[str, ...]) -> int:
        """The lowest watermark of the named sources now (a repartition topic's writing end
        sends it to the tasks that read the topic); the end once a drain has stopped
        reading them (only the flow's own sources feed a repartition topic)."""
        if self._draining is not None:
            return MAX_WATERMARK
        marks = [src.wm for src in self.sources if src.step.name in names]
        return min(marks) if marks else MIN_WATERMARK

    def _start_checkpoints(
        self, ctx: OpenContext, wanted: bool, *, force: bool = False
    ) -> FlowLock | None:
        """Decide whether this run checkpoints; if so lock the flow and open its store."""
        self.checkpointer, lock = start_checkpoints(
            self.graph,
            ctx,
            data_dir=self.data_dir,
            task=self.task,
            keep=self.keep,
            interval_ms=self.checkpoint_interval_ms,
            wanted=wanted,
            force=force,
        )
        return lock

    def _open(self, ctx: OpenContext, late_topic: str | None) -> Compiled:
        """Compile the flow and open its sources (the executor's), then its dead letters."""
        parts = RunParts(self.graph, self.clock, self.bad, self.lifecycle)
        compiled = self.executor.prepare(parts, ctx, late_topic)
        self.bad.open(self.graph, ctx, self._on_disk, compiled, self.checkpointer)
        return compiled

    def _restore(self, compiled: Compiled) -> None:
        """Restore the latest checkpoint, when this run checkpoints: what it records of the
        run is bound to the checkpointer first."""
        checkpointer = self.checkpointer
        if checkpointer is None:
            return
        executor = self.executor
        compiled.on_open = checkpointer.recover_writer
        checkpointer.bind(
            Checkpointed(
                sources=executor.sources,
                nodes=compiled.nodes,
                writers=compiled.named_writers,
                watermark=lambda: executor.flow_wm,
                disk=compiled.disk,
            )
        )
        saved = checkpointer.restore()
        if saved is not None:
            executor.flow_wm = saved

    def _shut(self, ctx: OpenContext, lock: FlowLock | None) -> None:
        """End a run: close its sources and sinks, then its checkpoints and the flow's lock."""
        executor = self.executor
        self.lifecycle.shut(ctx, executor.compiled, executor.sources, self.checkpointer, lock)

    def checkpoint(self, kind: str = "periodic") -> None:
        """Take a checkpoint now (between two polls: consistent by construction)."""
        if self.checkpointer is not None:
            self.checkpointer.take(kind)

    # -- dead-letter replay -------------------------------------------------------------------
    def replay_dead_letters(self, *, drain: bool = False) -> RunSummary:
        """Send the flow's dead letters not replayed yet back through it, exactly once.

        Resumes from the latest checkpoint (if any), pushes each dead letter into the source
        it came from (decoded as that source decodes), and takes a checkpoint recording the
        dead-letter topic's position with the output. Events that fail again are dead-lettered
        again (after the replayed range). Sources are not read; windows are not closed,
        unless ``drain`` (then every window closes and every timer fires before the
        checkpoint, as in a drained stop). A replay runs event by event, whatever the
        runner's executor.
        """
        if not usable_data_dir(self.data_dir, self.graph.name):
            raise CheckpointError(
                f"flow {self.graph.name!r}: replaying dead letters needs a writable data "
                f"directory ({self.data_dir})"
            )
        started = time.perf_counter()
        summary = RunSummary(self.graph.name, "dead-letter replay")
        ctx = self._context(False)
        lock = self._start_checkpoints(ctx, False, force=True)
        executor = self.executor
        if not isinstance(executor, EventExecutor):
            executor = self.executor = EventExecutor()
        try:
            compiled = self._open(ctx, f"{self.graph.name}.late")
            checkpointer, dead = self.checkpointer, self.bad.dead
            assert checkpointer is not None and dead is not None
            dead.dedupe = False  # a letter that fails again is a new one
            self._restore(compiled)
            executor.wire_watermark()
            replayed, until = replay_letters(
                ctx,
                self.graph.name,
                executor.sources,
                dead,
                checkpointer,
                stateful=bool(compiled.nodes),
                push=executor.push_chunk,
                now=self.clock.now_ms,
            )
            if until is not None:
                if drain:
                    executor.finish()
                checkpointer.extra["dlq_replayed"] = until
                checkpointer.take("dlq-replay")
            summary.dead_letters_replayed = replayed
            summary.stopped = "drained" if drain else "exhausted"
        finally:
            self._shut(ctx, lock)
        summary.elapsed_s = time.perf_counter() - started
        self._fill(summary)
        return summary

    def _run_to_ends(self, progress: bool | None) -> str:
        """A bounded run of a flow no order changes: the streaming loop, to the sources' ends
        (their readers were opened bounded), with each source's watermark held at its lowest
        until it ends (no event is late: the final watermark closes the windows), and a
        progress bar over the sources' backlog."""
        for src in self.sources:
            src.held = True
        readers = [src.reader for src in self.sources]
        with progress_bar(self.graph.name, backlog(readers), progress) as tick:
            self._tick = tick
            try:
                return self._run_streaming(None, None, False)
            finally:
                self._tick = None

    # -- streaming ----------------------------------------------------------------------------
    def _run_streaming(self, stop_after: int | None, timeout: float | None, drain: bool) -> str:
        """The run loop: rounds of reads, each source polled once (the executor pushes what
        it read), then the run's control: stop, drain, processing time, checkpoints,
        metrics, idle sources and flushes."""
        executor = self.executor
        executor.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        metrics = self.metrics
        checkpointer = self.checkpointer
        events = 0
        wait = 0.0
        last_flush = time.monotonic()
        while True:
            got = 0
            active = [s for s in self.sources if self._reading(s)]
            for src in active:
                # a repartition topic's events are not input: stop_after does not count them
                room = None
                if stop_after is not None and src.own_watermark is None:
                    room = stop_after - events
                got += executor.read(src, wait if src is active[0] else 0.0, room)
                if room is not None:
                    events = self._input_events()
                self._raise_own(src)
                if src.reader.exhausted and not src.done:
                    src.end()
                    executor.advance_flow()
                if room is not None and stop_after is not None and events >= stop_after:
                    break
            # a stop or a checkpoint falls between rounds: what was read is processed first
            timed_out = deadline is not None and time.monotonic() >= deadline
            stop_requested = self.lifecycle.stopping
            checkpoint = checkpointer is not None and checkpointer.due(time.monotonic())
            if timed_out or stop_requested or checkpoint:
                got += executor.settle()
                if stop_after is not None:
                    events = self._input_events()
            executor.processing(self.clock.now_ms)
            reason = self._ended(events, stop_after, drain, timed_out, stop_requested)
            if reason is not None:
                return reason
            if checkpoint and checkpointer is not None and checkpointer.due(time.monotonic()):
                checkpointer.take()
            if metrics is not None and time.monotonic() >= metrics.next_sample:
                metrics.sample(self)
            now = time.monotonic()
            if self._tick is not None:
                self._tick(self._input_events())
            if got == 0:
                self._idle()
                self._flush()
                last_flush = now
                wait = executor.idle_wait_s
            else:
                wait = 0.0
                if now - last_flush >= executor.flush_every_s:
                    self._flush()
                    last_flush = now

    def _input_events(self) -> int:
        """The events run so far from the flow's own sources (not its repartition topics)."""
        return sum(s.stats.events for s in self.sources if s.own_watermark is None)

    def _ended(
        self,
        events: int,
        stop_after: int | None,
        drain: bool,
        timed_out: bool,
        stop_requested: bool,
    ) -> str | None:
        """After a round of polls: why the streaming run ends now, or None to go on.

        ``"exhausted"`` when every source has ended (the final watermark closes every window);
        else ``"stop_after"``, ``"timeout"`` or the reason given to :meth:`stop`, after which
        open windows are closed (``drain``) and a last checkpoint is taken (when checkpointing).
        """
        if not any(self._reading(s) for s in self.sources):
            self.executor.finish()
            self._accounted = not self.executor.discarded
            if self._draining is not None:
                if self.checkpointer is not None:
                    self.checkpointer.take("drain")
                return self._draining
            return "exhausted"
        if self._draining is not None:
            return None
        reason = None
        if stop_after is not None and events >= stop_after:
            reason = "stop_after"
        elif timed_out:
            reason = "timeout"
        elif stop_requested:
            reason = self.lifecycle.reason
            if self.lifecycle.drain is not None:
                drain = self.lifecycle.drain
        if reason is not None and drain and any(s.own_watermark for s in self.sources):
            self._drain_tasks(reason)
            return None
        if reason is not None:
            if drain:
                self.executor.finish()
                self._accounted = not self.executor.discarded
            if self.checkpointer is not None:
                self.checkpointer.take("drain" if drain else "stop")
        return reason

    def _drain_tasks(self, reason: str) -> None:
        """A drained stop of a flow split into tasks: stop reading its own sources and write
        the end markers of its repartition topics (committed by a checkpoint), then go on
        reading those topics until every upstream task's end marker is read; the run then
        ends as a drained one (see :meth:`_ended`). The sources are not ended (their
        positions and watermarks stay as they are in the checkpoint), so a task killed
        while it drains resumes reading them."""
        self._draining = reason
        if self.checkpointer is not None:
            self.checkpointer.take("drain")
        else:
            self._flush()

    def _flush(self) -> None:
        flush_writers(self.compiled)

    def _idle(self) -> None:
        """No source gave events: idle sources' watermarks may advance (see the event-time
        docs), and the flow's with them."""
        for src in self.sources:
            if src.done or src.held or self.executor.holds(src):
                continue
            if src.stalled():
                continue  # its data cannot be reached: not idle (see StallingReader)
            src.tracker.poll_idle()
            src.wm = src.current()
        self.executor.advance_flow()

    def _reading(self, src: SourceRun) -> bool:
        """Whether the run still reads ``src``: not ended, and not a source of the flow's own
        while a drain of its repartition topics is under way."""
        return not src.done and (self._draining is None or src.own_watermark is not None)

    def _raise_own(self, src: SourceRun) -> None:
        """Take the own watermark of a source that has one (after its events were run)."""
        if src.own_watermark is not None and not src.done and not self.executor.holds(src):
            w = src.current()
            if w > src.wm:
                src.wm = w
                self.executor.advance_flow()

    # -- summary ------------------------------------------------------------------------------
    def _fill(self, summary: RunSummary) -> None:
        compiled = self.compiled
        for src in self.sources:
            src.stats.watermark = src.wm
            summary.sources[src.step.name] = src.stats
            summary.events_in += src.stats.events
            summary.out_of_order += src.stats.out_of_order
        if compiled is None:
            return
        summary.events_out = compiled.events_out
        if self.dead is not None:
            summary.dead_lettered = dict(self.dead.dead)
            summary.skipped = dict(self.dead.skipped)
            summary.dead_letters = self.dead.memory
            summary.dead_letters_again = self.dead.again
            summary.bad_events = self.dead.bad_events
        if self.checkpointer is not None:
            summary.checkpoints = self.checkpointer.stats
            summary.epoch = self.checkpointer.epoch
        for node in compiled.nodes:
            stats = node.sync_stats()
            summary.steps[node.step.name] = stats
            summary.late += stats.late
        summary.late_events = compiled.late_memory


__all__ = ["Runner", "resolve_data_dir", "usable_data_dir"]
