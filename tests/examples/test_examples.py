"""The programs in ``examples/``, run on small data and checked against independent answers.

Each example exposes the function that builds its flow; these tests call it on hand-worked
inputs, and on the example's own data checked against a plain-Python or DuckDB computation.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import rheos as rh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the folder is not a package)."""
    module_name = f"rheos_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RHEOS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# -- price alerts -------------------------------------------------------------------------------
def test_price_alerts_hand_worked() -> None:
    pa = load("price_alerts")
    quotes = [
        {"symbol": "ACME", "ts": 0, "price": 100.0},
        {"symbol": "INIT", "ts": 1_000, "price": 50.0},
        {"symbol": "ACME", "ts": 4_000, "price": 90.0},
        {"symbol": "ACME", "ts": 8_000, "price": 104.0},  # +4 % over [0, 10 s): no alert
        {"symbol": "INIT", "ts": 9_000, "price": 40.0},  # -20 % over [0, 10 s): alert
        {"symbol": "ACME", "ts": 12_000, "price": -1.0},  # a bad quote is dropped
        {"symbol": "ACME", "ts": 13_000, "price": 110.0},
        {"symbol": "ACME", "ts": 15_000, "price": 121.0},  # +10 % over [10 s, 20 s): alert
    ]
    alerts: list[dict[str, Any]] = []
    flow = pa.build_alerts(
        rh.Flow("alerts"), rh.iterable_source(quotes), rh.list_sink(alerts),
        window="10s", threshold=0.1,
    )  # fmt: skip
    flow.run()
    assert [(a["symbol"], a["from"], a["open"], a["close"], a["move"]) for a in alerts] == [
        ("INIT", 0, 50.0, 40.0, -0.2),
        ("ACME", 10_000, 110.0, 121.0, 0.1),
    ]
    assert alerts[1]["low"] == 110.0 and alerts[1]["high"] == 121.0


def test_price_alerts_on_real_quotes_match_plain_python() -> None:
    pa = load("price_alerts")
    quotes = pa.stock_quotes()
    alerts: list[dict[str, Any]] = []
    pa.build_alerts(
        rh.Flow("alerts"), rh.iterable_source(quotes), rh.list_sink(alerts), threshold=0.2
    ).run()
    size = 90 * 86_400_000
    windows: dict[tuple[str, int], list[float]] = defaultdict(list)
    for q in sorted(quotes, key=lambda q: q["ts"]):
        windows[(q["symbol"], q["ts"] - q["ts"] % size)].append(q["price"])
    expected = {
        (symbol, start, round(prices[-1] / prices[0] - 1, 4))
        for (symbol, start), prices in windows.items()
        if abs(prices[-1] / prices[0] - 1) >= 0.2
    }
    assert {(a["symbol"], a["from"], a["move"]) for a in alerts} == expected
    assert len(expected) > 10


# -- trade monitor ------------------------------------------------------------------------------
def trade(ts: int, account: str, amount: float = 100.0, gateway: str = "G1", ok: bool = True):
    return {"id": f"{account}@{ts}", "ts": ts, "account": account, "gateway": gateway,
            "amount": amount, "status": "filled" if ok else "failed"}  # fmt: skip


def run_monitor(trades: list[dict[str, Any]], **rules: Any) -> tuple[list[Any], list[Any]]:
    tm = load("trade_monitor")
    alerts: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    flow = tm.build_monitor(
        rh.Flow("monitor"), rh.iterable_source(trades), rh.list_sink(alerts),
        rh.list_sink(decisions), **rules,
    )  # fmt: skip
    flow.run()
    return alerts, decisions


