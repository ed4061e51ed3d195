"""What a run reports: events in and out, disorder and lateness, per source and per step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class SourceStats:
    """One source: events read, out-of-order events and the largest delay, its watermark."""

    name: str
    events: int = 0
    out_of_order: int = 0
    max_delay_ms: int = 0
    watermark: int | None = None


@dataclass(slots=True)
class StepStats:
    """One stateful step (window, join, process): events in, out, out of order, late."""

    name: str
    kind: str
    events_in: int = 0
    events_out: int = 0
    out_of_order: int = 0
    max_delay_ms: int = 0
    late: int = 0
    state_size: int = 0


@dataclass
class RunSummary:
    """The result of :meth:`Flow.run`.

    ``events_in`` counts events read from sources, ``events_out`` events written to the
    flow's sinks (a late stream routed to a sink included; the default ``<flow>.late`` topic
    is not), ``late`` events that missed their window, ``out_of_order`` events older than one
    seen before them on the same source. ``stopped`` says why the run ended: ``"exhausted"``
    (every source, or a bounded run, came to its end), ``"stop_after"``,
    ``"timeout"``, ``"stopped"`` (:meth:`Flow.stop`) or ``"signal"``.
    """

    flow: str
    mode: str
    events_in: int = 0
    events_out: int = 0
    out_of_order: int = 0
    late: int = 0
    elapsed_s: float = 0.0
    stopped: str = ""
    sources: dict[str, SourceStats] = field(default_factory=dict)
    steps: dict[str, StepStats] = field(default_factory=dict)
    late_events: list[Any] = field(default_factory=list)
    """Late records kept in memory when they had nowhere else to go (no late sink routed and
    no data directory chosen); otherwise empty."""

    @property
    def events_per_s(self) -> float:
        """Input events per second of the run."""
        return self.events_in / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def __str__(self) -> str:
        lines = [
            f"flow {self.flow!r} ({self.mode}, {self.stopped}): {self.events_in} in, "
            f"{self.events_out} out, {self.out_of_order} out of order, {self.late} late, "
            f"{self.elapsed_s:.3f}s ({self.events_per_s:,.0f} events/s)"
        ]
        for s in self.sources.values():
            lines.append(
                f"  source {s.name}: {s.events} events, {s.out_of_order} out of order "
                f"(max delay {s.max_delay_ms} ms)"
            )
        for st in self.steps.values():
            lines.append(
                f"  {st.kind} {st.name}: {st.events_in} in, {st.events_out} out, "
                f"{st.out_of_order} out of order (max delay {st.max_delay_ms} ms), {st.late} late"
            )
        return "\n".join(lines)


__all__ = ["RunSummary", "SourceStats", "StepStats"]
