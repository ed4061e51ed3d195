"""Forked snapshots: a periodic checkpoint's state read in a child process, as Redis's
BGSAVE does, so the flow stops only for the ``fork()``.

At a periodic checkpoint the flow's thread prepares its sinks and reads its source positions
(cheap), then forks. The child's memory is a copy-on-write image of the parent's at that
instant -- exactly the state the checkpoint covers -- so it runs the nodes' ordinary
``checkpoint()`` on it, encodes meta and changed keys with msgpack and writes them to a
staged file in the flow's folder (:mod:`rheos.state.staging`), then leaves with
``os._exit``. It closes the files it inherited first (a ``flock`` lasts while any process
holds its file open: the flow's lock, a worker's or a task's claim must end when the parent
lets go of them, not when the child exits). It uses plain file writes only: no SQLite, no
logging, no locks, since other threads of the parent (log flushers, worker tasks, the
store's writer) may hold theirs at the fork, and they do not exist in the child. Its
garbage collector is off, and it runs at a lower CPU priority (:data:`CHILD_NICENESS`)
than the flow, which goes first where they compete for a core.

The parent, right after the fork, takes every node's set of changed keys (constant time:
the set is swapped for an empty one and kept as a token) and goes on. Its cyclic garbage
collector leaves the objects of the fork alone (``gc.freeze``) while the child runs, so it
does not copy every page by touching it (a program that calls ``gc.freeze()`` itself finds
its objects unfrozen once the child has ended). :class:`ForkedWrite` is the checkpoint's pending
write: the checkpointer polls it (``waitpid(WNOHANG)``); once the child has exited 0 the
store's thread reads the file and writes the checkpoint in one transaction, as an inline
checkpoint's. If the child failed (an error, a signal), the tokens are merged back into the
nodes, so the next checkpoint writes those keys.

The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux; elsewhere it checks its parent
before writing): a child left behind could only write a staged file nobody reads, which
the next run removes. ``RHEOS_SNAPSHOT=inline`` turns forked snapshots off (as do platforms
without ``fork``): the state is then read and encoded on the flow's thread. The tasks of a
flow split across workers (threads of a worker process) read their state in-process for now:
under the workers' kill -9 chaos test, forked snapshots there made late events (and so
missing windows) behind a repartition topic more frequent, which is not understood yet.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from rheos.errors import CheckpointError
from rheos.state import Change, CheckpointInfo, CheckpointStore, PendingWrite
from rheos.state.staging import StagedCheckpoint, write_staged

SNAPSHOT_ENV = "RHEOS_SNAPSHOT"
"""``fork`` (the default where ``os.fork`` exists) or ``inline``."""

HOLD_ENV = "RHEOS_TEST_SNAPSHOT_HOLD"
"""Crash tests: a folder; a snapshot child writes ``child-<pid>`` there, then waits until a
file ``release`` appears in it (or it is killed)."""

CHILD_NICENESS = 10
"""How much lower the snapshot process's CPU priority is than the flow's."""

_PR_SET_PDEATHSIG = 1
_STAGED = "snapshot-"


class Checkpointable(Protocol):
    """A stateful node, as a snapshot sees it."""

    def checkpoint(self) -> tuple[dict[str, Any], list[tuple[Any, Any]]]: ...

    def take_changed(self) -> Any: ...

    def merge_changed(self, taken: Any) -> None: ...


def forking() -> bool:
    """Whether periodic checkpoints fork (see the module docs)."""
    mode = os.environ.get(SNAPSHOT_ENV, "fork")
    if mode not in ("fork", "inline"):
        raise CheckpointError(f"{SNAPSHOT_ENV} must be 'fork' or 'inline', got {mode!r}")
    return mode == "fork" and hasattr(os, "fork")


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()
"""Loaded in the parent: a child must not load libraries."""


def node_changes(
    nodes: Iterable[tuple[str, Checkpointable]],
) -> tuple[dict[str, Any], list[Change]]:
    """Every node's checkpoint: operator-wide meta by step, and the changed keys."""
    operators: dict[str, Any] = {}
    changes: list[Change] = []
    for name, node in nodes:
        node_meta, keys = node.checkpoint()
        operators[name] = node_meta
        changes.extend((name, k, v) for k, v in keys)
    return operators, changes


def remove_staged(folder: Path) -> None:
    """Remove the staged files a crashed run left in a flow's folder."""
    for path in folder.glob(f"{_STAGED}*"):
        path.unlink(missing_ok=True)


