"""Window joins and interval joins of two keyed streams."""

from __future__ import annotations

from ._rh import rh


def test_window_join_pairs_same_key_same_window() -> None:
    flow = rh.Flow("wj")
    clicks = flow.source(
        rh.iterable_source(
            [
                {"user": "u1", "t": 1_000, "page": "home"},
                {"user": "u2", "t": 2_000, "page": "cart"},
                {"user": "u1", "t": 12_000, "page": "shop"},
            ]
        ),
        timestamp="t",
        timestamp_unit="ms",
        out_of_orderness="10s",
    )
    buys = flow.source(
        rh.iterable_source(
            [
                {"user": "u1", "t": 5_000, "item": "pen"},
                {"user": "u1", "t": 15_000, "item": "ink"},
                {"user": "u3", "t": 6_000, "item": "cup"},
            ]
        ),
        timestamp="t",
        timestamp_unit="ms",
        out_of_orderness="10s",
    )
    out: list = []
    (
        clicks.key_by("user")
        .join(
            buys.key_by("user"),
            window=rh.tumbling("10s"),
            combine=lambda c, b: (c["page"], b["item"]),
        )
        .sink(rh.list_sink(out))
    )
    flow.run()
    assert out == [("home", "pen"), ("shop", "ink")]


def test_window_join_default_rows() -> None:
    flow = rh.Flow("wj2")
    a = flow.source(rh.iterable_source([{"k": 1, "t": 1}]), timestamp="t", timestamp_unit="ms")
    b = flow.source(rh.iterable_source([{"k": 1, "t": 2}]), timestamp="t", timestamp_unit="ms")
    out: list = []
    a.key_by("k").join(b.key_by("k"), window=rh.tumbling("1s")).sink(rh.list_sink(out))
    flow.run(bounded=True)
    assert out == [
        {
            "key": 1,
            "window_start": 0,
            "window_end": 1_000,
            "left": {"k": 1, "t": 1},
            "right": {"k": 1, "t": 2},
        }
    ]


def test_interval_join_within_bounds() -> None:
    flow = rh.Flow("ij")
    orders = flow.source(
        rh.iterable_source(
            [
                {"id": "o1", "t": 10_000},
                {"id": "o2", "t": 20_000},
            ]
        ),
        timestamp="t",
        timestamp_unit="ms",
        out_of_orderness="10s",
    )
    payments = flow.source(
        rh.iterable_source(
            [
                {"id": "o1", "t": 7_000, "amount": 1},  # 3 s before: inside [-5s, +5s]
                {"id": "o1", "t": 16_000, "amount": 2},  # 6 s after: outside
                {"id": "o2", "t": 25_000, "amount": 3},  # 5 s after: inside (bounds included)
            ]
        ),
        timestamp="t",
        timestamp_unit="ms",
        out_of_orderness="10s",
    )
    out: list = []
    (
        orders.key_by("id")
        .interval_join(payments.key_by("id"), lower="-5s", upper="5s")
        .map(lambda row: (row["key"], row["right"]["amount"]))
        .sink(rh.list_sink(out))
    )
    flow.run()
    assert sorted(out) == [("o1", 1), ("o2", 3)]
