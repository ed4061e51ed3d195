"""Hand-worked cases for the window operator (tumbling and sliding windows)."""

from typing import Any

import msgspec
import pytest

from rheos.errors import CheckpointError, ConfigError
from rheos.windowing import (
    MAX_WATERMARK,
    LateInfo,
    WindowOperator,
    collect,
    count,
    first,
    last,
    sliding,
    sum,
    tumbling,
)


def ev(v: int) -> dict[str, int]:
    return {"v": v}


def test_tumbling_counts_and_sums_per_key() -> None:
    op = WindowOperator(tumbling(10), {"n": count(), "s": sum("v")})
    for key, ts, v in [("a", 1, 1), ("b", 2, 10), ("a", 9, 2), ("a", 10, 3), ("b", 15, 20)]:
        assert op.process(key, ev(v), ts) == ([], None)
    assert op.state_size == 4
    assert op.windows_open == 2
    assert op.advance(10) == [
        {"key": "a", "window_start": 0, "window_end": 10, "n": 2, "s": 3},
        {"key": "b", "window_start": 0, "window_end": 10, "n": 1, "s": 10},
    ]
    assert op.advance(MAX_WATERMARK) == [
        {"key": "a", "window_start": 10, "window_end": 20, "n": 1, "s": 3},
        {"key": "b", "window_start": 10, "window_end": 20, "n": 1, "s": 20},
    ]
    assert op.state_size == 0
    assert op.windows_open == 0


def test_window_is_not_finalized_before_the_watermark_reaches_its_end() -> None:
    op = WindowOperator(tumbling(10), {"n": count()})
    op.process(None, ev(0), 5)
    assert op.advance(9) == []
    assert op.advance(10) == [{"key": None, "window_start": 0, "window_end": 10, "n": 1}]


def test_out_of_order_within_the_bound_is_not_late() -> None:
    # bound B = 5: the runner advances to max_ts - 5 after each event
    op = WindowOperator(tumbling(10), {"vals": collect("v")})
    seen = -1
    out: list[dict[str, Any]] = []
    for ts in [3, 8, 12, 6, 14, 9, 20]:
        result = op.process("k", ev(ts), ts)
        assert result.late is None
        seen = max(seen, ts)
        out += op.advance(seen - 5)
    out += op.advance(MAX_WATERMARK)
    assert [r["vals"] for r in out] == [[3, 6, 8, 9], [12, 14], [20]]
    assert op.late_events == 0


def test_late_event_is_reported_with_the_windows_it_missed() -> None:
    op = WindowOperator(tumbling(10), {"n": count()})
    op.process("k", ev(1), 1)
    op.process("k", ev(25), 25)
    assert op.advance(20) == [{"key": "k", "window_start": 0, "window_end": 10, "n": 1}]
    late = op.process("k", ev(4), 4).late
    assert late == LateInfo(key="k", ts=4, event={"v": 4}, windows=((0, 10),))
    # a window that never existed is also "missed"
    late = op.process("j", ev(15), 15).late
    assert late is not None and late.windows == ((10, 20),)
    assert op.late_events == 2
    assert op.advance(MAX_WATERMARK) == [{"key": "k", "window_start": 20, "window_end": 30, "n": 1}]


def test_allowed_lateness_keeps_windows_open_after_completion() -> None:
    op = WindowOperator(tumbling(10), {"n": count()}, allowed_lateness_ms=5)
    op.process("k", ev(1), 1)
    assert op.advance(12) == []  # complete (12 >= 10) but not finalized (12 < 15)
    assert op.process("k", ev(2), 2).late is None
    assert op.advance(15) == [{"key": "k", "window_start": 0, "window_end": 10, "n": 2}]
    late = op.process("k", ev(3), 3).late
    assert late is not None and late.windows == ((0, 10),)


def test_allowed_lateness_accepts_a_duration() -> None:
    op = WindowOperator(tumbling("1s"), {"n": count()}, allowed_lateness_ms="2s")
    assert op.allowed_lateness_ms == 2000


def test_update_emission() -> None:
    op = WindowOperator(tumbling(10), {"n": count(), "s": sum("v")}, emit="update")
    assert op.process("k", ev(1), 1).outputs == [
        {"key": "k", "window_start": 0, "window_end": 10, "n": 1, "s": 1, "final": False}
    ]
    assert op.process("k", ev(2), 2).outputs == [
        {"key": "k", "window_start": 0, "window_end": 10, "n": 2, "s": 3, "final": False}
    ]
    assert op.advance(10) == [
        {"key": "k", "window_start": 0, "window_end": 10, "n": 2, "s": 3, "final": True}
    ]
    result = op.process("k", ev(3), 3)
    assert result.outputs == [] and result.late is not None