class ForkedWrite:
    """A periodic checkpoint whose state a child process is writing (see the module docs);
    the pending write of :class:`~rheos.runtime.checkpointing.Checkpointer`."""

    def __init__(
        self,
        store: CheckpointStore,
        info: CheckpointInfo,
        nodes: Sequence[tuple[str, Checkpointable]],
        build_meta: Callable[[dict[str, Any]], dict[str, Any]],
        inside: Callable[[], None] | None,
    ) -> None:
        """Fork now. ``info``: the checkpoint (id, time, epoch, kind); ``build_meta`` makes
        its meta of the operators' (in the child)."""
        self.store = store
        self.info = info
        self.inside = inside
        self.path = store.path.parent / f"{_STAGED}{os.getpid()}-{info.id}"
        self.error: str | None = None
        """Why the child failed (``None``: it has not)."""
        self._write: PendingWrite | None = None
        parent = os.getpid()
        gc.freeze()  # the parent's collector leaves the forked objects be: no page copies
        try:
            with warnings.catch_warnings():  # Python 3.12+ warns of forking with threads
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:  # refused (memory, process limits): the caller reads the state itself
            gc.unfreeze()
            raise
        if pid == 0:
            _child(parent, self.path, info, nodes, build_meta)  # never returns
        self.pid = pid
        self.tokens = [(node, node.take_changed()) for _, node in nodes]

    def _reap(self, *, block: bool) -> bool:
        """Whether the child has ended (its outcome recorded)."""
        if self.pid == 0:
            return True
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): the file says
            pid, status = self.pid, 0
        if pid == 0:
            return False
        self.pid = 0
        gc.unfreeze()
        code = os.waitstatus_to_exitcode(status)
        if code == 0 and self.path.with_name(self.path.name + ".error").exists():
            code = 1
        if code != 0:
            self._failed(code)
            return True
        staged: StagedCheckpoint | None = None
        try:
            staged = StagedCheckpoint(self.path)
            self._write = self.store.write_rows_beside(
                staged.info,
                staged.meta_blob,
                staged.slices(),
                inside=self.inside,
                then=staged.remove,
            )
        except (CheckpointError, OSError) as exc:
            if staged is not None:
                staged.remove()
            self._failed(0, f"staged checkpoint {self.path}: {exc}")
        return True

    def _failed(self, code: int, why: str | None = None) -> None:
        if why is None:
            note = self.path.with_name(self.path.name + ".error")
            try:
                why = note.read_text(errors="replace").strip()
            except OSError:
                why = ""
            note.unlink(missing_ok=True)
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            why = f"snapshot process {how}" + (f": {why}" if why else "")
        self.path.unlink(missing_ok=True)
        self.error = why
        for node, taken in self.tokens:  # the next checkpoint writes these keys
            node.merge_changed(taken)
        self.tokens = []

    def done(self) -> bool:
        """Whether the checkpoint has ended: stored, or failed (:attr:`error`, or
        :meth:`result` raising when the store failed)."""
        if not self._reap(block=False):
            return False
        return self._write is None or self._write.done()

    def result(self) -> CheckpointInfo | None:
        """Wait for the checkpoint: ``None`` if the child failed (:attr:`error` says why),
        else the stored checkpoint (:class:`CheckpointError` if the store failed)."""
        self._reap(block=True)
        if self._write is None:
            return None
        return self._write.result()

    def cancel(self) -> None:
        """Stop the child (a run ending on an error) and forget this checkpoint."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap(block=True)


def _open_max() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (OSError, ValueError):
        return 65_536


def _die_with_parent(parent: int) -> None:
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before that
        os._exit(3)


def _hold(folder: str) -> None:
    """Crash tests: say the child runs, then wait to be released (or killed)."""
    here = Path(folder)
    (here / f"child-{os.getpid()}").touch()
    while not (here / "release").exists():
        time.sleep(0.01)


def _child(
    parent: int,
    path: Path,
    info: CheckpointInfo,
    nodes: Sequence[tuple[str, Checkpointable]],
    build_meta: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """The snapshot process: checkpoint the nodes' state at the fork into ``path``."""
    code = 1
    try:
        gc.disable()
        # the parent's files, closed here: a flock (a flow's, a worker's, a task's claim)
        # lasts while any process holds its file open, and must end when the parent lets go
        os.closerange(3, _open_max())
        # a Ctrl-C or a SIGTERM to the process group is the parent's to handle
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        _die_with_parent(parent)
        os.nice(CHILD_NICENESS)  # where the two compete for a core, the flow goes first
        hold = os.environ.get(HOLD_ENV)
        if hold:
            _hold(hold)
        operators, changes = node_changes(nodes)
        meta = build_meta(operators)
        staged = CheckpointInfo(info.id, info.created_ms, info.epoch, info.kind, meta, 0)
        write_staged(path, staged, changes)
        code = 0
    except BaseException as exc:
        try:
            note = path.with_name(path.name + ".error")
            note.write_text(f"{type(exc).__name__}: {exc}")
        except BaseException:
            pass
    finally:
        os._exit(code)


__all__ = [
    "HOLD_ENV",
    "SNAPSHOT_ENV",
    "Checkpointable",
    "ForkedWrite",
    "forking",
    "node_changes",
    "remove_staged",
]
