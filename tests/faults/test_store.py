"""The checkpoint store: incremental versions, tombstones, generations, atomicity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=100, deadline=None)
@given(
    keep=st.integers(1, 3),
    steps=st.lists(
        st.one_of(
            st.tuples(
                st.just("write"),
                st.lists(
                    st.tuples(st.sampled_from("abc"), st.one_of(st.none(), st.integers(0, 99)))
                ),
            ),
            st.tuples(st.just("pin"), st.integers(0, 5)),
            st.tuples(st.just("unpin"), st.integers(0, 5)),
        ),
        max_size=20,
    ),
)
def test_every_kept_checkpoint_restores_exactly_what_it_saw(
    keep: int, steps: list[tuple[str, object]]
) -> None:
    """A model of the store: after every step, each kept checkpoint (the newest ``keep`` and
    the pinned) restores the state as it was when it was written, whatever the collection
    of old versions (in its own thread) deleted; and no version outlives every checkpoint
    that could see it (without pins: with them, a version may wait for its key's next
    write)."""
    with TemporaryDirectory() as folder, CheckpointStore(Path(folder) / "c", keep=keep) as store:
        current: dict[str, object] = {}
        seen: dict[int, dict[str, object]] = {}
        ids: list[int] = []
        pinned = False
        for kind, arg in steps:
            if kind == "write":
                assert isinstance(arg, list)
                for key, value in arg:
                    if value is None:
                        current.pop(key, None)
                    else:
                        current[key] = value
                info = store.write({}, [("op", k, v) for k, v in arg])
                ids.append(info.id)
                seen[info.id] = dict(current)
            elif ids:
                assert isinstance(arg, int)
                target = ids[arg % len(ids)]
                if kind == "pin":
                    store.pin(target, "test")
                    pinned = True
                else:
                    store.unpin(target)
            kept = [c.id for c in store.checkpoints()]
            assert kept[-keep:] == ids[-keep:]
            for cid in kept:
                assert {str(k): v for _, k, v in store.state(cid)} == seen[cid], cid
            if not pinned:  # every version left is one a kept checkpoint restores
                assert_no_garbage(store, kept)


def assert_no_garbage(store: CheckpointStore, kept: list[int]) -> None:
    """Up to the last collection's point (the oldest kept checkpoint then), every version is
    one a kept checkpoint restores, and no tombstone is the oldest version of its key."""
    db = store._db
    done = db.execute("SELECT value FROM settings WHERE name = 'gc_floor'").fetchone()
    floor = 0 if done is None else done[0]
    rows = db.execute("SELECT key, ckpt, value IS NULL FROM state ORDER BY key, ckpt")
    versions: dict[bytes, list[tuple[int, bool]]] = {}
    for key, ckpt, tomb in rows:
        versions.setdefault(key, []).append((ckpt, bool(tomb)))
    for key, found in versions.items():
        assert not (found[0][1] and found[0][0] <= floor), (key, found)
        for (c, _), n in zip(found, [*(c for c, _ in found[1:]), None], strict=True):
            if n is not None and n <= floor:
                assert any(c <= p < n for p in kept), (key, found, kept)


@settings(max_examples=50, deadline=None)
@given(
    st.recursive(
        st.integers() | st.text(max_size=5) | st.booleans() | st.none(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=12,
    )
)
def test_state_with_integers_beyond_64_bits_round_trips(value: object) -> None:
    """Integers of any size (a sum of large amounts) are stored and restored exactly."""
    with TemporaryDirectory() as tmp, CheckpointStore(Path(tmp) / "c.sqlite") as store:
        saved = store.write({"big": 2**100}, [("w", 2**70, [value])])  # None: a tombstone
        assert state(store, saved.id) == {("w", str(2**70)): [value]}
        assert store.get(saved.id).meta == {"big": 2**100}


def test_a_window_summing_integers_beyond_64_bits_resumes_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    import msgspec

    import rheos as rh

    amounts = [2**64 + i for i in range(10)]
    log = rh.Log(tmp_path)
    log.create_topic("in", 1)
    with log.producer("in") as producer:
        producer.append(
            [msgspec.json.encode({"k": "a", "t": 1000 + i, "x": x}) for i, x in enumerate(amounts)]
        )

    def build(out: list[object]) -> rh.Flow:
        flow = rh.Flow("big", data_dir=tmp_path)
        (
            flow.source(rh.log_source("in"), timestamp="t", timestamp_unit="ms")
            .key_by("k")
            .window(rh.tumbling("1m"))
            .aggregate(total=rh.sum("x"))
            .sink(rh.list_sink(out))
        )
        return flow

    first: list[object] = []
    build(first).run(stop_after=4)  # stops with a checkpoint holding a 65-bit sum
    second: list[object] = []
    build(second).run(stop_after=6, drain=True)
    assert first == [] and [r["total"] for r in second] == [sum(amounts)]  # type: ignore[index]
