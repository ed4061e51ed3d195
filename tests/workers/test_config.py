"""What cannot run across workers is refused before any worker starts, saying why."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.workers import app
from tests.workers.helpers import APP, ROOT, RUN, committed, write_events

import rheos as rh
from rheos.errors import ConfigError


def flow_over(data_dir: Path, *topics: str, sink: str = "out") -> rh.Flow:
    flow = rh.Flow("cfg", data_dir=str(data_dir))
    streams = [flow.source(rh.log_source(t), timestamp="ts", timestamp_unit="ms") for t in topics]
    first = streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]
    first.sink(rh.log_sink(sink))
    return flow


def test_sources_with_different_partition_counts(tmp_path: Path) -> None:
    log = rh.Log(tmp_path)
    log.create_topic("a", 4)
    log.create_topic("b", 3)
    with pytest.raises(ConfigError, match=r"'a': 4, 'b': 3"):
        flow_over(tmp_path, "a", "b").run(workers=2)


def test_a_source_that_is_not_a_log_topic(tmp_path: Path) -> None:
    flow = rh.Flow("cfg", data_dir=str(tmp_path))
    flow.source(rh.iterable_source([1, 2, 3])).sink(rh.list_sink([]))
    with pytest.raises(ConfigError, match="only log and Kafka sources can be split across workers"):
        flow.run(workers=2)


def test_a_source_reading_chosen_partitions(tmp_path: Path) -> None:
    rh.Log(tmp_path).create_topic("a", 2)
    flow = rh.Flow("cfg", data_dir=str(tmp_path))
    flow.source(rh.log_source("a", partitions=[0])).sink(rh.log_sink("out"))
    with pytest.raises(ConfigError, match=r"partitions=\[0\]\) cannot be split"):
        flow.run(workers=2)


def test_a_sink_topic_with_fewer_partitions_than_tasks(tmp_path: Path) -> None:
    log = rh.Log(tmp_path)
    log.create_topic("a", 4)
    log.create_topic("out", 2)
    with pytest.raises(ConfigError, match=r"topic 'out', which has 2"):
        flow_over(tmp_path, "a").run(workers=2)


def test_the_topics_tasks_write_get_a_partition_per_task(tmp_path: Path) -> None:
    rh.Log(tmp_path).create_topic("a", 3)
    flow_over(tmp_path, "a", sink="fresh").run(workers=1, bounded=True)
    log = rh.Log(tmp_path)
    assert [log.partitions(t) for t in ("fresh", "cfg.dlq", "cfg.late")] == [3, 3, 3]


def test_stop_after_and_bad_worker_counts(tmp_path: Path) -> None:
    rh.Log(tmp_path).create_topic("a", 2)
    with pytest.raises(ConfigError, match="stop_after cannot be used with workers"):
        flow_over(tmp_path, "a").run(workers=2, stop_after=10)
    with pytest.raises(ConfigError, match="workers must be at least 1"):
        flow_over(tmp_path, "a").run(workers=0)


def test_a_flow_with_single_process_checkpoints(tmp_path: Path) -> None:
    rh.Log(tmp_path).create_topic("a", 2)
    flow = flow_over(tmp_path, "a")
    flow.run(timeout=0.2)  # checkpoints in flows/cfg/
    with pytest.raises(ConfigError, match="checkpoints of a single-process run"):
        flow.run(workers=2)
    flow.reset()
    rh.Log(tmp_path).delete_topic("out")
    flow.run(workers=1, timeout=1.5)  # now split into tasks, in this process
    assert (tmp_path / "flows" / "cfg" / "tasks" / "1" / "checkpoints.sqlite").exists()
    summary = flow.run(timeout=1.5)  # a flow whose state lives per task goes on that way
    assert summary.mode == "streaming"
    assert not (tmp_path / "flows" / "cfg" / "checkpoints.sqlite").exists()


@pytest.mark.parametrize("mode", ["stream-first", "micro-batch"])
def test_bounded_across_workers_adds_up(tmp_path: Path, mode: str) -> None:
    bad = write_events(tmp_path / "one", 3000)
    app.stateless(str(tmp_path / "one")).run(bounded=True)
    write_events(tmp_path / "two", 3000)
    done = subprocess.run(
        [
            *RUN,
            str(APP),
            "--bounded",
            "--workers",
            "2",
            "--mode",
            mode,
            "--data-dir",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    )
    assert done.returncode == 0, done.stderr
    assert "(bounded, exhausted): 3000 in" in done.stdout
    assert f"dead-lettered at map: {bad} " in done.stdout
    assert committed(tmp_path / "two", "out") == committed(tmp_path / "one", "out")