def test_final_emission_returns_no_rows_from_process() -> None:
    op = WindowOperator(sliding(10, 5), {"n": count()})
    assert op.process("k", ev(1), 7).outputs == []


def test_sliding_windows_hand_worked() -> None:
    op = WindowOperator(sliding(10, 5), {"n": count(), "s": sum("v")})
    for ts in [1, 6, 12]:
        op.process("k", ev(ts), ts)
    assert op.windows_open == 4  # starts -5, 0, 5, 10
    assert op.advance(10) == [
        {"key": "k", "window_start": -5, "window_end": 5, "n": 1, "s": 1},
        {"key": "k", "window_start": 0, "window_end": 10, "n": 2, "s": 7},
    ]
    assert op.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 5, "window_end": 15, "n": 2, "s": 18},
        {"key": "k", "window_start": 10, "window_end": 20, "n": 1, "s": 12},
    ]


def test_sliding_late_event_still_joins_its_open_windows() -> None:
    op = WindowOperator(sliding(10, 5), {"n": count()}, emit="update")
    op.process("k", ev(12), 12)
    op.advance(10)  # finalizes windows ending at 10 or before: [0, 10)
    result = op.process("k", ev(7), 7)  # windows [0, 10) (finalized) and [5, 15) (open)
    assert result.late is not None
    assert result.late.windows == ((0, 10),)
    assert result.outputs == [
        {"key": "k", "window_start": 5, "window_end": 15, "n": 2, "final": False}
    ]
    assert op.late_events == 1
    assert op.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 5, "window_end": 15, "n": 2, "final": True},
        {"key": "k", "window_start": 10, "window_end": 20, "n": 1, "final": True},
    ]


def test_emission_order_end_then_start_then_key_insertion() -> None:
    op = WindowOperator(sliding(10, 5), {"n": count()})
    op.process("z", ev(0), 7)
    op.process("a", ev(0), 3)
    op.process(2, ev(0), 8)
    rows = op.advance(MAX_WATERMARK)
    assert [(r["window_start"], r["window_end"], r["key"]) for r in rows] == [
        (-5, 5, "a"),
        (0, 10, "z"),
        (0, 10, "a"),
        (0, 10, 2),
        (5, 15, "z"),
        (5, 15, 2),
    ]


def test_first_last_by_event_time_in_windows() -> None:
    op = WindowOperator(tumbling(100), {"first": first("v"), "last": last("v")})
    for ts, v in [(50, "b"), (10, "a"), (90, "d"), (60, "c")]:
        op.process(None, ev(v), ts)  # type: ignore[arg-type]
    assert op.advance(MAX_WATERMARK) == [
        {"key": None, "window_start": 0, "window_end": 100, "first": "a", "last": "d"}
    ]


def test_watermark_never_goes_back() -> None:
    op = WindowOperator(tumbling(10), {"n": count()})
    op.advance(55)
    assert op.advance(20) == []
    assert op.watermark == 55
    assert op.process("k", ev(52), 52).late is None
    assert op.process("k", ev(45), 45).late is not None


def test_unkeyed_windows_use_key_none() -> None:
    op = WindowOperator(tumbling(10), {})
    op.process(None, ev(1), 1)
    assert op.advance(MAX_WATERMARK) == [{"key": None, "window_start": 0, "window_end": 10}]


def test_tuple_keys_and_a_user_aggregation_on_whole_events() -> None:
    class Longest:
        def init(self) -> str:
            return ""

        def add(self, acc: str, value: dict[str, str]) -> str:
            return value["w"] if len(value["w"]) > len(acc) else acc

        def merge(self, a: str, b: str) -> str:
            return b if len(b) > len(a) else a

        def result(self, acc: str) -> str:
            return acc

    op = WindowOperator(tumbling(10), {"longest": Longest()})
    op.process(("eu", 1), {"w": "ab"}, 1)
    op.process(("eu", 1), {"w": "abcd"}, 2)
    op.process(("eu", 1), {"w": "abc"}, 3)
    assert op.advance(MAX_WATERMARK) == [
        {"key": ("eu", 1), "window_start": 0, "window_end": 10, "longest": "abcd"}
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"emit": "sometimes"},
        {"allowed_lateness_ms": -1},
        {"allowed_lateness_ms": "soon"},
    ],
)
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        WindowOperator(tumbling(10), {"n": count()}, **kwargs)


