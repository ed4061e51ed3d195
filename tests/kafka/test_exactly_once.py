"""kafka_sink exactly once: transactions tied to checkpoints, kill -9 at random moments."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.faults.test_chaos import committed as committed_in_log
from tests.kafka import chaos_app
from tests.kafka.helpers import committed_offset, new_topic, produce, read_committed, values
from tests.waiting import wait_until

import rheos as rh
from rheos.connectors.base import OpenContext
from rheos.errors import KafkaTopicNotFoundError
from rheos.runtime import MODE_ENV
from rheos.state import CheckpointStore, store_path

N = 100_000
BAD = [5_000, 41_234, 77_777]
KILLS = 10
HERE = Path(__file__).parent
T0 = 1_700_000_000_000


def test_a_checkpointed_flow_commits_its_output_once(kafka: str, tmp_path: Path) -> None:
    """Log source -> Kafka sink: the output is committed with the checkpoints, and a second
    run (resuming from the last checkpoint) adds only what is new."""
    out_topic = new_topic(kafka, partitions=2)
    log = rh.Log(tmp_path)
    log.create_topic("in", 1)

    def append(lo: int, hi: int) -> None:
        with log.producer("in") as producer:
            producer.append([msgspec.json.encode({"i": i, "k": i % 5}) for i in range(lo, hi)])

    def run() -> None:
        flow = rh.Flow("tolog", data_dir=tmp_path, checkpoint_interval="100ms")
        flow.source(rh.log_source("in")).sink(
            rh.kafka_sink(out_topic, key="k", bootstrap_servers=kafka)
        )
        flow.run(timeout=1.5)

    append(0, 500)
    run()
    append(500, 800)
    run()
    got = values(read_committed(kafka, out_topic))
    assert sorted(e["i"] for e in got) == list(range(800))


def test_a_bounded_run_produces_without_transactions(kafka: str, tmp_path: Path) -> None:
    source, sink = new_topic(kafka), new_topic(kafka)
    produce(kafka, source, [{"i": i} for i in range(50)])
    flow = rh.Flow("bounded-copy", data_dir=tmp_path)
    flow.source(rh.kafka_source(source, bootstrap_servers=kafka)).map(
        lambda e: {"j": e["i"] * 2}
    ).sink(rh.kafka_sink(sink, bootstrap_servers=kafka))
    flow.run(bounded=True)
    assert [e["j"] for e in values(read_committed(kafka, sink))] == list(range(0, 100, 2))


def writer(kafka: str, topic: str, data_dir: Path) -> Any:
    ctx = OpenContext("window", str(data_dir), transactional=True)
    return rh.kafka_sink(topic, bootstrap_servers=kafka).open(ctx)


def test_a_crash_between_the_checkpoint_and_the_kafka_commit_loses_nothing(
    kafka: str, tmp_path: Path
) -> None:
    """The checkpoint is stored, the process dies before committing the Kafka transaction:
    the next writer (fencing the first) finds the marker behind and commits the checkpoint's
    records from the checkpoint, once; recovering again changes nothing."""
    topic = new_topic(kafka)
    first = writer(kafka, topic, tmp_path)
    first.recover(None, None)
    for i in range(3):
        first.write({"i": i}, T0 + i)
    first.commit(first.prepare(1) and 1)
    for i in range(3, 7):
        first.write({"i": i}, T0 + i)
    prepared = first.prepare(2)  # stored in checkpoint 2; the commit never happens
    assert [e["i"] for e in values(read_committed(kafka, topic))] == [0, 1, 2]

    second = writer(kafka, topic, tmp_path)  # fences the first
    second.recover(2, msgspec.msgpack.decode(msgspec.msgpack.encode(prepared)))
    assert [e["i"] for e in values(read_committed(kafka, topic))] == list(range(7))
    second.close()
    third = writer(kafka, topic, tmp_path)
    third.recover(2, prepared)
    third.close()
    assert [e["i"] for e in values(read_committed(kafka, topic))] == list(range(7))


def test_records_written_while_a_checkpoint_commits_wait_for_the_next(
    kafka: str, tmp_path: Path
) -> None:
    """A periodic checkpoint commits beside the flow, which writes on: what it writes between
    the checkpoint's prepare and commit is not in that checkpoint's transaction (a crash
    after the commit would replay it from the checkpoint's source positions), but in the
    next one, and in the next one's stored records."""
    topic = new_topic(kafka)
    out = writer(kafka, topic, tmp_path)
    out.recover(None, None)
    out.write({"i": 0}, T0)
    first = out.prepare(1)
    out.write({"i": 1}, T0 + 1)  # the flow goes on while checkpoint 1 commits
    out.commit(1)
    assert [e["i"] for e in values(read_committed(kafka, topic))] == [0]
    assert [msgspec.json.decode(row[1])["i"] for row in first["rows"]] == [0]
    out.write({"i": 2}, T0 + 2)
    second = out.prepare(2)
    assert [msgspec.json.decode(row[1])["i"] for row in second["rows"]] == [1, 2]
    out.commit(2)
    out.close()
    assert [e["i"] for e in values(read_committed(kafka, topic))] == [0, 1, 2]


def test_a_missing_sink_topic_is_an_error_unless_created(kafka: str, tmp_path: Path) -> None:
    name = f"created-{os.getpid()}-{random.randrange(10**9)}"
    ctx = OpenContext("missing", str(tmp_path))
    with pytest.raises(KafkaTopicNotFoundError, match=f"no topic {name!r}"):
        rh.kafka_sink(name, bootstrap_servers=kafka).open(ctx)
    out = rh.kafka_sink(name, bootstrap_servers=kafka, create=True, partitions=3).open(ctx)
    out.write({"a": 1}, T0)
    out.close()
    assert sum(map(len, read_committed(kafka, name).values())) == 1
    assert len(read_committed(kafka, name)) == 3


# -- kill -9 ---------------------------------------------------------------------------------


def write_events(kafka: str, topic: str, n: int, seed: int = 11) -> None:
    rnd = random.Random(seed)
    sent: list[Any] = []
    for i in range(n):
        if i in BAD:
            sent.append(b"{broken")
            continue
        ts = T0 + i * 5 - (rnd.randint(0, 1500) if rnd.random() < 0.1 else 0)
        sent.append({"i": i, "key": f"k{rnd.randrange(300)}", "ts": ts, "v": rnd.randint(-9, 99)})
    produce(kafka, topic, sent)


def progress(data_dir: Path) -> tuple[int, int]:
    """The latest checkpoint's id and its source position (0, 0 with none)."""
    path = store_path(data_dir, "kchaos")
    if not path.exists():
        return 0, 0
    with CheckpointStore(path) as store:
        latest = store.latest()
    if latest is None:
        return 0, 0
    return latest.id, int(latest.meta["sources"]["source"]["positions"][0])


def start(
    data_dir: Path, kafka: str, prefix: str, pause: Path, log: Path, mode: str = "stream-first"
) -> Any:
    env = {
        **os.environ,
        MODE_ENV: mode,
        "RHEOS_TEST_CHECKPOINT_PAUSE": str(pause),
        "RHEOS_TEST_CHECKPOINT_PAUSE_S": "0.05",
        "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent / "src"), str(HERE.parent.parent)]),
    }
    with log.open("ab") as errors:
        return subprocess.Popen(
            [sys.executable, str(HERE / "chaos_app.py"), str(data_dir), kafka, prefix],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )


def chaos_run(data_dir: Path, kafka: str, prefix: str, kills: int, seed: int) -> int:
    """Run the app, SIGKILL it ``kills`` times (some inside a checkpoint, between its
    store's commit and the Kafka commit), then let it finish and stop it; return how many
    kills landed inside a checkpoint. Runs alternate between stream-first and micro-batch."""
    rnd = random.Random(seed)
    data_dir.mkdir(exist_ok=True)
    pause = data_dir / "in-checkpoint"
    errors = data_dir / "stderr.txt"
    inside = 0
    positions: list[int] = []
    for k in range(kills):
        pause.unlink(missing_ok=True)
        last = progress(data_dir)
        # the runs alternate between the two runtime modes: both under kill -9, and a flow
        # resuming from the other mode's checkpoints (docs/concepts/modes.md)
        mode = "micro-batch" if k % 2 else "stream-first"
        proc = start(data_dir, kafka, prefix, pause, errors, mode)
        # once this process has restored and checkpointed progress of its own:
        wait_until(
            lambda p=proc, seen=last: (
                (
                    progress(data_dir)[0] > seen[0]
                    and (progress(data_dir)[1] > seen[1] or seen[1] >= N)
                )
                or p.poll() is not None
            )
        )
        if k % 3 == 1:  # inside a checkpoint: its store transaction, or before the Kafka commit
            pause.unlink(missing_ok=True)
            wait_until(lambda p=proc: pause.exists() or p.poll() is not None)
            inside += 1
        else:
            time.sleep(rnd.uniform(0.0, 0.4))
        assert proc.poll() is None, errors.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        positions.append(progress(data_dir)[1])
    before = progress(data_dir)[0]
    proc = start(data_dir, kafka, prefix, pause, errors)
    try:
        wait_until(
            lambda: (
                (progress(data_dir)[0] > before and progress(data_dir)[1] >= N)
                or proc.poll() is not None
            ),
            limit=120,
        )
        assert proc.poll() is None, errors.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, errors.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    mid_stream = [p for p in positions if 0 < p < N]
    assert len(mid_stream) >= kills // 2, positions
    return inside


def dead_letters(data_dir: Path) -> list[int]:
    log = rh.Log(data_dir)
    if not log.has_topic("kchaos.dlq"):
        return []
    with log.reader("kchaos.dlq") as reader:
        return sorted(int(dict(r.headers)["rheos-source-offset"]) for r in reader.read())


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_doubles_nothing(kafka: str, tmp_path: Path) -> None:
    """Kafka -> window -> Kafka, killed 10 times (3 of them inside a checkpoint): what a
    read_committed consumer sees is exactly what an uninterrupted run commits, each bad
    record is dead-lettered once, and the source's group has committed the whole topic. The
    running aggregate also goes to a log sink: committed there exactly once too."""
    runs = {}
    for name in ("reference", "chaos"):
        prefix = f"{name}-{random.randrange(10**9)}"
        for suffix, partitions in (("events", 1), ("windows", 2), ("running", 2), ("dlq", 1)):
            new_topic(kafka, partitions, name=f"{prefix}.{suffix}")
        write_events(kafka, f"{prefix}.events", N)
        runs[name] = prefix
    summary = chaos_app.build(str(tmp_path / "reference"), kafka, runs["reference"]).run(
        stop_after=N - len(BAD)
    )
    assert summary.events_in == N - len(BAD) and summary.checkpoints.count >= 1
    expected = {
        t: read_committed(kafka, f"{runs['reference']}.{t}") for t in ("windows", "running")
    }
    assert sum(map(len, expected["running"].values())) == N - len(BAD)

    chaos = tmp_path / "chaos"
    inside = chaos_run(chaos, kafka, runs["chaos"], KILLS, seed=5)
    assert inside >= 3
    for topic in ("windows", "running"):
        assert read_committed(kafka, f"{runs['chaos']}.{topic}") == expected[topic], topic
    in_log = committed_in_log(tmp_path / "reference", "running")
    assert sum(map(len, in_log.values())) == N - len(BAD)
    assert committed_in_log(chaos, "running") == in_log
    assert dead_letters(chaos) == BAD
    # the flow's dead_letter_sink: each letter in Kafka once, with the checkpoints
    for name in runs.values():
        copies = values(read_committed(kafka, f"{name}.dlq"))
        assert sorted(c["source_offset"] for c in copies) == BAD, name
    assert committed_offset(kafka, runs["chaos"], f"{runs['chaos']}.events") == N
