"""``kafka_source``: topics of a Kafka cluster read by one consumer (see
:mod:`rheos.connectors.kafka`)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import repeat
from operator import is_, itemgetter
from typing import Any

from rheos.connectors.base import BaseReader, Chunk, OpenContext
from rheos.connectors.codecs import check_format, fields_decoder, sift, value_decoder
from rheos.connectors.kafka.client import (
    PARTITION_EOF,
    READERS,
    KafkaStart,
    Records,
    client_module,
    seconds,
    topic_partitions,
)
from rheos.durations import Duration, to_ms
from rheos.errors import BrokerUnreachableError, ConfigError, KafkaError

_second = itemgetter(1)


class KafkaSource:
    """Reads topics of a Kafka cluster; build with :func:`kafka_source`."""

    seekable = True
    """Its positions can be checkpointed and restored."""

    def __init__(
        self,
        topics: str | Sequence[str],
        *,
        bootstrap_servers: str,
        group: str | None = None,
        start: KafkaStart | None = None,
        format: str = "json",
        schema: type | None = None,
        as_dict: bool = True,
        config: dict[str, Any] | None = None,
        max_records: int = 10_000,
        connect_timeout: Duration = "10s",
        lost_timeout: Duration = "60s",
    ) -> None:
        check_format(format)
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        if not self.topics:
            raise ConfigError("kafka_source: name at least one topic")
        self.bootstrap_servers = bootstrap_servers
        self.group = group
        self.start: KafkaStart = (
            start if start is not None else ("committed" if group else "beginning")
        )
        if self.start == "committed" and not group:
            raise ConfigError("kafka_source: start='committed' needs a group")
        self.format = format
        self.schema = schema
        self.as_dict = as_dict
        self.config = dict(config or {})
        self.max_records = max_records
        self.connect_timeout = seconds(connect_timeout)
        self.lost_timeout = to_ms(lost_timeout, what="lost_timeout") / 1000

    def open(self, ctx: OpenContext) -> KafkaReader:
        return KafkaReader(self, ctx)

    def settings(self, flow: str) -> dict[str, Any]:
        """The librdkafka settings of this source's consumers in ``flow``."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group or f"rheos.{flow}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            # librdkafka stops fetching for this long once its queue of fetched records is
            # full (1 s by default): a consumer that drains the queue faster than that (a
            # micro-batch run does) then waits, idle, for most of each second
            "fetch.queue.backoff.ms": 10,
            **self.config,
        }

    def partition_counts(self, flow: str) -> dict[str, int]:
        """The partition count of each topic, asked of the cluster (a flow split across
        workers runs a task per partition index, see
        :class:`~rheos.connectors.base.SplittableSource`)."""
        consumer = client_module().Consumer(self.settings(flow))
        try:
            pairs = topic_partitions(
                consumer,
                self.topics,
                self.bootstrap_servers,
                self.connect_timeout,
                f"flow {flow!r}, {self!r}",
            )
        finally:
            consumer.close()
        counts: dict[str, int] = {}
        for topic, _ in pairs:
            counts[topic] = counts.get(topic, 0) + 1
        return counts

    def __repr__(self) -> str:
        topics = self.topics[0] if len(self.topics) == 1 else self.topics
        group = f", group={self.group!r}" if self.group else ""
        return f"kafka_source({topics!r}{group}, format={self.format!r})"


