"""Topics: create, list, describe, delete, and the names rheos refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from rheos.errors import ConfigError, InvalidTopicNameError, TopicExistsError, TopicNotFoundError
from rheos.transport import Log, TopicConfig


def test_create_list_describe_delete(log: Log) -> None:
    config = log.create_topic("orders", partitions=3, retention_bytes=10_000, durability="batch")
    assert isinstance(config, TopicConfig)
    assert (config.name, config.partitions, config.retention_bytes) == ("orders", 3, 10_000)
    assert config.durability == "batch"
    log.create_topic("audit")
    assert log.topic_names() == ["audit", "orders"]
    assert log.config("orders") == config
    assert log.partitions("orders") == 3

    with log.producer("orders") as p:
        p.append([b"a", b"bb", b"ccc"], partition=1, timestamps=[5, 7, 6])
    info = log.describe("orders")
    assert [i.partition for i in info] == [0, 1, 2]
    assert (info[1].start_offset, info[1].next_offset) == (0, 3)
    assert (info[1].first_timestamp, info[1].max_timestamp) == (5, 7)
    assert info[1].size_bytes > 0
    assert (info[0].next_offset, info[0].first_timestamp) == (0, None)

    log.delete_topic("orders")
    assert log.topic_names() == ["audit"]
    assert not log.has_topic("orders")
    with pytest.raises(TopicNotFoundError, match="orders"):
        log.config("orders")
    with pytest.raises(TopicNotFoundError, match="orders"):
        log.delete_topic("orders")
    # the name is free again, and the new topic starts empty
    log.create_topic("orders", partitions=1)
    assert list(log.reader("orders").read()) == []


def test_create_twice(log: Log) -> None:
    first = log.create_topic("t", partitions=2)
    with pytest.raises(TopicExistsError, match="'t'"):
        log.create_topic("t", partitions=2)
    # exist_ok keeps the existing topic and its settings
    assert log.create_topic("t", partitions=5, exist_ok=True) == first
    assert log.partitions("t") == 2


def test_topics_visible_from_another_log_object(log: Log, data_dir: Path) -> None:
    log.create_topic("shared", partitions=2)
    assert Log(data_dir).topic_names() == ["shared"]


def test_producer_can_create_the_topic(log: Log) -> None:
    with log.producer("auto", create_partitions=4) as p:
        p.append([b"x"])
    assert log.partitions("auto") == 4


def test_unknown_topic(log: Log) -> None:
    with pytest.raises(TopicNotFoundError, match="'nope'"):
        log.producer("nope")
    with pytest.raises(TopicNotFoundError, match="'nope'"):
        log.reader("nope")


@pytest.mark.parametrize("partitions", [0, -1, 1.5, True, "2"])
def test_partitions_must_be_a_positive_whole_number(log: Log, partitions: object) -> None:
    with pytest.raises(ConfigError, match="partitions"):
        log.create_topic("t", partitions=partitions)  # type: ignore[arg-type]
    assert log.topic_names() == []


@pytest.mark.parametrize("field", ["retention_bytes", "segment_bytes", "max_record_bytes"])
def test_sizes_must_be_positive(log: Log, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        log.create_topic("t", **{field: 0})  # type: ignore[arg-type]


def test_bad_durability(log: Log) -> None:
    with pytest.raises(ConfigError, match="durability"):
        log.create_topic("t", durability="sometimes")


@pytest.mark.parametrize(
    "name",
    ["../x", "a/b", "..", "", ".hidden", "x" * 300, "/etc", "a\\b", "-x", "a..b", "abc\n", "é"],
)
def test_topic_names_that_could_escape_are_refused(log: Log, data_dir: Path, name: str) -> None:
    with pytest.raises(InvalidTopicNameError, match="invalid topic name"):
        log.create_topic(name)
    with pytest.raises(InvalidTopicNameError):
        log.producer(name, create_partitions=1)
    with pytest.raises(InvalidTopicNameError):
        log.reader(name)
    # nothing was created anywhere, inside or beside the data dir
    assert list((data_dir / "topics").iterdir()) == []
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]


@pytest.mark.parametrize("name", ["a", "orders.v2", "A_b-c.9", "_x", "x" * 249])
def test_good_topic_names(log: Log, name: str) -> None:
    log.create_topic(name)
    assert log.topic_names() == [name]
