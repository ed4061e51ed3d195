"""The checkpoint store: incremental versions, tombstones, generations, atomicity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rheos.errors import CheckpointError
from rheos.state import CheckpointStore


def state(store: CheckpointStore, checkpoint: int) -> dict[object, object]:
    return {(op, str(k)): v for op, k, v in store.state(checkpoint)}


def test_versions_tombstones_and_restoring_older_checkpoints(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "c.sqlite", keep=10) as store:
        a = store.write({"n": 1}, [("w", "a", {"v": 1}), ("w", ["t", 1], [1, 2])])
        b = store.write({"n": 2}, [("w", "a", {"v": 2})])  # only what changed
        c = store.write({"n": 3}, [("w", "a", None), ("p", 7, "x")])  # a tombstone
        assert state(store, a.id) == {("w", "a"): {"v": 1}, ("w", "['t', 1]"): [1, 2]}
        assert state(store, b.id)[("w", "a")] == {"v": 2}
        assert state(store, c.id) == {("w", "['t', 1]"): [1, 2], ("p", "7"): "x"}
        assert store.latest() == c and store.get(b.id).meta == {"n": 2}
        assert b.size_bytes < a.size_bytes + 20
        revert = store.reverting_changes(a.id)
        assert sorted(map(repr, revert)) == sorted(
            map(repr, [("w", "a", {"v": 1}), ("p", 7, None)])
        )


def test_only_keep_generations_stay_and_garbage_is_collected(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "c.sqlite", keep=2) as store:
        ids = [store.write({}, [("w", "hot", i), ("w", f"cold{i}", i)]).id for i in range(6)]
        assert [c.id for c in store.checkpoints()] == ids[-2:]
        with pytest.raises(CheckpointError, match="no checkpoint"):
            store.get(ids[0])
        live = state(store, ids[-2])
        assert live[("w", "hot")] == 4 and len(live) == 6  # every cold key still there
        rows = store._db.execute("SELECT COUNT(*) FROM state WHERE key = ?", (b"\xa3hot",))
        assert rows.fetchone()[0] == 2  # older versions of the hot key are gone
        store.pin(ids[-1], "replay")
        for i in range(3):
            store.write({}, [("w", "hot", 100 + i)])
        assert ids[-1] in [c.id for c in store.checkpoints()]
        assert state(store, ids[-1])[("w", "hot")] == 5  # the pinned one is still whole


def test_a_crash_inside_a_checkpoint_leaves_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with CheckpointStore(path) as store:
        first = store.write({"n": 1}, [("w", "a", 1)])

        def dying() -> Iterator[tuple[str, object, object]]:
            yield ("w", "a", 2)
            raise KeyboardInterrupt  # as a kill would stop it, mid-transaction

        with pytest.raises(KeyboardInterrupt):
            store.write({"n": 2}, dying())
    with CheckpointStore(path) as store:
        assert store.latest() == first and state(store, first.id) == {("w", "a"): 1}
        assert store.next_id() == first.id + 1
