"""``rheos demo``: real market data through the embedded log and a live flow.

A producer thread replays the real quotes of :func:`rheos.operations.datasets.stock_quotes`
into the topic ``demo.quotes`` (3 partitions, keyed by symbol) on an accelerated clock — one
trading month every ``--month-ms`` milliseconds. At the same time a flow reads the topic as
events arrive and reacts:

- a keyed, stateful step compares each quote with the symbol's previous one and raises an
  alert on a move larger than ``--threshold`` percent (printed, and kept in ``demo.alerts``);
- a keyed tumbling event-time window of 365 days gives each symbol's open, close, low, high
  and number of quotes, emitted when the watermark closes the window (``demo.yearly``).
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from rheos.connectors import callback_sink, log_sink, log_source
from rheos.operations.cli_common import Subparsers, add_command
from rheos.operations.datasets import stock_quotes
from rheos.runtime import Flow, RunSummary
from rheos.state.store import store_path
from rheos.transport import Log, default_data_dir
from rheos.windowing import count, first, last, max, min, tumbling

TOPIC = "demo.quotes"
DAY_MS = 86_400_000


def add_parser(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers,
        "demo",
        _handle,
        help="replay real stock quotes into the embedded log and react to them with a flow",
        description=__doc__,
    )
    p.add_argument("--month-ms", type=float, default=20.0, help="wall ms per trading month")
    p.add_argument("--threshold", type=float, default=15.0, help="alert on moves over this %%")


def _handle(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    run_demo(data_dir, month_ms=args.month_ms, threshold=args.threshold)
    return 0


class PriceMove:
    """Per symbol: remember the last price; emit an alert on a move over the threshold."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def process(self, ctx: Any, quote: dict[str, Any]) -> None:
        previous = ctx.state
        ctx.state = quote["price"]
        if previous:
            move = (quote["price"] / previous - 1) * 100
            if abs(move) >= self.threshold:
                ctx.emit({**quote, "previous": previous, "move_pct": round(move, 1)})


def build_flow(data_dir: Path, threshold: float, printed: list[str]) -> Flow:
    def show_alert(alert: dict[str, Any]) -> None:
        arrow = "▲" if alert["move_pct"] > 0 else "▼"
        line = (
            f"  ALERT {alert['date']} {alert['symbol']:<5} {arrow} {alert['move_pct']:+6.1f}%  "
            f"{alert['previous']:8.2f} -> {alert['price']:8.2f}"
        )
        printed.append(line)
        print(line)

    def show_year(row: dict[str, Any]) -> None:
        start = time.strftime("%Y-%m-%d", time.gmtime(row["window_start"] / 1000))
        change = (row["close"] / row["open"] - 1) * 100
        print(
            f"  365 days from {start} {row['key']:<5} open {row['open']:8.2f} close "
            f"{row['close']:8.2f} ({change:+6.1f}%)  low {row['low']:8.2f} high {row['high']:8.2f}"
            f"  {row['quotes']} quotes"
        )

    flow = Flow("demo", data_dir=data_dir)
    quotes = flow.source(log_source(TOPIC), timestamp="ts", out_of_orderness="1d")
    by_symbol = quotes.filter(lambda q: q["price"] > 0).key_by("symbol")
    alerts = by_symbol.process(PriceMove(threshold), name="price-move")
    alerts.sink(log_sink("demo.alerts", key="symbol"))
    alerts.sink(callback_sink(show_alert))
    yearly = by_symbol.window(tumbling(f"{365}d")).aggregate(
        open=first("price"),
        close=last("price"),
        low=min("price"),
        high=max("price"),
        quotes=count(),
    )
    yearly.sink(log_sink("demo.yearly", key="key"))
    yearly.sink(callback_sink(show_year))
    return flow


def run_demo(data_dir: Path, *, month_ms: float = 20.0, threshold: float = 15.0) -> RunSummary:
    """Run the demo and return the flow's run summary."""
    quotes = stock_quotes()
    log = Log(data_dir)
    for topic in (TOPIC, "demo.alerts", "demo.yearly", "demo.late", "demo.dlq"):
        if log.has_topic(topic):
            log.delete_topic(topic)
    # a fresh replay: forget the previous run's checkpoints along with its topics
    shutil.rmtree(store_path(data_dir, "demo").parent, ignore_errors=True)
    log.create_topic(TOPIC, partitions=3)
    print(f"rheos demo: {len(quotes)} real monthly quotes (AAPL AMZN GOOG IBM MSFT, 2000-2010)")
    print(f"  log: {data_dir / 'topics' / TOPIC} (3 partitions, keyed by symbol)")
    print(f"  flow: alerts on monthly moves over {threshold:g}%, 365-day windows per symbol")

    def produce() -> None:
        with log.producer(TOPIC) as producer:
            month = None
            for q in quotes:
                if q["ts"] != month:
                    month = q["ts"]
                    time.sleep(month_ms / 1000)
                producer.append(
                    [msgspec.json.encode(q)],
                    keys=[str(q["symbol"]).encode()],
                    timestamps=[int(str(q["ts"]))],
                )

    printed: list[str] = []
    flow = build_flow(data_dir, threshold, printed)
    writer = threading.Thread(target=produce, name="demo-producer", daemon=True)
    writer.start()
    summary = flow.run(stop_after=len(quotes), drain=True)
    writer.join()
    print(
        f"done: {summary.events_in} quotes in, {len(printed)} alerts, "
        f"{summary.late} late, {summary.elapsed_s:.2f} s"
    )
    return summary
