"""The files through which the workers of a flow find each other and share its tasks.

Under ``<data_dir>/flows/<flow>/``:

- ``workers/<id>.lock``: held (``flock``) by worker ``<id>`` for its whole life. A worker is
  live exactly while its lock is held: the operating system frees it when the process dies,
  however it dies, so the others see a death at their next look.
- ``workers/<id>.json``: what the worker says of itself (pid, host, tasks, started,
  heartbeat, and when it ends its state and summary): read by ``rheos status``.
- ``workers/events.jsonl``: worker deaths, starts and task takeovers, one JSON line each.
- ``tasks/<p>/claim``: held (``flock``) by the worker that runs task ``p``; it holds the
  claiming worker's id while claimed, and is emptied when the task is handed back cleanly (a
  claim that still names a worker that is gone means that worker died with the task).

Locks are ``flock`` locks on a local file system (a shared one that supports them works the
same across machines).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rheos.state import state_dir

EVENTS_FILE = "events.jsonl"
EVENTS_KEPT = 200
"""``rheos status`` shows the latest events; the file is cut back past twice this."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def workers_dir(data_dir: str, flow: str) -> Path:
    return state_dir(data_dir, flow) / "workers"


def tasks_dir(data_dir: str, flow: str) -> Path:
    return state_dir(data_dir, flow) / "tasks"


def worker_id(pid: int | None = None) -> str:
    """``<host>-<pid>``: unique among the live workers of a data directory."""
    return f"{socket.gethostname()}-{os.getpid() if pid is None else pid}"


def _try_lock(path: Path) -> IO[bytes] | None:
    """The file at ``path`` opened and exclusively locked, or ``None`` if someone holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+b")  # noqa: SIM115 - held while locked
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def record_event(data_dir: str, flow: str, kind: str, **fields: Any) -> None:
    """Append one event (``died``, ``started``, ``took over``, ...) to the flow's events."""
    folder = workers_dir(data_dir, flow)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / EVENTS_FILE
    line = json.dumps({"time_ms": now_ms(), "event": kind, **fields}, default=str)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        f.write(line + "\n")
        f.flush()
        if f.tell() > EVENTS_KEPT * 2 * 200:  # about twice the kept lines: cut back
            with open(path) as r:
                keep = r.readlines()[-EVENTS_KEPT:]
            f.truncate(0)
            f.write("".join(keep))


def read_events(data_dir: str, flow: str, last: int = 20) -> list[dict[str, Any]]:
    """The latest ``last`` worker events of ``flow``, oldest first."""
    path = workers_dir(data_dir, flow) / EVENTS_FILE
    try:
        lines = path.read_text().splitlines()[-last:]
    except OSError:
        return []
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def live_workers(data_dir: str, flow: str) -> list[str]:
    """The ids of the flow's live workers (their membership locks are held). The files of
    dead workers are removed on the way."""
    folder = workers_dir(data_dir, flow)
    if not folder.is_dir():
        return []
    live = []
    for path in sorted(folder.glob("*.lock")):
        f = _try_lock(path)
        if f is None:
            live.append(path.stem)
            continue
        with contextlib.suppress(OSError):  # dead: nobody holds it
            path.with_suffix(".json").unlink(missing_ok=True)
            path.unlink()
        f.close()
    return live


def worker_statuses(data_dir: str, flow: str) -> list[dict[str, Any]]:
    """What each live worker says of itself (``workers/<id>.json``), with ``alive``."""
    out = []
    for wid in live_workers(data_dir, flow):
        status = read_json(workers_dir(data_dir, flow) / f"{wid}.json")
        if status is not None:
            status["alive"] = True
            out.append(status)
    return out


@dataclass
class Membership:
    """One worker's membership of a flow: its lock, its status file, its task claims."""

    data_dir: str
    flow: str
    id: str = field(default_factory=worker_id)
    started_ms: int = field(default_factory=now_ms)
    _lock: IO[bytes] | None = None
    _claims: dict[int, IO[bytes]] = field(default_factory=dict)

    @property
    def status_path(self) -> Path:
        return workers_dir(self.data_dir, self.flow) / f"{self.id}.json"

    def join(self) -> None:
        """Become a live worker of the flow (hold the membership lock). The lock file is
        locked before it takes its name: whoever sees ``<id>.lock`` unlocked knows that its
        worker is gone (one caught between creating and locking it would look dead)."""
        folder = workers_dir(self.data_dir, self.flow)
        hidden = folder / f".{self.id}.lock.new"
        hidden.unlink(missing_ok=True)
        self._lock = _try_lock(hidden)
        if self._lock is None:
            raise RuntimeError(f"worker {self.id} of flow {self.flow!r} is already live")
        os.replace(hidden, folder / f"{self.id}.lock")
        self.write({"state": "starting", "tasks": []})

    def write(self, fields: dict[str, Any]) -> None:
        """Write the status file: ``fields`` with the worker's identity and a heartbeat."""
        status = {
            "id": self.id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_ms": self.started_ms,
            "heartbeat_ms": now_ms(),
            **fields,
        }
        write_json(self.status_path, status)

    def claim(self, task: int) -> str | None:
        """Claim task ``task`` if no live worker has it: returns ``""`` when it was free
        (handed back cleanly, or never run), the id of the worker that died holding it, or
        ``None`` when another worker holds it."""
        path = tasks_dir(self.data_dir, self.flow) / str(task) / "claim"
        f = _try_lock(path)
        if f is None:
            return None
        f.seek(0)
        previous = f.read().decode(errors="replace").strip()
        f.seek(0)
        f.truncate()
        f.write(self.id.encode())
        f.flush()
        self._claims[task] = f
        return "" if previous == self.id else previous

    def release(self, task: int, *, clean: bool) -> None:
        """Give task ``task`` up; ``clean``: its runner stopped at a checkpoint (the claim is
        emptied, so whoever claims it next knows it was handed over, not taken over)."""
        f = self._claims.pop(task, None)
        if f is None:
            return
        if clean:
            with contextlib.suppress(OSError):
                f.seek(0)
                f.truncate()
                f.flush()
        f.close()

    def leave(self, result: dict[str, Any]) -> None:
        """Stop being a worker: release every claim, leave ``result`` (its summary or error)
        in ``workers/<id>.result.json`` for whoever started it, and unlock."""
        for task in list(self._claims):
            self.release(task, clean=True)
        write_json(result_path(self.data_dir, self.flow, self.id), result)
        with contextlib.suppress(OSError):
            self.status_path.unlink(missing_ok=True)
            workers_dir(self.data_dir, self.flow).joinpath(f"{self.id}.lock").unlink()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def result_path(data_dir: str, flow: str, wid: str) -> Path:
    """Where worker ``wid`` leaves its summary (or error) when it ends."""
    return workers_dir(data_dir, flow) / f"{wid}.result.json"


__all__ = [
    "Membership",
    "live_workers",
    "read_events",
    "read_json",
    "record_event",
    "result_path",
    "tasks_dir",
    "worker_id",
    "worker_statuses",
    "workers_dir",
    "write_json",
]
