"""``rheos produce``: JSON lines (or raw lines) from stdin or a file into a topic.

Each valid line's JSON value is stored as compact JSON. A line that cannot be stored (not JSON,
no key field, a timestamp that cannot be read, too large) is reported on stderr with its line
number and skipped; with ``--strict`` it stops the command with exit code 1. Either way every
valid line read before it is written and acknowledged first.

Lines are appended in batches of up to 10,000; from a pipe or a terminal, a line read is
appended within 50 ms (at once when the input pauses), so a live feed (``tail -f app.log |
rheos produce ...``) reaches readers at once rather than 10,000 lines later.
"""

from __future__ import annotations

import argparse
import math
import os
import select
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO

import msgspec

from rheos.errors import ConfigError, TopicNotFoundError
from rheos.operations.cli_common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Subparsers,
    add_command,
    open_log,
    plural,
    progress_bar,
    warn,
)
from rheos.transport import Producer

BATCH_LINES = 10_000
TICK_BYTES = 1 << 20
"""The progress bar of ``--file`` moves every this many bytes read."""
LIVE_PAUSE_S = 0.05
"""From a pipe or terminal, the longest a line read waits before it is appended."""
SECONDS_BELOW = 1e11
"""Numeric timestamps below this (in absolute value) are epoch seconds, others epoch ms."""

_decoder = msgspec.json.Decoder()
_encode = msgspec.json.encode


