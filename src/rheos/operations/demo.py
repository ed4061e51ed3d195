"""``rheos demo``: real market data through the embedded log and a live, monitored flow.

A producer thread replays the real quotes of :func:`rheos.operations.datasets.stock_quotes`
(monthly prices of AAPL, AMZN, GOOG, IBM and MSFT, 2000-2010, from the ``vega_datasets``
package, MIT licence) into the topic ``demo.quotes`` (3 partitions, keyed by symbol) on an
accelerated clock: one trading month every ``--month-ms`` milliseconds. Along the way it
slips in a few deliberately malformed events (invalid JSON, a quote without a price, a
timestamp that is not a date) and a few late ones (quotes two years old). At the same time a
flow -- checkpointed every second -- reads the topic as events arrive and reacts:

- a keyed, stateful step compares each quote with the symbol's previous one and raises an
  alert on a move larger than ``--threshold`` percent (printed as it happens, and kept in
  ``demo.alerts``);
- a keyed tumbling event-time window of 365 days gives each symbol's open, close, low, high
  and number of quotes, emitted when the watermark closes the window (``demo.yearly``);
- malformed events go to the dead-letter topic ``demo.dlq``, late events to ``demo.late``.

The dashboard is served while it runs (``--no-dashboard`` to skip it; default
``http://127.0.0.1:8750/``). The demo stops when the data set has been replayed and every
event processed, after ``--duration`` seconds, or on Ctrl-C -- each time cleanly: open
windows are closed, a last checkpoint is taken, and a summary is printed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from rheos.connectors import callback_sink, log_sink, log_source
from rheos.operations.cli_common import EXIT_INTERRUPTED, EXIT_OK, Subparsers, add_command
from rheos.operations.cli_run import add_server_options
from rheos.operations.dashboard import DEFAULT_HOST, DEFAULT_PORT, FlowServer
from rheos.operations.datasets import stock_quotes
from rheos.runtime import Flow, RunSummary
from rheos.runtime.deadletters import read_dead_letters
from rheos.state.store import store_path
from rheos.transport import Log, default_data_dir
from rheos.windowing import count, first, last, max, min, tumbling

TOPIC = "demo.quotes"
OUTPUTS = ("demo.alerts", "demo.yearly", "demo.late", "demo.dlq")
DAY_MS = 86_400_000
CHECKPOINT_INTERVAL = "1s"


def add_parser(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers,
        "demo",
        _handle,
        help="replay real stock quotes into the embedded log; watch a flow react (dashboard)",
        description=__doc__,
    )
    p.add_argument("--month-ms", type=float, default=150.0, help="wall ms per trading month")
    p.add_argument("--threshold", type=float, default=15.0, help="alert on moves over this %%")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this long (default: when the whole data set has been processed)",
    )
    add_server_options(p, default_on=True)


def _handle(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    summary = run_demo(
        data_dir,
        month_ms=args.month_ms,
        threshold=args.threshold,
        duration=args.duration,
        dashboard=args.dashboard,
        host=args.host,
        port=args.port,
    )
    return EXIT_INTERRUPTED if summary.stopped == "signal" else EXIT_OK


class PriceMove:
    """Per symbol: remember the last price; emit an alert on a move over the threshold.

    Quotes behind the watermark are late (the window step reports them); they are ignored.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def process(self, ctx: Any, quote: dict[str, Any]) -> None:
        if ctx.timestamp < ctx.watermark:
            return
        previous = ctx.state
        ctx.state = quote["price"]
        if previous:
            move = (quote["price"] / previous - 1) * 100
            if abs(move) >= self.threshold:
                ctx.emit({**quote, "previous": previous, "move_pct": round(move, 1)})


def _say(line: str) -> None:
    print(line, flush=True)


