"""What a run reports: events in and out, disorder and lateness, per source and per step."""

from __future__ import annotations

import time
from collections import deque
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


@dataclass(slots=True)
class CheckpointStats:
    """Checkpoints of one run: how many, how long, how big; where the run resumed from."""

    count: int = 0
    total_s: float = 0.0
    last_s: float = 0.0
    max_s: float = 0.0
    last_bytes: int = 0
    total_bytes: int = 0
    last_id: int | None = None
    restored_from: int | None = None
    """The checkpoint this run resumed from (``None``: it started from the beginning)."""
    restore_s: float = 0.0
    """Seconds spent restoring it (state, sources, sinks)."""
    last_at: float | None = None
    """``time.monotonic()`` of the last checkpoint."""
    max_pause_s: float = 0.0
    """The longest the flow stopped for a checkpoint: preparing its sinks and forking a
    snapshot process (a periodic one), or reading and encoding its state (a stop's, a
    drain's, or any with ``RHEOS_SNAPSHOT=inline``); the rest is written beside the flow."""
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    """The latest checkpoints of this run: ``{"id", "time_ms", "kind", "duration_s",
    "pause_s", "bytes"}`` (``pause_s``: how long the flow stopped for it), oldest first."""

    failures: int = 0
    """Forked snapshots that failed (their keys went into the next checkpoint)."""
    last_failure: str | None = None
    """Why the last one failed."""

    def record_failure(self, why: str) -> None:
        self.failures += 1
        self.last_failure = why

    def record_pause(self, seconds: float) -> None:
        self.max_pause_s = max(self.max_pause_s, seconds)

    def record(
        self, size: int, seconds: float, checkpoint: int, kind: str = "", pause: float = 0.0
    ) -> None:
        self.count += 1
        self.total_s += seconds
        self.last_s = seconds
        self.max_s = max(self.max_s, seconds)
        self.last_bytes = size
        self.total_bytes += size
        self.last_id = checkpoint
        self.last_at = time.monotonic()
        self.history.append(
            {
                "id": checkpoint,
                "time_ms": time.time_ns() // 1_000_000,
                "kind": kind,
                "duration_s": round(seconds, 6),
                "pause_s": round(pause, 6),
                "bytes": size,
            }
        )

    @property
    def since_last_s(self) -> float | None:
        """Seconds since the last checkpoint of this run (``None`` before the first)."""
        return None if self.last_at is None else time.monotonic() - self.last_at


