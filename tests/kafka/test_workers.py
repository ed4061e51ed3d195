"""A flow over Kafka split across workers: task ``p`` reads partition ``p`` of every source
topic and has its own transactional producer per Kafka sink; kill -9 of workers at random
moments, in both runtime modes, commits exactly what one uninterrupted run commits."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition
from tests.kafka import workers_app
from tests.kafka.helpers import committed_offset, new_topic, produce, read_committed
from tests.waiting import wait_until
from tests.workers.helpers import kill, tasks_read_to

import rheos as rh
from rheos.errors import ConfigError, KafkaTopicNotFoundError
from rheos.runtime import MODE_ENV
from rheos.runtime.deadletters import read_dead_letters
from rheos.runtime.workers.membership import read_events, worker_statuses
from rheos.state import CheckpointStore, store_path

ROOT = Path(__file__).resolve().parent.parent.parent
APP = Path(__file__).parent / "workers_app.py"
RUN = (sys.executable, "-m", "rheos", "run")
T0 = 1_700_000_000_000
N = 9_000


def write_events(kafka: str, prefix: str, n: int, *, partitions: int = 6, seed: int = 3) -> int:
    """``n`` events keyed by user in a new topic ``<prefix>.events`` (and a new topic
    ``<prefix>.out`` of 3 partitions); returns how many are bad."""
    new_topic(kafka, partitions, name=f"{prefix}.events")
    new_topic(kafka, 3, name=f"{prefix}.out")
    rnd = random.Random(seed)
    events: list[Any] = []
    keys = []
    bad = 0
    for i in range(n):
        user = f"u{rnd.randrange(300)}"
        event: dict[str, Any] = {
            "i": i,
            "user": user,
            "ts": T0 + i * 10,
            "d": rnd.randint(1, 9),
            "profile": {"name": f"user {user}", "tags": ["a", "b"], "score": rnd.random()},
        }
        if i % 97 == 13:
            event["d"] = 0
            bad += 1
        elif i % 89 == 5:
            del event["d"]
            bad += 1
        events.append(event)
        keys.append(user)
    produce(kafka, f"{prefix}.events", events, keys=keys)
    return bad


def output(kafka: str, prefix: str) -> Counter[tuple[int, bytes | None, bytes]]:
    """The read_committed records of ``<prefix>.out``: (partition, key, value), a multiset."""
    return Counter(
        (p, key, value)
        for p, records in read_committed(kafka, f"{prefix}.out").items()
        for key, value in records
    )


def dead_letters(data_dir: Path, flow: str = workers_app.FLOW) -> Counter[tuple[Any, ...]]:
    """The committed dead letters: source topic, partition and offset, step, value."""
    log = rh.Log(data_dir)
    try:
        return Counter(
            (d.source_topic, d.source_partition, d.source_offset, d.step, d.value)
            for d in read_dead_letters(log, flow)
        )
    finally:
        log.close()


def late(data_dir: Path, flow: str = workers_app.FLOW) -> int:
    """How many late events the flow has committed to ``<flow>.late``."""
    log = rh.Log(data_dir)
    try:
        if not log.has_topic(f"{flow}.late"):
            return 0
        with log.reader(f"{flow}.late") as reader:
            return sum(1 for _ in reader.read())
    finally:
        log.close()


def ends(kafka: str, topic: str) -> dict[int, int]:
    """The end offset of each partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": "ends"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts
        }
    finally:
        consumer.close()


# -- configuration ---------------------------------------------------------------------------


def test_kafka_topics_with_different_partition_counts_are_refused(
    kafka: str, tmp_path: Path
) -> None:
    prefix = f"kc-{random.randrange(10**9)}"
    four = new_topic(kafka, 4, name=f"{prefix}.a")
    three = new_topic(kafka, 3, name=f"{prefix}.b")
    flow = rh.Flow("kcfg", data_dir=tmp_path)
    flow.source(rh.kafka_source([four, three], bootstrap_servers=kafka)).sink(rh.log_sink("o"))
    with pytest.raises(ConfigError, match=rf"'{four}': 4, '{three}': 3"):
        flow.run(workers=2)
    rh.Log(tmp_path).create_topic("z-logged", 3)  # a log source beside a Kafka one: the same
    mixed = rh.Flow("kcfg", data_dir=tmp_path)
    mixed.source(rh.kafka_source(four, bootstrap_servers=kafka)).union(
        mixed.source(rh.log_source("z-logged"))
    ).sink(rh.log_sink("o"))
    with pytest.raises(ConfigError, match=rf"'{four}': 4, 'z-logged': 3"):
        mixed.run(workers=2)