def build_flow(
    data_dir: Path, threshold: float, printed: list[str], *, idle_timeout_ms: int = 1_500
) -> Flow:
    """The monitoring flow: price-move alerts, 365-day windows, late and dead-letter outputs.

    Five symbols hashed over three partitions leave partition 1 without any: the source's
    idle timeout keeps that silent partition from holding the watermark back.
    """

    def show_alert(alert: dict[str, Any]) -> None:
        arrow = "▲" if alert["move_pct"] > 0 else "▼"
        line = (
            f"  ALERT {alert['date']} {alert['symbol']:<5} {arrow} {alert['move_pct']:+6.1f}%  "
            f"{alert['previous']:8.2f} -> {alert['price']:8.2f}"
        )
        printed.append(line)
        _say(line)

    def show_year(row: dict[str, Any]) -> None:
        start = time.strftime("%Y-%m-%d", time.gmtime(row["window_start"] / 1000))
        change = (row["close"] / row["open"] - 1) * 100
        _say(
            f"  365 days from {start} {row['key']:<5} open {row['open']:8.2f} close "
            f"{row['close']:8.2f} ({change:+6.1f}%)  low {row['low']:8.2f} high {row['high']:8.2f}"
            f"  {row['quotes']} quotes"
        )

    def show_late(late: dict[str, Any]) -> None:
        event = late["event"]
        _say(
            f"  LATE  {event.get('date')} {late['key']:<5} arrived after its window closed "
            f"(watermark {time.strftime('%Y-%m-%d', time.gmtime(late['watermark'] / 1000))})"
            " -> demo.late"
        )

    flow = Flow("demo", data_dir=data_dir, checkpoint_interval=CHECKPOINT_INTERVAL)
    quotes = flow.source(
        log_source(TOPIC),
        timestamp="ts",
        out_of_orderness="1d",
        idle_timeout=idle_timeout_ms,
        name="quotes",
    )
    by_symbol = quotes.filter(lambda q: q["price"] > 0, name="priced").key_by("symbol")
    alerts = by_symbol.process(PriceMove(threshold), name="price-move")
    alerts.sink(log_sink("demo.alerts", key="symbol"), name="alerts")
    alerts.sink(callback_sink(show_alert), name="print-alerts")
    per_year = by_symbol.window(tumbling(f"{365}d"))
    yearly = per_year.aggregate(
        open=first("price"),
        close=last("price"),
        low=min("price"),
        high=max("price"),
        quotes=count(),
        name="yearly",
    )
    yearly.sink(log_sink("demo.yearly", key="key"), name="yearly-log")
    yearly.sink(callback_sink(show_year), name="print-yearly")
    late = per_year.late()
    late.sink(log_sink("demo.late", key=lambda r: str(r["key"])), name="late")
    late.sink(callback_sink(show_late), name="print-late")
    return flow


def injections(quotes: list[dict[str, Any]]) -> dict[int, list[tuple[bytes, bytes]]]:
    """Records slipped in after some months: ``{month index: [(key, value), ...]}`` -- three
    malformed (each a different error) and three late (real quotes from two years before)."""
    months = sorted({int(str(q["ts"])) for q in quotes})
    by_month: dict[int, list[dict[str, Any]]] = {}
    for q in quotes:
        by_month.setdefault(int(str(q["ts"])), []).append(q)
    enc = msgspec.json.encode

    def now(i: int) -> dict[str, Any]:
        return by_month[months[i]][0]

    out: dict[int, list[tuple[bytes, bytes]]] = {
        6: [(b"AAPL", b'{"symbol": "AAPL", "price": 1')],  # invalid JSON (cut short)
        12: [(b"MSFT", enc({"symbol": "MSFT", "ts": now(12)["ts"], "date": now(12)["date"]}))],
        18: [(b"IBM", enc({**now(18), "symbol": "IBM", "ts": "2001-13-45", "date": "?"}))],
    }
    for i in (40, 70, 100):
        if i < len(months):
            old = by_month[months[i - 24]][-1]
            out.setdefault(i, []).append((str(old["symbol"]).encode(), enc(old)))
    return out


def _prepare(log: Log, data_dir: Path) -> None:
    for topic in (TOPIC, *OUTPUTS):
        if log.has_topic(topic):
            log.delete_topic(topic)
    # a fresh replay: forget the previous run's checkpoints along with its topics
    shutil.rmtree(store_path(data_dir, "demo").parent, ignore_errors=True)
    log.create_topic(TOPIC, partitions=3)


def _producer(
    log: Log, quotes: list[dict[str, Any]], month_ms: float, stop: threading.Event
) -> Callable[[], None]:
    extra = injections(quotes)

    def produce() -> None:
        with log.producer(TOPIC) as producer:
            month, index = None, -1
            for q in quotes:
                if q["ts"] != month:
                    month, index = q["ts"], index + 1
                    for key, value in extra.get(index, ()):
                        producer.append([value], keys=[key])
                    if stop.wait(month_ms / 1000):
                        return
                producer.append(
                    [msgspec.json.encode(q)],
                    keys=[str(q["symbol"]).encode()],
                    timestamps=[int(str(q["ts"]))],
                )

    return produce