def test_trade_monitor_rules_hand_worked() -> None:
    s = 1_000
    trades = [trade(i * 20 * s, "calm", 100.0) for i in range(6)]  # mean 100, 3 a minute
    trades += [trade(130 * s, "calm", 290.0)]  # 2.9x the mean: fine
    trades += [trade(150 * s, "calm", 450.0)]  # 4.5x the mean (now 127): alert
    trades += [trade(200 * s, "new", 2_000.0)]  # over the limit: alert
    trades += [trade(300 * s + i * s, "fast") for i in range(4)]  # 4 trades in 4 s: alert
    trades.sort(key=lambda t: t["ts"])
    alerts, decisions = run_monitor(trades, max_trades=3, limit=1_000, factor=3.0)
    amount = [(a["account"], a["amount"]) for a in alerts if a["rule"] == "amount"]
    assert amount == [("calm", 450.0), ("new", 2_000.0)]
    velocity = [a for a in alerts if a["rule"] == "velocity"]
    assert [(a["account"], a["trades"]) for a in velocity] == [("fast", 4)]  # once per burst
    assert decisions == []  # every trade filled


def test_trade_monitor_reroute_and_restore_hand_worked() -> None:
    m = 60_000
    trades = []
    for minute in range(20):  # 10 trades a minute on G1; minutes 5-7 fail half of them
        for i in range(10):
            failing = 5 <= minute < 8 and i % 2 == 0
            trades.append(trade(minute * m + i * 6_000, f"a{i}", gateway="G1", ok=not failing))
    _, decisions = run_monitor(trades, reroute_at=0.2, restore_below=0.1, min_trades=20)
    # windows of 5 minutes every minute: [1 m, 6 m) holds 5 failures in 50 trades (10 %),
    # [2 m, 7 m) 10 of 50 (20 %): re-route; the rate falls below 10 % for [8 m, 13 m)
    assert [(d["decision"], d["window_end"], d["failure_rate"]) for d in decisions] == [
        ("re-route", 7 * m, 0.2),
        ("restore", 13 * m, 0.0),
    ]


def test_trade_monitor_on_synthetic_trades_matches_plain_python() -> None:
    tm = load("trade_monitor")
    trades = tm.synthetic_trades()
    alerts, decisions = run_monitor(trades)
    # gateway decisions, recomputed: sliding windows of 5 minutes every minute, hysteresis
    m = 60_000
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for t in trades:
        last = t["ts"] - t["ts"] % m
        for start in range(last - 4 * m, last + 1, m):
            counts[(t["gateway"], start)][0] += 1
            counts[(t["gateway"], start)][1] += t["status"] == "failed"
    expected = []
    rerouted: set[str] = set()
    for (gateway, start), (n, failed) in sorted(counts.items(), key=lambda kv: kv[0][1]):
        rate = failed / n
        if gateway not in rerouted and n >= 20 and rate >= 0.2:
            rerouted.add(gateway)
            expected.append(("re-route", gateway, start + 5 * m))
        elif gateway in rerouted and rate < 0.1:
            rerouted.discard(gateway)
            expected.append(("restore", gateway, start + 5 * m))
    assert [(d["decision"], d["gateway"], d["window_end"]) for d in decisions] == expected
    assert [d[:2] for d in expected] == [("re-route", "GW-B"), ("restore", "GW-B")]
    # the planted burst and outliers are caught, and nothing else
    assert {a["account"] for a in alerts if a["rule"] == "velocity"} == {"ACC-013"}
    assert sorted(a["trade"] for a in alerts if a["rule"] == "amount") == ["X00000", "X00001"]


# -- trending terms -----------------------------------------------------------------------------
def test_trending_terms_hand_worked() -> None:
    tt = load("trending_terms")
    assert tt.terms("The Cat, the cat and THE dog!") == ["cat", "dog"]
    posts = [
        {"ts": 1_000, "text": "Kafka streams, kafka everywhere"},
        {"ts": 2_000, "text": "Python and Kafka"},
        {"ts": 3_000, "text": "python wheels"},
        {"ts": 4_000, "text": "rust is fast"},
        {"ts": 61_000, "text": "wheels on wheels"},
    ]
    out: list[dict[str, Any]] = []
    tt.build_trending(
        rh.Flow("trending"), rh.iterable_source(posts), rh.list_sink(out), window="1m", n=2
    ).run()
    assert out == [
        {"window_start": 0, "window_end": 60_000, "top": [("kafka", 2), ("python", 2)]},
        {"window_start": 60_000, "window_end": 120_000, "top": [("wheels", 1)]},
    ]


