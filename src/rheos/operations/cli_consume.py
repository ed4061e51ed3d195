"""``rheos consume``: a topic's records as JSON lines on stdout.

Each line is ``{"partition", "offset", "timestamp", "key", "value"}``:

- ``timestamp`` is epoch milliseconds;
- ``key`` is the key as UTF-8 text, or ``null`` for no key; a key that is not UTF-8 is given
  as ``"key_b64"`` (base64) instead of ``"key"``;
- ``value`` is the stored JSON value when the bytes are JSON, else the bytes as a string when
  they are UTF-8, else ``"value_b64"`` (base64) instead of ``"value"``.

With ``--raw`` each record's value bytes are written as they are, one per line.

``--from`` is ``beginning`` (the default), ``end``, an offset (in every partition read; one
below the first kept offset starts at the first, one past the end at the end) or an ISO-8601
time (the first record at or after it; a time without a zone is UTC). With ``--group`` the
partitions the group has committed resume from there instead, and what was printed is committed
when the command ends (also after ``--limit``, Ctrl-C or a closed pipe).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import BinaryIO

import msgspec

from rheos.errors import ConfigError
from rheos.operations.cli_common import (
    EXIT_OK,
    Subparsers,
    add_command,
    open_log,
    parse_time,
)
from rheos.transport import Log, Reader, Record, Start
from rheos.transport.log import Isolation

_encode = msgspec.json.encode


def add_parser(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers,
        "consume",
        _consume,
        help="write a topic's records to stdout as JSON lines",
        description=__doc__,
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument(
        "--from",
        dest="start",
        default="beginning",
        metavar="WHERE",
        help="beginning (default), end, an OFFSET, or an ISO-8601 time",
    )
    p.add_argument(
        "--partition",
        type=int,
        action="append",
        metavar="P",
        help="read only partition P (repeatable)",
    )
    p.add_argument("--group", "-g", metavar="G", help="resume from and commit G's offsets")
    p.add_argument("--limit", "-n", type=int, metavar="N", help="stop after N records")
    p.add_argument("--follow", "-F", action="store_true", help="wait for new records (Ctrl-C)")
    p.add_argument("--raw", action="store_true", help="write the value bytes only")
    p.add_argument(
        "--uncommitted",
        action="store_true",
        help="also records not committed yet (a flow's output before its checkpoint: "
        "lowest latency, but a crash may take them back and write them again)",
    )


def parse_start(text: str) -> Start:
    """``beginning``, ``end``, an offset, or an ISO-8601 time."""
    word = text.strip().lower()
    if word in ("beginning", "end"):
        return "beginning" if word == "beginning" else "end"
    if word.isdigit():
        return int(word)
    if word.startswith("-") and word[1:].isdigit():
        raise ConfigError(f"--from {text}: offsets cannot be negative")
    return parse_time(text, what="--from")


def record_json(record: Record) -> bytes:
    """One output line (without the newline) for ``record``."""
    out: dict[str, object] = {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
    }
    key = record.key
    if key is None:
        out["key"] = None
    else:
        try:
            out["key"] = key.decode()
        except UnicodeDecodeError:
            out["key_b64"] = base64.b64encode(key).decode()
    value = record.value
    try:
        text = bytes(msgspec.json.decode(value, type=msgspec.Raw))
        if b"\n" in text or b"\r" in text:  # whitespace inside: re-encode compactly
            text = _encode(msgspec.json.decode(value))
        out["value"] = msgspec.Raw(text)
    except msgspec.DecodeError:
        try:
            out["value"] = value.decode()
        except UnicodeDecodeError:
            out["value_b64"] = base64.b64encode(value).decode()
    return _encode(out)


def _reader(log: Log, args: argparse.Namespace) -> Reader:
    start = parse_start(args.start)
    if isinstance(start, int):
        # Clamp an offset into each partition's range, so one offset fits every partition.
        with log.reader(args.topic, partitions=args.partition) as probe:
            first, ends = probe.positions(), probe.end_offsets()
        start = {p: min(max(start, first[p]), ends[p]) for p in first}
    isolation: Isolation = "uncommitted" if args.uncommitted else "committed"
    return log.reader(
        args.topic, partitions=args.partition, start=start, group=args.group, isolation=isolation
    )


def _consume(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 0:
        raise ConfigError("--limit must be >= 0")
    log = open_log(args)
    out: BinaryIO = sys.stdout.buffer
    printed: dict[int, int] = {}  # partition -> next offset after the last record printed
    try:
        with _reader(log, args) as reader, _Stop().installed() as stop:
            if args.group is not None:
                # Partitions that print nothing commit where they started: a group that
                # started at the end stays there.
                printed.update(reader.positions())
            try:
                _copy(reader, args, out, printed, stop)
            except KeyboardInterrupt:
                pass
            except BrokenPipeError:
                _silence_stdout()
            finally:
                if args.group is not None:
                    reader.commit(printed)
    finally:
        log.close()
    return EXIT_OK


class _Stop:
    """Ctrl-C and SIGTERM ask the copy loop to stop after the records it is writing, so what
    was printed is exactly what ``--group`` commits. A second signal interrupts at once (for
    a write blocked on a stalled pipe)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Stop]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _copy(
    reader: Reader, args: argparse.Namespace, out: BinaryIO, printed: dict[int, int], stop: _Stop
) -> None:
    left = args.limit
    encode = _value_only if args.raw else record_json
    while left != 0 and not stop.requested:
        batches = reader.poll(timeout=0.2 if args.follow else 0.0)
        if not batches:
            if args.follow:
                continue
            return
        records = [r for b in batches for r in b.records()]
        if left is not None:
            records = records[:left]
            left -= len(records)
        out.write(b"".join(encode(r) + b"\n" for r in records))
        out.flush()
        for r in records:
            printed[r.partition] = r.offset + 1


def _value_only(record: Record) -> bytes:
    return record.value


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so exiting does not complain again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
