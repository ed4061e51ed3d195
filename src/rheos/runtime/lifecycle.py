"""A run's lifecycle: where it keeps its files, how it is asked to stop, how it ends.

:func:`resolve_data_dir` and :func:`usable_data_dir` choose the data directory of a run. A
:class:`Lifecycle` holds the run's stop request -- :meth:`Lifecycle.stop` from any thread,
SIGINT or SIGTERM while a run on the main thread has :meth:`Lifecycle.install_signals` --
and ends the run (:meth:`Lifecycle.shut`): its sinks and sources are closed, then its
checkpoints and the flow's lock. It knows nothing of how events are pushed (the executors,
:mod:`rheos.runtime.executor`) or what is done with a bad one (:mod:`.badevents`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import warnings
from collections.abc import Callable
from typing import Any

from rheos.connectors.base import OpenContext
from rheos.errors import FlowError, NoDataDirWarning
from rheos.runtime.build import Compiled
from rheos.runtime.checkpointing import Checkpointer, FlowLock
from rheos.runtime.source_run import SourceRun
from rheos.transport import default_data_dir


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


class Lifecycle:
    """The stop request of one run of flow ``flow`` (task ``task`` of a split flow), and its
    end (see the module docs)."""

    def __init__(self, flow: str, task: int | None = None) -> None:
        self.flow = flow
        self.task = task
        self._stop = threading.Event()
        self.reason = "stopped"
        """Why the run was asked to stop (given to :meth:`stop`)."""
        self.drain: bool | None = None
        """The ``drain`` given to :meth:`stop`: overrides the run's own (``None``: not)."""

    def stop(self, reason: str = "stopped", *, drain: bool | None = None) -> None:
        """Ask the run to stop (thread-safe); see :meth:`rheos.runtime.Runner.stop`."""
        self.reason = reason
        self.drain = drain
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self._stop.is_set()

    def install_signals(self) -> Callable[[], None]:
        """Stop the run on SIGINT and SIGTERM (on the main thread only); return the function
        that puts the previous handlers back."""
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

    def waiting(self, src: SourceRun) -> Callable[[], None]:
        """For a bounded run reading a repartition topic to the other tasks' end markers:
        raise if the run was stopped meanwhile (another task of the flow failed)."""

        def check() -> None:
            if self._stop.is_set():
                raise FlowError(
                    f"flow {self.flow!r}, task {self.task}: stopped ({self.reason}) "
                    f"while source {src.step.name!r} waited for the other tasks' end markers"
                )

        return check

    def shut(
        self,
        ctx: OpenContext,
        compiled: Compiled | None,
        sources: list[SourceRun],
        checkpointer: Checkpointer | None,
        lock: FlowLock | None,
    ) -> None:
        """End a run: close its sinks and sources, then its checkpoints and the flow's lock."""
        try:
            _close(ctx, compiled, sources)
        finally:
            if checkpointer is not None:
                checkpointer.close()
            if lock is not None:
                lock.release()


def _close(ctx: OpenContext, compiled: Compiled | None, sources: list[SourceRun]) -> None:
    errors: list[BaseException] = []
    if compiled is not None:
        for writer in compiled.writers:
            try:
                writer.close()
            except Exception as exc:  # close the rest, then report
                errors.append(exc)
    for src in sources:
        src.reader.close()
    ctx.close()
    if errors:
        raise errors[0]


__all__ = ["Lifecycle", "resolve_data_dir", "usable_data_dir"]