class KafkaReader(BaseReader):
    """An open :class:`KafkaSource`: one consumer assigned every partition of its topics
    (in task ``p`` of a flow split across workers: partition ``p`` of each topic).

    The runtime's partitions are indexes into the sorted (topic, partition) pairs of all the
    topics: for one topic, its partition numbers.
    """

    def __init__(self, source: KafkaSource, ctx: OpenContext) -> None:
        kafka = client_module()
        self._kafka = kafka
        self.source = source
        self.topic = ",".join(source.topics)
        self._who = f"kafka_source {self.topic!r}"
        self._decode = value_decoder(source.format, source.schema, as_dict=source.as_dict)
        self._hot = self._decode
        """What decodes records into chunks: :attr:`_decode`, or only the fields a flow
        reads (:meth:`project`)."""
        settings = source.settings(ctx.flow)
        self._settings = settings
        self._lost_since: float | None = None
        """When librdkafka last said no broker could be reached (None: since answered)."""
        self._probed = 0.0
        """When :attr:`stalled` last asked the brokers whether they are back."""
        self._consumer = kafka.Consumer({**settings, "error_cb": self._on_error})
        try:
            self._pairs = topic_partitions(
                self._consumer,
                source.topics,
                source.bootstrap_servers,
                source.connect_timeout,
                self._who,
            )
            self._index = {pair: i for i, pair in enumerate(self._pairs)}
            self.partitions = self._task_partitions(ctx)
            self._pos = self._start_offsets()
            self._ends: dict[int, int] | None = self._end_offsets() if ctx.bounded else None
        except BaseException:
            self._consumer.close()
            raise
        self._assign()
        self._check_done()
        if source.group is not None:
            ctx.shared.setdefault(READERS, []).append(self)

    def _task_partitions(self, ctx: OpenContext) -> list[int]:
        """The partitions (indexes) this reader reads: all of them, or in task ``p`` of a
        flow split across workers, partition ``p`` of every topic (which each must have:
        the topics' partition counts were checked equal when the run started)."""
        if ctx.task is None:
            return list(range(len(self._pairs)))
        mine = [i for i, (_, partition) in enumerate(self._pairs) if partition == ctx.task]
        have = {topic for topic, partition in self._pairs if partition == ctx.task}
        missing = sorted(set(self.source.topics) - have)
        if missing:
            raise ConfigError(
                f"flow {ctx.flow!r}, {self._who}: task {ctx.task} of {ctx.tasks} reads "
                f"partition {ctx.task} of every source topic, but {missing} has none (its "
                "partition count changed since the run started?)"
            )
        return mine

    def _on_error(self, err: Any) -> None:
        lost = (self._kafka.KafkaError._ALL_BROKERS_DOWN, self._kafka.KafkaError._TRANSPORT)
        if err.code() in lost and self._lost_since is None:
            self._lost_since = time.monotonic()

    @property
    def stalled(self) -> bool:
        """Whether the brokers are lost now (see :class:`~rheos.connectors.base.
        StallingReader`): librdkafka said none could be reached, and none has answered
        since -- a record, or the cluster's metadata, asked for at most once a second (for
        0.2 s) while lost."""
        if self._lost_since is None:
            return False
        now = time.monotonic()
        if now - self._probed < 1.0:
            return True
        self._probed = now
        try:
            self._consumer.list_topics(timeout=0.2)
        except self._kafka.KafkaException:
            return True
        self._lost_since = None
        return False

    def _check_brokers(self) -> None:
        """Past ``lost_timeout`` without a broker (librdkafka retrying all along), fail with
        an error naming the bootstrap servers -- unless one answers now."""
        since = self._lost_since
        if since is None or time.monotonic() - since < self.source.lost_timeout:
            return
        try:
            self._consumer.list_topics(timeout=min(self.source.connect_timeout, 5))
        except self._kafka.KafkaException:
            raise BrokerUnreachableError(
                f"{self._who}: lost the Kafka brokers at {self.source.bootstrap_servers}: "
                f"none answered for {time.monotonic() - since:.0f} s (lost_timeout)"
            ) from None
        self._lost_since = None

    def _tp(self, i: int, offset: int = -1001) -> Any:
        topic, partition = self._pairs[i]
        return self._kafka.TopicPartition(topic, partition, offset)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self._kafka.KafkaException as exc:
            raise KafkaError(
                f"{self._who}: {what} failed at {self.source.bootstrap_servers}: {exc}"
            ) from exc

    def _watermarks(self, i: int, consumer: Any = None) -> tuple[int, int]:
        timeout = self.source.connect_timeout
        client = consumer or self._consumer
        low, high = self._call(
            "reading the partition's offsets",
            lambda: client.get_watermark_offsets(self._tp(i), timeout=timeout),
        )
        return int(low), int(high)

    def _start_offsets(self) -> dict[int, int]:
        """The first offset to read per partition, resolved to numbers (checkpoints need them)."""
        start = self.source.start
        timeout = self.source.connect_timeout
        marks = {i: self._watermarks(i) for i in self.partitions}
        if start == "beginning":
            return {i: low for i, (low, _) in marks.items()}
        if start == "end":
            return {i: high for i, (_, high) in marks.items()}
        if start == "committed":
            tps = [self._tp(i) for i in self.partitions]
            got = self._call(
                "reading the group's committed offsets",
                lambda: self._consumer.committed(tps, timeout=timeout),
            )
            return {
                i: tp.offset if tp.offset >= 0 else marks[i][0]
                for i, tp in zip(self.partitions, got, strict=True)
            }
        ms = int(start.timestamp() * 1000) if isinstance(start, datetime) else int(start)
        tps = [self._tp(i, ms) for i in self.partitions]
        got = self._call(
            "looking up offsets by time",
            lambda: self._consumer.offsets_for_times(tps, timeout=timeout),
        )
        return {
            i: tp.offset if tp.offset >= 0 else marks[i][1]
            for i, tp in zip(self.partitions, got, strict=True)
        }

    def _end_offsets(self) -> dict[int, int]:
        """The partitions' high watermarks: a read_committed consumer's ends stop before
        transactions still being committed (Kafka writes their markers after the commit
        returns), and a bounded run must include those. Aborted records are skipped."""
        peek = self._kafka.Consumer({**self._settings, "isolation.level": "read_uncommitted"})
        try:
            return {i: self._watermarks(i, peek)[1] for i in self.partitions}
        finally:
            peek.close()

    def _assign(self) -> None:
        self._consumer.assign([self._tp(i, self._pos[i]) for i in self.partitions])

    def _check_done(self) -> None:
        if self._ends is not None:
            self._done = all(self._pos[i] >= end for i, end in self._ends.items())

    def poll(self, timeout: float) -> list[Chunk]:
        return [self.chunk(*records) for records in self.poll_records(timeout)]

    def poll_records(self, timeout: float, max_records: int | None = None) -> list[Records]:
        """The records of one poll, undecoded, per partition (index): values, offsets and
        Kafka timestamps, at most ``max_records`` (the source's) in all."""
        if self._done:
            return []
        messages = self._consumer.consume(max_records or self.source.max_records, timeout)
        if not messages:
            self._check_brokers()
            return []
        self._lost_since = None
        one = self._one_run(messages)
        if one is not None:
            return one
        by_partition: dict[int, list[Any]] = {}
        index, ends, pos = self._index, self._ends, self._pos
        for m in messages:
            i = index[(m.topic(), m.partition())]
            err = m.error()
            if err is not None:
                if err.code() == PARTITION_EOF:
                    pos[i] = max(pos[i], m.offset())  # past transaction markers
                    continue
                raise KafkaError(
                    f"{self._who}: consuming failed at {self.source.bootstrap_servers}: {err}",
                    topic=m.topic(),
                    partition=m.partition(),
                )
            offset = m.offset()
            if ends is not None and offset >= ends[i]:
                continue
            pos[i] = offset + 1
            by_partition.setdefault(i, []).append(m)
        out: list[Records] = [
            (
                i,
                [m.value() or b"" for m in ms],
                [m.offset() for m in ms],
                [m.timestamp()[1] for m in ms],
            )
            for i, ms in by_partition.items()
        ]
        if ends is not None:
            self._check_done()
        return out

    def _one_run(self, messages: list[Any]) -> list[Records] | None:
        """The records of a poll whose messages are all records of one partition (the
        common case: librdkafka hands a partition's fetched records out in runs), taken
        column by column in C (``map`` over the message type's methods) instead of message
        by message; None for any other poll (an event, an error, several partitions)."""
        message = self._kafka.Message
        n = len(messages)
        if not all(map(is_, map(message.error, messages), repeat(None))):
            return None
        if len(self.partitions) == 1:  # (assigned one partition: every record is of it)
            i = self.partitions[0]
        else:
            topics = list(map(message.topic, messages))
            numbers = list(map(message.partition, messages))
            if topics.count(topics[0]) != n or numbers.count(numbers[0]) != n:
                return None
            i = self._index[(topics[0], numbers[0])]
        first, last = messages[0].offset(), messages[-1].offset()
        # (a partition's offsets increase: n of them spanning n - 1 follow each other)
        offsets: range | list[int] = (
            range(first, last + 1) if last - first == n - 1 else list(map(message.offset, messages))
        )
        values = list(map(message.value, messages))
        stamps = list(map(_second, map(message.timestamp, messages)))
        if self._ends is not None and offsets[-1] >= self._ends[i]:
            keep = bisect_left(offsets, self._ends[i])
            offsets, values, stamps = offsets[:keep], values[:keep], stamps[:keep]
        if None in values:  # tombstones: empty values, as per message
            values = [v or b"" for v in values]
        if offsets:
            self._pos[i] = offsets[-1] + 1
        if self._ends is not None:
            self._check_done()
        return [(i, values, offsets, stamps)] if offsets else []

    def chunk(
        self, i: int, raw: list[bytes], offsets: range | list[int], timestamps: list[int]
    ) -> Chunk:
        """The chunk of records of partition (index) ``i``: decoded, or with rejects."""
        topic, partition = self._pairs[i]
        dec = self._hot
        try:
            values = [dec(v) for v in raw]
        except Exception:  # the rejects name the Kafka partition, the chunk the index
            chunk = sift(
                self._decode, self.source.format, (topic, partition), raw, list(offsets), timestamps
            )
            chunk.partition = i
            return chunk
        return Chunk(i, values, timestamps, topic, offsets, raw)

    def project(self, fields: frozenset[str]) -> bool:
        """Decode only ``fields`` of each record (JSON and MessagePack objects without a
        schema; see :class:`~rheos.connectors.base.ProjectingReader`)."""
        only = fields_decoder(self.source.format, fields, self.source.schema)
        if only is None:
            return False
        self._hot = only
        return True

    def topic_of(self, i: int) -> str:
        """The topic of partition (index) ``i``."""
        return self._pairs[i][0]

    def decode(self, value: bytes) -> Any:
        """Decode one record value as this source does (dead-letter replay)."""
        return self._decode(value)

    def positions(self) -> dict[int, int]:
        """The next offset to read, per partition (index)."""
        return dict(self._pos)

    def seek(self, positions: dict[int, int]) -> None:
        """Continue from ``positions`` (a checkpoint's)."""
        for i, offset in positions.items():
            if i in self._pos:
                self._pos[i] = offset
        self._assign()
        self._check_done()

    def backlog(self) -> dict[int, tuple[int, int]]:
        """Per partition: the next offset to read and the partition's end as last fetched
        (their difference is the consumer lag)."""
        out = {}
        for i, position in list(self._pos.items()):
            try:
                _, high = self._consumer.get_watermark_offsets(self._tp(i), cached=True)
            except Exception:
                high = -1
            out[i] = (position, max(position, int(high)))
        return out

    def group_offsets(self) -> tuple[list[Any], Any]:
        """The positions as offsets to commit, and the consumer's group metadata (for a
        transactional producer's ``send_offsets_to_transaction``)."""
        offsets = [self._tp(i, o) for i, o in self._pos.items()]
        return offsets, self._consumer.consumer_group_metadata()

    def commit(self) -> None:
        if self.source.group is None:
            return
        offsets = [self._tp(i, o) for i, o in self._pos.items()]
        self._call(
            "committing the group's offsets",
            lambda: self._consumer.commit(offsets=offsets, asynchronous=False),
        )

    def close(self) -> None:
        self._consumer.close()


