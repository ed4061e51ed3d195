"""Real data sets that ship inside packages on PyPI, read without any download.

``stock_quotes()`` reads ``stocks.csv`` from the ``vega_datasets`` package (MIT licence): the
monthly closing prices of five large US stocks (AAPL, AMZN, GOOG, IBM, MSFT) from January
2000 to March 2010, 560 rows. Install it with ``pip install 'rheos[demo]'``.
"""

from __future__ import annotations

import csv
import importlib.resources
from datetime import UTC, datetime

from rheos.errors import ConfigError


def stock_quotes() -> list[dict[str, object]]:
    """Quotes ``{"symbol", "ts" (epoch ms), "date", "price"}`` in time order."""
    try:
        path = importlib.resources.files("vega_datasets") / "_data" / "stocks.csv"
        text = path.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(
            "the demo data set is missing: install it with pip install 'rheos[demo]'"
        ) from exc
    rows = []
    for row in csv.DictReader(text.splitlines()):
        when = datetime.strptime(row["date"], "%b %d %Y").replace(tzinfo=UTC)
        rows.append(
            {
                "symbol": row["symbol"],
                "ts": int(when.timestamp() * 1000),
                "date": when.date().isoformat(),
                "price": float(row["price"]),
            }
        )
    rows.sort(key=lambda r: (r["ts"], r["symbol"]))
    return rows
