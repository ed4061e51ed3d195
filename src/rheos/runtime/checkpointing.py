"""Checkpoints of a running flow, and recovery from them.

The run loop is single-threaded, so a checkpoint taken *between* two rounds of polls is
consistent by construction: every event read so far has been fully processed, nothing else
is in flight. Taking one (:meth:`Checkpointer.take`):

1. flush the sinks: transactional ones (log sinks, :class:`~rheos.connectors.base.
   TransactionalWriter`) :meth:`prepare` -- durable, still invisible -- and return their
   positions; the others (files, stdout, callbacks) just flush: they are **at least once**;
2. record source positions (per source, per partition: the next offset), watermark trackers,
   operator state (only the keys changed since the last checkpoint) and the sinks' prepared
   positions, in one SQLite transaction (:class:`~rheos.state.CheckpointStore`);
3. then commit the transactional sinks: their output becomes visible to committed readers.

A periodic checkpoint stops the flow only for step 1 and a ``fork()``: its state is read and
encoded in the child process (:mod:`rheos.runtime.snapshot`; ``RHEOS_SNAPSHOT=inline``, or a
platform without ``fork``, reads it on the flow's thread instead). Its SQLite transaction (2)
is written in a thread beside the flow (SQLite works without the GIL), and its sinks commit
(3) as soon as the loop next finds it committed. Output written meanwhile belongs to the next
checkpoint. A stop's, a drain's and a dead-letter replay's checkpoint reads the state on the
flow's thread and is finished before the run goes on.

A crash before 2 completes leaves the previous checkpoint as the latest; a crash between 2
and 3 leaves a checkpoint whose output is written but not yet marked committed. Either way,
recovery (:meth:`Checkpointer.restore`) loads the latest checkpoint, seeks the sources to its
positions and asks every transactional sink to :meth:`recover` to it: log sinks cut their
tail back to the recorded offsets and mark everything before them committed. Consumer
groups are still committed after each checkpoint, but for the flow's own progress the
checkpoint is the truth: its positions override the group's.

A flow with ``state="disk"`` (:mod:`rheos.state.disk`) keeps its keys in a file of its own:
its checkpoint writes the cache's changed keys there and commits that file's transaction,
with the checkpoint's whole record, on the flow's thread before step 2 (no forked snapshot).
The file may thus be one checkpoint ahead of the store after a crash; :meth:`Checkpointer.
restore` then writes that checkpoint into the store from the record first (it rolls forward).

Checkpoints are taken in streaming runs whose sources can seek (log sources), when a data
directory is chosen and ``checkpoint_interval`` is not ``None``. Bounded runs and flows over
iterables or files compute from the start every time.
"""

from __future__ import annotations

import fcntl
import gc
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import IO, Any

from rheos.connectors.base import OpenContext, SeekableReader, SinkWriter, TransactionalWriter
from rheos.errors import CheckpointError, LogError
from rheos.flows.steps import Graph, SourceStep
from rheos.runtime.nodes import Node
from rheos.runtime.snapshot import SNAPSHOT_ENV, ForkedWrite, forking, node_changes, remove_staged
from rheos.runtime.source_run import SourceRun
from rheos.runtime.summary import CheckpointStats
from rheos.state import CheckpointInfo, CheckpointStore, PendingWrite, state_dir
from rheos.state.disk import StateDB
from rheos.state.store import decode_value, encode_value
from rheos.transport import Log


@dataclass(frozen=True)
class Checkpointed:
    """What a checkpoint records of a run, and what restoring one sets: all the checkpointer
    is handed of it (:meth:`Checkpointer.bind`), never the runner."""

    sources: Sequence[SourceRun]
    """Read: each one's positions, watermark tracker, highest time and watermark; set on
    restore (and the readers sought back to the positions)."""
    nodes: Sequence[Node]
    """The stateful steps: their state is read (changed keys) and restored."""
    writers: Mapping[str, SinkWriter]
    """The opened sinks by name: prepared and committed with a checkpoint, recovered to it."""
    watermark: Callable[[], int]
    """The flow watermark now (recorded; :meth:`Checkpointer.restore` returns the saved one)."""
    disk: StateDB | None = None
    """The run's disk state (``state="disk"``): committed with each checkpoint, before the
    store (see the module docs); ``None``: keyed state in memory."""