def kafka_source(
    topics: str | Sequence[str],
    *,
    bootstrap_servers: str,
    group: str | None = None,
    start: KafkaStart | None = None,
    format: str = "json",
    schema: type | None = None,
    as_dict: bool = True,
    config: dict[str, Any] | None = None,
    connect_timeout: Duration = "10s",
    lost_timeout: Duration = "60s",
) -> KafkaSource:
    """A source reading ``topics`` of a Kafka cluster (see the module docs).

    ``start`` is ``"committed"`` (``group``'s offsets; the default with a group),
    ``"beginning"`` (the default without), ``"end"`` or a time. ``config`` adds librdkafka
    consumer settings (SASL/SSL...). Opening fails with
    :class:`~rheos.errors.BrokerUnreachableError` when no broker answers within
    ``connect_timeout``, and :class:`~rheos.errors.KafkaTopicNotFoundError` for a topic the
    cluster lacks. Brokers lost while running are retried; after ``lost_timeout`` without
    one the run fails with :class:`~rheos.errors.BrokerUnreachableError`.
    """
    return KafkaSource(
        topics,
        bootstrap_servers=bootstrap_servers,
        group=group,
        start=start,
        format=format,
        schema=schema,
        as_dict=as_dict,
        config=config,
        connect_timeout=connect_timeout,
        lost_timeout=lost_timeout,
    )


__all__ = ["KafkaReader", "KafkaSource", "kafka_source"]
