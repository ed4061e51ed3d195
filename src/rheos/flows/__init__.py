"""Flow descriptions: what to compute, not how.

A :class:`Flow` is built from :class:`Stream` operations; each operation records a frozen
step (:mod:`rheos.flows.steps`). Only a handful of primitive steps exist, and a runtime
(:mod:`rheos.runtime`) executes only those. Keyed state and timers follow
:mod:`rheos.flows.logic`.
"""

from rheos.flows.flow import Flow, KeyedStream, Stream, WindowedStream, WindowOutput, signed_ms
from rheos.flows.logic import ProcessContext, ProcessLogic, RunningAggregate, RunningReduce
from rheos.flows.steps import (
    Graph,
    JoinStep,
    KeyByStep,
    ProcessStep,
    SinkStep,
    SourceStep,
    Step,
    TransformStep,
    UnionStep,
    WindowStep,
)

__all__ = [
    "Flow",
    "Graph",
    "JoinStep",
    "KeyByStep",
    "KeyedStream",
    "ProcessContext",
    "ProcessLogic",
    "ProcessStep",
    "RunningAggregate",
    "RunningReduce",
    "SinkStep",
    "SourceStep",
    "Step",
    "Stream",
    "TransformStep",
    "UnionStep",
    "WindowOutput",
    "WindowStep",
    "WindowedStream",
    "signed_ms",
]
