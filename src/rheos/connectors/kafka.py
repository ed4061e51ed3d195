"""Sources and sinks on an Apache Kafka cluster, through confluent-kafka (librdkafka).

``kafka_source(topics, bootstrap_servers=...)`` reads every partition of ``topics`` from
``start``: ``"committed"`` (the consumer ``group``'s committed offsets, the beginning where it
has none; the default when a group is given), ``"beginning"`` (the default otherwise),
``"end"``, or a time (a datetime or epoch milliseconds: the first record at or after it).
Values are decoded as ``format`` (JSON by default); records that do not decode are bad events
(dead-lettered to ``<flow>.dlq``). Each record's Kafka timestamp is its event time unless the
flow names a ``timestamp`` field. Watermarks are per partition, as for
:func:`~rheos.connectors.log.log_source`. It reads only what transactions have committed
(``isolation.level=read_committed``). A bounded run stops at the end offsets the partitions
had when it started (the high watermarks: a transaction still open then is waited for, and
read if it commits). The source's positions are kept in the flow's checkpoints, which are
the truth on restart; they are also committed to ``group`` after each checkpoint, so Kafka's
tools show the group's lag.

``kafka_sink(topic, bootstrap_servers=...)`` produces each event encoded as ``format``;
``key`` names a field or is a function giving the record key (Kafka's partitioner picks the
partition from it).

Exactly once. In a run with checkpoints the sink is a transactional producer whose
``transactional.id`` is ``rheos.<flow>.<sink name>``: opening it fences a predecessor of the
same flow (a crashed process) and aborts its open transaction. Everything written between two
checkpoints is one Kafka transaction, and the protocol around a checkpoint is:

1. *prepare*: flush the transaction's records to the brokers (delivered, not committed) and
   keep them, encoded, in the checkpoint (SQLite);
2. the checkpoint commits;
3. *commit*: commit the Kafka transaction, which also commits, atomically with the records,
   the checkpoint's id as the offset of a marker group ``rheos.<flow>.<sink name>.progress``
   and the positions of the flow's Kafka sources (with a ``group``, on the same cluster) as
   their groups' offsets (``send_offsets_to_transaction``).

A crash before 2 leaves the transaction open; the restarted flow's producer aborts it and the
sources rewind to the previous checkpoint. A crash between 2 and 3 (Kafka cannot commit a
transaction from another process) is found on recovery: the marker does not hold the
restored checkpoint's id, so its records are produced again from the checkpoint in a new
transaction with the marker. Read the topic with ``isolation.level=read_committed`` to see
each result exactly once. A transaction must commit within the producer's
``transaction.timeout.ms`` (60 s here unless ``config`` says otherwise): keep the checkpoint
interval well under it. Without checkpoints (bounded runs) the producer is idempotent and
each flush waits for delivery: at least once.

``config`` passes librdkafka settings through (SASL/SSL, ``client.id``, batching...).
``connect_timeout`` bounds how long opening waits for a broker to answer: past it a
:class:`~rheos.errors.BrokerUnreachableError` names the bootstrap servers. Brokers lost while
running are retried (librdkafka reconnects by itself); a source fails with the same error
after ``lost_timeout`` (60 s) without one, and a sink fails the checkpoint when its records
are not delivered within 30 s (or ``connect_timeout`` if longer) -- nothing of that
checkpoint is committed, and the next run recovers from the one before. Needs
confluent-kafka: ``pip install 'rheos[kafka]'``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from rheos.connectors.base import BaseReader, BaseWriter, Chunk, OpenContext
from rheos.connectors.codecs import check_format, encoder, key_bytes, sift, value_decoder
from rheos.durations import Duration, to_ms
from rheos.errors import (
    BrokerUnreachableError,
    ConfigError,
    EventError,
    KafkaError,
    KafkaTopicNotFoundError,
)

KafkaStart = Literal["committed", "beginning", "end"] | int | datetime
"""Where a Kafka source starts: the group's committed offsets, the beginning, the end, or a
time (a datetime, or epoch milliseconds)."""

READERS = "kafka.readers"
"""The key of :attr:`OpenContext.shared` under which Kafka sources with a group list
themselves."""

Records = tuple[int, list[bytes], list[int], list[int]]
"""Undecoded records of one partition: its index, values, offsets and Kafka timestamps."""

PARTITION_EOF = -191
"""librdkafka's code for "reached the end of the partition" (an event, not an error)."""


def _kafka() -> Any:
    try:
        import confluent_kafka  # an optional dependency: rheos[kafka]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "Kafka connectors need confluent-kafka: pip install 'rheos[kafka]'"
        ) from exc
    return confluent_kafka


