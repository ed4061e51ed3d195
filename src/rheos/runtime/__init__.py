"""Running flows: the stream-first executor.

:class:`Flow` is the flow description of :mod:`rheos.flows` plus :meth:`Flow.run` and
:meth:`Flow.stop`; :func:`run_flow` runs any description. The executor compiles a flow into
fused push functions (:mod:`rheos.runtime.compile`), drives event time per source
(:mod:`rheos.runtime.runner`) and reports a :class:`RunSummary`.

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

import threading
from typing import Any

from rheos.flows import Flow as FlowDescription
from rheos.runtime.runner import Runner, resolve_data_dir
from rheos.runtime.summary import RunSummary, SourceStats, StepStats
from rheos.windowing import Clock


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
) -> RunSummary:
    """Run ``flow`` once (see :meth:`Flow.run`)."""
    runner = Runner(flow.graph(), data_dir=data_dir or flow.data_dir, clock=clock or flow.clock)
    return runner.run(
        bounded=bounded, stop_after=stop_after, timeout=timeout, drain=drain, progress=progress
    )


class Flow(FlowDescription):
    """A flow you can run. See :class:`rheos.flows.Flow` for building it."""

    def __init__(self, name: str, *, data_dir: Any = None, clock: Clock | None = None) -> None:
        super().__init__(name, data_dir=data_dir, clock=clock)
        self._runner: Runner | None = None
        self._lock = threading.Lock()
        self.last_summary: RunSummary | None = None

    def run(
        self,
        *,
        bounded: bool = False,
        stop_after: int | None = None,
        timeout: float | None = None,
        drain: bool = False,
        clock: Clock | None = None,
        progress: bool | None = None,
    ) -> RunSummary:
        """Run the flow and return its :class:`RunSummary`.

        Streaming (default): events are processed as they are read; returns when every
        source is exhausted (after a final watermark that closes all windows), or on
        :meth:`stop`, SIGINT/SIGTERM, after ``stop_after`` input events or ``timeout``
        seconds (``drain=True`` then closes the open windows too). A log source never ends.

        Bounded (``bounded=True``): reads every source to its end (log topics: their end at
        the start of the run) and computes the batch answer: no event is late and arrival
        order does not matter. Shows a progress bar when standard output is a terminal
        (``progress=`` forces it on or off).

        Consumer groups (``log_source(..., group=)``) commit their offsets when the run ends
        with every event read accounted for: a bounded run, exhausted sources, or a stop with
        ``drain=True``. A stop without draining commits nothing, so the next run reads those
        events again (at least once; open windows are not checkpointed by this runtime).
        """
        runner = Runner(self.graph(), data_dir=self.data_dir, clock=clock or self.clock)
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
        self.last_summary = summary
        return summary

    def stop(self) -> None:
        """Stop a running :meth:`run` from another thread (it returns soon after)."""
        with self._lock:
            if self._runner is not None:
                self._runner.stop()

    @property
    def resolved_data_dir(self) -> str:
        """The data directory a run uses: ``data_dir``, else ``RHEOS_DATA_DIR``, else default."""
        return resolve_data_dir(self.data_dir)[0]


__all__ = ["Flow", "RunSummary", "Runner", "SourceStats", "StepStats", "run_flow"]
