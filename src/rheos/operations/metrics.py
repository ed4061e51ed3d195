"""A flow's metrics in Prometheus text format, and for people.

:func:`prometheus_registry` builds a dedicated :class:`prometheus_client.CollectorRegistry`
per flow (never the global one) holding one collector that turns the flow's latest metrics
snapshot (:mod:`rheos.runtime.metrics`) into metric families when scraped; nothing is
counted twice and the flow's hot path never touches the client library. Every name starts
with ``rheos_`` and every sample carries the label ``flow``:

==========================================  =========  =========================================
``rheos_up``                                gauge      1 while the flow runs, 0 after
``rheos_events_in_total``                   counter    events read, per ``source``
``rheos_events_out_total``                  counter    events written, per ``sink``
``rheos_events_in_per_second``              gauge      input rate of the flow (last ~2 s)
``rheos_events_out_per_second``             gauge      output rate of the flow (last ~2 s)
``rheos_step_events_in_total``              counter    per stateful ``step`` (and ``kind``)
``rheos_step_events_out_total``             counter    per stateful ``step``
``rheos_end_to_end_latency_seconds``        histogram  log append -> result written
``rheos_end_to_end_latency_quantile_seconds`` gauge    p50/p95/p99 of the recent samples
``rheos_watermark_seconds``                 gauge      the flow watermark (epoch seconds)
``rheos_watermark_lag_seconds``             gauge      the flow's clock minus its watermark
``rheos_source_watermark_seconds``          gauge      per ``source``
``rheos_consumer_lag_records``              gauge      per ``source``, ``topic``, ``partition``
``rheos_out_of_order_total``                counter    per ``source``
``rheos_late_total``                        counter    per ``step``
``rheos_dead_lettered_total``               counter    per ``step`` and ``error_type``
``rheos_checkpoints_total``                 counter    checkpoints taken by this run
``rheos_checkpoint_age_seconds``            gauge      since the last checkpoint
``rheos_checkpoint_duration_seconds``       gauge      of the last checkpoint
``rheos_checkpoint_size_bytes``             gauge      written by the last checkpoint
``rheos_state_entries``                     gauge      keys or windows in state, per ``step``
==========================================  =========  =========================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

Snapshot = dict[str, Any]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FlowCollector(Collector):
    """Metric families from the snapshot ``get()`` returns, built at every scrape."""

    def __init__(self, get: Callable[[], Snapshot]) -> None:
        self.get = get

    def collect(self) -> Iterator[Metric]:
        return iter(families(self.get()))


def prometheus_registry(get: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of its own for one flow, reading snapshots from ``get``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FlowCollector(get))
    return registry


def prometheus_text(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text exposition format."""
    return generate_latest(registry)


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def families(snap: Snapshot) -> list[Metric]:
    """Every ``rheos_*`` metric family of one snapshot."""
    flow = snap["flow"]
    out: list[Metric] = []

    def gauge(name: str, doc: str, value: float | None) -> None:
        g = GaugeMetricFamily(name, doc, labels=["flow"])
        if value is not None:
            g.add_metric([flow], value)
        out.append(g)

    def counter(name: str, doc: str, labels: list[str], rows: list[tuple[list[str], Any]]) -> None:
        c = CounterMetricFamily(name, doc, labels=["flow", *labels])
        for values, value in rows:
            c.add_metric([flow, *values], value)
        out.append(c)

    gauge("rheos_up", "1 while the flow runs", 1.0 if snap.get("running") else 0.0)
    sources, steps, sinks = snap["sources"], snap["steps"], snap["sinks"]
    counter(
        "rheos_events_in",
        "Events read from a source",
        ["source"],
        [([s["name"]], s["events"]) for s in sources],
    )
    counter(
        "rheos_events_out",
        "Events written to a sink",
        ["sink"],
        [([s["name"]], s["events"]) for s in sinks],
    )
    gauge("rheos_events_in_per_second", "Input events per second", snap["events_in_per_s"])
    gauge("rheos_events_out_per_second", "Output events per second", snap["events_out_per_s"])
    counter(
        "rheos_step_events_in",
        "Events into a stateful step",
        ["step", "kind"],
        [([s["name"], s["kind"]], s["events_in"]) for s in steps],
    )
    counter(
        "rheos_step_events_out",
        "Events out of a stateful step",
        ["step", "kind"],
        [([s["name"], s["kind"]], s["events_out"]) for s in steps],
    )
    out.extend(_latency(flow, snap["latency_ms"]))
    gauge("rheos_watermark_seconds", "The flow watermark", _seconds(snap["watermark_ms"]))
    gauge(
        "rheos_watermark_lag_seconds",
        "The flow clock minus the flow watermark",
        _seconds(snap["watermark_lag_ms"]),
    )
    wm = GaugeMetricFamily(
        "rheos_source_watermark_seconds", "A source's watermark", labels=["flow", "source"]
    )
    lag = GaugeMetricFamily(
        "rheos_consumer_lag_records",
        "Records written to a source partition and not read yet",
        labels=["flow", "source", "topic", "partition"],
    )
    for s in sources:
        if s["watermark_ms"] is not None:
            wm.add_metric([flow, s["name"]], s["watermark_ms"] / 1000)
        for p in s["partitions"]:
            lag.add_metric([flow, s["name"], s["topic"] or "", str(p["partition"])], p["lag"])
    out.extend([wm, lag])
    counter(
        "rheos_out_of_order",
        "Events older than one seen before them on the same source",
        ["source"],
        [([s["name"]], s["out_of_order"]) for s in sources],
    )
    counter(
        "rheos_late",
        "Events that missed their window",
        ["step"],
        [([s["name"]], s["late"]) for s in steps],
    )
    counter(
        "rheos_dead_lettered",
        "Bad events sent to the dead-letter topic",
        ["step", "error_type"],
        [([d["step"], d["error_type"]], d["count"]) for d in snap["dead_letters_by_step"]],
    )
    c = snap["checkpoints"]
    counter("rheos_checkpoints", "Checkpoints taken by this run", [], [([], c["count"])])
    gauge("rheos_checkpoint_age_seconds", "Seconds since the last checkpoint", c.get("age_s"))
    gauge(
        "rheos_checkpoint_duration_seconds",
        "Duration of the last checkpoint",
        c.get("last_duration_s"),
    )
    gauge("rheos_checkpoint_size_bytes", "Bytes of the last checkpoint", c.get("last_bytes"))
    state = GaugeMetricFamily(
        "rheos_state_entries", "Keys or windows held in state", labels=["flow", "step"]
    )
    for s in steps:
        state.add_metric([flow, s["name"]], s["state_size"])
    out.append(state)
    return out


