"""``rheos topic create|list|describe|delete``."""

from __future__ import annotations

import argparse
import sys

import msgspec

from rheos.durations import format_ms
from rheos.errors import ConfigError, TopicNotFoundError
from rheos.operations.cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Subparsers,
    add_command,
    human_bytes,
    iso_ms,
    open_log,
    print_table,
)
from rheos.transport import Log, PartitionInfo, TopicConfig


def add_parser(subparsers: Subparsers) -> None:
    topic = add_command(subparsers, "topic", None, help="create, list, describe, delete topics")
    topic.set_defaults(handler=lambda args: _usage(topic))
    actions = topic.add_subparsers(title="actions", metavar="ACTION")

    create = add_command(actions, "create", _create, help="create a topic")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--partitions", "-p", type=int, required=True, metavar="N")
    create.add_argument(
        "--retention-ms",
        metavar="MS",
        help="delete segments older than this: milliseconds or a duration such as 7d, 12h",
    )
    create.add_argument("--retention-bytes", type=int, metavar="N", help="per partition")
    create.add_argument("--segment-bytes", type=int, metavar="N", help="roll segments at N bytes")
    create.add_argument(
        "--max-record-bytes", type=int, metavar="N", help="refuse records over N bytes"
    )
    create.add_argument(
        "--durability", metavar="MODE", help="batch (fsync every append), os, or e.g. 100ms"
    )
    create.add_argument(
        "--exist-ok", action="store_true", help="succeed if the topic already exists"
    )

    listing = add_command(actions, "list", _list, help="list topics")
    listing.add_argument("--json", action="store_true", help="one JSON array, for programs")

    describe = add_command(actions, "describe", _describe, help="settings and partitions")
    describe.add_argument("name", metavar="NAME")
    describe.add_argument("--json", action="store_true", help="one JSON object, for programs")

    delete = add_command(actions, "delete", _delete, help="delete a topic and its data")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _retention(text: str | None) -> str | int | None:
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text


def _create(args: argparse.Namespace) -> int:
    log = open_log(args)
    try:
        existed = args.exist_ok and log.has_topic(args.name)
        config = log.create_topic(
            args.name,
            args.partitions,
            retention_ms=_retention(args.retention_ms),
            retention_bytes=args.retention_bytes,
            segment_bytes=args.segment_bytes,
            max_record_bytes=args.max_record_bytes,
            durability=args.durability,
            exist_ok=args.exist_ok,
        )
    finally:
        log.close()
    verb = "exists" if existed else "created"
    print(f"topic {config.name!r} {verb}: {config.partitions} partitions")
    return EXIT_OK


def _records(parts: list[PartitionInfo]) -> int:
    return sum(p.next_offset - p.start_offset for p in parts)


def _list(args: argparse.Namespace) -> int:
    log = open_log(args)
    try:
        rows = []
        for name in log.topic_names():
            try:
                parts = log.describe(name)
            except TopicNotFoundError:  # deleted while listing
                continue
            rows.append((name, len(parts), _records(parts), sum(p.size_bytes for p in parts)))
    finally:
        log.close()
    if args.json:
        out = [{"name": n, "partitions": p, "records": r, "size_bytes": s} for n, p, r, s in rows]
        sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
        return EXIT_OK
    if not rows:
        print(f"no topics in {log.data_dir}", file=sys.stderr)
        return EXIT_OK
    print_table(
        None,
        ["topic", "partitions", "records", "size"],
        [(n, p, r, human_bytes(s)) for n, p, r, s in rows],
        right=("partitions", "records", "size"),
    )
    return EXIT_OK


def _partition_json(info: PartitionInfo) -> dict[str, object]:
    return {
        "partition": info.partition,
        "start_offset": info.start_offset,
        "next_offset": info.next_offset,
        "records": info.next_offset - info.start_offset,
        "size_bytes": info.size_bytes,
        "segments": info.segments,
        "first_timestamp": info.first_timestamp,
        "max_timestamp": info.max_timestamp,
        "first_time": iso_ms(info.first_timestamp),
        "max_time": iso_ms(info.max_timestamp),
    }


def _settings(config: TopicConfig) -> str:
    retention = []
    if config.retention_ms is not None:
        retention.append(format_ms(config.retention_ms))
    if config.retention_bytes is not None:
        retention.append(f"{human_bytes(config.retention_bytes)} per partition")
    return (
        f"partitions {config.partitions}, retention {' or '.join(retention) or 'forever'}, "
        f"segments of {human_bytes(config.segment_bytes)}, records up to "
        f"{human_bytes(config.max_record_bytes)}, durability {config.durability}, "
        f"created {iso_ms(config.created_ms)}"
    )


def _utc_seconds(ms: int | None) -> str | None:
    """ISO-8601 to the second, without the ``Z`` (the column header says UTC)."""
    text = iso_ms(ms, "seconds")
    return None if text is None else text.removesuffix("Z")


def _describe(args: argparse.Namespace) -> int:
    log = open_log(args)
    try:
        config = log.config(args.name)
        parts = log.describe(args.name)
    finally:
        log.close()
    if args.json:
        out = {
            "config": msgspec.to_builtins(config),
            "records": _records(parts),
            "size_bytes": sum(p.size_bytes for p in parts),
            "partitions": [_partition_json(p) for p in parts],
        }
        sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
        return EXIT_OK
    print(f"topic {config.name!r}: {_settings(config)}")
    columns = [
        "part",
        "first",
        "next",
        "records",
        "size",
        "segs",
        "first time UTC",
        "latest time UTC",
    ]
    print_table(
        None,
        columns,
        [
            (
                p.partition,
                p.start_offset,
                p.next_offset,
                p.next_offset - p.start_offset,
                human_bytes(p.size_bytes),
                p.segments,
                _utc_seconds(p.first_timestamp),
                _utc_seconds(p.max_timestamp),
            )
            for p in parts
        ],
        right=columns[:6],
    )
    return EXIT_OK


def _confirm(log: Log, name: str) -> bool:
    records = _records(log.describe(name))
    sys.stderr.write(f"delete topic {name!r} and its {records} records? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _delete(args: argparse.Namespace) -> int:
    log = open_log(args)
    try:
        log.config(args.name)  # a missing topic is an error before any question
        if not args.yes:
            if not sys.stdin.isatty():
                raise ConfigError(
                    f"not deleting topic {args.name!r} without --yes (stdin is not a terminal)"
                )
            if not _confirm(log, args.name):
                print("not deleted", file=sys.stderr)
                return EXIT_FAILED
        log.delete_topic(args.name)
    finally:
        log.close()
    print(f"topic {args.name!r} deleted")
    return EXIT_OK
