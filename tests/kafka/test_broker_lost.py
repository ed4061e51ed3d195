"""A broker lost while a flow runs: retried, then a clear error naming the servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.kafka.conftest import SCRIPT
from tests.kafka.helpers import new_topic, produce, read_committed, values
from tests.waiting import wait_until

import rheos as rh
from rheos.errors import BrokerUnreachableError, KafkaError


@pytest.fixture
def own_broker(kafka: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A broker of this test's own (the session's goes on serving the others)."""
    folder = tmp_path / "broker"
    started = subprocess.run(
        [sys.executable, str(SCRIPT), "start", str(folder), "--quick"],
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stderr
    try:
        yield started.stdout.strip(), folder
    finally:
        subprocess.run([sys.executable, str(SCRIPT), "stop", str(folder)], check=True)


def test_a_lost_broker_fails_the_run_after_lost_timeout(
    own_broker: tuple[str, Path], tmp_path: Path
) -> None:
    servers, folder = own_broker
    pid = int(json.loads((folder / "broker.json").read_text())["pid"])
    topic = new_topic(servers)
    produce(servers, topic, [{"i": i} for i in range(10)])
    out: list[dict[str, Any]] = []
    flow = rh.Flow("lost", data_dir=tmp_path / "data", checkpoint_interval="100ms")
    source = rh.kafka_source(topic, bootstrap_servers=servers, lost_timeout="2s")
    flow.source(source).sink(rh.list_sink(out))

    def kill_the_broker() -> None:
        wait_until(lambda: len(out) == 10, "the events before the loss", limit=60)
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_broker)
    killer.start()
    try:
        with pytest.raises(BrokerUnreachableError, match=f"lost the Kafka brokers at {servers}"):
            flow.run(timeout=120)
    finally:
        killer.join(60)
    assert [e["i"] for e in out] == list(range(10))


def test_lost_brokers_are_not_idle_partitions(own_broker: tuple[str, Path], tmp_path: Path) -> None:
    """With an idle_timeout, a partition silent that long stops holding the watermark back
    and the watermark follows the clock -- but not while the brokers are lost: the data may
    be there, unreadable (and producers buffer what they send meanwhile). The window stays
    open through the outage until lost_timeout fails the run; it is not closed early."""
    servers, folder = own_broker
    pid = int(json.loads((folder / "broker.json").read_text())["pid"])
    topic = new_topic(servers)
    produce(servers, topic, [{"k": "a", "ts": i} for i in range(10)])
    seen: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    flow = rh.Flow("stalled", data_dir=tmp_path / "data", checkpoint_interval=None)
    (
        flow.source(
            rh.kafka_source(topic, bootstrap_servers=servers, lost_timeout="12s"),
            timestamp="ts",
            timestamp_unit="ms",
            idle_timeout="1s",
        )
        .inspect(seen.append)
        .key_by("k")
        .window(rh.tumbling("10s"))  # closes 10 s after the last event if the clock leads
        .aggregate(n=rh.count())
        .sink(rh.list_sink(out))
    )

    def kill_the_broker() -> None:
        wait_until(lambda: len(seen) == 10, "the events before the loss", limit=60)
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_broker)
    killer.start()
    try:
        with pytest.raises(BrokerUnreachableError):
            flow.run(timeout=120)
    finally:
        killer.join(60)
    assert len(seen) == 10
    assert out == []  # the window [0, 10 s) was still open when the run failed


def windows_of(events: list[dict[str, Any]]) -> list[tuple[str, int, int, int]]:
    """The 10 s tumbling windows of ``events`` per key: (key, start, count, sum)."""
    out: dict[tuple[str, int], list[int]] = {}
    for e in events:
        acc = out.setdefault((e["k"], e["ts"] - e["ts"] % 10_000), [0, 0])
        acc[0] += 1
        acc[1] += e["v"]
    return sorted((k, start, n, total) for (k, start), (n, total) in out.items())


def test_a_broker_restarted_mid_run_loses_and_doubles_nothing(
    own_broker: tuple[str, Path], tmp_path: Path
) -> None:
    """A Kafka -> window -> Kafka flow through a broker killed with SIGKILL and restarted on
    its data: the run goes on, or stops with a clear error when the Kafka client cannot
    finish a commit (librdkafka can block past its timeouts when a coordinator went away)
    and is run again, as a supervisor would; the read_committed output holds every window
    exactly once."""
    servers, folder = own_broker
    events = [{"k": f"k{i % 7}", "ts": 1_000 * i, "v": i % 13} for i in range(600)]
    source_topic, out_topic = new_topic(servers), new_topic(servers)
    produce(servers, source_topic, events[:300])
    flow = rh.Flow("restart", data_dir=tmp_path / "data", checkpoint_interval="200ms")
    (
        flow.source(
            rh.kafka_source(source_topic, bootstrap_servers=servers, group="restart"),
            timestamp="ts",
            timestamp_unit="ms",
            idle_timeout=None,  # the outage is no reason to close windows
        )
        .key_by("k")
        .window(rh.tumbling("10s"))
        .aggregate(n=rh.count(), total=rh.sum("v"))
        .sink(rh.kafka_sink(out_topic, key="key", bootstrap_servers=servers, commit_timeout="5s"))
    )
    done = threading.Event()
    errors: list[KafkaError] = []
    failures: list[BaseException] = []

    def run() -> None:
        while not done.is_set():
            try:
                flow.run(drain=True, timeout=240)
                return
            except KafkaError as exc:  # a clear error: run it again
                errors.append(exc)
            except BaseException as exc:  # reported by the test below
                failures.append(exc)
                return

    def results() -> list[tuple[str, int, int, int]]:
        return sorted(
            (r["key"], r["window_start"], r["n"], r["total"])
            for r in values(read_committed(servers, out_topic))
        )

    runner = threading.Thread(target=run)
    runner.start()
    try:
        wait_until(lambda: len(results()) >= 100 or failures, "output before the kill", 120)
        pid = int(json.loads((folder / "broker.json").read_text())["pid"])
        os.kill(pid, signal.SIGKILL)
        restarted = subprocess.run(
            [sys.executable, str(SCRIPT), "restart", str(folder), "--quick"],
            capture_output=True,
            text=True,
        )
        assert restarted.returncode == 0, restarted.stderr
        produce(servers, source_topic, events[300:])
        closed = [w for w in windows_of(events) if w[1] + 10_000 <= events[-1]["ts"]]
        # (the last window closes when the run is stopped: drain=True)
        wait_until(lambda: len(results()) >= len(closed) or failures, "the output", 180)
    finally:
        done.set()
        for _ in range(120):  # a stop may land while a run is starting again
            flow.stop()
            runner.join(1)
            if not runner.is_alive():
                break
    assert not failures, failures
    for exc in errors:
        assert servers in str(exc) and "run it again" in str(exc), exc
    assert results() == windows_of(events)
