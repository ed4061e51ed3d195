"""Price-movement alerts on a stream of quotes.

Run it with ``python examples/price_alerts.py [THRESHOLD]`` (default 0.25, a 25 % move).

Each quote is keyed by its symbol and falls into an event-time window of 90 days per symbol;
when a window closes, the flow compares its first and last price and raises an alert when
the move exceeds the threshold, with the window's high and low for context.

Data: the monthly closing prices of five US stocks (AAPL, AMZN, GOOG, IBM, MSFT) from
January 2000 to March 2010, 560 quotes, from ``stocks.csv`` of the ``vega_datasets`` package
on PyPI (MIT licence), read offline by :func:`rheos.operations.datasets.stock_quotes`.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import rheos as rh
from rheos.operations.datasets import stock_quotes


def build_alerts(
    flow: rh.Flow,
    source: Any,
    out: Any,
    *,
    window: str = "90d",
    threshold: float = 0.25,
) -> rh.Flow:
    """Add the alerting steps to ``flow``: quotes from ``source``, alerts into the sink ``out``.

    A quote is ``{"symbol", "ts" (epoch ms), "price"}``; an alert is ``{"symbol", "from",
    "to", "open", "close", "high", "low", "move"}`` with ``move`` the relative change.
    """
    (
        flow.source(source, timestamp="ts", timestamp_unit="ms", out_of_orderness="1d")
        .filter(lambda q: q["price"] > 0)  # a bad quote never makes an alert
        .key_by("symbol")
        .window(rh.tumbling(window))
        .aggregate(
            open=rh.first("price"),  # first and last follow event time, not arrival
            close=rh.last("price"),
            high=rh.max("price"),
            low=rh.min("price"),
            quotes=rh.count(),
        )
        .map(to_alert)
        .filter(lambda a: abs(a["move"]) >= threshold)
        .sink(out)
    )
    return flow


def to_alert(w: dict[str, Any]) -> dict[str, Any]:
    """A window result → an alert candidate."""
    return {
        "symbol": w["key"],
        "from": w["window_start"],
        "to": w["window_end"],
        "open": w["open"],
        "close": w["close"],
        "high": w["high"],
        "low": w["low"],
        "move": round(w["close"] / w["open"] - 1, 4),
    }


def show(alert: dict[str, Any]) -> None:
    """React: print the alert as it happens."""
    day = datetime.fromtimestamp(alert["from"] / 1000, UTC).date()
    arrow = "up" if alert["move"] > 0 else "down"
    print(
        f"ALERT {alert['symbol']:<5} {arrow:>4} {alert['move']:+7.1%} in the 90 days from {day}: "
        f"{alert['open']:.2f} -> {alert['close']:.2f} (low {alert['low']:.2f}, "
        f"high {alert['high']:.2f})"
    )


def main() -> None:
    threshold = float(sys.argv[1]) if len(sys.argv) > 1 else 0.25
    quotes = stock_quotes()
    print(f"{len(quotes)} monthly quotes, 2000-2010 (vega_datasets stocks.csv)")
    flow = build_alerts(
        rh.Flow("price-alerts"),
        rh.iterable_source(quotes),
        rh.callback_sink(show),
        threshold=threshold,
    )
    summary = flow.run()  # a stream: each window is judged as soon as the watermark closes it
    print(summary)


if __name__ == "__main__":
    main()
