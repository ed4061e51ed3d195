"""Plain confluent-kafka helpers for the Kafka tests: topics, producing, reading back."""

from __future__ import annotations

import os
import uuid
from typing import Any

import msgspec
import pytest

if not (os.environ.get("CI") or os.environ.get("RHEOS_REQUIRE_KAFKA")):  # else: a failure
    pytest.importorskip(
        "confluent_kafka", reason="Kafka tests skipped: confluent-kafka is not installed"
    )

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def new_topic(servers: str, partitions: int = 1, *, name: str | None = None) -> str:
    """Create a topic (of a fresh name unless ``name`` is given) and return its name."""
    name = name or f"t-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": servers})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result()
    return name


def produce(
    servers: str,
    topic: str,
    values: list[Any],
    *,
    partition: int | None = None,
    keys: list[str] | None = None,
    timestamps: list[int] | None = None,
) -> None:
    """Produce ``values`` (JSON-encoded unless bytes) and wait until they are delivered."""
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5})
    for i, value in enumerate(values):
        data = value if isinstance(value, bytes) else msgspec.json.encode(value)
        kwargs: dict[str, Any] = {}
        if partition is not None:
            kwargs["partition"] = partition
        if keys is not None:
            kwargs["key"] = keys[i]
        if timestamps is not None:
            kwargs["timestamp"] = timestamps[i]
        while True:
            try:
                producer.produce(topic, data, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(30) == 0


def read_committed(servers: str, topic: str) -> dict[int, list[tuple[bytes | None, bytes]]]:
    """Every committed record of ``topic`` now, per partition: ``(key, value)``."""
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        parts = sorted(meta.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out: dict[int, list[tuple[bytes | None, bytes]]] = {p: [] for p in parts}
        at_end: set[int] = set()
        while len(at_end) < len(parts):
            for m in consumer.consume(1000, 1.0):
                err = m.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    at_end.add(m.partition())
                    continue
                at_end.discard(m.partition())
                out[m.partition()].append((m.key(), m.value() or b""))
        return out
    finally:
        consumer.close()


def committed_offset(servers: str, group: str, topic: str, partition: int = 0) -> int:
    """The offset ``group`` has committed for a partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": group})
    try:
        [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


def values(records: dict[int, list[tuple[bytes | None, bytes]]]) -> list[Any]:
    """The decoded JSON values of :func:`read_committed`'s records, partition by partition."""
    return [msgspec.json.decode(v) for p in sorted(records) for _, v in records[p]]
