"""The generated tumbling hot path computes exactly what the general path computes.

A tumbling window in update mode runs through the general (not generated) code; its final
rows are the reference here.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rheos.errors import EventError
from rheos.windowing import (
    MAX_WATERMARK,
    WindowOperator,
    collect,
    count,
    first,
    last,
    max,
    mean,
    min,
    sliding,
    sum,
    tumbling,
)


def aggregations() -> dict[str, Any]:
    return {
        "n": count(),
        "total": sum("v"),
        "low": min("v"),
        "high": max("v"),
        "avg": mean("v"),
        "doubled": sum(lambda e: e["v"] * 2),
        "first": first("v"),
        "last": last("v"),
        "all": collect("v"),
    }


def run(op: WindowOperator, events: list[tuple[str, int, int | None]], bound: int) -> Any:
    out: list[Any] = []
    late: list[Any] = []
    top = None
    for key, ts, v in events:
        rows, missed = op.process(key, {"v": v if v is not None else 0}, ts)
        out.extend(rows)
        if missed is not None:
            late.append((missed.key, missed.ts, missed.windows))
        top = ts if top is None or ts > top else top
        out.extend(op.advance(top - bound))
    snapshot = op.snapshot()  # open windows, before the end of input closes them
    out.extend(op.advance(MAX_WATERMARK))
    return out, late, op.late_events, snapshot


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 100_000),
            st.one_of(st.none(), st.integers(-50, 50)),
        ),
        max_size=80,
    ),
    size=st.sampled_from([1_000, 7_000, 60_000]),
    lateness=st.sampled_from([0, 2_000]),
    bound=st.sampled_from([0, 3_000, 20_000]),
)
def test_generated_tumbling_equals_general_path(
    events: list[tuple[str, int, int | None]], size: int, lateness: int, bound: int
) -> None:
    fast = WindowOperator(tumbling(size), aggregations(), allowed_lateness_ms=lateness)
    general = WindowOperator(
        tumbling(size), aggregations(), allowed_lateness_ms=lateness, emit="update"
    )
    got_fast, late_fast, n_fast, snap_fast = run(fast, events, bound)
    got_general, late_general, n_general, snap_general = run(general, events, bound)
    finals = [{k: v for k, v in row.items() if k != "final"} for row in got_general if row["final"]]
    assert got_fast == finals
    # a sliding window whose slide equals its size (the generated sliding path) is the same
    slide = WindowOperator(sliding(size, every=size), aggregations(), allowed_lateness_ms=lateness)
    got_slide, late_slide, n_slide, snap_slide = run(slide, events, bound)
    assert (got_slide, late_slide, n_slide) == (got_fast, late_fast, n_fast)
    assert snap_slide["keys"] == snap_fast["keys"]
    assert late_fast == late_general
    assert n_fast == n_general
    for part in ("watermark", "seq", "late_events", "keys"):
        assert snap_fast[part] == snap_general[part], part


def test_generated_path_reads_every_value_before_changing_state() -> None:
    op = WindowOperator(tumbling(1_000), {"n": count(), "total": sum("v")})
    op.process("a", {"v": 1}, 10)
    with pytest.raises(EventError, match="'v'"):
        op.process("a", {"w": 1}, 20)
    assert op.advance(MAX_WATERMARK) == [
        {"key": "a", "window_start": 0, "window_end": 1_000, "n": 1, "total": 1}
    ]
