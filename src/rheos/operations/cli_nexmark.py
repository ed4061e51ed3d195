"""``rheos nexmark generate`` and ``rheos nexmark run``: the Nexmark benchmark's events and
queries (see :mod:`rheos.nexmark`).

``generate --events N --out FILE`` writes the events as JSON lines; ``--out-dir DIR`` writes
one file per kind (``DIR/person.jsonl``, ``DIR/auction.jsonl``, ``DIR/bid.jsonl``);
``--topic T`` appends them to the log, one topic per kind (``T.person``, ``T.auction``,
``T.bid``, created if missing), each record timestamped with its event's ``dateTime``. One
schema per file or topic is what a micro-batch run reads fastest.

``run QUERY --input FILE`` (or ``--input-dir DIR``, or ``--topic T --bounded``) runs one query
(``q0`` to ``q8``, ``q11``) and writes its results as JSON lines to standard output, and a
line with the events read, the time and the throughput to standard error.
"""

from __future__ import annotations

import argparse
import sys
import time

import rheos as rh
from rheos.errors import ConfigError
from rheos.nexmark import (
    KINDS,
    QUERIES,
    GeneratorConfig,
    build,
    build_from_files,
    build_from_topics,
    write_jsonl,
    write_jsonl_by_kind,
    write_topics,
)
from rheos.operations.cli_common import EXIT_OK, Subparsers, add_command, open_log


def add_parser(subparsers: Subparsers) -> None:
    group = add_command(
        subparsers, "nexmark", None, help="the Nexmark benchmark: generate events, run queries"
    )
    commands = group.add_subparsers(title="commands", metavar="COMMAND", required=True)
    g = add_command(
        commands,
        "generate",
        _generate,
        help="generate Nexmark events (persons, auctions, bids) to a file or a topic",
        description=__doc__,
    )
    g.add_argument("--events", type=int, required=True, metavar="N", help="how many events")
    where = g.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="FILE", help="write JSON lines to FILE")
    where.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write DIR/person.jsonl, DIR/auction.jsonl and DIR/bid.jsonl (one kind each)",
    )
    where.add_argument(
        "--topic", metavar="T", help="append to the log's topics T.person, T.auction and T.bid"
    )
    g.add_argument("--seed", type=int, default=0, help="the random seed (default 0)")
    g.add_argument(
        "--rate",
        type=int,
        default=10_000,
        metavar="EVENTS_PER_S",
        help="events per second of event time (default 10000, the reference's)",
    )
    g.add_argument(
        "--partitions", type=int, default=1, help="partitions of a topic created (default 1)"
    )
    r = add_command(
        commands,
        "run",
        _run,
        help="run a Nexmark query over a file of events; results as JSON lines on stdout",
        description=__doc__,
    )
    r.add_argument("query", choices=list(QUERIES), metavar="QUERY", help=", ".join(QUERIES))
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="FILE", help="events as JSON lines")
    source.add_argument(
        "--input-dir", metavar="DIR", help="DIR/person.jsonl, auction.jsonl, bid.jsonl"
    )
    source.add_argument(
        "--topic", metavar="T", help="the log's topics T.person, T.auction, T.bid (--bounded)"
    )
    r.add_argument(
        "--mode",
        choices=["stream-first", "micro-batch"],
        default="stream-first",
        help="one event at a time (default) or columnar micro-batches",
    )
    r.add_argument("--batch-size", type=int, default=None, help="micro-batch: events per batch")
    r.add_argument("--bounded", action="store_true", help="batch: the answer over the whole file")


def _generate(args: argparse.Namespace) -> int:
    if args.events < 0:
        raise ConfigError(f"--events must be at least 0, got {args.events}")
    config = GeneratorConfig(events=args.events, seed=args.seed, events_per_second=args.rate)
    started = time.perf_counter()
    if args.out is not None:
        count = write_jsonl(config, args.out)
        where = args.out
    elif args.out_dir is not None:
        count = write_jsonl_by_kind(config, args.out_dir)
        where = f"{args.out_dir} (one file per kind)"
    else:
        count = _append(args, config)
        where = "topics " + ", ".join(f"{args.topic}.{kind}" for kind in KINDS)
    took = time.perf_counter() - started
    print(f"rheos: {count} Nexmark events to {where} in {took:.1f} s", file=sys.stderr)
    return EXIT_OK


def _append(args: argparse.Namespace, config: GeneratorConfig) -> int:
    log = open_log(args)
    try:
        return write_topics(config, log, args.topic, partitions=args.partitions)
    finally:
        log.close()


def _run(args: argparse.Namespace) -> int:
    if args.topic is not None:
        if not args.bounded:
            raise ConfigError("a log topic has no end: run a query over --topic with --bounded")
        flow = build_from_topics(args.query, args.topic, rh.stdout_sink(), data_dir=args.data_dir)
    elif args.input_dir is not None:
        flow = build_from_files(
            args.query, args.input_dir, rh.stdout_sink(), data_dir=args.data_dir
        )
    else:
        flow = build(
            args.query, rh.jsonl_source(args.input), rh.stdout_sink(), data_dir=args.data_dir
        )
    started = time.perf_counter()
    summary = flow.run(
        bounded=args.bounded, mode=args.mode, batch_size=args.batch_size, progress=False
    )
    took = time.perf_counter() - started
    read = summary.events_in
    rate = read / took if took > 0 else 0.0
    sys.stdout.flush()
    print(
        f"rheos: nexmark {args.query} ({args.mode}{', bounded' if args.bounded else ''}): "
        f"{read} events in {took:.2f} s, {rate:,.0f} events/s, {summary.events_out} results",
        file=sys.stderr,
    )
    return EXIT_OK
