"""The ``rheos`` command line.

``rheos [--data-dir DIR] COMMAND ...``; the data directory is ``--data-dir`` (before or after
the command), else ``$RHEOS_DATA_DIR``, else ``./.rheos``. Exit codes: 0 success, 1 the command
stopped on bad input (``produce --strict``) or was declined, 2 a usage error or an error from
rheos (one ``rheos: error: ...`` line on stderr), 130 interrupted.

Commands are registered in :data:`COMMANDS`: a module adds one with a single
``add_parser(subparsers)`` function that calls :func:`rheos.operations.cli_common.add_command`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TextIO

import rheos
from rheos.errors import RheosError, RheosWarning
from rheos.operations import (
    cli_consume,
    cli_faults,
    cli_log,
    cli_nexmark,
    cli_produce,
    cli_run,
    cli_status,
    cli_topic,
    demo,
)
from rheos.operations.cli_common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Subparsers,
    common_options,
)

COMMANDS: list[Callable[[Subparsers], None]] = [
    cli_topic.add_parser,
    cli_produce.add_parser,
    cli_consume.add_parser,
    cli_run.add_parser,
    cli_faults.add_parser,
    cli_status.add_parser,
    cli_log.add_parser,
    cli_nexmark.add_parser,
    demo.add_parser,
]
"""Each entry adds one subcommand (or a group of them) to the parser, in help order."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rheos",
        description="rheos: stream processing on an embedded, durable, partitioned event log.",
        parents=[common_options()],
    )
    parser.add_argument("--version", action="version", version=f"rheos {rheos.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rheos`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not hasattr(args, "data_dir"):  # given neither before nor after the command
        args.data_dir = None
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            code: int = handler(args)
    except RheosError as exc:
        print(f"rheos: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    return code


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """rheos's own warnings as one ``rheos: warning: ...`` line on stderr; others as usual."""
    if issubclass(category, RheosWarning):
        print(f"rheos: warning: {message}", file=sys.stderr, flush=True)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), file=sys.stderr)


__all__ = ["COMMANDS", "build_parser", "main"]
