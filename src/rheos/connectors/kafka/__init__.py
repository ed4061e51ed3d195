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

Split across workers (``workers=``, docs/concepts/scale-out.md), task ``p`` of a flow reads
partition ``p`` of every topic of its Kafka sources (which must all have the same partition
count) and has its own producer per Kafka sink, ``transactional.id``
``rheos.<flow>.<sink name>.<p>``; Kafka transactions allow several producers on one
partition, so the output stays partitioned by ``key``.

Exactly once. In a run with checkpoints the sink is a transactional producer whose
``transactional.id`` is ``rheos.<flow>.<sink name>`` (with ``.<p>`` in task ``p``): opening it
fences a predecessor of the same flow (a crashed process) and aborts its open transaction.
Everything written between two checkpoints is one Kafka transaction, and the protocol around a
checkpoint is:

1. *prepare*: flush the transaction's records to the brokers (delivered, not committed) and
   keep them, encoded, in the checkpoint (SQLite);
2. the checkpoint commits;
3. *commit*: commit the Kafka transaction, which also commits, atomically with the records,
   the checkpoint's id as the offset of a marker group ``<transactional.id>.progress`` and
   the positions of the flow's Kafka sources (with a ``group``, on the same cluster; in a
   task, its partitions') as their groups' offsets (``send_offsets_to_transaction``).

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

from rheos.connectors.kafka.client import KafkaStart, Records
from rheos.connectors.kafka.sink import KafkaSink, KafkaWriter, kafka_sink
from rheos.connectors.kafka.source import KafkaReader, KafkaSource, kafka_source

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
