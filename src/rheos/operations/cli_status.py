"""``rheos status [FLOW]``: is a flow healthy? Its metrics, in the terminal.

For a running flow the metrics are live: read from the flow's HTTP server, whose address the
server records in ``<data_dir>/flows/<flow>/server.json`` (``rheos run --dashboard``, ``rheos
demo``). Otherwise they come from disk: the snapshot the flow's last run saved when it ended
(``metrics.json``) and its latest checkpoint. Without ``FLOW``, one line per flow in the data
directory. ``--json`` prints the snapshot as JSON instead of tables.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rheos.errors import ConfigError
from rheos.operations.cli_common import (
    EXIT_OK,
    Subparsers,
    add_command,
    human_bytes,
    iso_ms,
    open_log,
    print_table,
)
from rheos.operations.dashboard import server_file
from rheos.operations.metrics import human_duration
from rheos.runtime.metrics import load_snapshot, snapshot_path, wall_ms
from rheos.runtime.workers.status import split_status
from rheos.state import CheckpointInfo, CheckpointStore, store_path

FETCH_TIMEOUT_S = 2.0


def add_parser(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers,
        "status",
        _status,
        help="show a flow's metrics: live from its server, else from its last run",
        description=__doc__,
    )
    p.add_argument("flow", metavar="FLOW", nargs="?", help="the flow (default: every flow)")
    p.add_argument("--json", action="store_true", help="print the metrics snapshot as JSON")


def fetch_live(data_dir: str, flow: str) -> tuple[dict[str, Any], str] | None:
    """The live snapshot of ``flow`` and its server's URL, or ``None`` when not served."""
    path = server_file(data_dir, flow)
    try:
        url = json.loads(path.read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        with urllib.request.urlopen(url + "api/metrics", timeout=FETCH_TIMEOUT_S) as response:
            data = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None  # a server that is gone (killed): fall back to disk
    return (data, url) if isinstance(data, dict) else None


def latest_checkpoint(data_dir: str, flow: str) -> CheckpointInfo | None:
    path = store_path(data_dir, flow)
    if not path.exists():
        return None
    with CheckpointStore(path) as store:
        return store.latest()


def flow_status(data_dir: str, flow: str) -> dict[str, Any]:
    """What ``rheos status FLOW --json`` prints: ``{"flow", "source", "url", "metrics",
    "checkpoint"}`` with ``source`` one of ``live``, ``last run``, ``checkpoint``; for a flow
    split across workers ``source`` is ``workers`` and ``split`` lists its workers, tasks
    and recent worker events (:func:`rheos.runtime.workers.status.split_status`)."""
    split = split_status(data_dir, flow)
    if split is not None:
        return _split(data_dir, flow, split)
    live = fetch_live(data_dir, flow)
    checkpoint = latest_checkpoint(data_dir, flow)
    cp = None
    if checkpoint is not None:
        cp = {
            "id": checkpoint.id,
            "time_ms": checkpoint.created_ms,
            "epoch": checkpoint.epoch,
            "kind": checkpoint.kind,
            "bytes": checkpoint.size_bytes,
            "flow_watermark_ms": checkpoint.meta.get("flow_wm"),
            "positions": {
                name: s.get("positions", {})
                for name, s in checkpoint.meta.get("sources", {}).items()
            },
        }
    if live is not None:
        metrics, url = live
        return {"flow": flow, "source": "live", "url": url, "metrics": metrics, "checkpoint": cp}
    snap = load_snapshot(snapshot_path(data_dir, flow))
    if snap is None and cp is None:
        raise ConfigError(f"flow {flow!r}: nothing known in {data_dir} (no run saved its metrics)")
    source = "last run" if snap is not None else "checkpoint"
    if snap is not None and snap.get("running"):
        # saved by the run itself every second; a run killed with -9 leaves "running" behind
        source = "running" if _alive(snap.get("pid")) else "died"
    return {
        "flow": flow,
        "source": source,
        "url": None,
        "metrics": snap,
        "checkpoint": cp,
    }


def _split(data_dir: str, flow: str, split: dict[str, Any]) -> dict[str, Any]:
    """The status of a flow split across workers: its tasks' metrics added up."""
    tasks = split["tasks"]
    metrics = {
        name: sum(t[name] or 0 for t in tasks)
        for name in ("events_in", "events_out", "consumer_lag", "state_size", "dead_lettered")
    }
    return {
        "flow": flow,
        "source": "workers",
        "url": None,
        "metrics": metrics,
        "checkpoint": None,
        "split": split,
    }


def _alive(pid: Any) -> bool:
    """Whether process ``pid`` exists (on this machine)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def known_flows(data_dir: str) -> list[str]:
    folder = Path(data_dir) / "flows"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def _status(args: argparse.Namespace) -> int:
    data_dir = os.fspath(open_log(args).data_dir)
    if args.flow is None:
        return _all(data_dir, args.json)
    status = flow_status(data_dir, args.flow)
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return EXIT_OK
    if "split" in status:
        _print_split(status)
        return EXIT_OK
    _print_flow(status)
    return EXIT_OK


def _all(data_dir: str, as_json: bool) -> int:
    statuses = []
    for flow in known_flows(data_dir):
        try:
            statuses.append(flow_status(data_dir, flow))
        except ConfigError:
            continue
    if as_json:
        print(json.dumps(statuses, indent=2, default=str))
        return EXIT_OK
    rows = []
    for st in statuses:
        m = st["metrics"] or {}
        cp = st["checkpoint"]
        state = {"live": "running", "running": "running", "died": "died"}.get(
            st["source"], m.get("stopped") or "stopped"
        )
        if "split" in st:
            n = len(st["split"]["workers"])
            state = f"{n} workers" if n else "stopped"
        rows.append(
            [
                st["flow"],
                state,
                m.get("events_in"),
                m.get("events_out"),
                m.get("late"),
                m.get("dead_lettered"),
                None if cp is None else f"#{cp['id']} {iso_ms(cp['time_ms'], 'seconds')}",
                st["url"],
            ]
        )
    print_table(
        f"flows in {data_dir}",
        ["flow", "state", "in", "out", "late", "dead", "last checkpoint", "dashboard"],
        rows,
        right=["in", "out", "late", "dead"],
    )
    return EXIT_OK


def _num(n: float | None, digits: int = 0) -> str:
    if n is None:
        return "-"
    return f"{n:,.{digits}f}"


def _print_flow(status: dict[str, Any]) -> None:
    m = status["metrics"]
    cp = status["checkpoint"]
    flow = status["flow"]
    if status["source"] == "live":
        head = f"flow {flow}: running (live from {status['url']})"
    elif status["source"] == "running":
        saved = max(0.0, (wall_ms() - (m.get("time_ms") or 0)) / 1000)
        head = (
            f"flow {flow}: running (pid {m.get('pid')}; metrics it saved {saved:.0f}s ago; "
            "rheos run --dashboard for a live view)"
        )
    elif status["source"] == "died":
        head = (
            f"flow {flow}: not running; its last run (pid {m.get('pid')}) ended without "
            "stopping (killed?): metrics as it last saved them"
        )
    elif m is not None:
        head = f"flow {flow}: not running; last run {m.get('stopped') or 'ended'} (saved metrics)"
    else:
        head = f"flow {flow}: not running; from its latest checkpoint"
    rows: list[list[object]] = []
    live = status["source"] in ("live", "running")
    if m is not None:
        lat = m.get("latency_ms") or {}
        c = m.get("checkpoints") or {}
        rate_in = f"{_num(m['events_in_per_s'], 1)}/s" if live else ""
        rate_out = f"{_num(m['events_out_per_s'], 1)}/s" if live else ""
        age = c.get("age_s") if live else None
        rows += [
            ["events in", _num(m["events_in"]), rate_in],
            ["events out", _num(m["events_out"]), rate_out],
            [
                "latency p50 / p95 / p99",
                " / ".join(human_duration(lat.get(k)) for k in ("p50", "p95", "p99")),
                f"{_num(lat.get('count'))} samples",
            ],
            ["watermark", iso_ms(m.get("watermark_ms"), "seconds") or "-", ""],
            ["watermark lag", human_duration(m.get("watermark_lag_ms")), "flow clock - watermark"],
            ["consumer lag", _num(m.get("consumer_lag")), "records not read yet"],
            ["out of order", _num(m["out_of_order"]), ""],
            ["late", _num(m["late"]), ""],
            ["dead-lettered", _num(m["dead_lettered"]), _types(m["dead_letters_by_type"])],
            ["state entries", _num(m["state_size"]), ""],
            [
                "checkpoints (this run)",
                _num(c.get("count")),
                "" if age is None else f"last {human_duration(age * 1000)} ago",
            ],
        ]
        if c.get("last_duration_s") is not None:
            rows.append(
                [
                    "last checkpoint took",
                    human_duration(c["last_duration_s"] * 1000),
                    human_bytes(c.get("last_bytes") or 0),
                ]
            )
    if cp is not None:
        rows.append(
            [
                "latest checkpoint",
                f"#{cp['id']} ({cp['kind']}, epoch {cp['epoch']})",
                f"{iso_ms(cp['time_ms'], 'seconds')}, {human_bytes(cp['bytes'])}",
            ]
        )
    print_table(head, ["metric", "value", ""], rows)
    if m is None:
        return
    parts = []
    for s in m["sources"]:
        for p in s["partitions"] or [{"partition": None, "position": None, "lag": None}]:
            parts.append([s["name"], s.get("topic"), p["partition"], p["position"], p["lag"]])
    if parts:
        print()
        print_table(
            "sources",
            ["source", "topic", "partition", "position", "lag"],
            parts,
            right=["partition", "position", "lag"],
        )
    if m["steps"]:
        print()
        print_table(
            "stateful steps",
            ["step", "kind", "in", "out", "late", "state"],
            [
                [s["name"], s["kind"], s["events_in"], s["events_out"], s["late"], s["state_size"]]
                for s in m["steps"]
            ],
            right=["in", "out", "late", "state"],
        )


def _print_split(status: dict[str, Any]) -> None:
    split = status["split"]
    workers, tasks = split["workers"], split["tasks"]
    m = status["metrics"]
    head = (
        f"flow {status['flow']}: {len(workers)} live workers, {len(tasks)} tasks "
        f"({_num(m['events_in'])} in, {_num(m['events_out'])} out, lag "
        f"{_num(m['consumer_lag'])}, {_num(m['state_size'])} state entries)"
    )
    now = wall_ms()
    print_table(
        head,
        ["worker", "host", "pid", "tasks", "started", "heartbeat"],
        [
            [
                w["id"],
                w.get("host"),
                w.get("pid"),
                ",".join(map(str, w.get("tasks", []))) or "-",
                iso_ms(w.get("started_ms"), "seconds"),
                human_duration(max(0, now - int(w.get("heartbeat_ms") or 0)))
                + (" ago (stalled)" if w.get("stalled") else " ago"),
            ]
            for w in workers
        ],
        right=["pid"],
    )
    print()
    print_table(
        "tasks (task p reads partition p of every source)",
        ["task", "partition", "worker", "in", "out", "lag", "state", "dead"],
        [
            [
                t["task"],
                t["partition"],
                t["worker"] or "(unclaimed)",
                t["events_in"],
                t["events_out"],
                t["consumer_lag"],
                t["state_size"],
                t["dead_lettered"],
            ]
            for t in tasks
        ],
        right=["task", "partition", "in", "out", "lag", "state", "dead"],
    )
    if split["events"]:
        print()
        print_table(
            "worker events",
            ["time", "event", "worker", "detail"],
            [
                [
                    iso_ms(e.get("time_ms"), "seconds"),
                    e.get("event"),
                    e.get("worker"),
                    _event_detail(e),
                ]
                for e in split["events"]
            ],
        )


def _event_detail(event: dict[str, Any]) -> str:
    if event.get("event") == "took over":
        return f"task {event.get('task')} from {event.get('previous')}"
    if event.get("event") == "died":
        return f"pid {event.get('pid')}, {event.get('signal')}"
    return f"pid {event.get('pid')}" if event.get("pid") is not None else ""


def _types(by_type: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(by_type.items()))


__all__ = ["add_parser", "fetch_live", "flow_status", "known_flows"]
