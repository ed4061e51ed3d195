"""``rheos run app.py[:flow] [--bounded]``: run a flow defined in a Python file."""

from __future__ import annotations

import argparse

from rheos.operations.cli_common import Subparsers, add_command
from rheos.operations.dashboard import DEFAULT_HOST, DEFAULT_PORT
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
    p.add_argument(
        "--drain",
        action="store_true",
        help=(
            "on Ctrl-C, close every open window and emit its result (default: keep open windows "
            "in the last checkpoint; they close when the flow runs on)"
        ),
    )
    p.add_argument(
        "--checkpoint-interval",
        default=None,
        metavar="DURATION",
        help="checkpoint this often (e.g. 1s; 'off' disables; default: the flow's, 5s)",
    )
    p.add_argument(
        "--mode",
        choices=["stream-first", "micro-batch"],
        default=None,
        help=(
            "one event at a time (default) or columnar micro-batches; a --bounded run of a "
            "flow whose every step runs columnar takes micro-batch unless told"
        ),
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help=(
            "run the flow in N processes, one task per partition of its log or Kafka sources; "
            "a worker that dies is restarted and its tasks taken over "
            "(docs/concepts/scale-out.md)"
        ),
    )
    p.add_argument("--batch-size", type=int, default=None, help="micro-batch: events per batch")
    p.add_argument(
        "--batch-interval", default=None, help="micro-batch: longest wait to fill a batch (50ms)"
    )
    add_server_options(p)


def add_server_options(p: argparse.ArgumentParser, *, default_on: bool = False) -> None:
    """``--dashboard``, ``--host`` and ``--port`` (shared with ``rheos demo``)."""
    if default_on:
        p.add_argument(
            "--dashboard",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="serve the live dashboard, /api/metrics and /metrics (default: on)",
        )
    else:
        p.add_argument(
            "--dashboard",
            action="store_true",
            help="serve the live dashboard, /api/metrics and /metrics while the flow runs",
        )
    p.add_argument(
        "--host", default=DEFAULT_HOST, help=f"the dashboard's address (default: {DEFAULT_HOST})"
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the dashboard's port (default: {DEFAULT_PORT}, a free one if taken; 0: any)",
    )


def _handle(args: argparse.Namespace) -> int:
    return run_app(
        args.target,
        bounded=args.bounded,
        drain=args.drain,
        data_dir=args.data_dir,
        mode=getattr(args, "mode", None),
        batch_size=getattr(args, "batch_size", None),
        batch_interval=getattr(args, "batch_interval", None),
        checkpoint_interval=getattr(args, "checkpoint_interval", None),
        workers=getattr(args, "workers", None),
        dashboard=args.dashboard,
        host=args.host,
        port=args.port,
    )