def _seconds(timeout: Duration) -> float:
    return to_ms(timeout, what="connect_timeout") / 1000


def _topic_partitions(
    client: Any, topics: Sequence[str], servers: str, timeout: float, who: str
) -> list[tuple[str, int]]:
    """Every (topic, partition) of ``topics``, checking that the cluster answers and has them."""
    kafka = _kafka()
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
        self.connect_timeout = _seconds(connect_timeout)
        self.lost_timeout = to_ms(lost_timeout, what="lost_timeout") / 1000

    def open(self, ctx: OpenContext) -> KafkaReader:
        return KafkaReader(self, ctx)

    def __repr__(self) -> str:
        topics = self.topics[0] if len(self.topics) == 1 else self.topics
        group = f", group={self.group!r}" if self.group else ""
        return f"kafka_source({topics!r}{group}, format={self.format!r})"


class KafkaReader(BaseReader):
    """An open :class:`KafkaSource`: one consumer assigned every partition of its topics.

    The runtime's partitions are indexes into the sorted (topic, partition) pairs: for one
    topic, its partition numbers.
    """

    def __init__(self, source: KafkaSource, ctx: OpenContext) -> None:
        kafka = _kafka()
        self._kafka = kafka
        self.source = source
        self.topic = ",".join(source.topics)
        self._who = f"kafka_source {self.topic!r}"
        self._decode = value_decoder(source.format, source.schema, as_dict=source.as_dict)
        settings = {
            "bootstrap.servers": source.bootstrap_servers,
            "group.id": source.group or f"rheos.{ctx.flow}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            **source.config,
        }
        self._settings = settings
        self._lost_since: float | None = None
        """When librdkafka last said no broker could be reached (None: since answered)."""
        self._consumer = kafka.Consumer({**settings, "error_cb": self._on_error})
        try:
            self._pairs = _topic_partitions(
                self._consumer,
                source.topics,
                source.bootstrap_servers,
                source.connect_timeout,
                self._who,
            )
            self._index = {pair: i for i, pair in enumerate(self._pairs)}
            self.partitions = list(range(len(self._pairs)))
            self._pos = self._start_offsets()
            self._ends: dict[int, int] | None = self._end_offsets() if ctx.bounded else None
        except BaseException:
            self._consumer.close()
            raise
        self._assign()
        self._check_done()
        if source.group is not None:
            ctx.shared.setdefault(READERS, []).append(self)

    def _on_error(self, err: Any) -> None:
        lost = (self._kafka.KafkaError._ALL_BROKERS_DOWN, self._kafka.KafkaError._TRANSPORT)
        if err.code() in lost and self._lost_since is None:
            self._lost_since = time.monotonic()

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
            return {i: tp.offset if tp.offset >= 0 else marks[i][0] for i, tp in enumerate(got)}
        ms = int(start.timestamp() * 1000) if isinstance(start, datetime) else int(start)
        tps = [self._tp(i, ms) for i in self.partitions]
        got = self._call(
            "looking up offsets by time",
            lambda: self._consumer.offsets_for_times(tps, timeout=timeout),
        )
        return {i: tp.offset if tp.offset >= 0 else marks[i][1] for i, tp in enumerate(got)}

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
        out = [
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

    def chunk(self, i: int, raw: list[bytes], offsets: list[int], timestamps: list[int]) -> Chunk:
        """The chunk of records of partition (index) ``i``: decoded, or with rejects."""
        topic, partition = self._pairs[i]
        dec = self._decode
        try:
            values = [dec(v) for v in raw]
        except Exception:  # the rejects name the Kafka partition, the chunk the index
            chunk = sift(dec, self.source.format, (topic, partition), raw, offsets, timestamps)
            chunk.partition = i
            return chunk
        return Chunk(i, values, timestamps, topic, offsets, raw)

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


class KafkaSink:
    """Produces to a topic of a Kafka cluster; build with :func:`kafka_sink`."""

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str,
        key: str | Callable[[Any], Any] | None = None,
        format: str = "json",
        config: dict[str, Any] | None = None,
        name: str | None = None,
        create: bool = False,
        partitions: int = 1,
        connect_timeout: Duration = "10s",
    ) -> None:
        check_format(format)
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.key = key
        self.format = format
        self.config = dict(config or {})
        self.name = name or topic
        self.create = create
        self.partitions = partitions
        self.connect_timeout = _seconds(connect_timeout)

    def open(self, ctx: OpenContext) -> KafkaWriter:
        return KafkaWriter(self, ctx)

    def __repr__(self) -> str:
        key = f", key={self.key!r}" if isinstance(self.key, str) else ""
        return f"kafka_sink({self.topic!r}{key}, format={self.format!r})"


