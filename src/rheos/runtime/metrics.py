"""Live metrics of a running flow: counters the runner keeps, and snapshots of them.

The hot path pays almost nothing: the runner already counts events per source and per
stateful step; on top of that it calls :meth:`FlowMetrics.after_chunk` once per *chunk* (not
per event) for the end-to-end latency, and :meth:`FlowMetrics.sample` a few times a second,
between two chunks, on its own thread. A sample reads the counters, watermarks, consumer lag,
dead letters and checkpoints and publishes one **snapshot**: a plain, JSON-ready ``dict``
that other threads (the HTTP server, :meth:`rheos.runtime.Flow.metrics`) read without locks
-- a snapshot is never changed once published.

What the numbers mean:

* ``events_in`` / ``events_out``: events read from sources / written to sinks; the
  ``*_per_s`` rates are over the last ~2 seconds of samples.
* ``latency_ms``: end-to-end latency, from the moment a record batch was appended to the log
  (its :attr:`~rheos.transport.RecordBatch.append_time`, wall clock) to the moment the results
  it caused were handed to the sinks; one sample per chunk that produced output (percentiles
  over the last 1,024 samples; ``buckets`` are cumulative counts since the run started).
  Only log sources have an append time.
* ``watermark_ms`` and ``watermark_lag_ms``: the flow watermark, and how far it is behind the
  flow's clock (for historical data replayed now, that is years).
* per source partition: ``position`` (next offset to read), ``end`` and ``lag`` (records
  written but not read yet: the consumer lag).
* ``out_of_order``, ``late``; ``dead_lettered`` by step and error type, and the latest dead
  letters; ``checkpoints``: count, age, last duration and size, and their history;
  ``state_size``: keys (process steps) or open windows (window steps) held in state.
"""

from __future__ import annotations

import json
import os
import time
from bisect import bisect_left
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from rheos.flows.steps import Graph
from rheos.runtime.summary import RunSummary
from rheos.state import state_dir
from rheos.windowing import MAX_WATERMARK, MIN_WATERMARK

SAMPLE_EVERY_S = 0.5
SAVE_EVERY_S = 1.0
"""How often a running flow saves its metrics snapshot to its folder in the data directory."""
"""How often a running flow publishes a snapshot."""
RATE_WINDOW_S = 2.0
LATENCY_SAMPLES = 1024
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000)
SNAPSHOT_FILE = "metrics.json"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def graph_info(graph: Graph) -> dict[str, Any]:
    """The flow's steps as plain data: id, name, kind and the step ids it reads from."""
    return {
        "steps": [
            {"id": s.id, "name": s.name, "kind": s.kind, "inputs": [sid for sid, _ in s.inputs]}
            for s in graph.steps
        ]
    }


class Run(Protocol):
    """What a sample reads of a run (a :class:`~rheos.runtime.Runner`)."""

    @property
    def graph(self) -> Graph: ...
    @property
    def compiled(self) -> Any: ...
    @property
    def sources(self) -> list[Any]: ...
    @property
    def flow_wm(self) -> int: ...
    @property
    def dead(self) -> Any: ...
    @property
    def checkpointer(self) -> Any: ...
    @property
    def clock(self) -> Any: ...


