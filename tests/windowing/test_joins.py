import msgspec
import pytest

from rheos.errors import CheckpointError, ConfigError
from rheos.windowing import (
    MAX_WATERMARK,
    IntervalJoinOperator,
    WindowJoinOperator,
    session,
    sliding,
    tumbling,
)


def roundtrip(data: object) -> object:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(data))


def test_interval_join_pairs_each_once_as_soon_as_both_are_seen() -> None:
    j = IntervalJoinOperator(-5, 10)  # b.ts in [a.ts - 5, a.ts + 10]
    assert j.process_left("k", "a20", 20) == []
    assert j.process_right("k", "b14", 14) == []  # 14 < 20 - 5
    assert j.process_right("k", "b15", 15) == [("a20", "b15")]
    assert j.process_right("k", "b30", 30) == [("a20", "b30")]
    assert j.process_right("k", "b31", 31) == []
    assert j.process_right("x", "b25", 25) == []  # another key
    # a new left event pairs with the buffered rights, in their arrival order
    # b.ts in [16, 31]
    assert j.process_left("k", "a21", 21) == [("a21", "b30"), ("a21", "b31")]
    assert j.late_events == 0


def test_interval_join_pair_order_follows_arrival() -> None:
    j = IntervalJoinOperator(0, 10)
    j.process_right("k", "b5", 5)
    j.process_right("k", "b3", 3)
    assert j.process_left("k", "a0", 0) == [("a0", "b5"), ("a0", "b3")]


def test_interval_join_drops_state_and_reports_late_events() -> None:
    j = IntervalJoinOperator(0, 10)
    j.process_left("k", "a0", 0)
    j.process_right("k", "b4", 4)
    assert j.buffered == 2
    j.advance(5)  # right b4 (4 - 0 < 5) can no longer pair with a future left
    assert j.buffered == 1
    r = j.process_right("k", "b8", 8)
    assert list(r) == [("a0", "b8")] and r.late is False
    j.advance(11)  # left a0 (0 + 10 < 11) can no longer pair
    assert j.buffered == 0
    r = j.process_right("k", "b9", 9)  # below the watermark: may have missed a0
    assert list(r) == [] and r.late is True
    r = j.process_left("k", "a3", 3)  # below the watermark but still pairs with what is left
    assert r.late is True
    assert j.late_events == 2


def test_interval_join_in_order_equals_batch() -> None:
    lefts = [(ts, f"a{ts}") for ts in range(0, 100, 7)]
    rights = [(ts, f"b{ts}") for ts in range(0, 100, 5)]
    expected = {(a, b) for ta, a in lefts for tb, b in rights if ta - 3 <= tb <= ta + 4}
    j = IntervalJoinOperator(-3, 4)
    got = []
    merged = sorted([(ts, 0, e) for ts, e in lefts] + [(ts, 1, e) for ts, e in rights])
    for ts, side, e in merged:
        r = j.process_left("k", e, ts) if side == 0 else j.process_right("k", e, ts)
        assert not r.late
        got += list(r)
        j.advance(ts)
    assert len(got) == len(set(got))
    assert set(got) == expected


def test_interval_join_bounds() -> None:
    assert IntervalJoinOperator("-5s", "1m").lower_ms == -5_000
    with pytest.raises(ConfigError, match="lower"):
        IntervalJoinOperator(10, 5)


def test_interval_join_snapshot_restore() -> None:
    j = IntervalJoinOperator(0, 10)
    j.process_left(("k", 1), {"id": 1}, 0)
    j.process_right("x", {"id": 2}, 5)
    j.advance(3)
    again = IntervalJoinOperator.restore(roundtrip(j.snapshot()))  # type: ignore[arg-type]
    for op in (j, again):
        assert op.process_right(("k", 1), {"id": 3}, 7) == [({"id": 1}, {"id": 3})]
        op.advance(20)
        assert op.buffered == 0
    with pytest.raises(CheckpointError):
        IntervalJoinOperator(0, 5).load(j.snapshot())


def test_window_join_inner_pairs_per_window() -> None:
    j = WindowJoinOperator(tumbling(10))
    j.process_left("k", "a1", 1)
    j.process_right("k", "b5", 5)
    j.process_left("k", "a3", 3)
    j.process_right("k", "b2", 2)
    j.process_left("k", "a12", 12)  # no right in [10, 20): nothing
    j.process_right("z", "b7", 7)  # no left for key z: nothing
    assert j.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 0, "window_end": 10, "left": a, "right": b}
        for a, b in [("a1", "b2"), ("a1", "b5"), ("a3", "b2"), ("a3", "b5")]
    ]


def test_window_join_late_events() -> None:
    j = WindowJoinOperator(sliding(10, 5))
    j.process_left("k", "a", 12)
    j.advance(10)
    r = j.process_right("k", "b", 7)
    assert r.late is not None and r.late.event == "b" and r.late.windows == ((0, 10),)
    assert j.late_events == 1
    assert j.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 5, "window_end": 15, "left": "a", "right": "b"}
    ]


def test_window_join_sessions_span_both_sides() -> None:
    j = WindowJoinOperator(session(10))
    j.process_left("k", "a0", 0)
    j.process_right("k", "b8", 8)
    j.process_left("k", "a15", 15)
    assert j.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 0, "window_end": 25, "left": a, "right": "b8"}
        for a in ("a0", "a15")
    ]


def test_window_join_snapshot_restore() -> None:
    j = WindowJoinOperator(tumbling(10), allowed_lateness_ms=2)
    j.process_left("k", {"a": 1}, 1)
    again = WindowJoinOperator.restore(
        tumbling(10),
        roundtrip(j.snapshot()),  # type: ignore[arg-type]
        allowed_lateness_ms=2,
    )
    for op in (j, again):
        op.process_right("k", {"b": 1}, 9)
    assert j.changed_keys() == {"k"}
    assert again.advance(MAX_WATERMARK) == j.advance(MAX_WATERMARK)


def test_interval_join_keeps_events_that_can_still_pair_at_the_boundary() -> None:
    j = IntervalJoinOperator(0, 10)
    j.process_left("k", "a0", 0)  # pairs with rights in [0, 10]
    j.process_left("k", "a-5", -5)  # pairs with rights in [-5, 5]: dropped at W = 6
    j.advance(10)
    assert j.buffered == 1
    r = j.process_right("k", "b10", 10)  # not late (10 >= W) and still pairs with a0
    assert list(r) == [("a0", "b10")] and r.late is False
    # the same on the right side: b10 pairs with lefts in [0, 10]
    j = IntervalJoinOperator(0, 10)
    j.process_right("k", "b10", 10)
    j.process_right("k", "b3", 3)  # dropped at W = 4
    j.advance(10)
    assert j.buffered == 1
    assert j.process_left("k", "a10", 10) == [("a10", "b10")]
