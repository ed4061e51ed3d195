"""The stream-first executor: one event at a time through fused push functions.

Event time. Each source has a :class:`~rheos.windowing.WatermarkTracker` over its
partitions (bounded out-of-orderness, idle timeout); the **flow watermark** is the minimum over
the sources (an exhausted source no longer counts). It is re-computed after every event that
can raise it -- just before that event is pushed, which cannot make the event itself late
-- and every stateful node is advanced as soon as it rises, so an event is late exactly when
its window was finalized by the events read before it. A finite source
(iterable, file) ends its partitions when exhausted; when every source is exhausted the
watermark becomes ``MAX_WATERMARK``, which closes every window, and :meth:`Runner.run`
returns. A log source never ends in streaming mode: stop the run with :meth:`Runner.stop`,
SIGINT/SIGTERM, ``stop_after`` or ``timeout``.

Idle sources. While no source has data, the runner polls the trackers' idle timeouts and
advances processing-time windows with the clock (see :mod:`rheos.windowing.watermarks` for the
rule: a partition silent for ``idle_timeout`` stops holding the watermark; when all of a
source's partitions are idle its watermark follows the clock from its last event).

Bounded mode (``bounded=True``) reads every source to its end first (log topics: to their end
offsets when the run starts), orders all events by event time (stably), and pushes them with a
perfect watermark (each event's time: nothing earlier is still to come), so no event is late
and arrival order does not change any result; the final watermark then closes every window.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from rheos.connectors.base import Chunk, OpenContext, RawReader, SeekableReader
from rheos.connectors.repartition_topic import WATERMARK_OF
from rheos.errors import (
    BadEventsWarning,
    CheckpointError,
    EventError,
    FlowError,
    NoDataDirWarning,
    RheosError,
    RheosWarning,
)
from rheos.flows.steps import Graph, SinkStep, SourceStep
from rheos.runtime.bounded import (
    Arrival,
    disorder,
    merged_order,
    progress_bar,
    read_all,
    sort_times,
)
from rheos.runtime.checkpointing import Checkpointer, FlowLock
from rheos.runtime.compile import BAD_EVENT_ERRORS, Compiled, compile_flow
from rheos.runtime.deadletters import (
    DeadLetters,
    decode_letter_value,
    dlq_topic,
    read_dead_letters,
)
from rheos.runtime.metrics import FlowMetrics, save_snapshot, snapshot_path
from rheos.runtime.nodes import ProcessNode, WindowNode, where
from rheos.runtime.repartition import source_stages
from rheos.runtime.source_run import SourceRun
from rheos.runtime.summary import RunSummary
from rheos.state import DEFAULT_KEEP, CheckpointStore
from rheos.transport import default_data_dir
from rheos.windowing import (
    MAX_WATERMARK,
    MIN_WATERMARK,
    Clock,
    SystemClock,
)

IDLE_WAIT_S = 0.05
FLUSH_EVERY_S = 0.2
BOUNDED_SLICE = 10_000
"""A bounded run pushes its ordered events this many at a time (progress ticks between)."""
BOUNDED_GC_THRESHOLD = 50_000
"""The garbage collector's first threshold while a bounded run pushes (Python's is 700)."""


def resolve_data_dir(data_dir: str | None) -> str:
    """The data directory a run uses: ``data_dir``, else ``$RHEOS_DATA_DIR``, else ``./.rheos``.

    The default is a data directory like any other: checkpoints, metrics, late events and dead
    letters go there exactly as they would to one named on the command line.
    """
    return data_dir if data_dir is not None else os.fspath(default_data_dir())


def usable_data_dir(data_dir: str, flow: str) -> bool:
    """Whether ``data_dir`` exists (or can be made) and is writable; warn loudly if not.

    A flow whose data directory cannot be written has nowhere to keep checkpoints, late
    events or dead letters: it still runs, keeping them in its :class:`RunSummary` only, and
    says so when it starts (they are lost when the process ends).
    """
    try:
        os.makedirs(data_dir, exist_ok=True)
        writable = os.access(data_dir, os.W_OK | os.X_OK)
        reason = "it is not writable"
    except OSError as exc:
        writable, reason = False, exc.strerror or str(exc)
    if not writable:
        warnings.warn(
            f"flow {flow!r}: cannot use the data directory {data_dir} ({reason}): no "
            "checkpoints; late events and dead letters are kept in the run summary only and "
            "are lost when this process ends. Give a writable --data-dir (or $RHEOS_DATA_DIR).",
            NoDataDirWarning,
            stacklevel=4,
        )
    return writable


class Runner:
    """Runs one flow once; see the module docs. Use :meth:`Flow.run` rather than this."""

    executor = "stream-first"
    """How events go through the flow (the run summary says it)."""

    def __init__(
        self,
        graph: Graph,
        *,
        data_dir: str | None = None,
        clock: Clock | None = None,
        checkpoint_interval_ms: int | None = None,
        keep: int = DEFAULT_KEEP,
        metrics: bool = True,
        task: int | None = None,
        tasks: int = 1,
    ) -> None:
        self.graph = graph
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
        self.dead: DeadLetters | None = None
        self._at: Callable[[int], _Place] | None = None
        """Where event ``i`` of the events being pushed comes from: its chunk, index there,
        event time and value (for :meth:`event_failed`)."""
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.data_dir = resolve_data_dir(data_dir)
        self._on_disk = True
        """Whether the data directory can be written (checked when a run starts)."""
        self._stop = threading.Event()
        self._stop_reason = "stopped"
        self._stop_drain: bool | None = None
        self.flow_wm = MIN_WATERMARK
        self.timed = False
        self._discarded = False
        self._accounted = False
        """Every event read has reached its sinks or the flow's final state: offsets may be
        committed (a bounded run, exhausted sources, or a drained stop without discards)."""
        """Whether any node needs the watermark (else it is only tracked for statistics)."""
        self.due = MIN_WATERMARK + 1
        """The lowest flow watermark at which some node has something to do."""
        self.sources: list[SourceRun] = []
        self.compiled: Compiled | None = None
        self._draining: str | None = None
        """Why a drained stop of a flow split into tasks is under way: it no longer reads its
        own sources and reads its repartition topics to their end markers."""

    # -- control ------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped", *, drain: bool | None = None) -> None:
        """Ask the run to stop (thread-safe); it finishes the current chunk and returns.
        ``drain`` overrides the run's own ``drain`` for this stop (a task handed back to the
        other workers of its flow stops at a checkpoint without closing its windows)."""
        self._stop_reason = reason
        self._stop_drain = drain
        self._stop.set()

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
        summary = RunSummary(self.graph.name, mode, executor=self.executor)
        ctx = self._context(bounded)
        self._on_disk = usable_data_dir(self.data_dir, self.graph.name)
        late_topic = f"{self.graph.name}.late" if self._on_disk else None
        restore = self._install_signals()
        lock = self._start_checkpoints(ctx, bounded)
        try:
            self._prepare(ctx, late_topic)
            assert self.compiled is not None
            self._setup_dead_letters(ctx)
            if self.checkpointer is not None:
                self.compiled.on_open = self.checkpointer.recover_writer
                self.checkpointer.restore()
            self._wire()
            if self.metrics_on:
                self.metrics = FlowMetrics(self.graph, mode)
                self.metrics.watch_sinks(self.compiled.sink_counters)
                if self._on_disk:
                    self.metrics.save_to = snapshot_path(self.data_dir, self.graph.name, self.task)
                self.metrics.sample(self)
            if bounded:
                self._run_bounded(progress)
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

    def _prepare(self, ctx: OpenContext, late_topic: str | None) -> None:
        """Compile the flow (:attr:`compiled`) and open its sources (:attr:`sources`)."""
        self.compiled = compile_flow(
            self.graph, ctx, default_late_topic=late_topic, now=self.clock.now_ms
        )
        self._open_sources(ctx)

    def _wire(self) -> None:
        """Connect the stateful nodes to the runner (after a checkpoint was restored)."""
        assert self.compiled is not None
        self.timed = bool(self.compiled.nodes)
        for node in self.compiled.nodes:
            node.flow_watermark = self.current_watermark
            if isinstance(node, ProcessNode):
                node.lower_due = self._lower_due

    def replay_dead_letters(self, *, drain: bool = False) -> RunSummary:
        """Send the flow's dead letters not replayed yet back through it, exactly once.

        Resumes from the latest checkpoint (if any), pushes each dead letter into the source
        it came from (decoded as that source decodes), and takes a checkpoint recording the
        dead-letter topic's position with the output. Events that fail again are dead-lettered
        again (after the replayed range). Sources are not read; windows are not closed,
        unless ``drain`` (then every window closes and every timer fires before the
        checkpoint, as in a drained stop).
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
        try:
            self.compiled = compile_flow(
                self.graph, ctx, default_late_topic=f"{self.graph.name}.late", now=self.clock.now_ms
            )
            self._open_sources(ctx)
            self._setup_dead_letters(ctx)
            assert self.checkpointer is not None and self.dead is not None
            self.dead.dedupe = False  # a letter that fails again is a new one
            self.compiled.on_open = self.checkpointer.recover_writer
            self.checkpointer.restore()
            self.timed = bool(self.compiled.nodes)
            for node in self.compiled.nodes:
                node.flow_watermark = self.current_watermark
            summary.dead_letters_replayed = self._push_dead_letters(ctx, drain)
            summary.stopped = "drained" if drain else "exhausted"
        finally:
            self._shut(ctx, lock)
        summary.elapsed_s = time.perf_counter() - started
        self._fill(summary)
        return summary

    def _push_dead_letters(self, ctx: OpenContext, drain: bool) -> int:
        assert self.checkpointer is not None and self.dead is not None
        assert self.compiled is not None
        stateless = not self.compiled.nodes
        done = {int(p): int(o) for p, o in self.checkpointer.extra["dlq_replayed"].items()}
        log = ctx.log
        topic = dlq_topic(self.graph.name)
        if not log.has_topic(topic):
            return 0
        with log.reader(topic) as probe:
            until = probe.end_offsets()
        by_name = {src.step.name: src for src in self.sources}
        n = 0
        for letter in read_dead_letters(log, self.graph.name, start=done, until=until):
            if not letter.replayable:
                continue  # a window closing or a timer firing failed: no event to send back
            if not stateless and self.checkpointer.restored is None:
                raise CheckpointError(
                    f"flow {self.graph.name!r} has windows or keyed state but no checkpoint "
                    "(it has only run bounded, or never checkpointed): replayed events would "
                    "have no state to join and their windows would never emit. Run the "
                    "flow again over its input with the fixed code instead (rheos run "
                    "APP --bounded); its dead letters are not written twice."
                )
            n += 1
            src = by_name.get(letter.source)
            if src is None:
                continue
            try:
                value = decode_letter_value(letter, getattr(src.reader, "decode", None))
            except Exception as exc:
                err = exc
                if not isinstance(exc, RheosError):
                    err = EventError(
                        f"{where(self.graph.name, src.step)}: cannot decode: {exc}",
                        topic=letter.source_topic,
                        partition=letter.source_partition,
                        offset=letter.source_offset,
                    )
                    err.__cause__ = exc
                self.dead.handle(
                    err,
                    source=src.step.name,
                    step=src.step.name,
                    raw=letter.value,
                    topic=letter.source_topic,
                    partition=letter.source_partition,
                    offset=letter.source_offset,
                    event_time=letter.event_time,
                )
                continue
            offsets = None if letter.source_offset is None else [letter.source_offset]
            chunk = Chunk(
                letter.source_partition or 0,
                [value],
                [letter.event_time if letter.event_time is not None else self.clock.now_ms()],
                letter.source_topic,
                offsets,
                [letter.value] if letter.value_format == "record" else None,
            )
            self._chunk(src, chunk)
        if drain:
            self._finish()
        self.checkpointer.extra["dlq_replayed"] = until
        self.checkpointer.take("dlq-replay")
        return n

    def _start_checkpoints(
        self, ctx: OpenContext, bounded: bool, *, force: bool = False
    ) -> FlowLock | None:
        """Decide whether this run checkpoints; if so lock the flow and open its store."""
        seekable = all(
            getattr(step.source, "seekable", False)
            for step in self.graph.steps
            if isinstance(step, SourceStep)
        )
        off = bounded or not self._on_disk or self.checkpoint_interval_ms is None
        if (off or not seekable) and not force:
            return None
        lock = FlowLock(self.data_dir, self.graph.name, self.task)
        lock.acquire()
        try:
            store = CheckpointStore.for_flow(
                self.data_dir, self.graph.name, keep=self.keep, task=self.task
            )
        except BaseException:
            lock.release()
            raise
        self.checkpointer = Checkpointer(self, store, self.checkpoint_interval_ms)
        ctx.transactional = True
        ctx.epoch = self.checkpointer.epoch
        return lock

    def _setup_dead_letters(self, ctx: OpenContext) -> None:
        assert self.compiled is not None
        self.dead = DeadLetters(self.graph, ctx, self._on_disk, self.compiled.named_writers)
        self.compiled.dead = self.dead
        if self.checkpointer is not None:
            self.dead.on_open = self.checkpointer.recover_writer
        self.compiled.writers.append(_DeadLetterCloser(self.dead))

    def checkpoint(self, kind: str = "periodic") -> None:
        """Take a checkpoint now (between two polls: consistent by construction)."""
        if self.checkpointer is not None:
            self.checkpointer.take(kind)

    # -- bad events ---------------------------------------------------------------------------
    def event_failed(self, src: SourceRun, index: int, exc: Exception) -> None:
        """Event ``index`` of the events being pushed is bad: apply the policy."""
        assert self._at is not None
        chunk, i, t, value = self._at(index)
        self._dead_letter(src, chunk, i, t, value, exc)

    def _dead_letter(
        self, src: SourceRun, chunk: Chunk, i: int, t: int, value: Any, exc: Exception
    ) -> None:
        assert self.dead is not None
        self.dead.handle(
            exc,
            source=src.step.name,
            raw=chunk.raw[i] if chunk.raw is not None else None,
            value=value,
            event_time=t,
            **chunk.where(i),
        )

    def _rejects(self, src: SourceRun, chunk: Chunk) -> None:
        """Apply the policy to the records of a chunk that did not become events."""
        assert self.dead is not None
        for offset, raw, exc in chunk.rejects or ():
            self.dead.handle(
                exc,
                source=src.step.name,
                step=src.step.name,
                raw=raw,
                topic=chunk.topic,
                partition=chunk.partition,
                offset=offset,
            )
        chunk.rejects = None

    def _sift(self, src: SourceRun, chunk: Chunk) -> list[int]:
        """Apply the policy to a chunk's rejects and bad timestamps; return the good times."""
        self._rejects(src, chunk)
        dead = self.dead
        assert dead is not None
        tss, bad = src.timestamps(chunk)
        if bad:
            for i, exc in bad:
                dead.handle(
                    exc,
                    source=src.step.name,
                    step=src.step.name,
                    raw=chunk.raw[i] if chunk.raw is not None else None,
                    value=chunk.values[i],
                    **chunk.where(i),
                )
            gone = {i for i, _ in bad}
            chunk.drop(sorted(gone))
            tss = [t for i, t in enumerate(tss) if i not in gone]
        return tss

    def _open_sources(self, ctx: OpenContext) -> None:
        assert self.compiled is not None
        for step in self.graph.steps:
            if isinstance(step, SourceStep):
                reader = step.source.open(ctx)
                run = SourceRun(
                    self.graph.name, step, reader, self.compiled.entries[step.id], self.clock
                )
                run.loop = self.compiled.loops[step.id]
                run.ordered_loop = self.compiled.ordered_loops.get(step.id)
                self.sources.append(run)

    def _install_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {}

        def handler(signum: int, frame: Any) -> None:
            self.stop("signal")

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, OSError):
                previous[sig] = signal.signal(sig, handler)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def _shut(self, ctx: OpenContext, lock: FlowLock | None) -> None:
        """End a run: close its sources and sinks, then its checkpoints and the flow's lock."""
        try:
            self._close(ctx)
        finally:
            if self.checkpointer is not None:
                self.checkpointer.close()
            if lock is not None:
                lock.release()

    def _idle(self) -> None:
        """No source gave events: idle sources' watermarks may advance (see the event-time
        docs), and the flow's with them."""
        for src in self.sources:
            if not src.done and self._own_ready(src):
                src.tracker.poll_idle()
                src.wm = src.current()
        self.advance_flow()

    def _waiting(self, src: SourceRun) -> Callable[[], None]:
        """For a bounded run reading a repartition topic to the other tasks' end markers:
        raise if the run was stopped meanwhile (another task of the flow failed)."""

        def check() -> None:
            if self._stop.is_set():
                raise FlowError(
                    f"flow {self.graph.name!r}, task {self.task}: stopped ({self._stop_reason}) "
                    f"while source {src.step.name!r} waited for the other tasks' end markers"
                )

        return check

    def _reading(self, src: SourceRun) -> bool:
        """Whether the run still reads ``src``: not ended, and not a source of the flow's own
        while a drain of its repartition topics is under way."""
        return not src.done and (self._draining is None or src.own_watermark is not None)

    def _own_ready(self, src: SourceRun) -> bool:
        """Whether every event ``src`` has read was processed (its own watermark, which
        covers them, may be taken then)."""
        return True

    def _raise_own(self, src: SourceRun) -> None:
        """Take the own watermark of a source that has one (after its events were pushed)."""
        if src.own_watermark is not None and not src.done and self._own_ready(src):
            w = src.current()
            if w > src.wm:
                src.wm = w
                self.advance_flow()

    def _close(self, ctx: OpenContext) -> None:
        errors: list[BaseException] = []
        if self.compiled is not None:
            for writer in self.compiled.writers:
                try:
                    writer.close()
                except Exception as exc:  # close the rest, then report
                    errors.append(exc)
        for src in self.sources:
            src.reader.close()
        ctx.close()
        if errors:
            raise errors[0]

    # -- streaming ----------------------------------------------------------------------------
    def _run_streaming(self, stop_after: int | None, timeout: float | None, drain: bool) -> str:
        compiled = self.compiled
        assert compiled is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        proc_nodes = [n for n in compiled.nodes if isinstance(n, WindowNode) and n.processing_time]
        metrics = self.metrics
        events = 0
        wait = 0.0
        last_flush = time.monotonic()
        while True:
            got = 0
            active = [s for s in self.sources if self._reading(s)]
            for src in active:
                chunks = src.reader.poll(wait if src is active[0] else 0.0)
                # a repartition topic's events are not input: stop_after does not count them
                limit = stop_after if src.own_watermark is None else None
                for n, chunk in enumerate(chunks):
                    if limit is not None and events >= limit:
                        self._unread(src, chunks[n:], 0)  # read but not processed
                        break
                    if limit is not None and events + len(chunk.values) > limit:
                        keep = limit - events
                        self._unread(src, chunks[n:], keep)
                        chunk.values = chunk.values[:keep]
                        if chunk.timestamps is not None:
                            chunk.timestamps = chunk.timestamps[:keep]
                        if chunk.raw is not None:
                            chunk.raw = chunk.raw[:keep]
                        if chunk.offsets is not None:
                            if chunk.rejects and keep < len(chunk.offsets):
                                cut = chunk.offsets[keep]
                                chunk.rejects = [r for r in chunk.rejects if (r[0] or 0) < cut]
                            chunk.offsets = chunk.offsets[:keep]
                    got += self._chunk(src, chunk)
                    if limit is None and src.own_watermark is not None:
                        continue
                    events += len(chunk.values)
                    if limit is not None and events >= limit and n + 1 < len(chunks):
                        self._unread(src, chunks[n + 1 :], 0)
                        break
                self._raise_own(src)
                if src.reader.exhausted and not src.done:
                    src.end()
                    self.advance_flow()
                if limit is not None and events >= limit:
                    break
            for node in proc_nodes:
                node.advance_processing(self.clock.now_ms())
            timed_out = deadline is not None and time.monotonic() >= deadline
            reason = self._ended(events, stop_after, drain, timed_out, self._stop.is_set())
            if reason is not None:
                return reason
            now = time.monotonic()
            if self.checkpointer is not None and self.checkpointer.due(now):
                self.checkpointer.take()
            if metrics is not None and now >= metrics.next_sample:
                metrics.sample(self)
            if got == 0:
                self._idle()
                self._flush()
                last_flush = now
                wait = IDLE_WAIT_S
            else:
                wait = 0.0
                if now - last_flush >= FLUSH_EVERY_S:
                    self._flush()
                    last_flush = now

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
        Shared by the stream-first and micro-batch loops.
        """
        if not any(self._reading(s) for s in self.sources):
            self._finish()
            self._accounted = not self._discarded
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
            reason = self._stop_reason
            if self._stop_drain is not None:
                drain = self._stop_drain
        if reason is not None and drain and any(s.own_watermark for s in self.sources):
            self._drain_tasks(reason)
            return None
        if reason is not None:
            if drain:
                self._finish()
                self._accounted = not self._discarded
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

    def _unread(self, src: SourceRun, chunks: list[Chunk], keep: int) -> None:
        """Chunks (the first one from event ``keep`` on) were read but will not be processed:
        seek back to them, so that a checkpoint records exactly what was processed."""
        reader = src.reader
        if not isinstance(reader, SeekableReader):
            self._discarded = True  # read but not processed: do not commit groups
            return
        back: dict[int, int] = {}
        for j, chunk in enumerate(chunks):
            start = keep if j == 0 else 0
            if chunk.offsets is not None and start < len(chunk.offsets):
                back.setdefault(chunk.partition, chunk.offsets[start])
        if back:
            reader.seek(back)
        self._discarded = True

    def _flush(self) -> None:
        assert self.compiled is not None
        for writer in self.compiled.writers:
            writer.flush()

    def _finish(self) -> None:
        """The final watermark: close every window, fire every timer.

        Nodes see the final watermark while they finish (``ctx.watermark`` in ``on_timer``,
        late records), also when a streaming run is drained with its sources still open, as
        in the last round of a micro-batch run."""
        assert self.compiled is not None
        self.flow_wm = MAX_WATERMARK
        for node in self.compiled.nodes:  # all first: finishing nodes push to later ones
            node.flow_watermark = _final_watermark
        for node in self.compiled.nodes:
            node.finish()

    def current_watermark(self) -> int:
        """The flow watermark: the minimum of the sources' watermarks."""
        sources = self.sources
        if len(sources) == 1:
            return sources[0].wm
        return min(s.wm for s in sources)

    def _lower_due(self, due: int) -> None:
        if due < self.due:
            self.due = due

    def advance_flow(self) -> None:
        """Raise the flow watermark; advance the nodes once it reaches one's next due point."""
        w = self.current_watermark()
        if w > self.flow_wm:
            self.flow_wm = w
        if w >= self.due:
            assert self.compiled is not None
            due = MAX_WATERMARK
            for node in self.compiled.nodes:
                node.advance(w)
                if node.next_due < due:
                    due = node.next_due
            self.due = due

    def _chunk(self, src: SourceRun, chunk: Chunk) -> int:
        """Push one chunk's events, raising the watermark as they go; return the count."""
        if not chunk.values and not chunk.rejects:
            return 0
        tss = self._sift(src, chunk)
        values = chunk.values
        if not values:
            return 1  # something was read
        self._at = _in_chunk(chunk, tss)
        push = src.push
        timed = self.timed
        stats = src.stats
        stats.events += len(values)
        if src.single and src.loop is not None:
            src.loop(values, tss, src, self)
            src.tracker.observe(chunk.partition, max(tss))  # keeps idleness and max ts
        else:
            observe, current, part = src.tracker.observe, src.tracker.current, chunk.partition
            bound, wm = src.bound, src.wm
            for i, (v, t) in enumerate(zip(values, tss, strict=True)):
                observe(part, t)
                if timed and t - bound > wm:
                    w = current()
                    if w > wm:
                        wm = src.wm = w
                        if wm >= self.due:
                            self.advance_flow()
                try:
                    push(None, v, t)
                except BAD_EVENT_ERRORS as exc:
                    self.event_failed(src, i, exc)
            stats.out_of_order = src.tracker.out_of_order_count
            stats.max_delay_ms = src.tracker.max_delay_ms
        if src.own_watermark is None:
            w = src.tracker.current()
            if w > src.wm:
                src.wm = w
        self.advance_flow()
        if self.metrics is not None:
            self.metrics.after_chunk(chunk.append_time)
        return len(values)

    # -- bounded ------------------------------------------------------------------------------
    def _run_bounded(self, progress: bool | None) -> None:
        """Read every source to its end, then push its events in event-time order; a
        repartitioned graph (see :mod:`rheos.runtime.repartition`) stage by stage: the
        flow's sources first, whose repartition topics then get their end markers, then the
        sources reading those topics (to every upstream task's end marker)."""
        groups = source_stages(self.graph, self.sources)
        for n, group in enumerate(groups):
            last = n == len(groups) - 1
            self._bounded_stage(group, progress, timed=last)
            for src in group:
                src.end()
            if not last:
                self._flush()
        self._finish()

    def _bounded_stage(self, sources: list[SourceRun], progress: bool | None, timed: bool) -> None:
        """Push the events of ``sources`` (read to their ends) in event-time order; nodes
        advance with them only if ``timed`` (nodes lie behind the last stage's sources)."""
        arrivals = [self._read_all(src) for src in sources]
        assert self.compiled is not None
        for node in self.compiled.nodes:  # steps reading it see the minimum until the end
            node.flow_watermark = _min_watermark
        total = sum(len(arrival.values) for arrival in arrivals)
        # What was read (lists of millions of items) lives until the end: out of the garbage
        # collector's way, or every full collection walks it; and collections less often, as
        # the millions of objects that this many events make mostly die young.
        threshold = gc.get_threshold()
        gc.freeze()
        if threshold[0]:
            gc.set_threshold(max(threshold[0], BOUNDED_GC_THRESHOLD), *threshold[1:])
        try:
            with progress_bar(self.graph.name, total, progress) as tick:
                self._push_all(sources, arrivals, tick, timed)
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()

    def _read_all(self, src: SourceRun) -> Arrival:
        check = self._waiting(src) if src.own_watermark is not None else None
        field = src.step.timestamp
        if isinstance(field, str) and isinstance(src.reader, RawReader):
            src.reader.times_only(field)  # each event is decoded whole when it is pushed
        arrival = read_all(src.reader, lambda chunk: self._sift(src, chunk), check)
        stats = src.stats
        stats.events = len(arrival.values)
        late, most = disorder(arrival.times)
        stats.out_of_order += late
        stats.max_delay_ms = max(stats.max_delay_ms, most)
        return arrival

    def _push_all(
        self,
        sources: list[SourceRun],
        arrivals: list[Arrival],
        tick: Callable[[int], Any] | None,
        timed: bool,
    ) -> None:
        if len(arrivals) == 1:
            self._push_sorted(sources[0], arrivals[0], tick)
        else:
            self._push_merged(sources, arrivals, tick, timed)

    def _push_sorted(
        self, src: SourceRun, arrival: Arrival, tick: Callable[[int], Any] | None
    ) -> None:
        """One source's events in event-time order through its generated chunk loop, each
        event's time the watermark (nothing earlier is still to come)."""
        values, times = arrival.values, arrival.times
        order = None
        if src.stats.out_of_order:
            order, times = sort_times(times)
            values = list(map(values.__getitem__, order))
        loop = src.ordered_loop or src.loop
        assert loop is not None
        src.bound = 0
        for a in range(0, len(values), BOUNDED_SLICE):
            self._at = _in_order(arrival, order, times, a)
            events = arrival.events(values[a : a + BOUNDED_SLICE])
            loop(events, times[a : a + BOUNDED_SLICE], src, self)
            if tick is not None:
                tick(min(a + BOUNDED_SLICE, len(values)))

    def _push_merged(
        self,
        sources: list[SourceRun],
        arrivals: list[Arrival],
        tick: Callable[[int], Any] | None,
        timed: bool,
    ) -> None:
        """Several sources' events in one event-time order, each event's time the flow
        watermark; held record bytes are decoded slice by slice, as they are pushed."""
        assert self.compiled is not None
        order, times, owners = merged_order(arrivals)
        held = [v for arrival in arrivals for v in arrival.values]
        starts = [0]
        for arrival in arrivals:
            starts.append(starts[-1] + len(arrival.values))
        pushes = [src.push for src in sources]
        nodes = self.compiled.nodes if timed else []
        wm = MIN_WATERMARK
        for a in range(0, len(order), BOUNDED_SLICE):
            positions = order[a : a + BOUNDED_SLICE]
            values = _events_at(arrivals, held, owners, positions)
            for j, v in zip(positions, values, strict=True):
                t = times[j]
                if t > wm and nodes:  # sorted input: no event below t is still to come
                    wm = t
                    if wm >= self.due:
                        self.flow_wm = wm
                        due = MAX_WATERMARK
                        for node in nodes:
                            node.advance(wm)
                            if node.next_due < due:
                                due = node.next_due
                        self.due = due
                try:
                    pushes[owners[j]](None, v, t)
                except BAD_EVENT_ERRORS as exc:
                    owner = owners[j]
                    chunk, i = arrivals[owner].locate(j - starts[owner])
                    self._dead_letter(sources[owner], chunk, i, t, v, exc)
            if tick is not None:
                tick(min(a + BOUNDED_SLICE, len(order)))

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


