"""Bounded file sources (JSON lines, CSV, Parquet) and the JSON-lines sink.

File sources are finite: a streaming run ends after their last event (with a final
watermark that closes every window), exactly like a bounded run.

CSV values arrive as text; by default each one that reads as an ``int`` or a ``float`` is
converted (``infer_types=False`` keeps text). Parquet needs ``pyarrow``
(``pip install 'rheos[columnar]'``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from typing import IO, Any

import msgspec

from rheos.connectors.base import BaseReader, BaseWriter, Chunk, OpenContext
from rheos.connectors.codecs import encoder
from rheos.errors import ConfigError, EventError

CHUNK = 4096


class _IteratorReader(BaseReader):
    """A reader over an iterator of chunks of values (offsets: the events' positions)."""

    def __init__(self, chunks: Iterator[list[Any]], topic: str) -> None:
        self._chunks = chunks
        self._topic = topic
        self._offset = 0

    def poll(self, timeout: float) -> list[Chunk]:
        if self._done:
            return []
        values = next(self._chunks, None)
        if values is None:
            self._done = True
            return []
        start = self._offset
        self._offset += len(values)
        return [Chunk(0, values, None, self._topic, range(start, self._offset))]


class _LinesReader(BaseReader):
    """A reader over an iterator of ready chunks (offsets: line numbers, rejects: bad lines)."""

    def __init__(self, chunks: Iterator[Chunk]) -> None:
        self._chunks = chunks

    def poll(self, timeout: float) -> list[Chunk]:
        if self._done:
            return []
        chunk = next(self._chunks, None)
        if chunk is None:
            self._done = True
            return []
        return [chunk]


class JsonlSource:
    """One JSON document per line; blank lines are skipped.

    An event's offset is its line number (from 1). A line that is not JSON is a bad event
    like an undecodable log record: it goes to the flow's dead letters (by default) with its
    bytes, the file's path as its topic and its line number as its offset, and the run goes
    on with the next line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def open(self, ctx: OpenContext) -> BaseReader:
        if not os.path.isfile(self.path):
            raise ConfigError(f"{self!r}: no such file: {self.path}")
        return _LinesReader(self._chunks())

    def _chunks(self) -> Iterator[Chunk]:
        dec = msgspec.json.Decoder().decode
        with open(self.path, "rb") as f:
            lineno = 0
            while True:
                lines = f.readlines(1 << 20)
                if not lines:
                    return
                chunk = Chunk(0, [], None, self.path, [], None, [])
                values, offsets, rejects = chunk.values, chunk.offsets, chunk.rejects
                assert isinstance(offsets, list) and rejects is not None
                for line in lines:
                    lineno += 1
                    if not line.strip():
                        continue
                    try:
                        values.append(dec(line))
                    except msgspec.DecodeError as exc:
                        err = EventError(
                            f"cannot decode JSON in {self.path} line {lineno}: {exc}",
                            topic=self.path,
                            partition=0,
                            offset=lineno,
                        )
                        err.__cause__ = exc
                        rejects.append((lineno, line.rstrip(b"\r\n"), err))
                        continue
                    offsets.append(lineno)
                yield chunk

    def __repr__(self) -> str:
        return f"jsonl_source({self.path!r})"


def _infer(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class CsvSource:
    """CSV with a header row; each row becomes a dict."""

    def __init__(
        self, path: str | os.PathLike[str], *, infer_types: bool = True, delimiter: str = ","
    ) -> None:
        self.path = os.fspath(path)
        self.infer_types = infer_types
        self.delimiter = delimiter

    def open(self, ctx: OpenContext) -> BaseReader:
        if not os.path.isfile(self.path):
            raise ConfigError(f"{self!r}: no such file: {self.path}")
        return _IteratorReader(self._chunks(), self.path)

    def _chunks(self) -> Iterator[list[Any]]:
        with open(self.path, newline="", encoding="utf-8") as f:
            rows = csv.DictReader(f, delimiter=self.delimiter)
            out: list[Any] = []
            for row in rows:
                if self.infer_types:
                    row = {k: _infer(v) for k, v in row.items()}
                out.append(row)
                if len(out) >= CHUNK:
                    yield out
                    out = []
            if out:
                yield out

    def __repr__(self) -> str:
        return f"csv_source({self.path!r})"


class ParquetSource:
    """A Parquet file, read a record batch at a time; rows become dicts."""

    def __init__(self, path: str | os.PathLike[str], *, columns: list[str] | None = None) -> None:
        self.path = os.fspath(path)
        self.columns = columns

    def open(self, ctx: OpenContext) -> BaseReader:
        try:
            import pyarrow.parquet as pq  # type: ignore[import-untyped, import-not-found, unused-ignore]
        except ImportError:
            raise ConfigError(
                "parquet_source needs pyarrow: pip install 'rheos[columnar]'"
            ) from None
        if not os.path.isfile(self.path):
            raise ConfigError(f"{self!r}: no such file: {self.path}")
        file = pq.ParquetFile(self.path)
        batches = file.iter_batches(batch_size=CHUNK, columns=self.columns)
        return _IteratorReader((b.to_pylist() for b in batches), self.path)

    def __repr__(self) -> str:
        return f"parquet_source({self.path!r})"


class JsonlSink:
    """Appends one JSON document per event to a file."""

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False) -> None:
        self.path = os.fspath(path)
        self.append = append

    def open(self, ctx: OpenContext) -> JsonlWriter:
        return JsonlWriter(open(self.path, "ab" if self.append else "wb"))

    def __repr__(self) -> str:
        return f"jsonl_sink({self.path!r})"


class JsonlWriter(BaseWriter):
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._encode = encoder("json")

    def write(self, value: Any, timestamp: int) -> None:
        self._file.write(self._encode(value) + b"\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def jsonl_source(path: str | os.PathLike[str]) -> JsonlSource:
    """A bounded source reading a JSON-lines file."""
    return JsonlSource(path)


def csv_source(
    path: str | os.PathLike[str], *, infer_types: bool = True, delimiter: str = ","
) -> CsvSource:
    """A bounded source reading a CSV file with a header row."""
    return CsvSource(path, infer_types=infer_types, delimiter=delimiter)


def parquet_source(
    path: str | os.PathLike[str], *, columns: list[str] | None = None
) -> ParquetSource:
    """A bounded source reading a Parquet file (needs ``rheos[columnar]``)."""
    return ParquetSource(path, columns=columns)


def jsonl_sink(path: str | os.PathLike[str], *, append: bool = False) -> JsonlSink:
    """A sink writing one JSON document per line to ``path``."""
    return JsonlSink(path, append=append)


__all__ = [
    "CsvSource",
    "JsonlSink",
    "JsonlSource",
    "ParquetSource",
    "csv_source",
    "jsonl_sink",
    "jsonl_source",
    "parquet_source",
]
