"""Replay: roll a flow back to an earlier checkpoint, or fail it back to where it was.

:func:`roll_back` (``rheos replay FLOW --from TIME | --checkpoint ID``) makes the newest kept
checkpoint at or before the chosen point the flow's state again: the next run restores it,
rewinds the sources to its positions and reprocesses. :func:`fail_back` (``rheos replay FLOW
--latest``) undoes the last roll back: the flow continues from the checkpoint it had reached
before it (kept for this: replay *pins* it).

Both write a new checkpoint (ids only grow) holding, for every key changed since the target,
its state at the target; they need the flow stopped (they take its lock) but not its code.

The output rule: epochs and epoch markers
-----------------------------------------
Results already committed to log sinks are never rewritten in place (readers may have read
them). Instead every record a flow writes carries the header ``rheos-epoch`` (0 until the
first replay), and a replay bumps the epoch and, before anything else, appends an **epoch
marker** to every partition of every log sink of the flow. A marker is a record with the
header ``rheos-control: epoch`` and a JSON value::

    {"rheos": "epoch", "flow": ..., "epoch": 1, "checkpoint": 7, "superseded_from": 1200,
     "reason": "replay"}

meaning: *the records of this partition from offset* ``superseded_from`` *up to this marker
are withdrawn; the records after the marker replace them.* A reader that applies the rule --
:func:`current_view` does -- sees the results as if the flow had always run the way it runs
now; a reader that only appends downstream can act on the marker explicitly (delete what it
derived from the withdrawn range). Sources (:func:`~rheos.connectors.log_source`) skip markers.

A fail back withdraws what was written since the roll back and copies the withdrawn original
results after its marker (with the new epoch), so the same rule still gives the right view.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from rheos.connectors.log import CONTROL_HEADER, EPOCH_HEADER
from rheos.errors import CheckpointError
from rheos.runtime.checkpointing import FlowLock
from rheos.state import CheckpointInfo, CheckpointStore, store_path
from rheos.transport import Log, Record

MARKER = b"epoch"

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called after each sink partition a replay has moved."""


