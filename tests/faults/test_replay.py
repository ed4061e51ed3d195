"""Roll a flow back to the middle, reprocess, fail it back: the epoch-marker rule holds."""

from __future__ import annotations

from pathlib import Path

import msgspec

import rheos as rh
from rheos.runtime.replay import current_view, fail_back, roll_back

N = 400


def write_input(data_dir: Path) -> None:
    log = rh.Log(data_dir)
    log.create_topic("in", 1)
    with log.producer("in") as p:
        p.append([msgspec.json.encode({"k": f"k{i % 7}", "v": i}) for i in range(N)])


def build(data_dir: Path, factor: int = 1) -> rh.Flow:
    flow = rh.Flow("totals", data_dir=data_dir, checkpoint_interval=None)
    (
        flow.source(rh.log_source("in"))
        .map(lambda e: {**e, "v": e["v"] * factor})
        .key_by("k")
        .aggregate(total=rh.sum("v"), n=rh.count())
        .sink(rh.log_sink("out", partitions=2, key="key"))
    )
    flow.checkpoint_interval_ms = 10_000  # checkpoints only at the stops below
    return flow


def view(data_dir: Path) -> list[tuple[int, bytes]]:
    records = list(rh.Log(data_dir).reader("out").read())
    return [(r.partition, r.value) for r in current_view(records)]


def test_roll_back_reprocess_and_fail_back(tmp_path: Path) -> None:
    write_input(tmp_path)
    build(tmp_path).run(stop_after=N // 2)
    middle = build(tmp_path).checkpoints()[-1]
    build(tmp_path).run(stop_after=N // 2)
    original = view(tmp_path)
    assert len(original) == N

    # roll back to the middle (by time) and reprocess with new code: x10 values
    moved = roll_back(str(tmp_path), "totals", at_ms=middle.created_ms)
    assert moved.epoch == 1 and moved.meta["replay_of"]["to"] == middle.id
    summary = build(tmp_path, factor=10).run(stop_after=N // 2)
    assert summary.checkpoints.restored_from == moved.id and summary.epoch == 1
    replayed = view(tmp_path)
    assert len(replayed) == N  # every key's running total once: none lost, none doubled
    assert replayed[: N // 2] != [] and set(original) != set(replayed)
    # reprocessing with the same code gives the original view back exactly
    again = roll_back(str(tmp_path), "totals", checkpoint=moved.id)
    build(tmp_path).run(stop_after=N // 2)
    assert again.epoch == 2 and sorted(view(tmp_path)) == sorted(original)

    # the new records carry their epoch; markers are control records sources skip
    records = list(rh.Log(tmp_path).reader("out").read())
    epochs = {dict(r.headers).get("rheos-epoch") for r in records}
    assert {b"0", b"1", b"2"} <= epochs
    out: list = []
    reader = rh.Flow("reader", data_dir=tmp_path, checkpoint_interval=None)
    reader.source(rh.log_source("out")).sink(rh.list_sink(out))
    reader.run(bounded=True)
    assert all("rheos" not in e for e in out)

    # fail back: the state and the view of before the last roll back (the x10 run's)
    back = fail_back(str(tmp_path), "totals")
    assert back.epoch == 3 and sorted(view(tmp_path)) == sorted(replayed)
    assert build(tmp_path).run(timeout=0.2).events_in == 0  # already at the end
