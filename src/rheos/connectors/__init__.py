"""Where events come from and where results go: sources and sinks.

Sources: :func:`log_source` (the embedded log), :func:`kafka_source` (an Apache Kafka
cluster), :func:`jsonl_source`, :func:`csv_source`, :func:`parquet_source` (bounded files) and
:func:`iterable_source` (Python data). Sinks: :func:`log_sink`, :func:`kafka_sink`,
:func:`jsonl_sink`, :func:`stdout_sink`, :func:`callback_sink` and :func:`list_sink`.
See :mod:`rheos.connectors.base` for what a source or sink is.
"""

from rheos.connectors.base import Chunk, OpenContext, Sink, SinkWriter, Source, SourceReader
from rheos.connectors.files import csv_source, jsonl_sink, jsonl_source, parquet_source
from rheos.connectors.kafka import KafkaSink, KafkaSource, kafka_sink, kafka_source
from rheos.connectors.log import LogSink, LogSource, log_sink, log_source
from rheos.connectors.python import callback_sink, iterable_source, list_sink, stdout_sink

__all__ = [
    "Chunk",
    "KafkaSink",
    "KafkaSource",
    "LogSink",
    "LogSource",
    "OpenContext",
    "Sink",
    "SinkWriter",
    "Source",
    "SourceReader",
    "callback_sink",
    "csv_source",
    "iterable_source",
    "jsonl_sink",
    "jsonl_source",
    "kafka_sink",
    "kafka_source",
    "list_sink",
    "log_sink",
    "log_source",
    "parquet_source",
    "stdout_sink",
]
