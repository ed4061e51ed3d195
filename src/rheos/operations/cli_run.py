"""``rheos run app.py[:flow] [--bounded]``: run a flow defined in a Python file."""

from __future__ import annotations

import argparse

from rheos.operations.cli_common import Subparsers, add_command
from rheos.operations.run_command import run_app


def add_parser(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers,
        "run",
        _handle,
        help="run a flow from a Python file (app.py or app.py:flow_name)",
        description=(
            "Run a flow defined in a Python file. The flow is the module attribute named after "
            "the colon, or the only Flow in the file. Streaming by default: runs until every "
            "source is exhausted or Ctrl-C; --bounded reads every source to its current end, "
            "computes the batch answer and exits."
        ),
    )
    p.add_argument("target", help="app.py or app.py:flow_name")
    p.add_argument("--bounded", action="store_true", help="batch: run over what exists now")


def _handle(args: argparse.Namespace) -> int:
    return run_app(args.target, bounded=args.bounded, data_dir=args.data_dir)