def test_a_missing_kafka_topic_is_named(kafka: str, tmp_path: Path) -> None:
    flow = rh.Flow("kcfg", data_dir=tmp_path)
    flow.source(rh.kafka_source("no-such-topic", bootstrap_servers=kafka)).sink(rh.log_sink("o"))
    with pytest.raises(KafkaTopicNotFoundError, match=r"flow 'kcfg'.*no topic 'no-such-topic'"):
        flow.run(workers=2)


# -- tasks in one process --------------------------------------------------------------------


def test_each_task_reads_its_partitions_and_commits_its_own_transactions(
    kafka: str, tmp_path: Path
) -> None:
    """Two topics of 2 partitions, one worker running both tasks: each task reads partition
    ``p`` of both topics, produces through its own ``transactional.id`` (its progress
    marker group shows it), and commits its partitions' offsets to the source's group."""
    prefix = f"kt-{random.randrange(10**9)}"
    a, b = new_topic(kafka, 2, name=f"{prefix}.a"), new_topic(kafka, 2, name=f"{prefix}.b")
    out = new_topic(kafka, 2, name=f"{prefix}.out")
    for topic in (a, b):
        for p in (0, 1):
            produce(
                kafka, topic, [{"i": i, "from": f"{topic}/{p}"} for i in range(20)], partition=p
            )
    flow = rh.Flow("ktasks", data_dir=tmp_path, checkpoint_interval="0.1s")
    (
        flow.source(rh.kafka_source([a, b], bootstrap_servers=kafka, group=prefix))
        .map(lambda e: {**e, "task": int(e["from"][-1])})
        .sink(rh.kafka_sink(out, key="from", bootstrap_servers=kafka))
    )

    def stop_when_done() -> None:
        wait_until(lambda: sum(map(len, read_committed(kafka, out).values())) == 80)
        flow.stop()

    watcher = threading.Thread(target=stop_when_done, daemon=True)
    watcher.start()
    summary = flow.run(workers=1, timeout=60)
    watcher.join()
    assert summary.events_in == 80
    got = [msgspec.json.decode(v) for rs in read_committed(kafka, out).values() for _, v in rs]
    assert sorted((e["from"], e["i"]) for e in got) == sorted(
        (f"{t}/{p}", i) for t in (a, b) for p in (0, 1) for i in range(20)
    )
    for task in (0, 1):
        with CheckpointStore(store_path(tmp_path, "ktasks", task)) as store:
            latest = store.latest()
        assert latest is not None
        # positions are indexes into the sorted (topic, partition) pairs: a/0 a/1 b/0 b/1
        positions = latest.meta["sources"]["source"]["positions"]
        assert {int(i) for i in positions} == {task, 2 + task}
        marker = f"rheos.ktasks.{out}.{task}.progress"
        assert committed_offset(kafka, marker, out) >= 1  # this task's transactions
    for topic in (a, b):
        assert [committed_offset(kafka, prefix, topic, p) for p in (0, 1)] == [20, 20]


# -- kill -9 ---------------------------------------------------------------------------------


