"""Fixtures of the transport tests: a fresh data directory per test, and helpers to look at
and damage the files of a partition."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rheos.transport import Log
from rheos.transport.segment import list_segments, segment_path

HERE = Path(__file__).parent


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def log(data_dir: Path) -> Iterator[Log]:
    log = Log(data_dir)
    yield log
    log.close()


def partition_dir(log: Log, topic: str, partition: int = 0) -> Path:
    return log.topic_dir(topic) / str(partition)


def segment_files(log: Log, topic: str, partition: int = 0) -> list[Path]:
    folder = partition_dir(log, topic, partition)
    return [segment_path(folder, base) for base in list_segments(folder)]


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (the same venv); fail the test if it times out."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
