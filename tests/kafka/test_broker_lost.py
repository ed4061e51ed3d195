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
from tests.kafka.helpers import new_topic, produce
from tests.waiting import wait_until

import rheos as rh
from rheos.errors import BrokerUnreachableError


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