class KafkaWriter(BaseWriter):
    """An open :class:`KafkaSink`; in a checkpointed run a
    :class:`~rheos.connectors.base.TransactionalWriter` (see the module docs)."""

    def __init__(self, sink: KafkaSink, ctx: OpenContext) -> None:
        kafka = _kafka()
        self._kafka = kafka
        self.sink = sink
        self._who = f"kafka_sink {sink.topic!r}"
        self._in_checkpoints = ctx.transactional
        self.transactional_id = sink.config.get("transactional.id", f"rheos.{ctx.flow}.{sink.name}")
        settings: dict[str, Any] = {
            "bootstrap.servers": sink.bootstrap_servers,
            "enable.idempotence": True,
            "linger.ms": 5,
            "delivery.report.only.error": True,  # no Python call per delivered record
            **sink.config,
        }
        if self._in_checkpoints:
            settings["transactional.id"] = self.transactional_id
        else:
            settings.pop("transactional.id", None)
        self._errors: list[str] = []
        settings["error_cb"] = self._on_error
        settings["on_delivery"] = self._delivered
        self._producer = kafka.Producer(settings)
        self._marker: Any = None
        self._encode = encoder(sink.format)
        self._key_of = _key_function(sink)
        self._rows: list[tuple[bytes | None, bytes, int]] = []
        self._prepared: tuple[int, list[tuple[bytes | None, bytes, int]]] | None = None
        self._open = False
        self._shared = ctx.shared
        self._group_offsets: list[tuple[list[Any], Any]] = []
        self._ensure_topic()
        if self._in_checkpoints:
            self._marker = kafka.Consumer(
                {
                    "bootstrap.servers": sink.bootstrap_servers,
                    "group.id": f"{self.transactional_id}.progress",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    **{k: v for k, v in sink.config.items() if _is_connection_setting(k)},
                }
            )
            # fences a predecessor with this transactional.id and aborts its open transaction
            self._call(
                "starting transactions",
                lambda: self._producer.init_transactions(max(sink.connect_timeout, 30)),
            )

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self._errors.append(str(err))

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self._kafka.KafkaException as exc:
            raise KafkaError(
                f"{self._who}: {what} failed at {self.sink.bootstrap_servers}: {exc}",
                topic=self.sink.topic,
            ) from exc

    def _ensure_topic(self) -> None:
        sink = self.sink
        try:
            _topic_partitions(
                self._producer,
                [sink.topic],
                sink.bootstrap_servers,
                sink.connect_timeout,
                self._who,
            )
        except KafkaTopicNotFoundError:
            if not sink.create:
                raise
            admin = self._kafka.admin.AdminClient({"bootstrap.servers": sink.bootstrap_servers})
            futures = admin.create_topics(
                [self._kafka.admin.NewTopic(sink.topic, sink.partitions)],
                operation_timeout=sink.connect_timeout,
            )
            for future in futures.values():
                try:
                    future.result()
                except self._kafka.KafkaException as exc:
                    if exc.args[0].code() != self._kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                        raise KafkaError(
                            f"{self._who}: cannot create the topic at "
                            f"{sink.bootstrap_servers}: {exc}",
                            topic=sink.topic,
                        ) from exc

    def write(self, value: Any, timestamp: int) -> None:
        data = self._encode(value)
        key = key_bytes(self._key_of(value)) if self._key_of is not None else None
        if self._in_checkpoints:
            if not self._open:
                self._call("beginning a transaction", self._producer.begin_transaction)
                self._open = True
            self._rows.append((key, data, timestamp))
        try:
            self._producer.produce(self.sink.topic, data, key, timestamp=timestamp)
        except BufferError:
            self._produce(key, data, timestamp)

    def _produce(self, key: bytes | None, data: bytes, timestamp: int) -> None:
        producer = self._producer
        while True:
            try:
                producer.produce(self.sink.topic, data, key, timestamp=timestamp)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def _flush(self) -> None:
        left = self._producer.flush(max(self.sink.connect_timeout, 30))
        if left:
            self._errors.append(f"{left} records not delivered in time")
        if self._errors:
            errors, self._errors = self._errors, []
            raise KafkaError(
                f"{self._who}: producing failed at {self.sink.bootstrap_servers}: "
                + "; ".join(errors[:3]),
                topic=self.sink.topic,
            )

    def flush(self) -> None:
        if not self._in_checkpoints:
            self._flush()

    # -- checkpoints (TransactionalWriter) ----------------------------------------------------
    def prepare(self, checkpoint: int) -> dict[str, Any]:
        self._flush()
        rows, self._rows = self._rows, []
        self._prepared = (checkpoint, rows)
        self._group_offsets = [
            reader.group_offsets()
            for reader in self._shared.get(READERS, ())
            if reader.source.bootstrap_servers == self.sink.bootstrap_servers
        ]
        return {"transactional_id": self.transactional_id, "rows": rows}

    def commit(self, checkpoint: int) -> None:
        if self._prepared is None or self._prepared[0] != checkpoint:
            return
        if self._open:
            self._commit_transaction(checkpoint)
            self._open = False
        self._prepared = None

    def _commit_transaction(self, checkpoint: int) -> None:
        """Commit the open transaction with ``checkpoint`` as the marker group's offset."""
        mark = [self._kafka.TopicPartition(self.sink.topic, 0, checkpoint)]
        meta = self._marker.consumer_group_metadata()
        timeout = max(self.sink.connect_timeout, 30)
        self._call(
            "recording the checkpoint in the transaction",
            lambda: self._producer.send_offsets_to_transaction(mark, meta, timeout),
        )
        for offsets, group in self._group_offsets:  # the Kafka sources' consumed offsets
            self._send_offsets(offsets, group, timeout)
        self._group_offsets = []
        self._call("committing the transaction", lambda: self._producer.commit_transaction(timeout))

    def _send_offsets(self, offsets: list[Any], group: Any, timeout: float) -> None:
        def send() -> None:
            self._producer.send_offsets_to_transaction(offsets, group, timeout)

        self._call("committing consumed offsets in the transaction", send)

    def committed_checkpoint(self) -> int | None:
        """The id of the last checkpoint whose transaction committed (None: none yet)."""
        tp = self._kafka.TopicPartition(self.sink.topic, 0)
        got = self._call(
            "reading the sink's progress",
            lambda: self._marker.committed([tp], timeout=max(self.sink.connect_timeout, 30)),
        )
        offset = int(got[0].offset)
        return offset if offset >= 0 else None

    def recover(self, checkpoint: int | None, prepared: Any) -> None:
        self._rows = []
        self._prepared = None
        if checkpoint is None or not prepared or not prepared.get("rows"):
            return
        if self.committed_checkpoint() == checkpoint:
            return
        # the checkpoint was stored but its transaction did not commit: produce it again
        self._call("beginning a transaction", self._producer.begin_transaction)
        for key, data, timestamp in prepared["rows"]:
            self._produce(key, data, timestamp)
        self._flush()
        self._commit_transaction(checkpoint)

    def close(self) -> None:
        try:
            if not self._in_checkpoints:
                self._flush()
            elif self._open:  # not covered by a checkpoint: the next run redoes it
                self._producer.flush(1)
                self._call("aborting the transaction", self._producer.abort_transaction)
        finally:
            if self._marker is not None:
                self._marker.close()
            self._producer.flush(0)


