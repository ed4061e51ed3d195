"""Property: over random out-of-order streams, bounded runs equal a plain GROUP BY; streaming
runs equal it when disorder stays within the bound, and otherwise differ by exactly the late
output."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ._rh import rh
from .helpers import windowed

Key = tuple[Any, int, int]

event = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 60_000),  # event time
    st.integers(-5, 20),  # value
    st.integers(0, 8_000),  # transport delay: arrival order is event time + delay
)


def arrival_order(raw: list[tuple[str, int, int, int]]) -> list[dict[str, Any]]:
    ordered = sorted(raw, key=lambda e: e[1] + e[3])
    return [{"k": k, "t": t, "v": v} for k, t, v, _ in ordered]


def reference(events: list[dict[str, Any]], size: int, every: int) -> dict[Key, list[int]]:
    """GROUP BY key, window: [count, sum] -- windows of ``size`` every ``every`` ms."""
    out: dict[Key, list[int]] = {}
    for e in events:
        t = e["t"]
        last = t - t % every
        start = last
        while start > t - size:
            acc = out.setdefault((e["k"], start, start + size), [0, 0])
            acc[0] += 1
            acc[1] += e["v"]
            start -= every
    return out


def as_table(rows: list[dict[str, Any]]) -> dict[Key, list[int]]:
    table = {(r["key"], r["window_start"], r["window_end"]): [r["n"], r["total"]] for r in rows}
    assert len(table) == len(rows)  # one final row per key and window
    return table


specs = st.sampled_from([(5_000, 5_000), (10_000, 10_000), (10_000, 5_000), (6_000, 2_000)])


@settings(max_examples=60, deadline=None)
@given(st.lists(event, max_size=60), specs, st.integers(0, 3_000))
def test_bounded_run_equals_group_by(raw: list, spec: tuple[int, int], lateness: int) -> None:
    size, every = spec
    events = arrival_order(raw)
    window = rh.tumbling(size) if size == every else rh.sliding(size, every=every)
    out, late, summary = windowed(events, window, lateness=lateness, bounded=True)
    assert as_table(out) == reference(events, size, every)
    assert late == [] and summary.late == 0
    assert summary.events_in == len(events)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(event, max_size=60),
    specs,
    st.integers(0, 10_000),
    st.integers(0, 3_000),
    st.sampled_from([1, 7, 1024]),
)
def test_streaming_run_equals_group_by_plus_late_output(
    raw: list, spec: tuple[int, int], bound: int, lateness: int, batch: int
) -> None:
    size, every = spec
    events = arrival_order(raw)
    window = rh.tumbling(size) if size == every else rh.sliding(size, every=every)
    out, late, summary = windowed(events, window, bound=bound, lateness=lateness, batch_size=batch)
    expected = reference(events, size, every)
    got = as_table(out)
    # add every late event back into exactly the windows it missed
    for record in late:
        for start, end in record["windows"]:
            acc = got.setdefault((record["key"], start, end), [0, 0])
            acc[0] += 1
            acc[1] += record["event"]["v"]
    assert got == expected
    assert summary.late == len(late)
    max_disorder = max((e[3] for e in raw), default=0)
    if max_disorder <= bound:
        assert late == []
    # out-of-order count: events below the largest time seen before them
    top, ooo = None, 0
    for e in events:
        if top is not None and e["t"] < top:
            ooo += 1
        top = e["t"] if top is None else max(top, e["t"])
    assert summary.out_of_order == ooo


@settings(max_examples=40, deadline=None)
@given(st.lists(event, max_size=40), st.integers(0, 10_000))
def test_sessions_bounded_equals_streaming_when_in_bound(raw: list, gap: int) -> None:
    events = arrival_order(raw)
    gap = max(gap, 1)
    bounded, _, _ = windowed(events, rh.session(gap), bounded=True)
    streaming, late, _ = windowed(events, rh.session(gap), bound=8_000)
    assert late == []
    assert Counter(map(str, as_table(streaming).items())) == Counter(
        map(str, as_table(bounded).items())
    )
    # and the sessions are right: per key, events closer than the gap chain together
    by_key: dict[str, list[int]] = {}
    for e in events:
        by_key.setdefault(e["k"], []).append(e["t"])
    expected = set()
    for key, times in by_key.items():
        times.sort()
        start = prev = times[0]
        n = 1
        for t in times[1:]:
            if t < prev + gap:
                n += 1
            else:
                expected.add((key, start, prev + gap, n))
                start, n = t, 1
            prev = t
        expected.add((key, start, prev + gap, n))
    assert {(k, s, e, v[0]) for (k, s, e), v in as_table(bounded).items()} == expected