def test_bad_spec_and_reserved_names() -> None:
    with pytest.raises(ConfigError, match="tumbling"):
        WindowOperator("1m", {"n": count()})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="window_start"):
        WindowOperator(tumbling(10), {"window_start": count()})


def roundtrip(data: Any) -> Any:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(data))


def test_snapshot_is_plain_data_and_restores() -> None:
    aggs = {"n": count(), "vals": collect("v")}
    op = WindowOperator(sliding(10, 5), aggs, allowed_lateness_ms=3)
    op.process(("a", 1), ev(1), 1)
    op.process("b", ev(2), 7)
    op.advance(4)
    snap = roundtrip(op.snapshot())
    again = WindowOperator.restore(sliding(10, 5), aggs, snap, allowed_lateness_ms=3)
    assert again.watermark == 4
    assert again.state_size == op.state_size
    for o in (op, again):
        o.process(("a", 1), ev(3), 8)
    assert again.advance(MAX_WATERMARK) == op.advance(MAX_WATERMARK)


def test_snapshot_of_another_operator_is_refused() -> None:
    op = WindowOperator(tumbling(10), {"n": count()})
    with pytest.raises(CheckpointError, match="tumbling"):
        WindowOperator(tumbling(20), {"n": count()}).load(op.snapshot())
    with pytest.raises(CheckpointError, match="format"):
        op.load({"format": 99})


def test_incremental_snapshots_by_key() -> None:
    aggs = {"s": sum("v")}
    op = WindowOperator(tumbling(10), aggs)
    op.process("a", ev(1), 1)
    op.process("b", ev(2), 2)
    assert op.changed_keys() == {"a", "b"}
    stored = {k: roundtrip(op.snapshot_key(k)) for k in op.changed_keys()}
    op.clear_changed()
    assert op.changed_keys() == set()
    op.process("b", ev(5), 12)
    assert op.changed_keys() == {"b"}
    stored.update({k: roundtrip(op.snapshot_key(k)) for k in op.changed_keys()})
    meta = roundtrip(op.snapshot(include_keys=False))
    assert "keys" not in meta
    # restore into a fresh operator, keys in another order
    again = WindowOperator(tumbling(10), aggs)
    again.load(meta)
    for k in sorted(stored, key=str, reverse=True):
        again.restore_key(k, stored[k])
    assert again.advance(MAX_WATERMARK) == op.advance(MAX_WATERMARK)
    # finalizing a window changes its keys; a key without state snapshots as None
    assert op.changed_keys() == {"a", "b"}
    assert op.snapshot_key("a") is None


def test_restore_key_replaces_and_none_clears() -> None:
    op = WindowOperator(tumbling(10), {"n": count()})
    op.process("a", ev(1), 1)
    op.process("a", ev(1), 11)
    data = op.snapshot_key("a")
    op.process("a", ev(1), 2)
    op.restore_key("a", data)
    assert op.state_size == 2
    op.restore_key("a", None)
    assert op.state_size == 0
    assert op.advance(MAX_WATERMARK) == []


def test_bad_event_raises_and_changes_no_state() -> None:
    from rheos.errors import EventError

    op = WindowOperator(tumbling(10), {"n": count(), "s": sum("v")})
    op.process("k", ev(1), 1)
    with pytest.raises(EventError, match=r"sum\('v'\).*no field 'v'"):
        op.process("k", {"w": 1}, 2)
    with pytest.raises(EventError):
        op.process("new", {"w": 1}, 25)  # no window is created for it either
    assert op.state_size == 1
    assert op.advance(MAX_WATERMARK) == [
        {"key": "k", "window_start": 0, "window_end": 10, "n": 1, "s": 1}
    ]


def test_errors_of_user_field_functions_propagate_unchanged() -> None:
    def price(event: dict[str, Any]) -> Any:
        return event["price"]

    for spec in (tumbling(10), sliding(10, 5)):
        op = WindowOperator(spec, {"s": sum(price)})
        with pytest.raises(KeyError):
            op.process("k", ev(1), 1)
        assert op.state_size == 0
