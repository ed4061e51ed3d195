"""Nexmark, the streaming benchmark of an online auction site, on rheos.

:mod:`rheos.nexmark.generator` makes the events (persons, auctions, bids) as the benchmark's
reference generator does; :mod:`rheos.nexmark.queries` has the queries as rheos flows. The
command line runs both: ``rheos nexmark generate`` and ``rheos nexmark run``.

This package sits on top of the flow API, like an application: nothing in rheos imports it
but the command line.
"""

from rheos.nexmark.generator import (
    KINDS,
    GeneratorConfig,
    generate,
    write_jsonl,
    write_jsonl_by_kind,
    write_topics,
)
from rheos.nexmark.queries import QUERIES, Events, build, build_from_files, build_from_topics

__all__ = [
    "KINDS",
    "QUERIES",
    "Events",
    "GeneratorConfig",
    "build",
    "build_from_files",
    "build_from_topics",
    "generate",
    "write_jsonl",
    "write_jsonl_by_kind",
    "write_topics",
]
