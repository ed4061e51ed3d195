"""How many tasks a flow splits into, and the topics its tasks write, made ready.

A flow over log or Kafka sources splits into one task per partition index: task ``p`` reads
partition ``p`` of every source topic, so every source topic must have the same partition
count. Task ``p`` is also the one writer of partition ``p`` of every log topic the flow writes
(its log sinks, ``<flow>.dlq`` and ``<flow>.late``): those topics need a partition per task.
(Kafka sinks need nothing: each task has its own transactional producer.)
"""

from __future__ import annotations

from rheos.connectors.base import SplittableSource
from rheos.connectors.log import LogSink, LogSource, ensure_task_topic
from rheos.errors import ConfigError
from rheos.flows.steps import Graph, SinkStep, SourceStep
from rheos.runtime.deadletters import dlq_topic
from rheos.transport import Log


def task_count(graph: Graph, log: Log) -> int:
    """The number of tasks of ``graph``: the partition count of its sources' topics (log
    topics, and Kafka topics asked of their cluster).

    Raises :class:`ConfigError` for a source that cannot be split (not a log or Kafka
    topic), a missing log topic, or topics with different partition counts.
    """
    counts: dict[str, int] = {}
    for step in graph.steps:
        if isinstance(step, SourceStep):
            counts.update(_source_counts(graph.name, step, log))
    if not counts:
        raise ConfigError(f"flow {graph.name!r} has no source to split across workers")
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{topic!r}: {n}" for topic, n in sorted(counts.items()))
        raise ConfigError(
            f"flow {graph.name!r}: to run across workers every source topic needs the same "
            f"number of partitions (task p reads partition p of each), but they have {listed}"
        )
    return next(iter(counts.values()))


def _source_counts(flow: str, step: SourceStep, log: Log) -> dict[str, int]:
    """The partition count of each topic of one source."""
    source = step.source
    if isinstance(source, SplittableSource):
        return source.partition_counts(flow)
    if not isinstance(source, LogSource):
        raise ConfigError(
            f"flow {flow!r}, source {step.name!r} ({source!r}): only log and Kafka sources "
            "can be split across workers (each worker reads some of their partitions); run "
            "this flow without workers="
        )
    if source.partitions is not None:
        raise ConfigError(
            f"flow {flow!r}, source {step.name!r}: log_source({source.topic!r}, "
            f"partitions={source.partitions}) cannot be split across workers (task p reads "
            "partition p of every source); leave partitions= out"
        )
    if not log.has_topic(source.topic):
        raise ConfigError(
            f"flow {flow!r}, source {step.name!r}: topic {source.topic!r} does not "
            "exist: create it first (its partition count decides how the flow splits "
            "across workers)"
        )
    return {source.topic: log.partitions(source.topic)}


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
