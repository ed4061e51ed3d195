"""The live dashboard in a real headless browser (Debian's Chromium driven by Playwright).

A flow runs in a thread over a log topic fed by this test; the page is loaded from the flow's
server and must show the numbers of the metrics API, and show them move when more events
arrive -- without reloading. ``RHEOS_SCREENSHOT=path.png`` saves a screenshot of the page.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.waiting import wait_until

import rheos as rh
from rheos.operations.dashboard import serve_flow, server_file

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
T0 = 1_714_564_800_000
WAIT_S = 30.0


def produce(log: rh.Log, start: int, n: int, *, extra: list[bytes] = ()) -> None:  # type: ignore[assignment]
    values = [
        json.dumps({"symbol": f"S{i % 4}", "price": 100 + i % 7, "ts": T0 + i * 100}).encode()
        for i in range(start, start + n)
    ]
    with log.producer("quotes") as producer:
        producer.append([*values, *extra])


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[rh.Flow, Any, rh.Log]]:
    data = tmp_path / "data"
    log = rh.Log(data)
    log.create_topic("quotes", partitions=1)
    flow = rh.Flow("dash", data_dir=data, checkpoint_interval="200ms")
    quotes = flow.source(rh.log_source("quotes"), timestamp="ts", timestamp_unit="ms")
    per_second = (
        quotes.key_by("symbol")
        .window(rh.tumbling("1s"))
        .aggregate(n=rh.count(), hi=rh.max("price"))
    )
    per_second.sink(rh.log_sink("dash.out"))
    thread = threading.Thread(target=flow.run, name="dash-flow")
    thread.start()
    server = serve_flow(flow, port=0)
    try:
        yield flow, server, log
    finally:
        flow.stop()
        thread.join(WAIT_S)
        server.close()
        log.close()
    assert not thread.is_alive()
    assert not server_file(data, "dash").exists()  # removed when the server closed


def api(server: Any) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + "api/metrics", timeout=5) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def shown(page: Any, name: str) -> int:
    return int(page.locator(f'[data-metric="{name}"]').inner_text().replace(",", ""))


def test_dashboard_shows_live_numbers_that_match_the_metrics_api(
    running: tuple[rh.Flow, Any, rh.Log],
) -> None:
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    flow, server, log = running
    produce(log, 0, 400, extra=[b'{"symbol": "S1", "price": '])
    wait_until(lambda: flow.metrics()["events_in"] == 400, "the first 400 events", limit=WAIT_S)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server.url + "?interval=200")
            page.wait_for_function(
                "() => document.querySelector('[data-metric=events_in]').textContent === '400'",
                timeout=WAIT_S * 1000,
            )
            first = {
                name: shown(page, name)
                for name in ("events_in", "events_out", "dead_lettered", "late")
            }
            polls = int(page.evaluate("window.rheos.polls"))
            m = api(server)
            assert (
                first
                == {name: m[name] for name in first}
                == {
                    "events_in": 400,
                    "events_out": m["events_out"],
                    "dead_lettered": 1,
                    "late": 0,
                }
            )
            assert m["events_out"] == flow.metrics()["events_out"] > 0  # windows closed
            assert page.locator("#graph [data-step]").count() == len(flow.steps)
            assert "EventError" in page.locator("#dead-letters").inner_text()

            # more events, one of them late (its window closed long ago): the page follows
            late = json.dumps({"symbol": "S0", "price": 1, "ts": T0}).encode()
            produce(log, 400, 300, extra=[late])
            page.wait_for_function(
                "() => document.querySelector('[data-metric=events_in]').textContent === '701'",
                timeout=WAIT_S * 1000,
            )
            page.wait_for_function(
                "() => document.querySelector('[data-metric=late]').textContent === '1'",
                timeout=WAIT_S * 1000,
            )
            assert int(page.evaluate("window.rheos.polls")) > polls  # updated in place
            second = {name: shown(page, name) for name in first}
            m = api(server)
            assert second == {name: m[name] for name in first}
            assert second["events_out"] > first["events_out"]
            page.wait_for_function(
                "() => document.querySelectorAll('#checkpoints tbody tr').length > 0",
                timeout=WAIT_S * 1000,
            )
            shot = os.environ.get("RHEOS_SCREENSHOT")
            if shot:
                page.screenshot(path=shot, full_page=True)
        finally:
            browser.close()