def add_parser(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers,
        "produce",
        _produce,
        help="append JSON lines from stdin (or --file) to a topic",
        description=__doc__,
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--file", "-f", metavar="PATH", help="read this file instead of stdin")
    p.add_argument(
        "--key",
        metavar="FIELD",
        help="the key is this field (a.b for nested): a string as itself, other values as "
        "their JSON text, null as no key",
    )
    p.add_argument(
        "--timestamp",
        metavar="FIELD",
        help="the event time is this field: epoch ms, epoch seconds, or ISO-8601 (naive = UTC)",
    )
    p.add_argument("--partition", type=int, metavar="P", help="write every record to P")
    p.add_argument("--strict", action="store_true", help="stop at the first bad line (exit 1)")
    p.add_argument("--raw", action="store_true", help="store each line as it is, unparsed")
    p.add_argument(
        "--create-partitions", type=int, metavar="N", help="create the topic if it is missing"
    )
    p.add_argument("--durability", metavar="MODE", help="batch, os, or e.g. 100ms")


class BadLine(Exception):
    """A line that cannot become a record; the message says why."""


def _field(obj: object, name: str) -> object:
    """``obj[name]``, or a dotted path into nested objects (``user.id``)."""
    if not isinstance(obj, dict):
        raise BadLine(f"no field {name!r}: the line is not a JSON object")
    if name in obj:
        return obj[name]
    cur: object = obj
    for part in name.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise BadLine(f"no field {name!r}")
        cur = cur[part]
    return cur


def key_bytes(value: object) -> bytes | None:
    """A key field as bytes: a string as itself, other values as their compact JSON text,
    ``null`` as no key."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return _encode(value)


def timestamp_ms(value: object) -> int:
    """Epoch ms from epoch ms, epoch seconds (``abs < 1e11``) or an ISO-8601 string."""
    if isinstance(value, bool) or value is None:
        raise BadLine(f"timestamp {value!r} is not a time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise BadLine(f"timestamp {value!r} is not a time")
        return round(value * 1000) if abs(value) < SECONDS_BELOW else round(value)
    if isinstance(value, str):
        try:
            return timestamp_ms(float(value))
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadLine(f"timestamp {value!r} is not epoch ms, seconds or ISO-8601") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return round(when.timestamp() * 1000)
    raise BadLine(f"timestamp {_encode(value).decode()[:80]} is not a time")


class _Batcher:
    """Collects records and appends them in batches; counts what it wrote."""

    def __init__(self, producer: Producer, args: argparse.Namespace) -> None:
        self.producer = producer
        self.partition: int | None = args.partition
        self.with_keys = args.key is not None
        self.with_ts = args.timestamp is not None
        self.values: list[bytes] = []
        self.keys: list[bytes | None] = []
        self.timestamps: list[int] = []
        self.written = 0

    def add(self, value: bytes, key: bytes | None, ts: int) -> None:
        self.values.append(value)
        self.keys.append(key)
        self.timestamps.append(ts)
        if len(self.values) >= BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        if not self.values:
            return
        values, keys, timestamps = self.values, self.keys, self.timestamps
        self.values, self.keys, self.timestamps = [], [], []
        self.producer.append(
            values,
            keys=keys if self.with_keys else None,
            timestamps=timestamps if self.with_ts else None,
            partition=self.partition,
        )
        self.written += len(values)


def _record(line: bytes, args: argparse.Namespace) -> tuple[bytes, bytes | None, int]:
    """The value, key and timestamp of one (non-blank, newline-stripped) line."""
    if args.raw:
        return line, None, 0
    try:
        obj = _decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise BadLine(f"not valid JSON ({exc})") from None
    key = key_bytes(_field(obj, args.key)) if args.key is not None else None
    ts = timestamp_ms(_field(obj, args.timestamp)) if args.timestamp is not None else 0
    return _encode(obj), key, ts


def _counted(stream: Iterable[bytes], tick: Callable[[float], None]) -> Iterator[bytes]:
    """The lines of ``stream``, telling ``tick`` how many bytes were read (every MiB)."""
    pending = 0
    for line in stream:
        pending += len(line)
        if pending >= TICK_BYTES:
            tick(pending)
            pending = 0
        yield line
    tick(pending)


def _live_fd(source: BinaryIO) -> int | None:
    """The descriptor of ``source`` when it is a pipe, socket or terminal (input that can
    pause), else ``None`` (a file, or a stream with no descriptor)."""
    try:
        fd = source.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError):
        return None
    live = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)
    return fd if live else None


def _live_lines(fd: int, flush: Callable[[], None]) -> Iterator[bytes]:
    """The lines of a pipe as they arrive, calling ``flush`` when it is silent for
    :data:`LIVE_PAUSE_S` and at least that often while lines keep coming."""
    rest = b""
    flushed = time.monotonic()
    while True:
        ready, _, _ = select.select([fd], [], [], LIVE_PAUSE_S)
        if ready:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            yield from lines  # each one is in the batch when the generator resumes
        now = time.monotonic()
        if not ready or now - flushed >= LIVE_PAUSE_S:
            flush()
            flushed = now
    if rest:
        yield rest


def _lines(stream: Iterable[bytes], raw: bool) -> Iterable[tuple[int, bytes]]:
    for number, line in enumerate(stream, 1):
        line = line.removesuffix(b"\n").removesuffix(b"\r")
        if line if raw else line.strip():
            yield number, line


def _produce(args: argparse.Namespace) -> int:
    if args.raw and (args.key or args.timestamp):
        raise ConfigError("--raw stores lines unparsed, so it cannot take --key or --timestamp")
    log = open_log(args)
    source = sys.stdin.buffer if args.file is None else _open(args.file)
    size = None if args.file is None else os.fstat(source.fileno()).st_size
    code = EXIT_OK
    skipped = 0
    try:
        try:
            producer = log.producer(
                args.topic, durability=args.durability, create_partitions=args.create_partitions
            )
        except TopicNotFoundError:
            raise ConfigError(
                f"no such topic {args.topic!r} in {log.data_dir}: create it first (rheos topic "
                f"create {args.topic} --partitions N), or pass --create-partitions N"
            ) from None
        limit = producer.config.max_record_bytes
        with producer, progress_bar(f"produce {args.topic}", size, in_bytes=True) as tick:
            batch = _Batcher(producer, args)
            live = None if size is not None else _live_fd(source)
            lines: Iterable[bytes] = source
            if size is not None:
                lines = _counted(source, tick)
            elif live is not None:
                lines = _live_lines(live, batch.flush)
            try:
                for number, line in _lines(lines, args.raw):
                    try:
                        value, key, ts = _record(line, args)
                        size = len(value) + len(key or b"")
                        if size > limit:
                            raise BadLine(
                                f"record of {size} bytes is over max_record_bytes {limit}"
                            )
                    except BadLine as exc:
                        if args.strict:
                            warn(f"error: line {number}: {exc}; stopping (--strict)")
                            code = EXIT_FAILED
                            break
                        warn(f"line {number}: {exc}; skipped")
                        skipped += 1
                        continue
                    batch.add(value, key, ts)
            except KeyboardInterrupt:
                code = EXIT_INTERRUPTED
            finally:
                batch.flush()
    finally:
        log.close()
        if source is not sys.stdin.buffer:
            source.close()
    note = f", skipped {plural(skipped, 'bad line')}" if skipped else ""
    warn(f"wrote {plural(batch.written, 'record')} to topic {args.topic!r}{note}")
    return code


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"--file {path!r}: {exc.strerror or exc}") from None
