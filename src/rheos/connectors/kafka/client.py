"""What the Kafka source and sink share: the client library, metadata checks, constants."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from rheos.durations import Duration, to_ms
from rheos.errors import BrokerUnreachableError, ConfigError, KafkaTopicNotFoundError

KafkaStart = Literal["committed", "beginning", "end"] | int | datetime
"""Where a Kafka source starts: the group's committed offsets, the beginning, the end, or a
time (a datetime, or epoch milliseconds)."""

READERS = "kafka.readers"
"""The key of :attr:`OpenContext.shared` under which Kafka sources with a group list
themselves."""

Records = tuple[int, list[bytes], range | list[int], list[int]]
"""Undecoded records of one partition: its index, values, offsets (a list, or a range where
they follow each other) and Kafka timestamps."""

PARTITION_EOF = -191
"""librdkafka's code for "reached the end of the partition" (an event, not an error)."""


def client_module() -> Any:
    try:
        import confluent_kafka  # an optional dependency: rheos[kafka]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "Kafka connectors need confluent-kafka: pip install 'rheos[kafka]'"
        ) from exc
    return confluent_kafka


def seconds(timeout: Duration) -> float:
    return to_ms(timeout, what="connect_timeout") / 1000


def topic_partitions(
    client: Any, topics: Sequence[str], servers: str, timeout: float, who: str
) -> list[tuple[str, int]]:
    """Every (topic, partition) of ``topics``, checking that the cluster answers and has them."""
    kafka = client_module()
    try:
        meta = client.list_topics(timeout=timeout)
    except kafka.KafkaException as exc:
        raise BrokerUnreachableError(
            f"{who}: no Kafka broker answered at {servers} within {timeout:g} s "
            f"(connect_timeout): {exc.args[0].str() if exc.args else exc}"
        ) from None
    out: list[tuple[str, int]] = []
    for topic in topics:
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise KafkaTopicNotFoundError(
                f"{who}: the Kafka cluster at {servers} has no topic {topic!r}", topic=topic
            )
        out.extend((topic, p) for p in sorted(info.partitions))
    return out


__all__ = [
    "PARTITION_EOF",
    "READERS",
    "KafkaStart",
    "Records",
    "client_module",
    "seconds",
    "topic_partitions",
]
