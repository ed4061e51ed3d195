"""Kafka throughput: rheos's Kafka source and sink against plain confluent-kafka loops.

Needs a broker: ``--bootstrap HOST:PORT``, or none given and this starts one with
``scripts/kafka`` (stopped at the end). 1,000,000 synthetic JSON events (``--events N``) are
produced to a topic of one partition, with event-time disorder as in ``bench_flows.py`` (5% of
the events up to 5 s late). Then, the same run:

* **W2 read** (a 60-second tumbling count and sum of ``value`` by ``key``, 20 keys) over the
  topic: a plain confluent-kafka consumer loop (``consume(10_000)``, orjson per value, a dict
  of groups), rheos stream-first, and rheos micro-batch (batches of 100,000), streaming runs
  that stop after the N events and close their windows (``flow.run(stop_after=N,
  drain=True)``, as in ``bench_flows.py``), and bounded runs (``flow.run(bounded=True)``, to
  the end offsets seen at their start); the results must agree.
* **Sink**: ``--sink-events`` (200,000) events written from the embedded log to a new Kafka
  topic by a checkpointed flow (``kafka_sink``: one transaction per checkpoint, every 1 s)
  against a plain idempotent producer loop (``produce`` per value, one ``flush``).

    python benchmarks/bench_kafka.py [--events N] [--sink-events M] [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import orjson
from bench_batch import extra_fields  # (this folder: the same extra fields)
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import rheos.runtime.microbatch  # noqa: F401  (imported before the timing, like the rest)
from rheos.connectors import kafka_sink, kafka_source, list_sink, log_source
from rheos.runtime import Flow
from rheos.transport import Log
from rheos.windowing import count, sum, tumbling

ROOT = Path(__file__).resolve().parent.parent
KEYS = [f"k{i:02d}" for i in range(20)]
WINDOW_MS = 60_000


def create(servers: str, partitions: int = 1) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": servers})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result()
    return name


def event_values(n: int, seed: int = 7, extra: int = 0) -> list[bytes]:
    rnd = random.Random(seed)
    more = random.Random(seed + 1)
    encode = msgspec.json.Encoder().encode
    start = 1_700_000_000_000
    out = []
    for i in range(n):
        ts = start + i * 10
        if rnd.random() < 0.05:
            ts -= rnd.randint(1, 5_000)
        value = round(rnd.random() * 100, 3)
        event = {"id": i, "ts": ts, "key": KEYS[rnd.randrange(20)], "value": value}
        if extra:
            event.update(extra_fields(more, extra))
        out.append(encode(event))
    return out


def plain_produce(servers: str, topic: str, values: list[bytes]) -> float:
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 20, "enable.idempotence": True})
    started = time.perf_counter()
    produce = producer.produce
    for v in values:
        while True:
            try:
                produce(topic, v)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(120) == 0
    return time.perf_counter() - started


TUNED = {"fetch.queue.backoff.ms": 10}
"""The consumer setting rheos's Kafka sources change from librdkafka's default (1000 ms)."""


def plain_consumer(servers: str, topic: str, config: dict[str, Any]) -> Any:
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"plain-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            **config,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    return consumer


def consume_only(servers: str, topic: str, n: int) -> float:
    """Seconds to consume ``n`` records and take each value, nothing else (rheos's settings)."""
    consumer = plain_consumer(servers, topic, TUNED)
    seen = 0
    started = time.perf_counter()
    while seen < n:
        values = [m.value() for m in consumer.consume(10_000, 1.0)]
        seen += len(values)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def plain_w2(
    servers: str, topic: str, n: int, config: dict[str, Any] | None = None
) -> tuple[float, dict[Any, list[Any]]]:
    consumer = plain_consumer(servers, topic, config or {})
    groups: dict[tuple[str, int], list[Any]] = {}
    loads = orjson.loads
    seen = 0
    started = time.perf_counter()
    while seen < n:
        messages = consumer.consume(10_000, 1.0)
        get = groups.get
        for m in messages:
            e = loads(m.value())
            ts = e["ts"]
            k = (e["key"], ts - ts % WINDOW_MS)
            acc = get(k)
            if acc is None:
                groups[k] = [1, e["value"]]
            else:
                acc[0] += 1
                acc[1] += e["value"]
        seen += len(messages)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed, groups


def rheos_w2(
    servers: str, topic: str, n: int, mode: Any, bounded: bool = False
) -> tuple[float, dict[Any, list[Any]]]:
    out: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="rheos-bench-") as data_dir:
        flow = Flow("w2", data_dir=data_dir, checkpoint_interval=None)
        (
            flow.source(
                kafka_source(topic, bootstrap_servers=servers),
                timestamp="ts",
                timestamp_unit="ms",
                out_of_orderness="5s",
            )
            .key_by("key")
            .window(tumbling("60s"))
            .aggregate(n=count(), total=sum("value"))
            .sink(list_sink(out))
        )
        started = time.perf_counter()
        if bounded:  # to the end offsets seen at its start
            summary = flow.run(bounded=True, mode=mode, batch_size=100_000, progress=False)
        else:
            summary = flow.run(stop_after=n, drain=True, mode=mode, batch_size=100_000)
        elapsed = time.perf_counter() - started
    assert summary.late == 0, summary
    return elapsed, {(r["key"], r["window_start"]): [r["n"], r["total"]] for r in out}