def _stop_when_processed(flow: Flow, produced: threading.Event, stop: threading.Event) -> None:
    """Once everything is produced, stop the flow when a snapshot taken after that shows every
    record read (consumer lag 0) -- the flow then drains its windows."""
    produced.wait()
    after = time.time() * 1000
    while not stop.is_set():
        m = flow.metrics()
        if m["running"] and m["time_ms"] > after and m["sources"] and m["consumer_lag"] == 0:
            flow.stop()
            return
        time.sleep(0.05)


def run_demo(
    data_dir: Path,
    *,
    month_ms: float = 150.0,
    threshold: float = 15.0,
    duration: float | None = None,
    dashboard: bool = True,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
) -> RunSummary:
    """Run the demo and return the flow's run summary."""
    quotes = stock_quotes()
    log = Log(data_dir)
    _prepare(log, data_dir)
    printed: list[str] = []
    # a partition silent for ten trading months is idle
    flow = build_flow(data_dir, threshold, printed, idle_timeout_ms=round(10 * month_ms) + 50)
    months = len({q["ts"] for q in quotes})
    _say(f"rheos demo: {len(quotes)} real monthly quotes (AAPL AMZN GOOG IBM MSFT, 2000-2010)")
    _say(f"  log: {data_dir / 'topics' / TOPIC} (3 partitions, keyed by symbol)")
    _say(
        f"  replay: one month every {month_ms:g} ms (about {months * month_ms / 1000:.0f} s), "
        "with 3 malformed and 3 late events slipped in"
    )
    _say(f"  flow: alerts on monthly moves over {threshold:g}%, 365-day windows per symbol")
    server = None
    if dashboard:
        server = FlowServer("demo", flow.metrics, host=host, port=port, data_dir=data_dir).start()
        _say(f"  dashboard: {server.url}  (also /metrics for Prometheus; rheos status demo)")
    _say("  stop with Ctrl-C" + (f"; stops by itself after {duration:g} s" if duration else ""))
    stop, produced = threading.Event(), threading.Event()
    produce = _producer(log, quotes, month_ms, stop)

    def producing() -> None:
        try:
            produce()
        finally:
            produced.set()

    threads = [
        threading.Thread(target=producing, name="demo-producer", daemon=True),
        threading.Thread(
            target=_stop_when_processed, args=(flow, produced, stop), name="demo-end", daemon=True
        ),
    ]
    for t in threads:
        t.start()
    try:
        summary = flow.run(drain=True, timeout=duration)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        if server is not None:
            server.close()
    _report(summary, printed, log)
    log.close()
    return summary


def _brief(message: str) -> str:
    """An error message without the flow/step prefix and folders (the summary names them);
    the rest of it whole."""
    text = re.sub(r"^flow '[^']*', step #\d+ '[^']*' \([^)]*\): ", "", message)
    return re.sub(r" at \S*/([^/\s]+:\d+)", r" at \1", text)


def _report(summary: RunSummary, alerts: list[str], log: Log) -> None:
    why = {
        "stopped": "the data set was replayed",
        "timeout": "--duration",
        "signal": "Ctrl-C",
    }.get(summary.stopped, summary.stopped)
    c = summary.checkpoints
    _say("")
    _say(
        f"done ({why}) in {summary.elapsed_s:.1f} s: {summary.events_in} events in, "
        f"{summary.events_out} results out"
    )
    _say(f"  alerts: {len(alerts)} (topic demo.alerts)")
    _say(f"  late: {summary.late} (topic demo.late)")
    _say(f"  dead letters: {summary.dead} (topic demo.dlq; list them: rheos dlq demo)")
    for letter in read_dead_letters(log, "demo"):
        _say(f"    at {letter.step}: {letter.error_type}: {_brief(letter.message)}")
    _say(
        f"  checkpoints: {c.count} (every {CHECKPOINT_INTERVAL}; last #{c.last_id}, "
        f"{c.last_bytes} bytes; list them: rheos checkpoints demo)"
    )
