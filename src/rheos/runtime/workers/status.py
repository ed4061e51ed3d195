"""What a flow split across workers looks like now: its workers, its tasks, recent events.

Read from the files of :mod:`.membership` and each task's saved metrics (``metrics.json``,
written by the task's runner every second while it runs): for ``rheos status`` and the
dashboard.
"""

from __future__ import annotations

from typing import Any

from rheos.runtime.metrics import load_snapshot, snapshot_path
from rheos.runtime.workers.membership import (
    now_ms,
    read_events,
    tasks_dir,
    worker_statuses,
)

HEARTBEAT_STALE_MS = 10_000
"""A live worker whose heartbeat is older than this is shown as stalled."""


def split_status(data_dir: str, flow: str) -> dict[str, Any] | None:
    """``{"workers", "tasks", "events"}`` of ``flow``, or ``None`` if it never ran split.

    ``workers``: each live worker's id, pid, host, tasks, start and heartbeat times;
    ``tasks``: per task its partition, the worker running it (``None``: unclaimed), events
    in and out, consumer lag and state entries from its last saved metrics; ``events``: the
    latest worker starts, deaths and takeovers.
    """
    folder = tasks_dir(data_dir, flow)
    if not folder.is_dir():
        return None
    workers = worker_statuses(data_dir, flow)
    now = now_ms()
    for w in workers:
        w["stalled"] = now - int(w.get("heartbeat_ms") or 0) > HEARTBEAT_STALE_MS
    owner = {task: w["id"] for w in workers for task in w.get("tasks", [])}
    tasks = []
    numbers = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    for task in numbers:
        snap = load_snapshot(snapshot_path(data_dir, flow, task)) or {}
        tasks.append(
            {
                "task": task,
                "partition": task,
                "worker": owner.get(task),
                "events_in": snap.get("events_in"),
                "events_out": snap.get("events_out"),
                "consumer_lag": snap.get("consumer_lag"),
                "state_size": snap.get("state_size"),
                "dead_lettered": snap.get("dead_lettered"),
                "saved_ms": snap.get("time_ms"),
            }
        )
    return {"workers": workers, "tasks": tasks, "events": read_events(data_dir, flow)}


__all__ = ["HEARTBEAT_STALE_MS", "split_status"]
