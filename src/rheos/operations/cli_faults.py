"""``rheos checkpoints``, ``rheos dlq`` and ``rheos replay``: a flow's fault tolerance.

``rheos checkpoints FLOW`` lists the kept checkpoints (id, time, epoch, kind, source positions,
bytes written). ``rheos dlq FLOW`` lists the flow's dead letters (``--show`` prints each in
full, with its traceback); ``rheos dlq APP.py[:flow] --replay`` sends them back through the
flow as the file defines it now, exactly once. ``rheos replay FLOW --from TIME | --checkpoint
ID`` rolls the flow back (its next run reprocesses from there); ``rheos replay FLOW --latest``
fails it back to where it was before. See :mod:`rheos.runtime.replay` for what happens to
output already written (epoch markers).
"""

from __future__ import annotations

import argparse
import os

import msgspec

from rheos.errors import ConfigError
from rheos.operations.cli_common import (
    EXIT_OK,
    Subparsers,
    add_command,
    iso_ms,
    open_log,
    parse_time,
    print_table,
    progress_bar,
)
from rheos.operations.run_command import find_flow, load_module, split_target
from rheos.runtime import Flow
from rheos.runtime.deadletters import dlq_topic, read_dead_letters
from rheos.runtime.replay import fail_back, roll_back
from rheos.state import CheckpointStore, store_path


def add_parser(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "checkpoints", _checkpoints, help="list a flow's checkpoints")
    p.add_argument("flow", metavar="FLOW")
    p = add_command(
        subparsers,
        "dlq",
        _dlq,
        help="list a flow's dead letters, or replay them through fixed code",
        description=(
            "List the dead letters of FLOW (the topic FLOW.dlq): bad events and failures, with "
            "where and why each failed. --show prints each in full, with its traceback. "
            "'rheos dlq APP.py[:flow] --replay' sends the letters not replayed yet back through "
            "the flow as the file defines it now, exactly once: events that fail again become "
            "new dead letters; the others update the flow's state, and their windows emit when "
            "the flow's watermark passes them on its next run (or at once, with --drain)."
        ),
    )
    p.add_argument("flow", metavar="FLOW", help="the flow's name (or APP.py[:flow] to --replay)")
    p.add_argument("--show", action="store_true", help="print every dead letter in full")
    p.add_argument("--replay", action="store_true", help="send them back through the flow")
    p.add_argument(
        "--drain",
        action="store_true",
        help="with --replay: close every open window afterwards, so that results come now",
    )
    p = add_command(
        subparsers,
        "replay",
        _replay,
        help="roll a flow back in time, or fail it back",
        description=(
            "Roll FLOW back to an earlier checkpoint (--from TIME or --checkpoint ID): its next "
            "run reprocesses from there, and its output carries a new epoch. --latest fails it "
            "back to where it was before the last roll back."
        ),
    )
    p.add_argument("flow", metavar="FLOW")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        help=(
            "an ISO-8601 wall-clock time (e.g. 2024-05-01T09:30:00Z): back to the latest "
            "checkpoint taken at or before it (when it was taken, not event time; "
            "see rheos checkpoints FLOW)"
        ),
    )
    where.add_argument("--checkpoint", type=int, metavar="ID", help="a checkpoint id")
    where.add_argument("--latest", action="store_true", help="undo the last roll back")


def _data_dir(args: argparse.Namespace) -> str:
    return os.fspath(open_log(args).data_dir)


def _checkpoints(args: argparse.Namespace) -> int:
    path = store_path(_data_dir(args), args.flow)
    if not path.exists():
        raise ConfigError(f"flow {args.flow!r} has no checkpoints")
    with CheckpointStore(path) as store:
        rows = []
        for c in store.checkpoints():
            positions = "; ".join(
                f"{name} " + ",".join(f"{p}:{o}" for p, o in sorted(s["positions"].items()))
                for name, s in c.meta.get("sources", {}).items()
            )
            rows.append([c.id, iso_ms(c.created_ms), c.epoch, c.kind, positions, c.size_bytes])
    print_table(
        f"checkpoints of {args.flow}",
        ["id", "time", "epoch", "kind", "source positions", "bytes"],
        rows,
        right=["id", "epoch", "bytes"],
    )
    return EXIT_OK


def _dlq(args: argparse.Namespace) -> int:
    if args.replay:
        path, name = split_target(args.flow)
        flow = find_flow(load_module(path), name, path)
        if not isinstance(flow, Flow):
            raise ConfigError(f"{args.flow}: not a runnable flow")
        if flow.data_dir is None:
            flow.data_dir = _data_dir(args)
        summary = flow.replay_dead_letters(drain=args.drain)
        print(summary)
        if summary.dead_letters_replayed and not args.drain and summary.steps:
            print(
                f"rheos: {summary.dead_letters_replayed} dead letters replayed into the state of "
                f"flow {flow.name!r}: windows they joined emit when its watermark passes them "
                "on its next run (or now, with --drain)"
            )
        return EXIT_OK
    log = open_log(args)
    if not log.has_topic(dlq_topic(args.flow)):
        flows = sorted(t.removesuffix(".dlq") for t in log.topic_names() if t.endswith(".dlq"))
        known = (
            f"flows with dead letters here: {', '.join(flows)}" if flows else "no flow here has any"
        )
        raise ConfigError(
            f"flow {args.flow!r} has no dead letters in {log.data_dir} (no topic "
            f"{dlq_topic(args.flow)}; {known})"
        )
    letters = list(read_dead_letters(log, args.flow))
    if args.show:
        for letter in letters:
            text = msgspec.json.format(msgspec.json.encode(letter.as_dict())).decode()
            print(text)
            print(letter.traceback)
        return EXIT_OK
    print_table(
        f"dead letters of {args.flow}",
        ["offset", "time", "step", "error", "source", "message"],
        [
            [
                letter.offset,
                iso_ms(letter.time_ms),
                letter.step,
                letter.error_type,
                (
                    f"{letter.source_topic}/{letter.source_partition}@{letter.source_offset}"
                    if letter.source_topic is not None
                    else "-"
                ),
                letter.message,
            ]
            for letter in letters
        ],
        right=["offset"],
    )
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    label = "fail back" if args.latest else "roll back"
    with progress_bar(f"{label} {args.flow}: sink partitions", None) as advance:

        def moved(done: int, total: int) -> None:
            advance(1)

        if args.latest:
            info = fail_back(data_dir, args.flow, progress=moved)
        elif args.checkpoint is not None:
            info = roll_back(data_dir, args.flow, checkpoint=args.checkpoint, progress=moved)
        else:
            when = parse_time(args.start, what="--from")
            at_ms = int(when.timestamp() * 1000)
            info = roll_back(data_dir, args.flow, at_ms=at_ms, progress=moved)
    target = info.meta["replay_of"]["to"]
    print(
        f"flow {args.flow!r} is at checkpoint {target} again, epoch {info.epoch} "
        f"(new checkpoint {info.id}); its next run continues from there"
    )
    return EXIT_OK
