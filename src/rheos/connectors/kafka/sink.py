"""``kafka_sink``: a transactional producer tied to the checkpoints (see
:mod:`rheos.connectors.kafka` for the protocol)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rheos.connectors.base import BaseWriter, OpenContext
from rheos.connectors.codecs import check_format, encoder, key_bytes, key_getter
from rheos.connectors.kafka.client import READERS, client_module, seconds, topic_partitions
from rheos.durations import Duration
from rheos.errors import KafkaError, KafkaTopicNotFoundError


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
        commit_timeout: Duration = "30s",
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
        self.connect_timeout = seconds(connect_timeout)
        self.commit_timeout = seconds(commit_timeout)

    def open(self, ctx: OpenContext) -> KafkaWriter:
        return KafkaWriter(self, ctx)

    def __repr__(self) -> str:
        key = f", key={self.key!r}" if isinstance(self.key, str) else ""
        return f"kafka_sink({self.topic!r}{key}, format={self.format!r})"


class KafkaWriter(BaseWriter):
    """An open :class:`KafkaSink`; in a checkpointed run a
    :class:`~rheos.connectors.base.TransactionalWriter` (see the module docs)."""

    def __init__(self, sink: KafkaSink, ctx: OpenContext) -> None:
        kafka = client_module()
        self._kafka = kafka
        self.sink = sink
        self._who = f"kafka_sink {sink.topic!r}"
        self._in_checkpoints = ctx.transactional
        self.transactional_id = transactional_id(sink, ctx)
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
        self._key_of = key_getter(sink.key, f"kafka_sink {sink.topic!r}")
        self._rows: list[tuple[bytes | None, bytes, int]] = []
        self._prepared: tuple[int, list[tuple[bytes | None, bytes, int]]] | None = None
        self._held: list[tuple[bytes | None, bytes, int]] = []
        """Records written between a checkpoint's prepare and its commit (see :meth:`write`)."""
        self._open = False
        self._stuck = False
        """A transactional call never returned: the producer is left alone from then on."""
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

    def _bounded(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn`` (a transactional call given ``commit_timeout``), waited for at most a little
        longer than that timeout. librdkafka can block in ``send_offsets_to_transaction`` and
        ``commit_transaction`` well past their timeout when a coordinator went down
        (confluentinc/librdkafka#5456 and #5511): rather than hang, the run stops with an
        error naming the servers, and the next run recovers the checkpoint exactly once (its
        producer fences this one)."""
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["result"] = self._call(what, fn)
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc

        worker = threading.Thread(target=call, name=f"rheos-kafka-{what}", daemon=True)
        worker.start()
        limit = self.sink.commit_timeout + 5
        worker.join(limit)
        if worker.is_alive():
            self._stuck = True
            raise KafkaError(
                f"{self._who}: {what} did not return within {limit:.0f} s at "
                f"{self.sink.bootstrap_servers} (the Kafka client waits for a transaction or "
                "group coordinator that is gone): the run stops; run it again to resume from "
                "its last checkpoint, exactly once",
                topic=self.sink.topic,
            )
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def _ensure_topic(self) -> None:
        sink = self.sink
        try:
            topic_partitions(
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
            if self._prepared is not None:
                # a checkpoint is committing beside the flow: its transaction must hold only
                # what it covers, so this waits for the next one
                self._rows.append((key, data, timestamp))
                self._held.append((key, data, timestamp))
                return
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
        if self._prepared is not None:  # that checkpoint was not stored: this one covers it
            held, self._held = self._held, []  # and what was held back since, in its transaction
            if held and not self._open:
                self._call("beginning a transaction", self._producer.begin_transaction)
                self._open = True
            for key, data, timestamp in held:
                self._produce(key, data, timestamp)
        self._flush()
        rows, self._rows = self._rows, []
        if self._prepared is not None:  # that checkpoint was not stored: this one covers it
            rows = self._prepared[1] + rows
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
        held, self._held = self._held, []
        if held:  # written while it committed: the next checkpoint's transaction
            self._call("beginning a transaction", self._producer.begin_transaction)
            self._open = True
            for key, data, timestamp in held:
                self._produce(key, data, timestamp)

    def _commit_transaction(self, checkpoint: int) -> None:
        """Commit the open transaction with ``checkpoint`` as the marker group's offset."""
        mark = [self._kafka.TopicPartition(self.sink.topic, 0, checkpoint)]
        meta = self._marker.consumer_group_metadata()
        timeout = self.sink.commit_timeout
        self._bounded(
            "recording the checkpoint in the transaction",
            lambda: self._producer.send_offsets_to_transaction(mark, meta, timeout),
        )
        for offsets, group in self._group_offsets:  # the Kafka sources' consumed offsets
            self._send_offsets(offsets, group, timeout)
        self._group_offsets = []
        self._bounded(
            "committing the transaction", lambda: self._producer.commit_transaction(timeout)
        )

    def _send_offsets(self, offsets: list[Any], group: Any, timeout: float) -> None:
        def send() -> None:
            self._producer.send_offsets_to_transaction(offsets, group, timeout)

        self._bounded("committing consumed offsets in the transaction", send)

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
        self._held = []
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
        if self._stuck:  # any call on the producer could block as well: leave it
            if self._marker is not None:
                self._marker.close()
            return
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


def transactional_id(sink: KafkaSink, ctx: OpenContext) -> str:
    """The sink's ``transactional.id``: ``config``'s, else ``rheos.<flow>.<sink name>``; in
    task ``p`` of a flow split across workers, that followed by ``.<p>``: one producer per
    task, stable, so that a task restarted (or taken over) fences its dead predecessor."""
    base = sink.config.get("transactional.id", f"rheos.{ctx.flow}.{sink.name}")
    return base if ctx.task is None else f"{base}.{ctx.task}"


def _is_connection_setting(name: str) -> bool:
    return name.startswith(("security.", "sasl.", "ssl.", "client."))


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
    commit_timeout: Duration = "30s",
) -> KafkaSink:
    """A sink producing to ``topic`` of a Kafka cluster, exactly once in checkpointed runs
    (see the module docs).

    ``create=True`` creates a missing topic with ``partitions`` partitions (otherwise a
    missing topic is a :class:`~rheos.errors.KafkaTopicNotFoundError`). ``name`` (default the
    topic) makes the ``transactional.id``: give two sinks of one flow on the same topic
    different names. ``config`` adds librdkafka producer settings (SASL/SSL...).
    ``commit_timeout`` bounds each transactional call of a checkpoint's commit: past it (a
    coordinator lost for longer) the run stops with a :class:`~rheos.errors.KafkaError`, and
    running it again resumes from the last checkpoint, exactly once.
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
        commit_timeout=commit_timeout,
    )


__all__ = ["KafkaSink", "KafkaWriter", "kafka_sink"]
