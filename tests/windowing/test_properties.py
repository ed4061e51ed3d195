"""Property-based tests of window semantics on random, out-of-order input.

The reference is a plain-Python GROUP BY (key, window) over all events.
"""

import builtins
from collections import defaultdict
from collections.abc import Hashable
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from rheos.windowing import (
    MAX_WATERMARK,
    MIN_WATERMARK,
    IntervalJoinOperator,
    LateInfo,
    WatermarkTracker,
    WindowJoinOperator,
    WindowOperator,
    WindowSpec,
    collect,
    count,
    first,
    last,
    max,
    mean,
    min,
    session,
    sliding,
    sum,
    tumbling,
)
from rheos.windowing import SessionWindows as Session

Event = dict[str, Any]  # {"i": arrival index, "k": key, "ts": ts, "v": value}
Window = tuple[int, int]

AGGS: dict[str, Any] = {
    "n": count(),
    "s": sum("v"),
    "lo": min("v"),
    "hi": max("v"),
    "avg": mean("v"),
    "first": first("v"),
    "last": last("v"),
    "ids": collect("i"),
}

SETTINGS = settings(max_examples=300, deadline=None)

specs = st.one_of(
    st.integers(1, 40).flatmap(
        lambda size: st.integers(0, size - 1).map(lambda off: tumbling(size, offset=off))
    ),
    st.integers(1, 20).flatmap(
        lambda every: st.integers(every, 60).map(lambda size: sliding(size, every))
    ),
    st.integers(1, 30).map(session),
)


@st.composite
def event_lists(draw: st.DrawFn) -> list[Event]:
    raw = draw(
        st.lists(
            st.tuples(st.sampled_from(["a", "b", ("c", 1), 7]), st.integers(-50, 300)),
            max_size=40,
        )
    )
    values = draw(st.lists(st.integers(-20, 20), min_size=len(raw), max_size=len(raw)))
    return [
        {"i": i, "k": k, "ts": ts, "v": v}
        for i, ((k, ts), v) in enumerate(zip(raw, values, strict=True))
    ]


def reference_groups(
    spec: WindowSpec, events: list[Event]
) -> dict[tuple[Hashable, Window], list[Event]]:
    """Batch GROUP BY (key, window) over ``events`` (arrival order kept inside groups)."""
    groups: dict[tuple[Hashable, Window], list[Event]] = defaultdict(list)
    if isinstance(spec, Session):
        by_key: dict[Hashable, list[Event]] = defaultdict(list)
        for e in events:
            by_key[e["k"]].append(e)
        for key, evs in by_key.items():
            current: list[Event] = []
            start = end = 0
            for e in sorted(evs, key=lambda e: (e["ts"], e["i"])):
                if current and e["ts"] < end:
                    end = builtins.max(end, e["ts"] + spec.gap_ms)
                    current.append(e)
                    continue
                if current:
                    groups[(key, (start, end))] = sorted(current, key=lambda e: e["i"])
                current, start, end = [e], e["ts"], e["ts"] + spec.gap_ms
            if current:
                groups[(key, (start, end))] = sorted(current, key=lambda e: e["i"])
        return groups
    for e in events:
        for window in spec.windows_of(e["ts"]):
            groups[(e["k"], window)].append(e)
    return groups


def reference_row(key: Hashable, window: Window, evs: list[Event]) -> dict[str, Any]:
    values = [e["v"] for e in evs]
    by_time = sorted(evs, key=lambda e: (e["ts"], e["i"]))
    return {
        "key": key,
        "window_start": window[0],
        "window_end": window[1],
        "n": len(evs),
        "s": builtins.sum(values),
        "lo": builtins.min(values),
        "hi": builtins.max(values),
        "avg": builtins.sum(values) / len(values),
        "first": by_time[0]["v"],
        "last": by_time[-1]["v"],
        "ids": [e["i"] for e in by_time],
    }


def reference_rows(spec: WindowSpec, events: list[Event]) -> list[dict[str, Any]]:
    """Batch results in the documented order: end, start, first arrival in the window."""
    groups = reference_groups(spec, events)
    order = sorted(groups, key=lambda kw: (kw[1][1], kw[1][0], groups[kw][0]["i"]))
    return [reference_row(key, window, groups[(key, window)]) for key, window in order]


def run_stream(
    op: WindowOperator, events: list[Event], bound: int
) -> tuple[list[dict[str, Any]], list[LateInfo]]:
    """Feed events in arrival order, advancing to (max ts seen - bound) after each."""
    rows: list[dict[str, Any]] = []
    late: list[LateInfo] = []
    top: int | None = None
    for e in events:
        result = op.process(e["k"], e, e["ts"])
        rows += result.outputs
        if result.late is not None:
            late.append(result.late)
        top = e["ts"] if top is None or e["ts"] > top else top
        rows += op.advance(top - bound)
    rows += op.advance(MAX_WATERMARK)
    return rows, late


def max_disorder(events: list[Event]) -> int:
    worst, top = 0, None
    for e in events:
        if top is not None and top - e["ts"] > worst:
            worst = top - e["ts"]
        top = e["ts"] if top is None or e["ts"] > top else top
    return worst