def _events_at(
    arrivals: list[Arrival], held: list[Any], owners: list[int], positions: list[int]
) -> list[Any]:
    """The events at ``positions`` of the concatenated arrivals (``held``: their values),
    each source's held record bytes decoded together."""
    values = [held[j] for j in positions]
    for index, arrival in enumerate(arrivals):
        if arrival.decode is None:
            continue
        mine = [k for k, j in enumerate(positions) if owners[j] == index]
        for k, event in zip(mine, arrival.decode([values[k] for k in mine]), strict=True):
            values[k] = event
    return values


_Place = tuple[Chunk, int, int, Any]
"""An event being pushed: its chunk, index there, event time and value."""


def _in_chunk(chunk: Chunk, tss: list[int]) -> Callable[[int], _Place]:
    """Event ``i`` of a chunk being pushed."""

    def at(i: int) -> _Place:
        return chunk, i, tss[i], chunk.values[i]

    return at


def _in_order(
    arrival: Arrival, order: list[int] | None, times: list[int], first: int
) -> Callable[[int], _Place]:
    """Event ``i`` of the slice from ``first`` of a source's events in event-time order."""

    def at(i: int) -> _Place:
        position = first + i
        chunk, index = arrival.locate(position if order is None else order[position])
        return chunk, index, times[position], arrival.value(chunk, index)

    return at


class _DeadLetterCloser:
    """Closes the dead-letter writer with the other writers (it opens lazily)."""

    def __init__(self, dead: DeadLetters) -> None:
        self.dead = dead

    def write(self, value: Any, timestamp: int) -> None:  # pragma: no cover - never a sink
        raise AssertionError("not a sink")

    def flush(self) -> None:
        if self.dead.writer is not None:
            self.dead.writer.flush()

    def close(self) -> None:
        self.dead.close()


def _min_watermark() -> int:
    return MIN_WATERMARK


def _final_watermark() -> int:
    return MAX_WATERMARK


__all__ = ["Runner", "resolve_data_dir", "usable_data_dir"]
