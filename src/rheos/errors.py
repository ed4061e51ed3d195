"""Every exception rheos raises, in one tree.

All of them derive from :class:`RheosError`, so ``except rheos.RheosError`` catches
everything rheos itself raises (user code's own exceptions are wrapped, never hidden)::

    RheosError
    ├── ConfigError                 a bad argument: duration, option, name
    │   └── InvalidTopicNameError   a topic name that is empty, too long, or escapes the data dir
    ├── LogError                    the embedded log (rheos.transport)
    │   ├── TopicNotFoundError
    │   ├── TopicExistsError
    │   ├── PartitionLockedError    another process holds the partition's writer lock
    │   ├── RecordTooLargeError     a record over the topic's ``max_record_bytes``
    │   ├── CorruptLogError         a batch whose CRC or framing is wrong, a missing segment
    │   ├── OffsetOutOfRangeError   a read below the first kept offset or past the end
    │   ├── DiskFullError           the disk filled up during an append (nothing partial kept)
    │   └── LogClosedError          use of a closed log, producer or reader
    ├── FlowError                   building or running a flow (rheos.flows, rheos.runtime)
    │   ├── FlowDefinitionError     a flow that cannot run as written (names the step)
    │   ├── UserFunctionError       user code raised; names flow, step and function
    │   └── EventError              an event that cannot be processed: decoding, timestamp,
    │                               schema (names topic, partition and offset when known)
    ├── CheckpointError             saving or restoring state
    └── ConnectorError              a system outside rheos that a connector reads or writes
        └── KafkaError              an Apache Kafka cluster (names the bootstrap servers)
            ├── BrokerUnreachableError  no broker answered in time
            └── KafkaTopicNotFoundError a topic the cluster does not have

Warnings (``warnings.warn``) say that a run goes on but something a user relies on does not
happen as they may think; they are never silent::

    RheosWarning (UserWarning)
    ├── NoDataDirWarning            the data directory cannot be written: no checkpoints, and
    │                               late events and dead letters live only in the run summary
    └── BadEventsWarning            most of a run's events were dead-lettered or skipped

Every error carries its *where* in the message, and as typed fields: every ``RheosError`` has
``flow``, ``step`` and ``function`` (``None`` where unknown), and ``LogError``, ``EventError``
and ``ConnectorError`` are also ``LocatedError``, with ``topic``, ``partition`` and
``offset``, so programs can act on them.
"""

from __future__ import annotations


class RheosError(Exception):
    """Root of every exception rheos raises.

    Where in a flow it happened, when known, is kept as data too: ``flow`` and ``step`` (the
    step's name), and ``function`` for a user function that raised. The runtime fills them in
    as the error passes through a step; dead letters and ``rheos dlq`` read them.
    """

    flow: str | None = None
    step: str | None = None
    function: str | None = None

    def located(self, *, flow: str | None = None, step: str | None = None) -> RheosError:
        """Fill in ``flow`` and ``step`` where they are not known yet; return ``self``."""
        if self.flow is None:
            self.flow = flow
        if self.step is None:
            self.step = step
        return self


class ConfigError(RheosError, ValueError):
    """A bad argument or option."""


class InvalidTopicNameError(ConfigError):
    """A topic name that rheos refuses (empty, too long, bad characters, or a path)."""


class LocatedError(RheosError):
    """An error about a place in the log: ``topic``, ``partition`` and ``offset`` name where
    it happened, when known, and the message ends with them."""

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        where = _where(topic, partition, offset)
        super().__init__(f"{message} ({where})" if where else message)


class LogError(LocatedError):
    """An error in the embedded log."""


def _where(topic: str | None, partition: int | None, offset: int | None) -> str:
    parts = []
    if topic is not None:
        parts.append(f"topic {topic!r}")
    if partition is not None:
        parts.append(f"partition {partition}")
    if offset is not None:
        parts.append(f"offset {offset}")
    return ", ".join(parts)


class TopicNotFoundError(LogError):
    """The topic does not exist."""


class TopicExistsError(LogError):
    """The topic already exists (with other settings)."""


class PartitionLockedError(LogError):
    """Another writer holds the partition; only one writer per partition at a time."""


class RecordTooLargeError(LogError):
    """A record is larger than the topic's ``max_record_bytes``."""


class CorruptLogError(LogError):
    """Data on disk failed its CRC or framing check, or a segment file is missing."""


class OffsetOutOfRangeError(LogError):
    """A read asked for an offset the partition does not hold."""


class DiskFullError(LogError):
    """The disk filled up; the failed append left nothing behind."""


class LogClosedError(LogError):
    """The log, producer or reader was already closed."""


class FlowError(RheosError):
    """An error while building or running a flow."""


class FlowDefinitionError(FlowError):
    """A flow that cannot run as it is written."""


class UserFunctionError(FlowError):
    """A user function raised. The message names the flow, the step and the function."""


class EventError(FlowError, LocatedError):
    """An event could not be processed (decoding, timestamp, schema)."""


class CheckpointError(RheosError):
    """Saving or restoring a checkpoint failed."""


class ConnectorError(LocatedError):
    """A system outside rheos that a connector talks to failed or refused."""


class KafkaError(ConnectorError):
    """An Apache Kafka cluster failed or refused; the message names its bootstrap servers."""


class BrokerUnreachableError(KafkaError):
    """No broker answered at the bootstrap servers within the connector's time limit."""


class KafkaTopicNotFoundError(KafkaError):
    """A topic the Kafka cluster does not have (sinks create it with ``create=True``)."""


class RheosWarning(UserWarning):
    """The root of rheos's warnings."""


class NoDataDirWarning(RheosWarning):
    """A run's data directory cannot be written: nowhere to keep checkpoints or dead letters."""


class BadEventsWarning(RheosWarning):
    """Most of a run's events were bad (dead-lettered or skipped): is the flow reading the
    right fields?"""


__all__ = [
    "BadEventsWarning",
    "BrokerUnreachableError",
    "CheckpointError",
    "ConfigError",
    "ConnectorError",
    "CorruptLogError",
    "DiskFullError",
    "EventError",
    "FlowDefinitionError",
    "FlowError",
    "InvalidTopicNameError",
    "KafkaError",
    "KafkaTopicNotFoundError",
    "LocatedError",
    "LogClosedError",
    "LogError",
    "NoDataDirWarning",
    "OffsetOutOfRangeError",
    "PartitionLockedError",
    "RecordTooLargeError",
    "RheosError",
    "RheosWarning",
    "TopicExistsError",
    "TopicNotFoundError",
    "UserFunctionError",
]
