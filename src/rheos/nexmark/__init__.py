"""Nexmark, the streaming benchmark of an online auction site, on rheos.

:mod:`rheos.nexmark.generator` makes the events (persons, auctions, bids) as the benchmark's
reference generator does; :mod:`rheos.nexmark.queries` has the queries as rheos flows. The
command line runs both: ``rheos nexmark generate`` and ``rheos nexmark run``.

This package sits on top of the flow API, like an application: nothing in rheos imports it
but the command line.
"""

from rheos.nexmark.generator import GeneratorConfig, generate, write_jsonl
from rheos.nexmark.queries import QUERIES, build

__all__ = ["QUERIES", "GeneratorConfig", "build", "generate", "write_jsonl"]