def _log_sinks(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The sinks of a checkpoint that are log topics: name -> {"topic", "positions"}."""
    return {
        name: info
        for name, info in meta.get("sinks", {}).items()
        if isinstance(info, dict) and "topic" in info and "positions" in info
    }


def _open(data_dir: str, flow: str) -> tuple[FlowLock, CheckpointStore]:
    path = store_path(data_dir, flow)
    if not path.exists():
        raise CheckpointError(f"flow {flow!r} has no checkpoints in {data_dir}")
    lock = FlowLock(data_dir, flow)
    lock.acquire()
    return lock, CheckpointStore(path)


def roll_back(
    data_dir: str,
    flow: str,
    *,
    checkpoint: int | None = None,
    at_ms: int | None = None,
    progress: Progress | None = None,
) -> CheckpointInfo:
    """Make the state of ``checkpoint`` (or of the newest one at or before ``at_ms``) the
    flow's again, under a new epoch; return the new checkpoint."""
    lock, store = _open(data_dir, flow)
    try:
        latest = store.latest()
        assert latest is not None
        if checkpoint is not None:
            target = store.get(checkpoint)
        elif at_ms is not None:
            target = store.at_or_before(at_ms)
        else:
            raise CheckpointError("roll back: give a checkpoint or a time")
        if target.id != latest.id and latest.meta.get("state") == "disk":
            raise CheckpointError(
                f"flow {flow!r} keeps its keyed state on disk (state='disk'), which holds "
                f"only its latest checkpoint ({latest.id}): it cannot be rolled back to "
                f"checkpoint {target.id}; replay its input into a fresh flow instead"
            )
        store.pin(latest.id, "replay")
        return _move(data_dir, store, latest, target, "replay", copy=False, progress=progress)
    finally:
        store.close()
        lock.release()


def fail_back(data_dir: str, flow: str, *, progress: Progress | None = None) -> CheckpointInfo:
    """Go forward again to the checkpoint the last :func:`roll_back` left."""
    lock, store = _open(data_dir, flow)
    try:
        pins = store.pins()
        if not pins:
            raise CheckpointError(f"flow {flow!r}: no roll back to fail back from")
        latest = store.latest()
        assert latest is not None
        target = store.get(max(pins))
        info = _move(data_dir, store, latest, target, "failback", copy=True, progress=progress)
        store.unpin(target.id)
        return info
    finally:
        store.close()
        lock.release()


def _move(
    data_dir: str,
    store: CheckpointStore,
    latest: CheckpointInfo,
    target: CheckpointInfo,
    reason: str,
    *,
    copy: bool,
    progress: Progress | None = None,
) -> CheckpointInfo:
    log = Log(data_dir)
    epoch = max(c.epoch for c in store.checkpoints()) + 1
    sinks = _log_sinks(latest.meta)
    target_sinks = _log_sinks(target.meta)
    producers = []
    new_sinks: dict[str, Any] = {}
    total = sum(len(info["positions"]) for info in sinks.values())
    done = 0
    try:
        for name, info in sinks.items():
            topic = info["topic"]
            now = {int(p): int(o) for p, o in info["positions"].items()}
            then = target_sinks.get(name, {}).get("positions", {})
            producer = log.producer(topic, transactional=True)
            producers.append(producer)
            producer.rollback_to(now)  # an uncommitted tail never counted
            stamp = (EPOCH_HEADER, str(epoch).encode())
            for p, end in now.items():
                start = int(then.get(p, 0))
                if copy:  # fail back: the original results of the range come back
                    start = int(latest.meta.get("replay", {}).get(name, {}).get(str(p), end))
                value = {
                    "rheos": "epoch",
                    "flow": target.meta.get("flow"),
                    "epoch": epoch,
                    "checkpoint": target.id,
                    "superseded_from": start,
                    "reason": reason,
                }
                producer.append(
                    [json.dumps(value).encode()],
                    headers=[[(CONTROL_HEADER, MARKER), stamp]],
                    partition=p,
                )
                if copy:
                    _copy_back(log, producer, topic, p, latest, name, stamp)
                done += 1
                if progress is not None:
                    progress(done, total)
            new_sinks[name] = {"topic": topic, "positions": producer.positions()}
        meta = dict(target.meta)
        meta["sinks"] = new_sinks
        meta["replay"] = {
            name: {str(p): int(o) for p, o in info["positions"].items()}
            for name, info in sinks.items()
        }
        meta["replay_of"] = {"from": latest.id, "to": target.id, "reason": reason}
        moved = store.write(meta, store.reverting_changes(target.id), epoch=epoch, kind=reason)
        for producer in producers:
            producer.commit()
        return moved
    finally:
        for producer in producers:
            producer.close()
        log.close()


def _copy_back(
    log: Log,
    producer: Any,
    topic: str,
    partition: int,
    latest: CheckpointInfo,
    name: str,
    stamp: tuple[str, bytes],
) -> None:
    """Append again the results the roll back withdrew (between its marker and the
    superseded offset it named) under the new epoch."""
    marker_at = int(latest.meta.get("replay", {}).get(name, {}).get(str(partition), -1))
    if marker_at < 0:
        return
    with log.reader(topic, partitions=[partition]) as reader:
        records = [r for r in reader.read() if r.offset <= marker_at]
    view = current_view(records)
    marker = records[-1] if records and _is_marker(records[-1]) else None
    if marker is None:
        return
    start = json.loads(marker.value)["superseded_from"]
    originals = [r for r in view if start <= r.offset < marker.offset]
    # the records the marker withdrew are not in the view; take them from before it
    withdrawn = [
        r for r in records if start <= r.offset < marker.offset and not _is_marker(r)
    ] or originals
    if withdrawn:
        producer.append(
            [r.value for r in withdrawn],
            keys=[r.key for r in withdrawn],
            timestamps=[r.timestamp for r in withdrawn],
            headers=[[stamp] for _ in withdrawn],
            partition=partition,
        )


def _is_marker(record: Record) -> bool:
    return any(k == CONTROL_HEADER for k, _ in record.headers)


def current_view(records: Iterable[Record]) -> list[Record]:
    """Apply the epoch-marker rule (see the module docs) to records read in offset order:
    the results as they stand now, markers left out."""
    by_partition: dict[int, list[Record]] = {}
    for record in records:
        kept = by_partition.setdefault(record.partition, [])
        if _is_marker(record):
            start = int(json.loads(record.value)["superseded_from"])
            kept[:] = [r for r in kept if r.offset < start]
        else:
            kept.append(record)
    return [r for part in sorted(by_partition) for r in by_partition[part]]


__all__ = ["current_view", "fail_back", "roll_back"]