@SETTINGS
@given(spec=specs, events=event_lists())
def test_perfect_watermark_equals_batch_group_by(spec: WindowSpec, events: list[Event]) -> None:
    op = WindowOperator(spec, AGGS)
    for e in events:
        assert op.process(e["k"], e, e["ts"]) == ([], None)
    assert op.advance(MAX_WATERMARK) == reference_rows(spec, events)
    assert op.state_size == 0


@SETTINGS
@given(
    spec=specs,
    events=event_lists(),
    bound=st.integers(0, 60),
    lateness=st.integers(0, 20),
)
def test_streaming_plus_late_events_equals_batch(
    spec: WindowSpec, events: list[Event], bound: int, lateness: int
) -> None:
    op = WindowOperator(spec, AGGS, allowed_lateness_ms=lateness)
    rows, late = run_stream(op, events, bound)
    assert op.late_events == len(late)
    by_id = {e["i"]: e for e in events}
    if isinstance(spec, Session):
        # nothing is lost: every event is in exactly one final session or reported late
        ids = [i for row in rows for i in row["ids"]]
        assert sorted(ids + [li.event["i"] for li in late]) == list(range(len(events)))
    else:
        # every streaming row aggregates exactly the events that reached its window
        for row in rows:
            evs = sorted((by_id[i] for i in row["ids"]), key=lambda e: e["i"])
            assert row == reference_row(row["key"], (row["window_start"], row["window_end"]), evs)
        # re-adding each late event to exactly the windows it missed gives the batch groups
        streamed: dict[tuple[Hashable, Window], set[int]] = defaultdict(set)
        for row in rows:
            streamed[(row["key"], (row["window_start"], row["window_end"]))].update(row["ids"])
        for info in late:
            assert set(info.windows) <= set(spec.windows_of(info.ts))
            for window in info.windows:
                assert info.event["i"] not in streamed[(info.key, window)]
                streamed[(info.key, window)].add(info.event["i"])
        batch = reference_groups(spec, events)
        assert {kw: ids for kw, ids in streamed.items() if ids} == {
            kw: {e["i"] for e in evs} for kw, evs in batch.items()
        }
    # with a bound that covers the disorder, nothing is late and streaming == batch
    op = WindowOperator(spec, AGGS, allowed_lateness_ms=lateness)
    rows, late = run_stream(op, events, max_disorder(events) + bound // 4)
    assert late == []
    assert rows == reference_rows(spec, events)


@SETTINGS
@given(spec=specs, events=event_lists(), bound=st.integers(0, 40))
def test_update_mode_ends_with_the_final_rows(
    spec: WindowSpec, events: list[Event], bound: int
) -> None:
    final_rows, final_late = run_stream(WindowOperator(spec, AGGS), events, bound)
    rows, late = run_stream(WindowOperator(spec, AGGS, emit="update"), events, bound)
    assert late == final_late
    flags = [r.pop("final") for r in rows]
    finals = [r for r, final in zip(rows, flags, strict=True) if final]
    assert finals == final_rows
    # the last update of each window is its final result
    last_update = {
        (r["key"], r["window_start"], r["window_end"]): r
        for r, final in zip(rows, flags, strict=True)
        if not final
    }
    for r in finals:
        assert last_update[(r["key"], r["window_start"], r["window_end"])] == r


def roundtrip(data: Any) -> Any:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(data))


@SETTINGS
@given(
    spec=specs,
    events=event_lists(),
    bound=st.integers(0, 40),
    lateness=st.integers(0, 10),
    emit=st.sampled_from(["final", "update"]),
    data=st.data(),
)
def test_snapshot_restore_changes_nothing(
    spec: WindowSpec,
    events: list[Event],
    bound: int,
    lateness: int,
    emit: str,
    data: st.DataObject,
) -> None:
    cut = data.draw(st.integers(0, len(events)))

    def make() -> WindowOperator:
        return WindowOperator(spec, AGGS, allowed_lateness_ms=lateness, emit=emit)

    def feed(
        op: WindowOperator, part: list[Event], top: int | None
    ) -> tuple[list[Any], int | None]:
        out: list[Any] = []
        for e in part:
            result = op.process(e["k"], e, e["ts"])
            out.append(result)
            top = e["ts"] if top is None or e["ts"] > top else top
            out.append(op.advance(top - bound))
        return out, top

    original = make()
    _, top = feed(original, events[:cut], None)
    full = WindowOperator.restore(
        spec, AGGS, roundtrip(original.snapshot()), allowed_lateness_ms=lateness, emit=emit
    )
    incremental = make()
    incremental.load(roundtrip(original.snapshot(include_keys=False)))
    keys = list(original.changed_keys())
    for key in reversed(keys):
        incremental.restore_key(key, roundtrip(original.snapshot_key(key)))
    expected, _ = feed(original, events[cut:], top)
    expected.append(original.advance(MAX_WATERMARK))
    for restored in (full, incremental):
        got, _ = feed(restored, events[cut:], top)
        got.append(restored.advance(MAX_WATERMARK))
        assert got == expected
        assert restored.late_events == original.late_events


