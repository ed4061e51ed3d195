"""Waiting in tests that run flows in other processes or threads: poll a condition with a
generous bound (a guard against hanging, not a timing assertion), and read how far a flow's
checkpoints have got."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rheos.state import CheckpointStore, store_path


def wait_until(
    check: Callable[[], object], what: str = "the condition", limit: float = 60.0
) -> None:
    """Poll ``check`` until it is true; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def checkpoint_progress(data_dir: Path, flow: str) -> tuple[int, int]:
    """The latest checkpoint's id and the position of the flow's source ``source`` in
    partition 0 ((0, 0) with no checkpoint)."""
    path = store_path(data_dir, flow)
    if not path.exists():
        return 0, 0
    with CheckpointStore(path) as store:
        latest = store.latest()
    if latest is None:
        return 0, 0
    return latest.id, int(latest.meta["sources"]["source"]["positions"][0])
