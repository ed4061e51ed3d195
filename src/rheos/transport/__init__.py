"""The message transport: an embedded, durable, partitioned event log.

It is the source of truth of rheos. Topics are split into partitions; a partition is an
append-only sequence of records with dense offsets from 0, kept in segment files with a CRC on
every batch. See :mod:`rheos.transport.log` for the API and :mod:`rheos.transport.format` for
the bytes on disk.
"""

from rheos.transport.format import Record, RecordBatch
from rheos.transport.log import Isolation, Log, PartitionInfo, Producer, Reader, Start
from rheos.transport.partitioner import murmur2, partition_for_key
from rheos.transport.topics import (
    DATA_DIR_ENV,
    Durability,
    TopicConfig,
    check_topic_name,
    default_data_dir,
)

__all__ = [
    "DATA_DIR_ENV",
    "Durability",
    "Isolation",
    "Log",
    "PartitionInfo",
    "Producer",
    "Reader",
    "Record",
    "RecordBatch",
    "Start",
    "TopicConfig",
    "check_topic_name",
    "default_data_dir",
    "murmur2",
    "partition_for_key",
]
