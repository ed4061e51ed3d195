"""``rheos log check [TOPIC]``: read every batch of the log and say what is damaged.

Checks each topic (or one) as :func:`rheos.transport.check.check_topic` does: every batch's
CRC and framing, the offsets from segment to segment, and the index files. Prints one line
per topic and one per finding; exit code 1 when acknowledged records are at risk (a damaged
batch, an offset gap), 0 otherwise -- a torn tail (an append a crash cut short, never
acknowledged) and a stale index are reported, not failures.
"""

from __future__ import annotations

import argparse
import sys

from rheos.errors import TopicNotFoundError
from rheos.operations.cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    Subparsers,
    add_command,
    human_bytes,
    open_log,
    print_table,
)
from rheos.transport.check import TopicCheck, check_topic


def add_parser(subparsers: Subparsers) -> None:
    group = add_command(subparsers, "log", None, help="check the log's files on disk")
    commands = group.add_subparsers(title="commands", metavar="COMMAND", required=True)
    p = add_command(
        commands,
        "check",
        _check,
        help="verify every batch's CRC, the offsets and the indexes; report what is damaged",
        description=__doc__,
    )
    p.add_argument("topic", metavar="TOPIC", nargs="?", help="one topic (default: every topic)")


def _check(args: argparse.Namespace) -> int:
    log = open_log(args)
    try:
        names = [args.topic] if args.topic else log.topic_names()
        results: list[TopicCheck] = []
        for name in names:
            if not log.has_topic(name):
                raise TopicNotFoundError("no such topic", topic=name)
            results.append(check_topic(log, name))
    finally:
        log.close()
    print_table(
        f"log check of {log.data_dir}",
        ["topic", "partitions", "segments", "records", "size", "state"],
        [
            (
                r.topic,
                r.partitions,
                r.segments,
                r.records,
                human_bytes(r.batches_bytes),
                "ok" if not r.findings else ("at risk" if not r.ok else "notes"),
            )
            for r in results
        ],
        right=("partitions", "segments", "records", "size"),
    )
    findings = [f for r in results for f in r.findings]
    for finding in findings:
        print(finding, file=sys.stderr if finding.data_at_risk else sys.stdout)
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