def rheos_sink(servers: str, values: list[bytes]) -> float:
    topic = create(servers)
    with tempfile.TemporaryDirectory(prefix="rheos-bench-") as data_dir:
        log = Log(data_dir)
        log.create_topic("in", 1)
        with log.producer("in") as producer:
            for i in range(0, len(values), 50_000):
                producer.append(values[i : i + 50_000])
        log.close()
        flow = Flow("sink", data_dir=data_dir, checkpoint_interval="1s")
        flow.source(log_source("in")).sink(kafka_sink(topic, bootstrap_servers=servers))
        started = time.perf_counter()
        summary = flow.run(stop_after=len(values))
        elapsed = time.perf_counter() - started
    assert summary.events_out == len(values), summary
    return elapsed


def same_groups(a: dict[Any, list[Any]], b: dict[Any, list[Any]]) -> bool:
    return a.keys() == b.keys() and all(
        a[k][0] == b[k][0] and abs(a[k][1] - b[k][1]) < 1e-6 * max(1.0, abs(b[k][1])) for k in a
    )


def start_broker(folder: Path) -> str:
    script = str(ROOT / "scripts" / "kafka")
    subprocess.run([sys.executable, script, "fetch"], check=True)
    done = subprocess.run(
        [sys.executable, script, "start", str(folder)], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sink-events", type=int, default=200_000)
    parser.add_argument("--bootstrap", help="a running broker (default: start one)")
    parser.add_argument(
        "--extra-fields", type=int, default=0, help="K more fields per event that no step reads"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rheos-kafka-") as folder:
        servers = args.bootstrap or start_broker(Path(folder))
        try:
            rows = run(servers, args.events, args.sink_events, args.extra_fields)
        finally:
            if not args.bootstrap:
                script = str(ROOT / "scripts" / "kafka")
                subprocess.run([sys.executable, script, "stop", folder], check=True)
    print(f"\n{'what':<52} {'events/s':>12} {'vs plain':>9} {'vs tuned':>9}")
    for name, rate, ratio, tuned in rows:
        print(f"{name:<52} {rate:>12,.0f} {ratio:>9} {tuned:>9}")
    name = "kafka.json" if not args.extra_fields else "kafka_wide.json"
    report = {
        "events": args.events,
        "extra_fields": args.extra_fields,
        "rows": [{"what": w, "events_per_s": round(r)} for w, r, _, _ in rows],
    }
    (ROOT / "benchmarks" / "results" / name).write_text(json.dumps(report, indent=1) + "\n")


def run(servers: str, n: int, m: int, extra: int = 0) -> list[tuple[str, float, str, str]]:
    values = event_values(n, extra=extra)
    size = len(b"".join(values)) / n
    print(f"{n:,} events of {size:.0f} bytes on average")
    topic = create(servers)
    t_produce = plain_produce(servers, topic, values)
    print(f"produced {n:,} events in {t_produce:.2f}s")
    t_plain, plain = plain_w2(servers, topic, n)
    t_tuned, tuned = plain_w2(servers, topic, n, TUNED)
    assert same_groups(tuned, plain)
    t_ceiling = consume_only(servers, topic, n)
    rows = [
        ("W2, plain consumer loop (orjson)", n / t_plain, "", ""),
        ("W2, plain loop, fetch.queue.backoff.ms=10", n / t_tuned, f"{t_plain / t_tuned:.2f}x", ""),
        (
            "consume + value() only (no decoding)",
            n / t_ceiling,
            f"{t_plain / t_ceiling:.2f}x",
            f"{t_tuned / t_ceiling:.2f}x",
        ),
    ]
    for mode in ("stream-first", "micro-batch"):
        for bounded in (False, True):
            t, got = rheos_w2(servers, topic, n, mode, bounded)
            assert same_groups(got, plain), f"W2 {mode}: rheos and the plain loop disagree"
            name = f"W2, rheos {mode}" + (", bounded" if bounded else "")
            rows.append((name, n / t, f"{t_plain / t:.2f}x", f"{t_tuned / t:.2f}x"))
    sink_values = values[:m]
    t_sink_plain = plain_produce(servers, create(servers), sink_values)
    rows.append(("sink, plain idempotent producer", m / t_sink_plain, "", ""))
    t_sink = rheos_sink(servers, sink_values)
    ratio = f"{t_sink_plain / t_sink:.2f}x"
    rows.append(("sink, rheos kafka_sink (transactions, 1 s)", m / t_sink, ratio, ""))
    return rows


if __name__ == "__main__":
    main()