def _latency(flow: str, lat: dict[str, Any]) -> list[Metric]:
    hist = HistogramMetricFamily(
        "rheos_end_to_end_latency_seconds",
        "From a record's append to the log to its results written",
        labels=["flow"],
    )
    buckets = [
        ("+Inf" if le is None else repr(le / 1000), float(n)) for le, n in lat.get("buckets", [])
    ]
    if buckets:
        hist.add_metric([flow], buckets, sum_value=lat.get("sum", 0.0) / 1000)
    quant = GaugeMetricFamily(
        "rheos_end_to_end_latency_quantile_seconds",
        "End-to-end latency quantiles of the recent samples",
        labels=["flow", "quantile"],
    )
    for q, key in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
        if lat.get(key) is not None:
            quant.add_metric([flow, q], lat[key] / 1000)
    return [hist, quant]


# -- for people ---------------------------------------------------------------------------------


def human_duration(ms: float | None) -> str:
    """``1.5 s``, ``3.2 min``, ``16.1 y``; ``-`` for none.

    >>> human_duration(250), human_duration(90_000), human_duration(None)
    ('250 ms', '1.5 min', '-')
    """
    if ms is None:
        return "-"
    value = abs(ms)
    sign = "-" if ms < 0 else ""
    for unit, size in (("y", 31_557_600_000), ("d", 86_400_000), ("h", 3_600_000)):
        if value >= size:
            return f"{sign}{value / size:.1f} {unit}"
    if value >= 60_000:
        return f"{sign}{value / 60_000:.1f} min"
    if value >= 1_000:
        return f"{sign}{value / 1_000:.1f} s"
    return f"{sign}{value:.0f} ms"


__all__ = [
    "CONTENT_TYPE",
    "FlowCollector",
    "families",
    "human_duration",
    "prometheus_registry",
    "prometheus_text",
]
