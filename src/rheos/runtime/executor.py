"""What the run loop asks of an executor: one run loop, two executors.

A :class:`~rheos.runtime.runner.Runner` owns a run: its lifecycle (:mod:`.lifecycle`), the
streaming loop's control (which sources are read, ``stop_after``, ``timeout``, stops and
drains, idle sources, flushes, checkpoints and metrics between two reads) and the summary.
How events go through the flow is its executor's, chosen by mode:

- :class:`~rheos.runtime.event_executor.EventExecutor` (stream-first): one event at a time
  through the fused push functions of :mod:`rheos.runtime.compile`;
- :class:`~rheos.runtime.microbatch.executor.BatchExecutor` (micro-batch): whole batches
  through the columnar plan of :mod:`rheos.runtime.microbatch.plan`.

Each one compiles the flow and opens its sources (:meth:`Executor.prepare`), reads a source
and pushes what it read (:meth:`Executor.read`), advances event time (:meth:`Executor.
advance_flow`, :meth:`Executor.finish`) and runs a bounded run whole (:meth:`Executor.
run_bounded`). Both hand bad events to the run's :class:`~rheos.runtime.badevents.BadEvents`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rheos.connectors.base import OpenContext
from rheos.flows.steps import Graph
from rheos.runtime.badevents import BadEvents
from rheos.runtime.build import Compiled
from rheos.runtime.lifecycle import Lifecycle
from rheos.runtime.metrics import FlowMetrics
from rheos.runtime.source_run import SourceRun
from rheos.windowing import Clock

IDLE_WAIT_S = 0.05
"""How long the first source's poll waits after a round in which no source gave events."""
FLUSH_EVERY_S = 0.2


@dataclass(frozen=True)
class RunParts:
    """What an executor is given of the run it executes (:meth:`Executor.prepare`)."""

    graph: Graph
    clock: Clock
    bad: BadEvents
    """Where bad events go."""
    lifecycle: Lifecycle
    """Whether the run was asked to stop (a bounded run waiting on other tasks checks)."""


class Executor(Protocol):
    """How one run's events go through its flow (see the module docs)."""

    name: str
    """The run mode it executes: ``"stream-first"`` or ``"micro-batch"`` (the summary's)."""
    sources: list[SourceRun]
    """The flow's sources, opened by :meth:`prepare`."""
    compiled: Compiled | None
    """The compiled flow (:meth:`prepare`): nodes, sinks and their counters."""
    flow_wm: int
    """The flow watermark the nodes have seen (recorded by checkpoints, set on restore)."""
    discarded: bool
    """Whether events were read and not processed (a ``stop_after`` cut a poll short)."""
    metrics: FlowMetrics | None
    """The run's live metrics, if on (latency samples after each chunk or round)."""
    sample: Callable[[], None] | None
    """Take a metrics sample of the run now (when one is due in the middle of a read)."""
    idle_wait_s: float
    """How long to wait for events after a round that had none."""
    flush_every_s: float
    """How often to flush the sinks while events keep coming (0: after every round)."""

    def prepare(self, parts: RunParts, ctx: OpenContext, late_topic: str | None) -> Compiled:
        """Compile the flow and open its sources (:attr:`sources`); return the compiled flow."""
        ...

    def wire(self) -> None:
        """Connect the nodes to the flow watermark (after a checkpoint was restored)."""
        ...

    def start(self) -> None:
        """A streaming run's loop starts."""
        ...

    def read(self, src: SourceRun, timeout: float, room: int | None) -> int:
        """Poll ``src`` once (waiting up to ``timeout``) and push what it read, at most
        ``room`` events (``None``: all; the rest is sought back to); return how many events
        were run, or 1 if only rejected records were read."""
        ...

    def settle(self) -> int:
        """Run every event read and held back (before a stop or a checkpoint); the count."""
        ...

    def holds(self, src: SourceRun) -> bool:
        """Whether events read from ``src`` are held back, not run yet."""
        ...

    def processing(self, now: Callable[[], int]) -> None:
        """Advance processing-time windows to the clock ``now``, and push what they emit."""
        ...

    def advance_flow(self) -> None:
        """Raise the flow watermark to the sources' minimum; advance the nodes with it."""
        ...

    def finish(self) -> None:
        """The final watermark: close every window, fire every timer."""
        ...

    def run_bounded(self, progress: bool | None) -> None:
        """A bounded run: read every source to its end, push in event-time order, finish."""
        ...


def flow_watermark(sources: list[SourceRun]) -> int:
    """The flow watermark of ``sources``: the minimum of their watermarks."""
    if len(sources) == 1:
        return sources[0].wm
    return min(s.wm for s in sources)


def flush_writers(compiled: Compiled | None) -> None:
    """Flush the flow's sinks (and its dead-letter and late-event writers)."""
    assert compiled is not None
    for writer in compiled.writers:
        writer.flush()


__all__ = ["FLUSH_EVERY_S", "IDLE_WAIT_S", "Executor", "RunParts", "flow_watermark"]
