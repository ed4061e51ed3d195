"""What every ``rheos`` subcommand shares: registration, the data directory, output helpers.

A subcommand module has one function, ``add_parser(subparsers)``, which calls
:func:`add_command` with a handler ``(args) -> exit code``. Handlers raise
:class:`~rheos.errors.RheosError` for anything the user should fix; ``main`` turns it into one
``rheos: error: ...`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TextIO, TypeAlias

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from rheos.errors import ConfigError
from rheos.transport import Log

Handler = Callable[[argparse.Namespace], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def common_options() -> argparse.ArgumentParser:
    """Options accepted both before and after the subcommand (``rheos --data-dir D topic list``
    and ``rheos topic list --data-dir D``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="the data directory (default: $RHEOS_DATA_DIR, else ./.rheos)",
    )
    return parser


_COMMON = common_options()


_ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|exc):`~?([^`]+)`")


def plain_text(doc: str) -> str:
    """A docstring as terminal text: reST roles and double backquotes dropped.

    >>> plain_text("see :func:`rheos.runtime.replay.roll_back` and ``rheos dlq``")
    'see rheos.runtime.replay.roll_back and rheos dlq'
    """
    return _ROLE.sub(r"\1", doc).replace("``", "")


def add_command(
    subparsers: Subparsers,
    name: str,
    handler: Handler | None,
    *,
    help: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` run by ``handler`` and return its parser for its options."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=plain_text(description or help),
        parents=[_COMMON],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def open_log(args: argparse.Namespace) -> Log:
    """The log in ``--data-dir`` (else ``$RHEOS_DATA_DIR``, else ``./.rheos``)."""
    return Log(getattr(args, "data_dir", None))


def warn(message: str) -> None:
    """One line on stderr, prefixed like every rheos message."""
    print(f"rheos: {message}", file=sys.stderr, flush=True)


def iso_ms(ms: int | None, timespec: str = "milliseconds") -> str | None:
    """Epoch milliseconds as ISO-8601 UTC (``2024-05-01T12:00:00.250Z``)."""
    if ms is None:
        return None
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_time(text: str, *, what: str) -> datetime:
    """An ISO-8601 time; a time without a zone is UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{what}: cannot read {text!r} as an ISO-8601 time (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@contextmanager
def progress_bar(
    description: str, total: float | None, *, in_bytes: bool = False
) -> Iterator[Callable[[float], None]]:
    """A progress bar for a long command, drawn only when standard output is a terminal;
    yields ``advance(amount)`` (a no-op otherwise). The bar disappears when done: the
    command prints its own summary."""
    if not sys.stdout.isatty():
        yield lambda amount: None
        return
    count: ProgressColumn = DownloadColumn() if in_bytes else MofNCompleteColumn()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        count,
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, console=Console(file=sys.stdout)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda amount: bar.advance(task, amount)


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    right: Sequence[str] = (),
    file: TextIO | None = None,
) -> None:
    """A rich table on a terminal; plain aligned columns otherwise (easy to ``awk``)."""
    out = file or sys.stdout
    cells = [["-" if c is None else str(c) for c in row] for row in rows]
    if out.isatty():
        table = Table(
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_edge=False,
            collapse_padding=True,
        )
        for col in columns:
            table.add_column(col, justify="right" if col in right else "left", overflow="fold")
        for row in cells:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if col in right else v.ljust(w)
            for v, w, col in zip(values, widths, columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    if title:
        print(title, file=out)
    print(line(columns), file=out)
    for row in cells:
        print(line(row), file=out)