class FlowLock:
    """An exclusive lock on a flow's folder: one running (or replaying) process per flow."""

    def __init__(self, data_dir: str, flow: str, task: int | None = None) -> None:
        self.path = state_dir(data_dir, flow, task) / "lock"
        self.what = f"flow {flow!r}" if task is None else f"task {task} of flow {flow!r}"
        self._file: IO[bytes] | None = None

    def acquire(self, *, shared: bool = False) -> None:
        """Take the lock, or raise :class:`CheckpointError` at once if another process holds
        it. ``shared``: held together with other shared holders (the workers of a flow split
        across workers), excluding the exclusive ones (a single-process run, a reset)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "ab")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(f.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise CheckpointError(
                f"{self.what} is running in another process (lock {self.path})"
            ) from None
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Checkpointer:
    """Takes the checkpoints of one run and restores the latest one (see the module docs)."""

    def __init__(
        self,
        store: CheckpointStore,
        interval_ms: int | None,
        *,
        flow: str,
        data_dir: str,
        task: int | None = None,
    ) -> None:
        self.flow = flow
        self.data_dir = data_dir
        self.store = store
        self.run: Checkpointed | None = None
        """What the checkpoints record and restore (:meth:`bind`)."""
        self.interval_s = None if interval_ms is None else interval_ms / 1000
        self.stats = CheckpointStats()
        self.restored: CheckpointInfo | None = store.latest()
        self.epoch = self.restored.epoch if self.restored is not None else 0
        meta = self.restored.meta if self.restored is not None else {}
        self.sink_infos: dict[str, Any] = dict(meta.get("sinks", {}))
        """Prepared positions per sink, carried forward for sinks not opened in this run."""
        self.extra: dict[str, Any] = {
            "dlq_replayed": meta.get("dlq_replayed", {}),
            "replay": meta.get("replay", {}),
        }
        self.last = time.monotonic()
        self._pending: _Pending | None = None
        self.fork = forking() and task is None
        """Periodic checkpoints read the state in a forked process (:mod:`.snapshot`); not
        yet in the tasks of a flow split across workers, which read it in-process."""
        self.failures = 0
        """Forked snapshots failed in a row."""
        remove_staged(store.path.parent)  # what a crashed run's snapshot process left
        self.pause_hook = os.environ.get("RHEOS_TEST_CHECKPOINT_PAUSE")
        """Crash tests: a file that exists while a checkpoint is between its transaction's
        start and the sinks' commit (each checkpoint pauses there a moment)."""

    def bind(self, run: Checkpointed) -> None:
        """What the checkpoints of this run record, and what a restore sets."""
        self.run = run

    def _bound(self) -> Checkpointed:
        if self.run is None:
            raise CheckpointError(f"flow {self.flow!r}: the checkpointer is bound to no run")
        return self.run

    # -- restore -----------------------------------------------------------------------------

    def restore(self) -> int | None:
        """Load the latest checkpoint into the bound run's sources and nodes, seek the
        sources, recover the sinks; return the flow watermark it saved (``None``: none)."""
        started = time.perf_counter()
        try:
            return self._restore()
        finally:
            self.stats.restore_s = time.perf_counter() - started

    def _restore(self) -> int | None:
        run = self._bound()
        self._check_backend(run.disk)
        if run.disk is not None:
            self._roll_forward(run.disk)
        info = self.restored
        for name, writer in run.writers.items():
            self.recover_writer(name, writer)
        self._recover_unopened(set(run.writers))
        if info is None:
            return None
        self.stats.restored_from = info.id
        meta = info.meta
        nodes = {node.step.name: node for node in run.nodes}
        ops = meta.get("operators", {})
        for name in ops:
            if name not in nodes:
                raise CheckpointError(
                    f"flow {self.flow!r}: checkpoint {info.id} has state of step "
                    f"{name!r}, which the flow no longer has"
                )
        stored = self.store.state(info.id)
        seen: set[str] = set()
        for op, group in groupby(stored, key=lambda row: row[0]):
            if op in nodes:
                nodes[op].restore(ops[op], ((k, v) for _, k, v in group))
                seen.add(op)
        for name in ops.keys() - seen:
            nodes[name].restore(ops[name], iter(()))
        for src in run.sources:
            saved = meta["sources"].get(src.step.name)
            if saved is None:
                continue
            src.tracker.load(saved["tracker"])
            src.top, src.wm = saved["top"], saved["wm"]
            reader = src.reader
            if not isinstance(reader, SeekableReader):
                continue
            try:
                reader.seek({int(p): int(o) for p, o in saved["positions"].items()})
            except LogError as exc:
                raise CheckpointError(
                    f"flow {self.flow!r}: cannot rewind source {src.step.name!r} to "
                    f"checkpoint {info.id}: {exc}"
                ) from exc
        saved_wm = meta.get("flow_wm")
        return None if saved_wm is None else int(saved_wm)

    def _check_backend(self, disk: StateDB | None) -> None:
        """Refuse to restore a checkpoint taken with the other state backend: its keys are
        not where this run would read them."""
        info = self.restored
        if info is None:
            return
        was = info.meta.get("state", "memory")
        now = "memory" if disk is None else "disk"
        if was != now:
            raise CheckpointError(
                f"flow {self.flow!r}: checkpoint {info.id} ({self.store.path}) "
                f"was taken with state={was!r}, and this run has state={now!r}: run the flow "
                f"with state={was!r}, or reset it (flow.reset()) to start afresh"
            )

    def _roll_forward(self, disk: StateDB) -> None:
        """Bring the store level with the flow's disk state (see :mod:`rheos.state.disk`):
        a crash between the state file's commit of a checkpoint and the store's leaves the
        file one checkpoint ahead, and that checkpoint is written into the store from the
        record the file keeps. A state file with no checkpoint the store knows of (the
        store was reset) starts empty."""
        flow = self.flow
        latest = self.restored
        committed = disk.committed()
        if committed is None:
            if latest is not None:
                raise CheckpointError(
                    f"flow {flow!r}: the checkpoint store {self.store.path} has checkpoint "
                    f"{latest.id}, but the disk state {disk.path} has none: the state file "
                    "was removed or replaced"
                )
            return
        cid, record = committed
        if latest is not None and cid == latest.id:
            return
        if cid != self.store.next_id():
            if latest is None:  # a state file left from before the store was reset
                disk.reset()
                return
            raise CheckpointError(
                f"flow {flow!r}: the disk state {disk.path} is of checkpoint {cid}, the "
                f"checkpoint store {self.store.path}'s latest is {latest.id}: a flow with "
                "state='disk' keeps only its latest state, so it cannot be rolled back to "
                "an older checkpoint (rheos replay)"
            )
        _, created, epoch, kind, meta, changes = decode_value(record)
        info = self.store.write(
            meta, [tuple(c) for c in changes], epoch=epoch, kind=kind, created_ms=created
        )
        self.restored = info
        self.epoch = info.epoch
        self.sink_infos = dict(meta.get("sinks", {}))
        self.extra = {
            "dlq_replayed": meta.get("dlq_replayed", {}),
            "replay": meta.get("replay", {}),
        }

    def _recover_unopened(self, opened: set[str]) -> None:
        """Finish the commit of the log topics the restored checkpoint prepared that this run
        has not opened (yet): the dead letters and late events, opened at their first
        record. A run that never writes one must still make visible what the checkpoint
        covered, and drop what was written after it."""
        if self.restored is None:
            return
        log: Log | None = None
        for name, prepared in self.sink_infos.items():
            if name in opened or not isinstance(prepared, dict):
                continue
            topic, positions = prepared.get("topic"), prepared.get("positions")
            if not isinstance(topic, str) or not isinstance(positions, dict):
                continue  # not a log topic's
            log = log or Log(self.data_dir)
            if not log.has_topic(topic):
                continue
            with log.producer(topic, transactional=True) as producer:
                producer.rollback_to({int(p): int(o) for p, o in positions.items()})

    def recover_writer(self, name: str, writer: SinkWriter) -> None:
        """Bring one transactional writer back to the restored checkpoint."""
        if isinstance(writer, TransactionalWriter):
            info = self.restored
            try:
                writer.recover(None if info is None else info.id, self.sink_infos.get(name))
            except LogError as exc:
                raise CheckpointError(
                    f"flow {self.flow!r}: cannot recover sink {name!r}: {exc}"
                ) from exc

    # -- take --------------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        """Whether a periodic checkpoint is due now: ``interval`` after the last one
        committed, once the store is done with it (first, the one being written is finished
        if its transaction has committed: its sinks' output becomes visible). A store slower
        than the interval spaces checkpoints out rather than stopping the flow."""
        pending = self._pending
        if pending is not None and pending.write.done():
            self._finish()
        if self.interval_s is None or now - self.last < self.interval_s:
            return False
        return self._pending is None and not self.store.busy()

    def take(self, kind: str = "periodic") -> CheckpointInfo:
        """Take one checkpoint now (see the module docs) and return it.

        The flow pauses only while its state is read and encoded. A periodic checkpoint is
        then written beside the flow (its sinks commit when :meth:`due` next finds it
        committed); the others (a stop, a drain, a dead-letter replay) are finished before
        this returns."""
        self._finish()
        collecting = gc.isenabled()
        gc.disable()  # the snapshot makes many small objects and frees none of them
        try:
            return self._take(kind)
        finally:
            if collecting:
                gc.enable()

    def _take(self, kind: str) -> CheckpointInfo:
        started = time.perf_counter()
        run = self._bound()
        cid = self.store.next_id()
        transactional: list[TransactionalWriter] = []
        for name, writer in run.writers.items():
            if isinstance(writer, TransactionalWriter):
                self.sink_infos[name] = writer.prepare(cid)
                transactional.append(writer)
            else:
                writer.flush()
        sources = {}
        for src in run.sources:
            reader = src.reader
            if not isinstance(reader, SeekableReader):
                continue  # dead-letter replay of a flow over iterables or files
            sources[src.step.name] = {
                "positions": reader.positions(),
                "tracker": src.tracker.snapshot(),
                "top": src.top,
                "wm": src.wm,
            }
        nodes = [(node.step.name, node) for node in run.nodes]
        flow_wm = run.watermark()

        def build_meta(operators: dict[str, Any]) -> dict[str, Any]:
            return {
                "flow": self.flow,
                "sources": sources,
                "flow_wm": flow_wm,
                "operators": operators,
                "sinks": self.sink_infos,
                "state": "memory" if run.disk is None else "disk",
                **self.extra,
            }

        write: PendingWrite | ForkedWrite | None = None
        disk = run.disk
        if kind == "periodic" and self.fork and disk is None:
            # the state is read in a child process; the flow stops only for the fork
            created = int(time.time() * 1000)
            info = CheckpointInfo(cid, created, self.epoch, kind, build_meta({}), 0)
            try:
                write = ForkedWrite(self.store, info, nodes, build_meta, self._pause_inside)
            except OSError as exc:  # no fork this time: the state is read here
                self.stats.record_failure(f"fork failed: {exc}")
        if write is None:
            operators, changes = node_changes(nodes)
            meta = build_meta(operators)
            created = int(time.time() * 1000)
            if disk is not None:  # the state file first: see _roll_forward
                disk.commit(cid, encode_value([cid, created, self.epoch, kind, meta, changes]))
            write = self.store.write_beside(
                meta,
                changes,
                epoch=self.epoch,
                kind=kind,
                created_ms=created,
                inside=self._pause_inside,
            )
        pause = time.perf_counter() - started
        self.stats.record_pause(pause)
        self._pending = _Pending(write, transactional, started, pause)
        if kind != "periodic":
            self._finish()
        return write.info

    def _finish(self) -> None:
        """Wait for the checkpoint being written, then commit its sinks (see the module
        docs): what they wrote before it became visible."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        info = pending.write.result()
        if info is None:  # a forked snapshot failed: its keys go in the next checkpoint
            assert isinstance(pending.write, ForkedWrite)
            self._snapshot_failed(pending.write)
            return
        self.failures = 0
        if self.pause_hook:  # and between the store's commit and the sinks'
            time.sleep(float(os.environ.get("RHEOS_TEST_CHECKPOINT_PAUSE_S", "0.05")))
        for tw in pending.sinks:
            tw.commit(info.id)
        if self.pause_hook:
            Path(self.pause_hook).unlink(missing_ok=True)
        for src in self._bound().sources:
            src.reader.commit()  # consumer groups: secondary to the checkpoint
        self.last = time.monotonic()
        self.stats.record(
            info.size_bytes,
            time.perf_counter() - pending.started,
            info.id,
            info.kind,
            pending.pause,
        )

    def _snapshot_failed(self, write: ForkedWrite) -> None:
        """Record a failed forked snapshot; the flow goes on (its sinks stay prepared: the
        next checkpoint covers their output too), unless snapshots keep failing."""
        self.failures += 1
        self.stats.record_failure(write.error or "")
        self.last = time.monotonic()
        if self.failures >= MAX_FAILURES:
            raise CheckpointError(
                f"flow {self.flow!r}: {self.failures} checkpoints in a row failed "
                f"(checkpoint {write.info.id}, {self.store.path}): {write.error}; set "
                f"{SNAPSHOT_ENV}=inline to read the state on the flow's thread instead"
            )

    def _pause_inside(self) -> None:
        if self.pause_hook:  # inside the store's transaction
            Path(self.pause_hook).touch()
            time.sleep(float(os.environ.get("RHEOS_TEST_CHECKPOINT_PAUSE_S", "0.05")))

    def close(self) -> None:
        """Close the store once a checkpoint being written is stored. Its sinks, closed by
        now, are not committed here: the next run's recovery finishes that, as after a crash
        between the two (a run ends with a stop's checkpoint, finished, unless it failed)."""
        pending, self._pending = self._pending, None
        if pending is not None and isinstance(pending.write, ForkedWrite):
            pending.write.cancel()
        self.store.close()


def start_checkpoints(
    graph: Graph,
    ctx: OpenContext,
    *,
    data_dir: str,
    task: int | None,
    keep: int,
    interval_ms: int | None,
    wanted: bool,
    force: bool = False,
) -> tuple[Checkpointer | None, FlowLock | None]:
    """Decide whether a run checkpoints; if so lock the flow, open its store and return its
    checkpointer and the lock (the context's sinks then write transactionally).

    A run checkpoints when ``wanted`` (a streaming run, a usable data directory and an
    interval) and every source can seek; ``force``: always (a dead-letter replay)."""
    seekable = all(
        getattr(step.source, "seekable", False)
        for step in graph.steps
        if isinstance(step, SourceStep)
    )
    if (not wanted or not seekable) and not force:
        return None, None
    lock = FlowLock(data_dir, graph.name, task)
    lock.acquire()
    try:
        store = CheckpointStore.for_flow(data_dir, graph.name, keep=keep, task=task)
    except BaseException:
        lock.release()
        raise
    checkpointer = Checkpointer(store, interval_ms, flow=graph.name, data_dir=data_dir, task=task)
    ctx.transactional = True
    ctx.epoch = checkpointer.epoch
    return checkpointer, lock


@dataclass
class _Pending:
    """A periodic checkpoint being written beside the flow, and the sinks to commit then."""

    write: PendingWrite | ForkedWrite
    sinks: list[TransactionalWriter]
    started: float
    pause: float


MAX_FAILURES = 3
"""Forked snapshots that may fail in a row before the run stops with an error."""

__all__ = ["Checkpointed", "Checkpointer", "FlowLock", "start_checkpoints"]
