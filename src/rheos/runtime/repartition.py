"""Splitting a flow into tasks: where events must change task so that every key meets its state.

A flow run by several workers is split into tasks: task ``p`` reads partition ``p`` of every
source (see :class:`rheos.connectors.base.OpenContext`). Keyed state is only correct when all
events of a key reach the same task, so a step keyed on anything but the source's partitioning
reads through an internal repartition topic. :func:`repartitioned` returns the graph every task
runs.
"""

from __future__ import annotations

from rheos.errors import ConfigError
from rheos.flows.steps import Graph, KeyByStep, WindowStep


def repartitioned(graph: Graph, tasks: int) -> Graph:
    """The graph each of ``tasks`` tasks runs (``graph`` itself when ``tasks`` is 1)."""
    if tasks == 1:
        return graph
    for step in graph.steps:
        if isinstance(step, KeyByStep) or (isinstance(step, WindowStep) and not step.keyed):
            raise ConfigError(
                f"flow {graph.name!r}, step {step.name!r}: a keyed or global step cannot yet "
                "run across several workers (its events would need repartitioning)"
            )
    return graph
