"""Splitting a flow into tasks: where events must change task so that every key meets its state.

A flow run by several workers is split into tasks: task ``p`` reads partition ``p`` of every
source (see :class:`rheos.connectors.base.OpenContext`). Keyed state is only correct when all
events of a key reach the same task, so every ``key_by`` -- and every global (unkeyed)
window, whose events must all meet in one task -- reads through an internal repartition topic
``<flow>.<step>.repartition`` (see :mod:`rheos.connectors.repartition_topic`) instead of its
input: :func:`repartitioned` puts a sink writing that topic after the step's input, and a
source reading it in front of the step. Both inputs of a join are ``key_by`` steps, so they
are partitioned alike and meet in one task.

>>> import rheos as rh
>>> flow = rh.Flow("counts")
>>> (flow.source(rh.iterable_source([]), timestamp="ts")
...     .key_by("user").window(rh.tumbling("1m")).aggregate(n=rh.count())
...     .sink(rh.list_sink([])))
>>> for line in repartitioned(flow.graph(), 3).describe().splitlines():
...     print(line.split(": ")[0])
flow 'counts'
  #0 source 'source'
  #1 sink 'key_by.repartition-out' <- #0
  #2 source 'key_by.repartition'
  #3 key_by 'key_by' <- #2
  #4 window 'window' <- #3
  #5 sink 'sink' <- #4
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rheos.connectors.repartition_topic import (
    RepartitionSink,
    RepartitionSource,
    repartition_topic,
)
from rheos.errors import ConfigError
from rheos.flows.steps import OUT, Graph, KeyByStep, Port, SinkStep, SourceStep, Step, WindowStep


def needs_repartition(step: Step) -> bool:
    """Whether ``step`` must read through a repartition topic in a flow split into tasks."""
    return isinstance(step, KeyByStep) or (isinstance(step, WindowStep) and not step.keyed)


def repartitioned(graph: Graph, tasks: int) -> Graph:
    """The graph each of ``tasks`` tasks runs (``graph`` itself when ``tasks`` is 1).

    Steps keep their names; ids are renumbered (still in a topological order). The sink
    writing a repartition topic is named ``<step>.repartition-out`` and the source reading
    it ``<step>.repartition``.
    """
    if tasks < 1:
        raise ValueError(f"tasks must be at least 1, got {tasks}")
    if tasks == 1 or not any(needs_repartition(step) for step in graph.steps):
        return graph
    return _Builder(graph, tasks).build()


class _Builder:
    """Copies a graph step by step, putting repartition topics where they are needed."""

    def __init__(self, graph: Graph, tasks: int) -> None:
        self.graph = graph
        self.tasks = tasks
        self.steps: list[Step] = []
        self.new_id: dict[int, int] = {}
        self.origins: dict[int, frozenset[str]] = {}
        """New step id -> the names of the source steps its events come from."""
        self.stage: dict[int, int] = {}
        """New step id -> how many repartition topics lie before it."""

    def build(self) -> Graph:
        for step in self.graph.steps:
            inputs = tuple((self.new_id[i], name) for i, name in step.inputs)
            if needs_repartition(step) and not self._routed(step, inputs):
                inputs = (self._through_topic(step, inputs),)
            self.new_id[step.id] = self._add(step, inputs).id
        return dataclasses.replace(self.graph, steps=tuple(self.steps))

    def _add(self, step: Step, inputs: tuple[Port, ...]) -> Step:
        step = dataclasses.replace(step, id=len(self.steps), inputs=inputs)
        self.steps.append(step)
        if isinstance(step, SourceStep):
            self.origins[step.id] = frozenset({step.name})
            self.stage[step.id] = getattr(step.source, "stage", 0)
        else:
            self.origins[step.id] = frozenset().union(*(self.origins[i] for i, _ in inputs))
            self.stage[step.id] = max((self.stage[i] for i, _ in inputs), default=0)
        return step

    def _routed(self, step: Step, inputs: tuple[Port, ...]) -> bool:
        """Whether a global window's events all come through a repartition topic already
        (``Stream.window`` on an unkeyed stream keys it by ``None`` first: task 0 gets all)."""
        return isinstance(step, WindowStep) and all(self.stage[i] > 0 for i, _ in inputs)

    def _through_topic(self, step: Step, inputs: tuple[Port, ...]) -> Port:
        """Add the sink and the source of the repartition topic in front of ``step``;
        return the port the step reads instead of its input."""
        (before,) = inputs
        if self.stage[before[0]] > 0:
            raise ConfigError(
                f"flow {self.graph.name!r}, step {step.name!r}: a flow split into tasks cannot "
                "yet repartition twice (this step's events already came through a "
                "repartition topic); run it as one task"
            )
        topic = repartition_topic(self.graph.name, step.name)
        upstream = tuple(sorted(self.origins[before[0]]))
        key = step.key if isinstance(step, KeyByStep) else None
        sink = RepartitionSink(topic, tasks=self.tasks, step=step.name, key=key, upstream=upstream)
        out = SinkStep(0, f"{step.name}.repartition-out", (), sink, on_error=step.on_error)
        self._add(out, (before,))
        sources = [s for s in self.steps if isinstance(s, SourceStep) and s.name in upstream]
        idle = [s.idle_timeout_ms for s in sources]
        idle_ms = None if not idle or None in idle else max(i for i in idle if i is not None)
        source = RepartitionSource(
            topic,
            tasks=self.tasks,
            step=step.name,
            stage=self.stage[before[0]] + 1,
            idle_timeout_ms=idle_ms,
        )
        reading = SourceStep(
            0,
            f"{step.name}.repartition",
            (),
            source=source,
            timestamp=None,
            timestamp_unit="ms",
            out_of_orderness_ms=0,
            idle_timeout_ms=idle_ms,
        )
        return (self._add(reading, ()).id, OUT)


def stages(graph: Graph) -> dict[int, int]:
    """Step id -> its stage: how many repartition topics lie between the flow's sources and
    it (a bounded run of a repartitioned graph runs its stages one after another)."""
    out: dict[int, int] = {}
    for step in graph.steps:
        if isinstance(step, SourceStep):
            out[step.id] = getattr(step.source, "stage", 0)
        else:
            out[step.id] = max((out[i] for i, _ in step.inputs), default=0)
    return out


def source_stages(graph: Graph, sources: list[Any]) -> list[list[Any]]:
    """The runs of ``graph``'s sources (objects with a ``step``) grouped by stage, in order:
    one group for a graph without repartition topics."""
    level = stages(graph)
    groups: dict[int, list[Any]] = {}
    for src in sources:
        groups.setdefault(level[src.step.id], []).append(src)
    return [groups[k] for k in sorted(groups)] or [[]]


__all__ = ["needs_repartition", "repartitioned", "source_stages", "stages"]
