"""``rheos demo``: real market data through the embedded log, end to end.

A producer thread replays the real quotes of :func:`rheos.operations.datasets.stock_quotes`
into the topic ``demo.quotes`` (3 partitions, keyed by symbol) on an accelerated clock — one
trading month every ``--month-ms`` milliseconds — while the main thread tails the topic as a
separate reader and reacts to each quote as it arrives: it prints every monthly move larger
than ``--threshold`` percent, and finally how long quotes took from append to being read.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import msgspec

from rheos.operations.cli_common import Subparsers, add_command
from rheos.operations.datasets import stock_quotes
from rheos.transport import Log, default_data_dir

TOPIC = "demo.quotes"


def add_parser(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers,
        "demo",
        _handle,
        help="replay real stock quotes into the embedded log and react to them live",
        description=__doc__,
    )
    p.add_argument("--month-ms", type=float, default=20.0, help="wall ms per trading month")
    p.add_argument("--threshold", type=float, default=15.0, help="alert on moves over this %%")


def _handle(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    run_demo(data_dir, month_ms=args.month_ms, threshold=args.threshold)
    return 0


def run_demo(data_dir: Path, *, month_ms: float = 20.0, threshold: float = 15.0) -> dict[str, int]:
    """Run the demo; return counts (produced, consumed, alerts)."""
    quotes = stock_quotes()
    log = Log(data_dir)
    if log.has_topic(TOPIC):
        log.delete_topic(TOPIC)
    log.create_topic(TOPIC, partitions=3)
    print(f"rheos demo: {len(quotes)} real monthly quotes (AAPL AMZN GOOG IBM MSFT, 2000-2010)")
    print(f"  log: {data_dir / 'topics' / TOPIC}  (3 partitions, keyed by symbol)")

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
                    timestamps=[int(q["ts"])],  # type: ignore[call-overload]
                )

    writer = threading.Thread(target=produce, name="demo-producer")
    writer.start()
    last: dict[str, float] = {}
    latencies: list[int] = []
    consumed = alerts = 0
    with log.reader(TOPIC) as reader:
        while consumed < len(quotes):
            for batch in reader.poll(timeout=1.0):
                seen = time.time_ns() // 1_000_000
                latencies.extend([seen - batch.append_time] * len(batch))
                for value in batch.values():
                    q = msgspec.json.decode(value)
                    consumed += 1
                    prev = last.get(q["symbol"])
                    last[q["symbol"]] = q["price"]
                    if prev:
                        move = (q["price"] / prev - 1) * 100
                        if abs(move) >= threshold:
                            alerts += 1
                            arrow = "▲" if move > 0 else "▼"
                            print(
                                f"  ALERT {q['date']} {q['symbol']:<5} {arrow} {move:+6.1f}%  "
                                f"{prev:8.2f} -> {q['price']:8.2f}"
                            )
    writer.join()
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    print(
        f"done: {len(quotes)} produced, {consumed} consumed, {alerts} alerts; "
        f"append-to-read latency p50 {p50} ms, p99 {p99} ms"
    )
    return {"produced": len(quotes), "consumed": consumed, "alerts": alerts}