def _wm(value: int | None) -> int | None:
    if value is None or value <= MIN_WATERMARK or value >= MAX_WATERMARK:
        return None
    return value


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of sorted ``values``, nearest rank.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.0
    >>> percentile([], 0.9) is None
    True
    """
    if not values:
        return None
    rank = max(1, min(len(values), round(q * len(values) + 0.5 - 1e-9)))
    return values[rank - 1]


class FlowMetrics:
    """The metrics of one run of one flow (see the module docs)."""

    def __init__(self, graph: Graph, mode: str) -> None:
        self.flow = graph.name
        self.mode = mode
        self.graph = graph_info(graph)
        self.started_ms = wall_ms()
        self.started = time.monotonic()
        self.next_sample = 0.0
        self.latest: dict[str, Any] | None = None
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.latency_sum_ms = 0.0
        self.latency_max_ms = 0.0
        self._out_seen = 0
        self._counters: list[Any] = []
        self._rates: deque[tuple[float, dict[str, int]]] = deque()
        self.save_to: Path | None = None
        """Where a running flow saves its snapshot every :data:`SAVE_EVERY_S` (``rheos status``
        reads it there while the flow runs: no server needed)."""
        self._next_save = 0.0

    # -- the hot path (once per chunk) ------------------------------------------------------
    def watch_sinks(self, counters: list[Any]) -> None:
        """The sink counters (``.count``) whose growth marks a chunk that produced output."""
        self._counters = counters

    def after_chunk(self, append_time: int | None) -> None:
        """A chunk was pushed: if it produced output, take one latency sample."""
        out = 0
        for c in self._counters:
            out += c.count
        if out == self._out_seen:
            return
        self._out_seen = out
        if append_time is not None:
            self.add_latency(wall_ms() - append_time)

    def add_latency(self, ms: float) -> None:
        ms = max(0.0, float(ms))
        self.latencies.append(ms)
        self.buckets[bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
        self.latency_sum_ms += ms
        if ms > self.latency_max_ms:
            self.latency_max_ms = ms

    # -- sampling (a few times a second, on the runner's thread) -----------------------------
    def sample(self, run: Run, *, running: bool = True, stopped: str | None = None) -> None:
        """Read the runner and publish a new snapshot as :attr:`latest`."""
        now = time.monotonic()
        self.next_sample = now + SAMPLE_EVERY_S
        snap = self._snapshot(run, now, running, stopped)
        self.latest = snap
        if self.save_to is not None and running and now >= self._next_save:
            self._next_save = now + SAVE_EVERY_S
            save_snapshot(self.save_to, snap)

    def _snapshot(self, run: Run, now: float, running: bool, stopped: str | None) -> dict[str, Any]:
        compiled = run.compiled
        sources = [self._source(src) for src in run.sources]
        steps = []
        if compiled is not None:
            for node in compiled.nodes:
                st = node.sync_stats()
                steps.append(
                    {
                        "name": st.name,
                        "kind": st.kind,
                        "events_in": st.events_in,
                        "events_out": st.events_out,
                        "late": st.late,
                        "out_of_order": st.out_of_order,
                        "state_size": st.state_size,
                    }
                )
        sinks = []
        if compiled is not None:
            for i, c in enumerate(compiled.sink_counters):
                sinks.append({"name": getattr(c, "name", "") or f"sink {i}", "events": c.count})
        counts = {"in": sum(s["events"] for s in sources), "out": sum(s["events"] for s in sinks)}
        for s in sources:
            counts[f"source:{s['name']}"] = s["events"]
        for st in steps:
            counts[f"step-in:{st['name']}"] = st["events_in"]
            counts[f"step-out:{st['name']}"] = st["events_out"]
        for s in sinks:
            counts[f"sink:{s['name']}"] = s["events"]
        rates = self._rate(now, counts)
        for s in sources:
            s["events_per_s"] = rates.get(f"source:{s['name']}", 0.0)
        for st in steps:
            st["events_in_per_s"] = rates.get(f"step-in:{st['name']}", 0.0)
            st["events_out_per_s"] = rates.get(f"step-out:{st['name']}", 0.0)
        for s in sinks:
            s["events_per_s"] = rates.get(f"sink:{s['name']}", 0.0)
        dead = run.dead
        by_step = []
        by_type: dict[str, int] = {}
        recent: list[dict[str, Any]] = []
        skipped = 0
        if dead is not None:
            for (step, kind), n in sorted(dead.dead.items()):
                by_step.append({"step": step, "error_type": kind, "count": n})
                by_type[kind] = by_type.get(kind, 0) + n
            skipped = sum(dead.skipped.values())
            recent = [letter_brief(letter) for letter in reversed(dead.recent)]
        wm = _wm(run.flow_wm if compiled is not None else None)
        clock_now = run.clock.now_ms()
        return {
            "flow": self.flow,
            "mode": self.mode,
            "running": running,
            "stopped": stopped,
            "pid": os.getpid(),
            "time_ms": wall_ms(),
            "started_ms": self.started_ms,
            "uptime_s": round(now - self.started, 3),
            "events_in": counts["in"],
            "events_out": counts["out"],
            "events_in_per_s": rates.get("in", 0.0),
            "events_out_per_s": rates.get("out", 0.0),
            "latency_ms": self._latency(),
            "watermark_ms": wm,
            "watermark_lag_ms": None if wm is None else clock_now - wm,
            "out_of_order": sum(s["out_of_order"] for s in sources),
            "late": sum(st["late"] for st in steps),
            "dead_lettered": sum(by_type.values()),
            "skipped": skipped,
            "dead_letters_by_type": by_type,
            "dead_letters_by_step": by_step,
            "recent_dead_letters": recent,
            "checkpoints": self._checkpoint(run.checkpointer),
            "state_size": sum(st["state_size"] for st in steps),
            "consumer_lag": sum(s["lag"] for s in sources),
            "sources": sources,
            "steps": steps,
            "sinks": sinks,
            "graph": self.graph,
        }

    def _source(self, src: Any) -> dict[str, Any]:
        stats = src.stats
        backlog = getattr(src.reader, "backlog", None)
        partitions = []
        if backlog is not None:
            try:
                for p, (position, end) in sorted(backlog().items()):
                    lag = max(0, end - position)
                    partitions.append(
                        {"partition": p, "position": position, "end": end, "lag": lag}
                    )
            except Exception:  # a reader closing under us: no lag this time
                partitions = []
        return {
            "name": stats.name,
            "topic": getattr(src.reader, "topic", None),
            "events": stats.events,
            "out_of_order": stats.out_of_order,
            "max_delay_ms": stats.max_delay_ms,
            "watermark_ms": _wm(src.wm),
            "lag": sum(p["lag"] for p in partitions),
            "partitions": partitions,
        }

    def _rate(self, now: float, counts: dict[str, int]) -> dict[str, float]:
        rates = self._rates
        rates.append((now, counts))
        while len(rates) > 2 and now - rates[1][0] >= RATE_WINDOW_S:
            rates.popleft()
        then, old = rates[0]
        span = now - then
        if span <= 0:
            return {}
        return {k: round((v - old.get(k, 0)) / span, 1) for k, v in counts.items()}

    def _latency(self) -> dict[str, Any]:
        values = sorted(self.latencies)
        cumulative = []
        total = 0
        for le, n in zip((*LATENCY_BUCKETS_MS, None), self.buckets, strict=True):
            total += n
            cumulative.append([le, total])
        return {
            "p50": percentile(values, 0.50),
            "p95": percentile(values, 0.95),
            "p99": percentile(values, 0.99),
            "max": self.latency_max_ms if total else None,
            "count": total,
            "sum": round(self.latency_sum_ms, 3),
            "buckets": cumulative,
        }

    def _checkpoint(self, checkpointer: Any) -> dict[str, Any]:
        if checkpointer is None:
            return {"enabled": False, "count": 0, "history": []}
        stats = checkpointer.stats
        age = stats.since_last_s
        return {
            "enabled": True,
            "count": stats.count,
            "last_id": stats.last_id,
            "age_s": None if age is None else round(age, 3),
            "last_duration_s": round(stats.last_s, 6) if stats.count else None,
            "max_duration_s": round(stats.max_s, 6) if stats.count else None,
            "last_bytes": stats.last_bytes if stats.count else None,
            "total_bytes": stats.total_bytes,
            "restored_from": stats.restored_from,
            "history": list(stats.history),
        }


def empty_snapshot(graph: Graph) -> dict[str, Any]:
    """The snapshot of a flow that has not run (every counter zero)."""
    return summary_snapshot(graph, RunSummary(graph.name, "not started"), running=False)


def summary_snapshot(graph: Graph, summary: RunSummary, *, running: bool) -> dict[str, Any]:
    """A snapshot from a :class:`RunSummary` (runs without live metrics)."""
    sources: list[dict[str, Any]] = [
        {
            "name": s.name,
            "topic": None,
            "events": s.events,
            "events_per_s": 0.0,
            "out_of_order": s.out_of_order,
            "max_delay_ms": s.max_delay_ms,
            "watermark_ms": _wm(s.watermark),
            "lag": 0,
            "partitions": [],
        }
        for s in summary.sources.values()
    ]
    steps = [
        {
            "name": st.name,
            "kind": st.kind,
            "events_in": st.events_in,
            "events_out": st.events_out,
            "events_in_per_s": 0.0,
            "events_out_per_s": 0.0,
            "late": st.late,
            "out_of_order": st.out_of_order,
            "state_size": st.state_size,
        }
        for st in summary.steps.values()
    ]
    by_type: dict[str, int] = {}
    for (_, kind), n in summary.dead_lettered.items():
        by_type[kind] = by_type.get(kind, 0) + n
    c = summary.checkpoints
    return {
        "flow": graph.name,
        "mode": summary.mode,
        "running": running,
        "stopped": summary.stopped or None,
        "time_ms": wall_ms(),
        "started_ms": None,
        "uptime_s": summary.elapsed_s,
        "events_in": summary.events_in,
        "events_out": summary.events_out,
        "events_in_per_s": 0.0,
        "events_out_per_s": 0.0,
        "latency_ms": {"p50": None, "p95": None, "p99": None, "max": None, "count": 0},
        "watermark_ms": None,
        "watermark_lag_ms": None,
        "out_of_order": summary.out_of_order,
        "late": summary.late,
        "dead_lettered": summary.dead,
        "skipped": summary.skipped_count,
        "dead_letters_by_type": by_type,
        "dead_letters_by_step": [
            {"step": step, "error_type": kind, "count": n}
            for (step, kind), n in sorted(summary.dead_lettered.items())
        ],
        "recent_dead_letters": [],
        "checkpoints": {
            "enabled": bool(c.count),
            "count": c.count,
            "last_id": c.last_id,
            "age_s": None,
            "last_duration_s": c.last_s if c.count else None,
            "last_bytes": c.last_bytes if c.count else None,
            "total_bytes": c.total_bytes,
            "restored_from": c.restored_from,
            "history": list(c.history),
        },
        "state_size": sum(st["state_size"] for st in steps),
        "consumer_lag": 0,
        "sources": sources,
        "steps": steps,
        "sinks": [],
        "graph": graph_info(graph),
    }


def snapshot_path(data_dir: str | os.PathLike[str], flow: str, task: int | None = None) -> Path:
    """``<data_dir>/flows/<flow>/metrics.json``: the last snapshot of the flow's last run
    (of one task's last run, in the task's folder, for a flow split across workers)."""
    return state_dir(data_dir, flow, task) / SNAPSHOT_FILE


def save_snapshot(path: Path, snapshot: dict[str, Any]) -> None:
    """Write ``snapshot`` as JSON, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(snapshot, default=str))
    os.replace(tmp, path)


def load_snapshot(path: Path) -> dict[str, Any] | None:
    """The snapshot saved at ``path``, or ``None``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def letter_brief(letter: Any) -> dict[str, Any]:
    """One dead letter as shown by the dashboard: where, what, and the start of its value."""
    try:
        value = letter.value.decode()
    except UnicodeDecodeError:
        value = letter.value.hex()
    return {
        "time_ms": letter.time_ms,
        "step": letter.step,
        "error_type": letter.error_type,
        "message": letter.message[:300],
        "topic": letter.source_topic,
        "partition": letter.source_partition,
        "offset": letter.source_offset,
        "value": value[:160],
    }


__all__ = [
    "LATENCY_BUCKETS_MS",
    "SAMPLE_EVERY_S",
    "SAVE_EVERY_S",
    "FlowMetrics",
    "empty_snapshot",
    "graph_info",
    "letter_brief",
    "load_snapshot",
    "percentile",
    "save_snapshot",
    "snapshot_path",
    "summary_snapshot",
    "wall_ms",
]
