"""A real Apache Kafka broker for the Kafka tests, started once per test session.

``scripts/kafka`` fetches the broker (Maven, once), formats a KRaft node in a temporary folder
and starts it on free ports; the session's end stops it by its pid. Where Java, Maven or
confluent-kafka is missing the Kafka tests are skipped with a message saying so -- except
when ``CI`` or ``RHEOS_REQUIRE_KAFKA`` is set, where that is a failure. ``RHEOS_KAFKA`` names
the bootstrap servers of a broker already running (then none is started).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "kafka"


def _required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("RHEOS_REQUIRE_KAFKA"))


def _unavailable(why: str) -> None:
    if _required():
        pytest.fail(f"the Kafka tests need a broker (CI / RHEOS_REQUIRE_KAFKA is set): {why}")
    pytest.skip(f"Kafka tests skipped: {why}")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap servers of a running broker."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        _unavailable("confluent-kafka is not installed (pip install 'rheos[kafka]')")
    given = os.environ.get("RHEOS_KAFKA")
    if given:
        yield given
        return
    if shutil.which("java") is None:
        _unavailable("Java is not installed")
    if not any((ROOT / ".kafka" / "lib").glob("kafka_2.13-*.jar")):
        if shutil.which("mvn") is None:
            _unavailable("the broker's jars are not fetched and Maven is not installed")
        subprocess.run([sys.executable, str(SCRIPT), "fetch"], check=True)
    folder = tmp_path_factory.mktemp("kafka-broker")
    started = subprocess.run(
        [sys.executable, str(SCRIPT), "start", str(folder), "--quick"],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        pytest.fail(f"the Kafka broker did not start: {started.stderr.strip()}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([sys.executable, str(SCRIPT), "stop", str(folder)], check=True)
