"""Kafka sources in micro-batch mode: each poll's JSON values of a partition decoded together.

A :class:`ColumnarKafkaReader` consumes up to a batch of records at once (through the
stream-first :class:`~rheos.connectors.kafka.KafkaReader`, which keeps the positions, ends and
groups) and hands the values of each partition, joined, to the same
:class:`~rheos.runtime.microbatch.jsondecode.JsonDecoder` the embedded log's columnar reader
uses: one frame exactly as msgspec decodes each record, or none. Polls under
:data:`~rheos.runtime.microbatch.sources.BULK_FROM` records of a partition, and stretches with
a record the decoder does not take, are decoded per record by the stream-first reader (bad
records become rejects, dead-lettered as in stream-first mode).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rheos.connectors.base import Chunk, OpenContext
from rheos.connectors.kafka import KafkaReader, KafkaSource
from rheos.runtime.microbatch.jsondecode import JsonDecoder
from rheos.runtime.microbatch.sources import BULK_FROM, Part, from_chunk


class ColumnarKafkaReader:
    """A :class:`~rheos.connectors.kafka.KafkaSource` read as columnar parts (JSON dicts)."""

    def __init__(self, source: KafkaSource, ctx: OpenContext, max_records: int) -> None:
        self._reader = KafkaReader(source, ctx)
        self.source = source
        self.topic = self._reader.topic
        self.partitions = self._reader.partitions
        self.max_records = max_records
        self._json = JsonDecoder()

    @staticmethod
    def accepts(source: Any) -> bool:
        return (
            isinstance(source, KafkaSource)
            and source.format == "json"
            and source.schema is None
            and source.as_dict
        )

    @property
    def exhausted(self) -> bool:
        return self._reader.exhausted

    @property
    def stalled(self) -> bool:
        return self._reader.stalled

    def poll(self, timeout: float) -> list[Part]:
        parts = []
        for i, raw, offsets, stamps in self._reader.poll_records(timeout, self.max_records):
            frame = self._json.values_frame(raw) if len(raw) >= BULK_FROM else None
            if frame is None:
                parts.append(from_chunk(self._reader.chunk(i, raw, offsets, stamps)))
                continue
            place = Chunk(i, [], None, self._reader.topic_of(i), offsets, raw)  # dead letters
            parts.append(Part(i, np.asarray(stamps, dtype=np.int64), frame=frame, chunk=place))
        return parts

    def project(self, fields: frozenset[str]) -> bool:
        """Decode only ``fields`` of each record (see :mod:`rheos.runtime.projection`): in
        bulk (:meth:`JsonDecoder.project`), and record by record as the stream-first reader
        does."""
        if not self._reader.project(fields):  # pragma: no cover - JSON always projects
            return False
        self._json.project(fields)
        return True

    def decode(self, value: bytes) -> Any:
        return self._reader.decode(value)

    def positions(self) -> dict[int, int]:
        return self._reader.positions()

    def seek(self, positions: dict[int, int]) -> None:
        self._reader.seek(positions)

    def backlog(self) -> dict[int, tuple[int, int]]:
        return self._reader.backlog()

    def commit(self) -> None:
        self._reader.commit()

    def close(self) -> None:
        self._json.close()
        self._reader.close()


__all__ = ["ColumnarKafkaReader"]
