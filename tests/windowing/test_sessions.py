"""Hand-worked cases for session windows."""

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from rheos.windowing import (
    MAX_WATERMARK,
    MIN_WATERMARK,
    WindowOperator,
    collect,
    count,
    session,
    sum,
)


def ev(v: int) -> dict[str, int]:
    return {"v": v}


def make(**kwargs: Any) -> WindowOperator:
    return WindowOperator(session(10), {"n": count(), "vals": collect("v")}, **kwargs)


def test_events_closer_than_the_gap_share_a_session() -> None:
    op = make()
    for ts in [0, 5, 14, 30]:
        op.process("k", ev(ts), ts)
    assert op.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 0, "window_end": 24, "n": 3, "vals": [0, 5, 14]},
        {"key": "k", "window_start": 30, "window_end": 40, "n": 1, "vals": [30]},
    ]


def test_events_exactly_a_gap_apart_stay_separate() -> None:
    op = make()
    op.process("k", ev(0), 0)
    op.process("k", ev(10), 10)
    rows = op.advance(MAX_WATERMARK)
    assert [(r["window_start"], r["window_end"]) for r in rows] == [(0, 10), (10, 20)]


def test_sessions_are_per_key() -> None:
    op = make()
    op.process("a", ev(0), 0)
    op.process("b", ev(1), 1)
    op.process("a", ev(2), 2)
    assert op.windows_open == 2
    assert op.advance(MAX_WATERMARK) == [
        {"key": "b", "window_start": 1, "window_end": 11, "n": 1, "vals": [1]},
        {"key": "a", "window_start": 0, "window_end": 12, "n": 2, "vals": [0, 2]},
    ]


def test_out_of_order_event_bridges_two_open_sessions() -> None:
    op = make()
    op.process("k", ev(0), 0)  # [0, 10)
    op.process("k", ev(18), 18)  # [18, 28)
    assert op.state_size == 2
    assert op.process("k", ev(9), 9).late is None  # [9, 19) overlaps both
    assert op.state_size == 1
    assert op.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 0, "window_end": 28, "n": 3, "vals": [0, 9, 18]}
    ]


def test_bridging_event_merges_with_sum_merge() -> None:
    op = WindowOperator(session(10), {"s": sum("v")}, emit="update")
    op.process("k", ev(1), 0)
    op.process("k", ev(2), 15)
    rows = op.process("k", ev(4), 8).outputs
    assert rows == [{"key": "k", "window_start": 0, "window_end": 25, "s": 7, "final": False}]


def test_event_that_would_merge_into_a_finalized_session_is_late() -> None:
    op = make()
    op.process("k", ev(0), 0)  # [0, 10)
    op.process("k", ev(30), 30)  # [30, 40)
    assert op.advance(12) == [
        {"key": "k", "window_start": 0, "window_end": 10, "n": 1, "vals": [0]}
    ]
    # proto-window [5, 15) is still open (15 > 12), but it would merge into [0, 10)
    late = op.process("k", ev(5), 5).late
    assert late is not None and late.windows == ((0, 10),)
    # an event at 10 touches [0, 10) without overlapping: a new session, not late
    assert op.process("k", ev(10), 10).late is None
    # proto-window [1, 11) is finalized (11 <= 12)
    late = op.process("k", ev(1), 1).late
    assert late is not None and late.windows == ((1, 11),)
    assert op.late_events == 2
    assert op.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 10, "window_end": 20, "n": 1, "vals": [10]},
        {"key": "k", "window_start": 30, "window_end": 40, "n": 1, "vals": [30]},
    ]


def test_bridging_an_open_and_a_finalized_session_is_late() -> None:
    op = make(allowed_lateness_ms=0)
    op.process("k", ev(0), 0)  # [0, 10)
    op.process("k", ev(16), 16)  # [16, 26)
    op.advance(10)  # finalizes [0, 10)
    late = op.process("k", ev(8), 8).late  # [8, 18) would bridge both
    assert late is not None and late.windows == ((0, 10),)
    assert op.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 16, "window_end": 26, "n": 1, "vals": [16]}
    ]


def test_finalized_session_marker_is_forgotten_when_unreachable() -> None:
    op = make()
    op.process("k", ev(0), 0)
    op.advance(10)
    assert op.snapshot_key("k") == {"sessions": [], "closed": [0, 10]}
    op.advance(20)  # any event below 10 now has a finalized proto-window anyway
    assert op.snapshot_key("k") is None


def test_session_allowed_lateness() -> None:
    op = make(allowed_lateness_ms=5)
    op.process("k", ev(0), 0)
    assert op.advance(12) == []  # complete at 10, finalized at 15
    op.process("k", ev(3), 3)  # extends the session to [0, 13): finalized at 18
    assert op.advance(17) == []
    rows = op.advance(18)
    assert rows == [{"key": "k", "window_start": 0, "window_end": 13, "n": 2, "vals": [0, 3]}]


def test_session_update_mode_marks_final() -> None:
    op = WindowOperator(session(10), {"n": count()}, emit="update")
    assert op.process("k", ev(0), 0).outputs == [
        {"key": "k", "window_start": 0, "window_end": 10, "n": 1, "final": False}
    ]
    assert op.process("k", ev(4), 4).outputs == [
        {"key": "k", "window_start": 0, "window_end": 14, "n": 2, "final": False}
    ]
    assert op.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 0, "window_end": 14, "n": 2, "final": True}
    ]


