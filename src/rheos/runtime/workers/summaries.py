"""The summaries of the task runs of a flow split across workers, added up.

A worker adds up the summaries of the task runs it ran (:func:`add`) and hands the sum to the
process that started it as JSON (:func:`to_json`, :func:`from_json`): counters only -- the
dead letters and late events themselves are in their topics.
"""

from __future__ import annotations

from typing import Any

from rheos.runtime.summary import RunSummary, SourceStats, StepStats


def add(total: RunSummary, part: RunSummary) -> None:
    """Add ``part``'s counters to ``total`` (events, bad events, per source and step)."""
    total.events_in += part.events_in
    total.events_out += part.events_out
    total.out_of_order += part.out_of_order
    total.late += part.late
    total.bad_events += part.bad_events
    total.dead_letters_again += part.dead_letters_again
    total.checkpoints.count += part.checkpoints.count
    total.checkpoints.total_s += part.checkpoints.total_s
    total.checkpoints.total_bytes += part.checkpoints.total_bytes
    for counts, more in ((total.dead_lettered, part.dead_lettered), (total.skipped, part.skipped)):
        for key, n in more.items():
            counts[key] = counts.get(key, 0) + n
    for name, src in part.sources.items():
        mine = total.sources.setdefault(name, SourceStats(name))
        mine.events += src.events
        mine.out_of_order += src.out_of_order
        mine.max_delay_ms = max(mine.max_delay_ms, src.max_delay_ms)
    for name, st in part.steps.items():
        step = total.steps.setdefault(name, StepStats(name, st.kind))
        step.events_in += st.events_in
        step.events_out += st.events_out
        step.out_of_order += st.out_of_order
        step.max_delay_ms = max(step.max_delay_ms, st.max_delay_ms)
        step.late += st.late
        step.state_size += st.state_size
    total.late_events.extend(part.late_events[: max(0, 1000 - len(total.late_events))])
    total.dead_letters.extend(part.dead_letters[: max(0, 1000 - len(total.dead_letters))])


def to_json(summary: RunSummary) -> dict[str, Any]:
    """The counters of ``summary`` as a JSON-ready dict."""
    return {
        "flow": summary.flow,
        "mode": summary.mode,
        "stopped": summary.stopped,
        "events_in": summary.events_in,
        "events_out": summary.events_out,
        "out_of_order": summary.out_of_order,
        "late": summary.late,
        "bad_events": summary.bad_events,
        "dead_letters_again": summary.dead_letters_again,
        "checkpoints": summary.checkpoints.count,
        "checkpoint_s": summary.checkpoints.total_s,
        "checkpoint_bytes": summary.checkpoints.total_bytes,
        "dead_lettered": [[s, k, n] for (s, k), n in summary.dead_lettered.items()],
        "skipped": [[s, k, n] for (s, k), n in summary.skipped.items()],
        "sources": {
            name: [s.events, s.out_of_order, s.max_delay_ms] for name, s in summary.sources.items()
        },
        "steps": {
            name: [s.kind, s.events_in, s.events_out, s.out_of_order, s.late, s.state_size]
            for name, s in summary.steps.items()
        },
    }


def from_json(data: dict[str, Any]) -> RunSummary:
    """The :class:`RunSummary` of :func:`to_json`'s output (counters only)."""
    summary = RunSummary(str(data["flow"]), str(data["mode"]))
    summary.stopped = str(data.get("stopped", ""))
    for name in ("events_in", "events_out", "out_of_order", "late", "bad_events"):
        setattr(summary, name, int(data.get(name, 0)))
    summary.dead_letters_again = int(data.get("dead_letters_again", 0))
    summary.checkpoints.count = int(data.get("checkpoints", 0))
    summary.checkpoints.total_s = float(data.get("checkpoint_s", 0.0))
    summary.checkpoints.total_bytes = int(data.get("checkpoint_bytes", 0))
    summary.dead_lettered = {(str(s), str(k)): int(n) for s, k, n in data.get("dead_lettered", [])}
    summary.skipped = {(str(s), str(k)): int(n) for s, k, n in data.get("skipped", [])}
    for name, (events, ooo, delay) in data.get("sources", {}).items():
        summary.sources[name] = SourceStats(name, int(events), int(ooo), int(delay))
    for name, (kind, ins, outs, ooo, late, size) in data.get("steps", {}).items():
        summary.steps[name] = StepStats(
            name, str(kind), int(ins), int(outs), int(ooo), 0, int(late), int(size)
        )
    return summary


__all__ = ["add", "from_json", "to_json"]
