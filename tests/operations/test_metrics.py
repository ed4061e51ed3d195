"""Flow metrics three ways: the Python API, Prometheus text at /metrics, ``rheos status``."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.waiting import wait_until

import rheos as rh
from rheos.operations.cli import main
from rheos.operations.dashboard import serve_flow, server_file
from rheos.runtime.metrics import snapshot_path

T0 = 1_714_564_800_000


def quotes_flow(data: Path, **kwargs: Any) -> rh.Flow:
    flow = rh.Flow("quotes-live", data_dir=data, checkpoint_interval="100ms", **kwargs)
    quotes = flow.source(rh.log_source("quotes"), timestamp="ts", timestamp_unit="ms")
    windows = quotes.key_by("symbol").window(rh.tumbling("1s")).aggregate(n=rh.count())
    windows.sink(rh.log_sink("quotes.out"))
    return flow


def append(log: rh.Log, start: int, n: int, extra: tuple[bytes, ...] = ()) -> None:
    values = [
        json.dumps({"symbol": f"S{i % 3}", "ts": T0 + i * 50}).encode()
        for i in range(start, start + n)
    ]
    with log.producer("quotes") as producer:
        producer.append([*values, *extra])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[rh.Flow, Any, rh.Log, Path]]:
    data = tmp_path / "data"
    log = rh.Log(data)
    log.create_topic("quotes", partitions=1)
    flow = quotes_flow(data)
    thread = threading.Thread(target=flow.run)
    thread.start()
    server = serve_flow(flow, port=0)
    try:
        yield flow, server, log, data
    finally:
        flow.stop()
        thread.join(30)
        server.close()
        log.close()


def test_metrics_of_a_finished_run_and_before_any() -> None:
    flow = rh.Flow("finite")
    events = [{"k": "a", "t": 1_000}, {"k": "a", "t": 61_000}, {"k": "a", "t": 2_000}, {"t": 3}]
    out: list[Any] = []
    (
        flow.source(rh.iterable_source(events), timestamp="t", timestamp_unit="ms")
        .key_by("k")
        .window(rh.tumbling("1m"))
        .aggregate(n=rh.count())
        .sink(rh.list_sink(out))
    )
    before = flow.metrics()
    assert (before["running"], before["events_in"], before["late"]) == (False, 0, 0)
    assert [s["name"] for s in before["graph"]["steps"]] == [s.name for s in flow.steps]
    flow.run()
    m = flow.metrics()
    assert m["running"] is False and m["stopped"] == "exhausted"
    # the event without a key is read (and out of order) before it is dead-lettered
    assert (m["events_in"], m["events_out"], m["late"], m["out_of_order"]) == (4, 2, 1, 2)
    assert m["dead_letters_by_type"] == {"EventError": 1}
    assert m["dead_lettered"] == 1 and m["recent_dead_letters"][0]["step"] == "key_by"
    assert m["steps"][0]["kind"] == "window" and m["steps"][0]["late"] == 1
    assert [(s["name"], s["events"]) for s in m["sinks"]] == [("sink", 2)]
    json.dumps(m)  # plain data


def test_metrics_off_still_reports_the_summary() -> None:
    flow = rh.Flow("quiet", metrics=False)
    flow.source(rh.iterable_source(range(5))).sink(rh.list_sink([]))
    flow.run()
    m = flow.metrics()
    assert (m["events_in"], m["events_out"], m["running"]) == (5, 5, False)


def test_live_metrics_api_and_prometheus_text(live: tuple[rh.Flow, Any, rh.Log, Path]) -> None:
    flow, server, log, _ = live
    append(log, 0, 200, extra=(b"not json",))
    wait_until(lambda: flow.metrics()["events_in"] == 200, "200 events in", limit=30)
    wait_until(lambda: flow.metrics()["checkpoints"]["count"] > 0, "a checkpoint", limit=30)
    m = flow.metrics()
    assert m["running"] is True and m["mode"] == "streaming"
    assert m["events_out"] > 0 and m["latency_ms"]["count"] > 0
    assert m["latency_ms"]["p50"] is not None and m["latency_ms"]["p50"] >= 0
    assert m["watermark_ms"] is not None and m["watermark_lag_ms"] > 0
    [source] = m["sources"]
    assert source["topic"] == "quotes"
    assert source["partitions"] == [{"partition": 0, "position": 201, "end": 201, "lag": 0}]
    assert m["dead_letters_by_type"] == {"EventError": 1}
    assert m["checkpoints"]["history"][-1]["id"] == m["checkpoints"]["last_id"]

    with urllib.request.urlopen(server.url + "metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert all(name.startswith("rheos_") for name in families)

    def value(family: str, sample: str, **labels: str) -> float:
        for s in families[family].samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
        raise AssertionError(f"no {sample} {labels}")

    assert value("rheos_events_in", "rheos_events_in_total", source="source") == 200
    assert value("rheos_dead_lettered", "rheos_dead_lettered_total", error_type="EventError") == 1
    assert value("rheos_consumer_lag_records", "rheos_consumer_lag_records", partition="0") == 0
    assert value("rheos_up", "rheos_up", flow="quotes-live") == 1
    assert value("rheos_checkpoints", "rheos_checkpoints_total") >= 1
    count = value("rheos_end_to_end_latency_seconds", "rheos_end_to_end_latency_seconds_count")
    assert count >= 1
    assert families["rheos_end_to_end_latency_seconds"].type == "histogram"


def test_status_live_then_from_disk(
    live: tuple[rh.Flow, Any, rh.Log, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    flow, server, log, data = live
    append(log, 0, 50)
    wait_until(lambda: flow.metrics()["events_in"] == 50, "50 events in", limit=30)
    assert json.loads(server_file(data, "quotes-live").read_text())["url"] == server.url

    assert main(["--data-dir", str(data), "status", "quotes-live", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["source"], status["url"]) == ("live", server.url)
    assert status["metrics"]["events_in"] == 50

    assert main(["--data-dir", str(data), "status", "quotes-live"]) == 0
    out = capsys.readouterr().out
    assert "running (live from" in out and "events in" in out

    flow.stop()
    wait_until(lambda: not flow.metrics()["running"], "the run to end", limit=30)
    server.close()
    assert not server_file(data, "quotes-live").exists()
    assert snapshot_path(data, "quotes-live").exists()
    assert main(["--data-dir", str(data), "status", "quotes-live", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["source"] == "last run" and status["metrics"]["events_in"] == 50
    assert status["checkpoint"]["kind"] == "stop"

    assert main(["--data-dir", str(data), "status"]) == 0
    out = capsys.readouterr().out
    assert "quotes-live" in out and "stopped" in out

    assert main(["--data-dir", str(data), "status", "nope"]) == 2
    assert "nothing known" in capsys.readouterr().err


def test_run_with_dashboard_serves_while_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        "import rheos as rh\n"
        "flow = rh.Flow('numbers')\n"
        "flow.source(rh.iterable_source(range(10))).map(lambda x: x + 1).sink(rh.list_sink([]))\n"
    )
    data = tmp_path / "data"
    code = main(["--data-dir", str(data), "run", str(app), "--dashboard", "--port", "0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "dashboard of flow 'numbers' at http://127.0.0.1:" in out
    assert "10 in, 10 out" in out
    assert not server_file(data, "numbers").exists()