def test_trending_terms_on_the_stream_match_a_counter() -> None:
    tt = load("trending_terms")
    posts = tt.synthetic_posts(tt.load_texts(), slots=4, per_slot=150)
    out: list[dict[str, Any]] = []
    tt.build_trending(rh.Flow("trending"), rh.iterable_source(posts), rh.list_sink(out)).run()
    per_window: dict[int, Counter[str]] = defaultdict(Counter)
    for post in posts:
        per_window[post["ts"] - post["ts"] % tt.SLOT_MS].update(tt.terms(post["text"]))
    expected = [
        sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        for _, counter in sorted(per_window.items())
    ]
    assert [w["top"] for w in out] == expected
    # each slot's hot topic is among its window's top terms
    for window, topic in zip(out, tt.HOT_TOPICS[:4], strict=True):
        assert topic in [term for term, _ in window["top"]], (topic, window["top"])


# -- the batch report ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flights() -> list[dict[str, Any]]:
    """Every 25th flight of the year (13,472 flights): small enough, and still every day."""
    return load("batch_report").load_flights()[::25]


def test_batch_report_matches_duckdb(flights: list[dict[str, Any]], tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    br = load("batch_report")
    lines = br.run_batch(flights, tmp_path / "data")
    got = {
        (r["slice"], r["value"], r["period"], r["start"]): (
            r["flights"], r["cancelled"], r["delay_min"], r["flights_change"],
        )
        for r in lines
    }  # fmt: skip
    assert len(got) == len(lines)  # one line per slice and period

    con = duckdb.connect()
    con.execute("CREATE TABLE f (ts BIGINT, city TEXT, airline TEXT, cancelled INT, delay INT)")
    con.executemany(
        "INSERT INTO f VALUES (?, ?, ?, ?, ?)",
        [(f["ts"], f["city"], f["airline"], f["cancelled"], f["delay"]) for f in flights],
    )
    expected = {}
    steps = {"day": "1 day", "week": "7 days", "month": "1 month", "quarter": "3 months"}
    for dim in ("city", "airline"):
        for period, step in steps.items():
            rows = con.execute(
                f"""
                WITH p AS (
                    SELECT {dim} AS value,
                           date_trunc('{period}', to_timestamp(ts / 1000)
                                      AT TIME ZONE 'America/New_York') AS start,
                           count(*) AS flights, sum(cancelled) AS cancelled,
                           coalesce(sum(delay), 0) AS delay_min
                    FROM f GROUP BY ALL
                ), q AS (
                    SELECT *, lag(start) OVER w AS before_start, lag(flights) OVER w AS before
                    FROM p WINDOW w AS (PARTITION BY value ORDER BY start)
                )
                SELECT value, start::DATE, flights, cancelled, delay_min,
                       CASE WHEN before_start = start - INTERVAL '{step}' THEN before END
                FROM q
                """
            ).fetchall()
            for value, start, n, cancelled, delay, before in rows:
                # against the previous period; none when the slice had no flight in it
                change = round(n / before - 1, 4) if before else None
                key = (dim, value, period, start.isoformat())
                expected[key] = (n, cancelled, delay, change)
    assert got == expected


def test_batch_report_live_equals_bounded(flights: list[dict[str, Any]], tmp_path: Path) -> None:
    br = load("batch_report")
    some = flights[::4]  # a quarter of the sample, over the whole year
    batch = br.run_batch(some, tmp_path / "batch")
    live = br.run_live(some, tmp_path / "live")
    assert br.canonical(live) == br.canonical(batch)
    assert {r["period"] for r in batch} == {"day", "week", "month", "quarter"}