def test_session_snapshot_restore_and_incremental() -> None:
    aggs = {"n": count(), "vals": collect("v")}
    op = WindowOperator(session(10), aggs)
    op.process(("a", 1), ev(0), 0)
    op.process("b", ev(3), 3)
    op.process(("a", 1), ev(30), 30)
    op.advance(12)
    snap = msgspec.msgpack.decode(msgspec.msgpack.encode(op.snapshot()))
    again = WindowOperator.restore(session(10), aggs, snap)
    for o in (op, again):
        assert o.process(("a", 1), ev(5), 5).late is not None  # merges into finalized [0, 10)
        o.process("b", ev(31), 31)
    assert again.late_events == op.late_events == 1
    assert again.advance(MAX_WATERMARK) == op.advance(MAX_WATERMARK)


def test_merged_session_keeps_the_earliest_first_arrival_for_ordering() -> None:
    op = WindowOperator(session(10), {"n": count()})
    # a's later sub-session arrives first; b's sub-sessions arrive in between
    for key, ts in [("a", 18), ("b", 0), ("b", 18), ("a", 0), ("b", 9), ("a", 9)]:
        op.process(key, ev(ts), ts)
    rows = op.advance(MAX_WATERMARK)
    # same bounds [0, 28): a's window received its first event before b's
    assert [(r["key"], r["window_start"], r["window_end"], r["n"]) for r in rows] == [
        ("a", 0, 28, 3),
        ("b", 0, 28, 3),
    ]


class NaiveSessions:
    """Session windows as their definition reads, for the property below: a list of
    sessions per key, every one looked at on every call."""

    def __init__(self, gap: int, lateness: int) -> None:
        self.gap, self.lateness = gap, lateness
        self.wm = MIN_WATERMARK
        self.seq = 0
        self.sessions: dict[str, list[list[Any]]] = {}  # [start, end, cseq, (ts, v)s]
        self.closed: dict[str, tuple[int, int]] = {}

    def late(self, end: int) -> bool:
        return end + self.lateness <= self.wm

    def process(self, key: str, v: int, ts: int) -> bool:
        """Whether the event is late."""
        end = ts + self.gap
        closed = self.closed.get(key)
        if self.late(end) or (closed is not None and ts < closed[1]):
            return True
        seq, self.seq = self.seq, self.seq + 1
        mine = self.sessions.setdefault(key, [])
        hits = [s for s in mine if s[0] < end and s[1] > ts]
        merged = [min([ts, *(s[0] for s in hits)]), max([end, *(s[1] for s in hits)])]
        cseq = min([seq, *(s[2] for s in hits)])
        values = [x for s in hits for x in s[3]] + [(ts, v)]
        mine[:] = sorted([s for s in mine if s not in hits] + [[*merged, cseq, values]])
        return False

    def advance(self, wm: int) -> list[dict[str, Any]]:
        if wm <= self.wm:
            return []
        self.wm = wm
        done = sorted(
            (s[1], s[0], s[2], key, s[3])
            for key, mine in self.sessions.items()
            for s in mine
            if self.late(s[1])
        )
        rows = []
        for end, start, _, key, values in done:
            self.sessions[key] = [s for s in self.sessions[key] if s[0] != start]
            if key not in self.closed or end > self.closed[key][1]:
                self.closed[key] = (start, end)
            rows.append(
                {
                    "key": key,
                    "window_start": start,
                    "window_end": end,
                    "n": len(values),
                    "vals": [v for _, v in sorted(values)],  # (by time, then arrival)
                }
            )
        for key, (_, end) in list(self.closed.items()):
            if self.late(end + self.gap):
                del self.closed[key]
        return rows


steps = st.lists(
    st.one_of(
        st.tuples(st.just("event"), st.sampled_from("abc"), st.integers(0, 300)),
        st.tuples(st.just("advance"), st.just(""), st.integers(0, 320)),
        st.tuples(st.just("restore"), st.just(""), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps, st.sampled_from([0, 7, 25]))
def test_sessions_equal_their_definition(ops: list[tuple[str, str, int]], lateness: int) -> None:
    """Out-of-order events, merges, lateness, restores: the operator (a heap of session
    ends, entries pushed again only when found stale, the watermark taken without a look
    at the heap below the next end) closes the same sessions, in the same order, as the
    naive definition."""
    aggs = {"n": count(), "vals": collect("v")}
    op = WindowOperator(session(10), aggs, allowed_lateness_ms=lateness)
    naive = NaiveSessions(10, lateness)
    values = iter(range(10_000))
    for kind, key, t in ops:
        if kind == "event":
            v = next(values)
            assert (op.process(key, ev(v), t).late is not None) == naive.process(key, v, t)
        elif kind == "advance":
            assert op.advance(t) == naive.advance(t)
        else:
            snap = msgspec.msgpack.decode(msgspec.msgpack.encode(op.snapshot()))
            op = WindowOperator.restore(session(10), aggs, snap, allowed_lateness_ms=lateness)
    assert op.advance(MAX_WATERMARK) == naive.advance(MAX_WATERMARK)
