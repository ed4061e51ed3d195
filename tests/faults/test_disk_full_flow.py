"""A flow on a data directory whose file system fills up: it stops with an error naming the
topic and the folder, its last checkpoint stays valid, and once there is space again it
resumes to exactly the output of a run that never met a full disk."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from rheos import Flow, Log, log_sink, log_source
from rheos.errors import DiskFullError
from rheos.state import CheckpointStore, store_path

N = 20_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 12 MiB tmpfs (the tests run as root)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def build(data: Path) -> Flow:
    flow = Flow("padded", data_dir=data, checkpoint_interval="50ms")
    (
        flow.source(log_source("in"), timestamp="ts", timestamp_unit="ms")
        .map(lambda e: {**e, "pad": "x" * 200})
        .sink(log_sink("out"))
    )
    return flow


def outputs(data: Path) -> list[int]:
    return [msgspec.json.decode(r.value)["v"] for r in Log(data).reader("out").read()]


def test_a_flow_stops_on_a_full_disk_and_resumes_once_there_is_space(small_disk: Path) -> None:
    data = small_disk / "data"
    log = Log(data)
    with log.producer("in", create_partitions=1) as p:
        p.append([msgspec.json.encode({"k": i % 50, "v": i, "ts": i * 100}) for i in range(N)])
    log.close()
    first = build(data).run(stop_after=2_000)
    assert first.checkpoints.count >= 1
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 7 * 1024 * 1024)
    with pytest.raises(DiskFullError) as info:
        build(data).run(stop_after=N)
    message = str(info.value)
    assert "topic 'out'" in message and str(data / "topics" / "out") in message
    with CheckpointStore(store_path(data, "padded")) as store:
        latest = store.latest()
    assert latest is not None
    assert latest.meta["sources"]["source"]["positions"][0] >= 2_000
    filler.unlink()
    resumed = build(data).run(stop_after=N - latest.meta["sources"]["source"]["positions"][0])
    assert resumed.checkpoints.restored_from == latest.id
    assert outputs(data) == list(range(N))  # committed output: each result exactly once
