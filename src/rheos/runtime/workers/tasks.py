"""How many tasks a flow splits into, and the topics its tasks write, made ready.

A flow over log sources splits into one task per partition index: task ``p`` reads partition
``p`` of every source, so every source must have the same partition count. Task ``p`` is also
the one writer of partition ``p`` of every log topic the flow writes (its log sinks,
``<flow>.dlq`` and ``<flow>.late``): those topics need a partition per task.
"""

from __future__ import annotations

from rheos.connectors.log import LogSink, LogSource, ensure_task_topic
from rheos.errors import ConfigError
from rheos.flows.steps import Graph, SinkStep, SourceStep
from rheos.runtime.deadletters import dlq_topic
from rheos.transport import Log


def task_count(graph: Graph, log: Log) -> int:
    """The number of tasks of ``graph``: the partition count of its log sources.

    Raises :class:`ConfigError` for a source that is not a log topic (only log sources can
    be split across workers), a missing topic, or topics with different partition counts.
    """
    counts: dict[str, int] = {}
    for step in graph.steps:
        if not isinstance(step, SourceStep):
            continue
        source = step.source
        if not isinstance(source, LogSource):
            raise ConfigError(
                f"flow {graph.name!r}, source {step.name!r} ({source!r}): only log sources can "
                "be split across workers (each worker reads some of their partitions; Kafka "
                "sources: not yet); run this flow without workers="
            )
        if source.partitions is not None:
            raise ConfigError(
                f"flow {graph.name!r}, source {step.name!r}: log_source({source.topic!r}, "
                f"partitions={source.partitions}) cannot be split across workers (task p reads "
                "partition p of every source); leave partitions= out"
            )
        if not log.has_topic(source.topic):
            raise ConfigError(
                f"flow {graph.name!r}, source {step.name!r}: topic {source.topic!r} does not "
                "exist: create it first (its partition count decides how the flow splits "
                "across workers)"
            )
        counts[source.topic] = log.partitions(source.topic)
    if not counts:
        raise ConfigError(f"flow {graph.name!r} has no source to split across workers")
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{topic!r}: {n}" for topic, n in sorted(counts.items()))
        raise ConfigError(
            f"flow {graph.name!r}: to run across workers every source topic needs the same "
            f"number of partitions (task p reads partition p of each), but they have {listed}"
        )
    return next(iter(counts.values()))


def prepare_task_topics(graph: Graph, log: Log, tasks: int) -> None:
    """Create the topics the tasks write with a partition per task (refusing existing ones
    with fewer partitions): log sinks, ``<flow>.dlq`` and ``<flow>.late``."""
    topics = [dlq_topic(graph.name), f"{graph.name}.late"]
    wanted: dict[str, int | None] = {}
    for step in graph.steps:
        if isinstance(step, SinkStep) and isinstance(step.sink, LogSink):
            topics.append(step.sink.topic)
            wanted[step.sink.topic] = step.sink.partitions
    for topic in topics:
        ensure_task_topic(log, topic, tasks, flow=graph.name, wanted=wanted.get(topic))


__all__ = ["prepare_task_topics", "task_count"]