@SETTINGS
@given(
    lefts=st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 200)), max_size=25),
    rights=st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 200)), max_size=25),
    lower=st.integers(-20, 20),
    width=st.integers(0, 30),
    bound=st.integers(0, 50),
    data=st.data(),
)
def test_interval_join_equals_batch_when_disorder_is_bounded(
    lefts: list[tuple[str, int]],
    rights: list[tuple[str, int]],
    lower: int,
    width: int,
    bound: int,
    data: st.DataObject,
) -> None:
    upper = lower + width
    tagged = [(0, i, k, ts) for i, (k, ts) in enumerate(lefts)]
    tagged += [(1, i, k, ts) for i, (k, ts) in enumerate(rights)]
    arrival = data.draw(st.permutations(tagged))
    expected = {
        (i, j)
        for i, (ka, ta) in enumerate(lefts)
        for j, (kb, tb) in enumerate(rights)
        if ka == kb and ta + lower <= tb <= ta + upper
    }
    worst, top = 0, None
    for _, _, _, ts in arrival:
        if top is not None:
            worst = builtins.max(worst, top - ts)
        top = ts if top is None else builtins.max(top, ts)
    for b, must_match in ((bound, False), (worst + bound, True)):
        join = IntervalJoinOperator(lower, upper)
        pairs: list[tuple[int, int]] = []
        late = 0
        seen: int | None = None
        for side, i, key, ts in arrival:
            result = (join.process_left if side == 0 else join.process_right)(key, i, ts)
            pairs += list(result)
            late += result.late
            seen = ts if seen is None else builtins.max(seen, ts)
            join.advance(seen - b)
        assert len(pairs) == len(set(pairs))  # each pair once
        assert set(pairs) <= expected  # only valid pairs
        assert join.late_events == late
        if must_match:
            assert late == 0
            assert set(pairs) == expected


@SETTINGS
@given(spec=specs, events=event_lists(), sides=st.data())
def test_window_join_equals_batch_pairs(
    spec: WindowSpec, events: list[Event], sides: st.DataObject
) -> None:
    side_of = sides.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    join = WindowJoinOperator(spec)
    for e, left in zip(events, side_of, strict=True):
        result = (join.process_left if left else join.process_right)(e["k"], e["i"], e["ts"])
        assert result == ([], None)
    rows = join.advance(MAX_WATERMARK)
    # reference: group both sides together, then pair left x right inside each group
    groups = reference_groups(spec, events)
    expected = []
    order = sorted(groups, key=lambda kw: (kw[1][1], kw[1][0], groups[kw][0]["i"]))
    for key, window in order:
        by_time = sorted(groups[(key, window)], key=lambda e: (e["ts"], e["i"]))
        lefts = [e["i"] for e in by_time if side_of[e["i"]]]
        rights = [e["i"] for e in by_time if not side_of[e["i"]]]
        expected += [
            {"key": key, "window_start": window[0], "window_end": window[1], "left": a, "right": b}
            for a in lefts
            for b in rights
        ]
    assert rows == expected


@SETTINGS
@given(
    arrivals=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 500)), max_size=40),
    bound=st.integers(0, 50),
)
def test_watermark_tracker_is_the_min_over_partitions(
    arrivals: list[tuple[int, int]], bound: int
) -> None:
    tracker = WatermarkTracker(bound)
    tracker.declare_partitions(range(4))
    highest: dict[int, int] = {}
    top: int | None = None
    last = MIN_WATERMARK
    ooo = 0
    for partition, ts in arrivals:
        out_of_order = top is not None and ts < top
        assert tracker.observe(partition, ts) is out_of_order
        ooo += out_of_order
        top = ts if top is None else builtins.max(top, ts)
        highest[partition] = builtins.max(highest.get(partition, ts), ts)
        if len(highest) == 4:
            expected = builtins.min(h - bound for h in highest.values())
        else:
            expected = MIN_WATERMARK
        current = tracker.current()
        assert current == builtins.max(last, expected)
        last = current
    assert tracker.out_of_order_count == ooo
    assert tracker.events == len(arrivals)


@SETTINGS
@given(
    events=st.lists(
        st.tuples(st.booleans(), st.sampled_from("ab"), st.integers(0, 100)), max_size=30
    ),
    bound=st.integers(0, 30),
    data=st.data(),
)
def test_interval_join_snapshot_restore_changes_nothing(
    events: list[tuple[bool, str, int]], bound: int, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(events)))

    def feed(
        join: IntervalJoinOperator, part: list[tuple[int, tuple[bool, str, int]]]
    ) -> list[Any]:
        out: list[Any] = []
        for i, (left, key, ts) in part:
            result = (join.process_left if left else join.process_right)(key, {"i": i}, ts)
            out.append((list(result), result.late))
            join.advance(ts - bound)
        return out

    numbered = list(enumerate(events))
    original = IntervalJoinOperator(-5, 10)
    feed(original, numbered[:cut])
    restored = IntervalJoinOperator.restore(roundtrip(original.snapshot()))
    assert feed(restored, numbered[cut:]) == feed(original, numbered[cut:])
    assert restored.late_events == original.late_events
