"""The event-time kernel answers the same for one event, for an array of events and in the
source text it gives generated code; the out-of-order counter likewise.

The reference for window assignment is the definition: an event at ``ts`` is in ``[s, e)``
when ``s <= ts < e``, for every window start on the grid ``k * every + offset``.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rheos.windowing import (
    MAX_WATERMARK,
    MIN_WATERMARK,
    Disorder,
    WindowKernel,
    WindowSpec,
    calendar,
    session,
    sliding,
    tumbling,
)
from rheos.windowing.aggregations import count, max, mean, min, sum
from rheos.windowing.watermarks import disorder_source

times = st.integers(min_value=-(10**12), max_value=10**12)
"""About 32 years either side of the epoch: inside the years calendar windows cover."""


@st.composite
def fixed_specs(draw: Any) -> WindowSpec:
    every = draw(st.integers(min_value=1, max_value=10_000))
    offset = draw(st.integers(min_value=0, max_value=20_000))
    if draw(st.booleans()):
        return tumbling(every, offset=offset)
    size = every * draw(st.integers(min_value=1, max_value=4)) + draw(
        st.integers(min_value=0, max_value=every - 1)
    )
    return sliding(size, every, offset=offset)


specs = st.one_of(
    fixed_specs(),
    st.builds(session, st.integers(min_value=1, max_value=10_000)),
    st.sampled_from([calendar("day", tz="Europe/Paris"), calendar("month"), calendar("week")]),
)
watermarks = st.one_of(times, st.sampled_from([MIN_WATERMARK, MAX_WATERMARK]))


def by_definition(spec: WindowSpec, ts: int) -> tuple[tuple[int, int], ...]:
    every = spec.every_ms if hasattr(spec, "every_ms") else spec.size_ms  # type: ignore[union-attr]
    size, offset = spec.size_ms, spec.offset_ms  # type: ignore[union-attr]
    start = ts - size - every  # well below the first window holding ts, on the grid
    start += (offset - start) % every
    out = []
    while start <= ts:
        if start <= ts < start + size:
            out.append((start, start + size))
        start += every
    return tuple(out)


@settings(max_examples=300, deadline=None)
@given(spec=fixed_specs(), ts=times)
def test_windows_are_those_of_the_definition(spec: WindowSpec, ts: int) -> None:
    assert WindowKernel(spec).windows(ts) == by_definition(spec, ts)


@settings(max_examples=200, deadline=None)
@given(
    spec=specs,
    lateness=st.integers(min_value=0, max_value=100_000),
    events=st.lists(st.tuples(times, watermarks), min_size=1, max_size=30),
)
def test_array_forms_agree_with_one_event_at_a_time(
    spec: WindowSpec, lateness: int, events: list[tuple[int, int]]
) -> None:
    kernel = WindowKernel(spec, lateness)
    ts = np.asarray([t for t, _ in events], dtype=np.int64)
    wm = np.asarray([w for _, w in events], dtype=np.int64)
    owner, starts, ends = kernel.windows_array(ts)
    index = np.arange(len(ts)) if owner is None else owner
    pairs = list(zip(index.tolist(), starts.tolist(), ends.tolist(), strict=True))
    expected = [(i, s, e) for i, (t, _) in enumerate(events) for s, e in kernel.windows(t)]
    assert pairs == expected
    late = kernel.late_array(ends, wm[index]).tolist()
    assert late == [kernel.late(e, events[i][1]) for i, _, e in expected]


@settings(max_examples=200, deadline=None)
@given(
    spec=fixed_specs(),
    lateness=st.integers(min_value=0, max_value=100_000),
    ts=times,
    wm=times,
)
def test_generated_source_is_the_kernel(spec: WindowSpec, lateness: int, ts: int, wm: int) -> None:
    kernel = WindowKernel(spec, lateness)
    last = eval(kernel.start_source("ts"), {"ts": ts})
    first = eval(kernel.first_start_source("last", "ts"), {"ts": ts, "last": last})
    starts = range(first, last + 1, kernel.every)
    assert tuple((s, s + kernel.size) for s in starts) == kernel.windows(ts)
    start = kernel.windows(ts)[0][0]
    end = start + kernel.size
    assert eval(kernel.late_source("s", "w"), {"s": start, "w": wm}) == kernel.late(end, wm)
    assert eval(kernel.late_end_source("e", "w"), {"e": end, "w": wm}) == kernel.late(end, wm)


@settings(max_examples=200, deadline=None)
@given(spec=specs, lateness=st.integers(min_value=0, max_value=100_000), wm=times, ts=times)
def test_nothing_finalizes_between_two_points_of_the_schedule(
    spec: WindowSpec, lateness: int, wm: int, ts: int
) -> None:
    kernel = WindowKernel(spec, lateness)
    nxt = kernel.next_change(wm)
    assert nxt > wm
    for _, end in kernel.windows(ts):  # any window: late at wm exactly when at nxt - 1
        assert kernel.late(end, wm) == kernel.late(end, nxt - 1)
    assert kernel.next_change(MAX_WATERMARK) == MAX_WATERMARK


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.lists(times, max_size=20), max_size=5),
)
def test_disorder_forms_agree(chunks: list[list[int]]) -> None:
    flat = [t for chunk in chunks for t in chunk]
    one, whole, arrays = Disorder(), Disorder(), Disorder()
    flags = [one.observe(t) for t in flat]
    whole.observe_all(flat)
    before: list[int] = []
    for chunk in chunks:
        before.extend(arrays.observe_array(np.asarray(chunk, dtype=np.int64)).tolist())
    assert one.cell == whole.cell == arrays.cell
    assert flags == [t < b for t, b in zip(flat, before, strict=True)]
    # the reference: the definition
    top, late, most = MIN_WATERMARK, 0, 0
    for t in flat:
        if t < top:
            late, most = late + 1, builtins.max(most, top - t)
        top = builtins.max(top, t)
    assert (one.events, one.out_of_order, one.max_delay_ms) == (len(flat), late, most)
    if flat:
        assert one.top == builtins.max(flat)


def test_disorder_source_runs_with_other_names() -> None:
    env = {"top": 10, "n": 0, "most": 0, "seen": []}
    code = disorder_source("t", "top", "n", "most", on_top=["seen.append(t)"])
    for t in (5, 12, 11, 3):
        env["t"] = t
        exec(code, env)
    assert (env["top"], env["n"], env["most"], env["seen"]) == (12, 3, 9, [12])


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.integers(-100, 100), st.floats(-1e6, 1e6))))
def test_row_source_forms_are_the_row_forms(values: list[Any]) -> None:
    """``add_value`` is compiled from ``ADD``; generated code inlines the same text."""
    for agg in (count(), sum("v"), min("v"), max("v"), mean("v")):
        acc = agg.init()
        inlined: dict[str, Any] = {"state": [eval(agg.INIT or "None")]}
        add = agg.add_source("state[0]", "value")
        assert add is not None
        for value in values:
            acc = agg.add_value(acc, value, 0, 0)
            inlined["value"] = value
            exec(add, inlined)
        assert agg.result(acc) == agg.result(inlined["state"][0])