def _is_connection_setting(name: str) -> bool:
    return name.startswith(("security.", "sasl.", "ssl.", "client."))


def _key_function(sink: KafkaSink) -> Callable[[Any], Any] | None:
    key = sink.key
    if not isinstance(key, str):
        return key
    field = key

    def by_field(value: Any) -> Any:
        try:
            return value[field]
        except (KeyError, TypeError, IndexError):
            raise EventError(
                f"kafka_sink {sink.topic!r}: the event has no key field {field!r}"
            ) from None

    return by_field


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


def kafka_sink(
    topic: str,
    *,
    bootstrap_servers: str,
    key: str | Callable[[Any], Any] | None = None,
    format: str = "json",
    config: dict[str, Any] | None = None,
    name: str | None = None,
    create: bool = False,
    partitions: int = 1,
    connect_timeout: Duration = "10s",
) -> KafkaSink:
    """A sink producing to ``topic`` of a Kafka cluster, exactly once in checkpointed runs
    (see the module docs).

    ``create=True`` creates a missing topic with ``partitions`` partitions (otherwise a
    missing topic is a :class:`~rheos.errors.KafkaTopicNotFoundError`). ``name`` (default the
    topic) makes the ``transactional.id``: give two sinks of one flow on the same topic
    different names. ``config`` adds librdkafka producer settings (SASL/SSL...).
    """
    return KafkaSink(
        topic,
        bootstrap_servers=bootstrap_servers,
        key=key,
        format=format,
        config=config,
        name=name,
        create=create,
        partitions=partitions,
        connect_timeout=connect_timeout,
    )


__all__ = [
    "KafkaReader",
    "KafkaSink",
    "KafkaSource",
    "KafkaStart",
    "KafkaWriter",
    "Records",
    "kafka_sink",
    "kafka_source",
]