def start(data_dir: Path, kafka: str, prefix: str, flow: str, mode: str) -> subprocess.Popen[bytes]:
    """``rheos run workers_app.py --workers 3 --drain`` in its own process (stderr to a file)."""
    env = {
        **os.environ,
        MODE_ENV: mode,
        workers_app.SERVERS_ENV: kafka,
        workers_app.PREFIX_ENV: prefix,
        workers_app.FLOW_ENV: flow,
        workers_app.PACE_ENV: "0.3",
        # every checkpoint lingers a little inside its store transaction and again before
        # its Kafka commit, so that some kills land there
        "RHEOS_TEST_CHECKPOINT_PAUSE": str(data_dir / "in-checkpoint"),
        "RHEOS_TEST_CHECKPOINT_PAUSE_S": "0.05",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    extra = ("--batch-size", "100") if mode == "micro-batch" else ()
    data_dir.mkdir(exist_ok=True)
    with (data_dir / "stderr.txt").open("ab") as errors:
        return subprocess.Popen(
            [*RUN, str(APP), "--workers", "3", "--drain", "--data-dir", str(data_dir), *extra],
            env=env,
            stdout=errors,
            stderr=errors,
        )


def live(data_dir: Path) -> list[dict[str, Any]]:
    return worker_statuses(str(data_dir), workers_app.FLOW)


def caught_up(data_dir: Path, end: dict[int, int]) -> bool:
    """Whether every task's latest checkpoint has read its partition to ``end``."""
    return tasks_read_to(data_dir, workers_app.FLOW, end)


def newest(data_dir: Path, known: set[str], tasks: bool) -> int:
    """The pid of a live worker not in ``known`` (once it has claimed tasks, if ``tasks``)."""
    found: list[int] = []

    def check() -> bool:
        for w in live(data_dir):
            if w["id"] not in known and (w.get("tasks") or not tasks):
                found.append(int(w["pid"]))
                return True
        return False

    wait_until(check, "a new worker", limit=60)
    return found[0]


def kill_workers(data_dir: Path, rnd: random.Random, done: Any) -> list[bool]:
    """Three kills: a worker at random, its replacement right after it starts, and the next
    one while it restores the tasks it claimed. Returns, per kill, whether input was left."""
    wait_until(lambda: len(live(data_dir)) == 3, "3 live workers", limit=60)
    time.sleep(rnd.uniform(0.2, 1.0))
    left = []
    known = {w["id"] for w in live(data_dir)}
    left.append(not done())
    kill(int(rnd.choice(live(data_dir))["pid"]))
    pid = newest(data_dir, known, tasks=False)  # its status file is its first act
    left.append(not done())
    kill(pid)
    known |= {w["id"] for w in live(data_dir)}
    pid = newest(data_dir, known, tasks=True)  # it has just claimed: restoring
    left.append(not done())
    kill(pid)
    return left


@pytest.mark.parametrize("flow", ["keyed"])  # a repartitioned flow; stateless: tests/workers
def test_kill_9_of_workers_commits_what_one_run_commits(
    kafka: str, tmp_path: Path, flow: str
) -> None:
    """A Kafka topic of 6 partitions, 3 workers: workers killed at random (some inside a
    checkpoint, before its Kafka commit) and restarted by the supervisor, then everything
    killed at once and started again in the other runtime mode, and again. The
    read_committed output (partition, key and value: still partitioned by key) and the dead
    letters equal one uninterrupted run's, and the group has committed every partition's
    end."""
    prefixes = {name: f"kw-{name}-{random.randrange(10**9)}" for name in ("one", "three")}
    bad = write_events(kafka, prefixes["one"], N)
    write_events(kafka, prefixes["three"], N)
    one = tmp_path / "one"
    summary = workers_app.FLOWS[flow](kafka, prefixes["one"], str(one)).run(bounded=True)
    assert summary.events_in == N
    want_out = output(kafka, prefixes["one"])
    # every good event is in the output: once, or counted in one window of its user
    counted = [msgspec.json.decode(value).get("n", 1) for _, _, value in want_out.elements()]
    assert sum(counted) == N - bad

    three, prefix = tmp_path / "three", prefixes["three"]
    end = ends(kafka, f"{prefix}.events")
    rnd = random.Random(7)
    left: list[bool] = []
    for phase, mode in enumerate(["stream-first", "micro-batch", "stream-first"]):
        proc = start(three, kafka, prefix, flow, mode)
        try:
            if phase < 2:
                left += kill_workers(three, rnd, lambda: caught_up(three, end))
                time.sleep(rnd.uniform(0.2, 1.0))
                pids = [int(w["pid"]) for w in live(three)]
                left.append(not caught_up(three, end))
                kill(proc.pid)  # everything at once, the supervisor first
                for pid in pids:
                    kill(pid)
                proc.wait()
                wait_until(lambda: not live(three), "the workers to be gone", limit=30)
                continue
            wait_until(lambda: caught_up(three, end), "every task at its end", limit=120)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) in (0, 130), (three / "stderr.txt").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sum(left) >= 6, left  # most kills interrupted the work
    assert output(kafka, prefix) == want_out
    strip = Counter({k[1:]: n for k, n in dead_letters(one).items()})  # not the topic's name
    assert Counter({k[1:]: n for k, n in dead_letters(three).items()}) == strip
    assert sum(strip.values()) == bad
    assert late(three) == late(one) == 0
    assert [committed_offset(kafka, prefix, f"{prefix}.events", p) for p in end] == list(
        end.values()
    )
    took_over = [
        e for e in read_events(str(three), workers_app.FLOW, 1000) if e["event"] == "took over"
    ]
    assert took_over