@dataclass
class RunSummary:
    """The result of :meth:`Flow.run`.

    ``events_in`` counts events read from sources, ``events_out`` events written to the
    flow's sinks (a late stream routed to a sink included; the default ``<flow>.late`` topic
    is not), ``late`` events that missed their window, ``out_of_order`` events older than one
    seen before them on the same source. ``stopped`` says why the run ended: ``"exhausted"``
    (every source, or a bounded run, came to its end), ``"drained"`` (a dead-letter replay
    that closed every window), ``"stop_after"``,
    ``"timeout"``, ``"stopped"`` (:meth:`Flow.stop`) or ``"signal"``.
    """

    flow: str
    mode: str
    events_in: int = 0
    executor: str = "stream-first"
    """How events went through the flow: ``"stream-first"`` (one at a time) or
    ``"micro-batch"`` (the mode asked for, or what a bounded run chose, see
    :func:`rheos.runtime.bounded_mode`)."""
    events_out: int = 0
    out_of_order: int = 0
    late: int = 0
    elapsed_s: float = 0.0
    stopped: str = ""
    sources: dict[str, SourceStats] = field(default_factory=dict)
    steps: dict[str, StepStats] = field(default_factory=dict)
    late_events: list[Any] = field(default_factory=list)
    """The run's first 1,000 late records that went to the default late output (the topic
    ``<flow>.late``); every one of them when the data directory cannot be written. Late
    records routed to a sink with ``.late()`` are not kept here."""
    dead_lettered: dict[tuple[str, str], int] = field(default_factory=dict)
    """Bad events sent to ``<flow>.dlq``, per ``(step, error type)``."""
    skipped: dict[tuple[str, str], int] = field(default_factory=dict)
    """Bad events dropped by an ``on_error="skip"`` policy, per ``(step, error type)``."""
    dead_letters: list[Any] = field(default_factory=list)
    """The run's first 1,000 dead letters (all of them are in the topic ``<flow>.dlq``; when the
    data directory cannot be written, every one is kept here and only here)."""
    checkpoints: CheckpointStats = field(default_factory=CheckpointStats)
    epoch: int = 0
    """The flow's replay epoch (0 until the first ``rheos replay``)."""
    dead_letters_replayed: int = 0
    bad_events: int = 0
    """Source events that went bad in this run (dead-lettered or skipped): of
    :attr:`dead_lettered` and :attr:`skipped`, those that held an event (a window closing or
    a timer firing that failed has none)."""
    dead_letters_again: int = 0
    """Of :attr:`dead_lettered`, the bad events already in ``<flow>.dlq`` (not replayed yet)
    from an earlier run over the same input: counted, not written twice."""

    @property
    def dead(self) -> int:
        """Bad events dead-lettered in this run."""
        return sum(self.dead_lettered.values())

    @property
    def skipped_count(self) -> int:
        """Bad events skipped in this run."""
        return sum(self.skipped.values())

    @property
    def events_read(self) -> int:
        """Events read from the sources: :attr:`events_in` and those rejected at a source."""
        at_source = sum(
            n
            for counts in (self.dead_lettered, self.skipped)
            for (step, _), n in counts.items()
            if step in self.sources
        )
        return self.events_in + at_source

    def bad_events_note(self) -> str | None:
        """A warning when most events read were bad (dead-lettered or skipped), else None."""
        read = self.events_read
        bad = self.bad_events
        if read == 0 or bad * 2 <= read:
            return None
        by = {**self.dead_lettered, **self.skipped}
        (step, kind), _ = max(by.items(), key=lambda item: item[1])
        share = "every one" if bad >= read else f"{bad:,}"
        where = f"`rheos dlq {self.flow}`" if self.dead else "the skipped counts"
        first = next((letter for letter in self.dead_letters if letter.step == step), None)
        why = f": {first.message}" if first is not None else ""
        return (
            f"flow {self.flow!r}: {share} of the {read:,} events read went bad, most at step "
            f"{step!r} ({kind}{why}); see {where}. Is the flow reading the right fields?"
        )

    @property
    def events_per_s(self) -> float:
        """Input events per second of the run."""
        return self.events_in / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def __str__(self) -> str:
        how = "" if self.executor == "stream-first" else f"{self.executor}, "
        lines = [
            f"flow {self.flow!r} ({self.mode}, {how}{self.stopped}): {self.events_in} in, "
            f"{self.events_out} out, {self.out_of_order} out of order, {self.late} late, "
            f"{self.elapsed_s:.3f}s ({self.events_per_s:,.0f} events/s)"
        ]
        for s in self.sources.values():
            lines.append(
                f"  source {s.name}: {s.events} events, {s.out_of_order} out of order "
                f"(max delay {s.max_delay_ms} ms)"
            )
        for (step, kind), n in sorted({**self.dead_lettered}.items()):
            lines.append(f"  dead-lettered at {step}: {n} {kind}")
        if self.dead:
            again = self.dead_letters_again
            note = f" ({again} already there from an earlier run)" if again else ""
            lines.append(f"  dead letters: {self.flow}.dlq{note}; rheos dlq {self.flow}")
        for (step, kind), n in sorted(self.skipped.items()):
            lines.append(f"  skipped at {step}: {n} {kind}")
        c = self.checkpoints
        if c.count or c.restored_from is not None:
            lines.append(
                f"  checkpoints: {c.count} ({c.total_s * 1000:.0f} ms, {c.total_bytes} bytes), "
                f"last {c.last_id}, resumed from {c.restored_from}, epoch {self.epoch}"
            )
        for st in self.steps.values():
            lines.append(
                f"  {st.kind} {st.name}: {st.events_in} in, {st.events_out} out, "
                f"{st.out_of_order} out of order (max delay {st.max_delay_ms} ms), {st.late} late"
            )
        held = sum(st.state_size for st in self.steps.values())
        if held and self.stopped not in ("exhausted", "drained", ""):
            kept = (
                f"kept in checkpoint {c.last_id}: they go on when the flow runs again"
                if c.count
                else "dropped with the run (no checkpoint)"
            )
            lines.append(
                f"  open state at the stop: {held} entries, {kept}; a drained stop "
                "(rheos run --drain, run(drain=True)) closes every window instead"
            )
        return "\n".join(lines)


__all__ = ["CheckpointStats", "RunSummary", "SourceStats", "StepStats"]
