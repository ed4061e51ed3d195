"""One flow across worker processes: throughput with 1, 2, ... N workers, in the same run.

User-shaped JSON events (``--events``, 2,000,000 by default) -- ``ts``, ``user`` (10,000
values), ``city`` (20), ``category``, ``amount``, and fields no flow reads (a nested
``profile`` with a name, an e-mail address, tags and a score, a ``session`` id and a user
agent) -- are written to a JSON-lines file and produced with the CLI into a topic of
``--partitions`` partitions (``rheos topic create`` + ``rheos produce --key user``), as a
user would. Each run starts from a copy of that data directory and runs, as a user runs it,
``rheos run bench_scaleout.py:FLOW --workers N``:

* **bounded** (``--bounded``): the summary's elapsed time (from the split of the flow into
  tasks to the last worker's end; the interpreter's start and the app's import excluded);
* **streaming**, checkpointed every second, exactly-once log sink: from the first worker's
  start (``workers/events.jsonl``) until the sink topic's *committed* records are all there
  (polled every 20 ms), then stopped with SIGTERM.

``--source kafka`` reads the same events from a Kafka topic of ``--partitions`` partitions
instead (produced with confluent-kafka, keyed by user, each record to the partition the
embedded log would give its key), on a broker started with ``scripts/kafka`` (stopped at the
end) or the one ``--bootstrap`` names; the output still goes to a log topic (Kafka source,
exactly-once log sink), and each run starts from an empty data directory.

Flows (``--flows``): **W1** filter + map (``amount > 100``, then ``v = amount * 2``) into a log
topic; **W2** a 60 s tumbling window keyed by ``city`` (count, sum of ``amount``), which reads
its events through a repartition topic by city across tasks (docs/concepts/repartitioning.md).
Every run's output is checked: its committed record count equals the expected one.

The table gives events read per second, best of ``--repeat``, and the ratio to 1 worker in
the same run of this script (compare ratios, not figures across machines or runs).

    python benchmarks/bench_scaleout.py [--events N] [--partitions P] [--workers 1,2,4,8,16]
        [--flows W1,W2] [--modes stream-first,micro-batch] [--kinds bounded,streaming]
        [--repeat R] [--source log|kafka] [--bootstrap HOST:PORT]

Results are also written as JSON to ``benchmarks/results/scaleout.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from rheos.connectors import kafka_source, log_sink, log_source
from rheos.flows.expressions import col
from rheos.runtime import Flow
from rheos.runtime.workers.membership import read_events
from rheos.transport import Log
from rheos.transport.partitioner import partition_for_key
from rheos.windowing import count, tumbling
from rheos.windowing import sum as total_of

HERE = Path(__file__).resolve()
RESULTS = HERE.parent / "results" / "scaleout.json"
TOPIC = "scale"
CITIES = [f"city-{i:02d}" for i in range(20)]
CATEGORIES = ["books", "games", "food", "garden", "music", "sports", "toys", "travel"]
START = 1_700_000_000_000
KAFKA_ENV = "RHEOS_BENCH_KAFKA"
"""``--source kafka``: the bootstrap servers and topic the flows read, for the runs' processes."""
KAFKA_TOPIC_ENV = "RHEOS_BENCH_KAFKA_TOPIC"
STREAMING_LIMIT_S = 600
"""A streaming run that has not written its output by then is reported, not waited for."""

# -- the flows (module attributes: ``rheos run bench_scaleout.py:W1``) ------------------------


def _source(flow: Flow) -> Any:
    servers = os.environ.get(KAFKA_ENV)
    source = (
        kafka_source(os.environ[KAFKA_TOPIC_ENV], bootstrap_servers=servers)
        if servers
        else log_source(TOPIC)
    )
    return flow.source(
        source,
        timestamp="ts",
        timestamp_unit="ms",
        out_of_orderness="5s",
        idle_timeout=None,
    )


def _w1() -> Flow:
    flow = Flow("scale-W1", checkpoint_interval="1s")
    (
        _source(flow)
        .filter(col("amount") > 100)
        .with_columns(v=col("amount") * 2)
        .sink(log_sink("out-W1"))
    )
    return flow


def _w2() -> Flow:
    flow = Flow("scale-W2", checkpoint_interval="1s")
    (
        _source(flow)
        .key_by("city")
        .window(tumbling("60s"))
        .aggregate(n=count(), total=total_of("amount"))
        .sink(log_sink("out-W2"))
    )
    return flow


W1 = _w1()
W2 = _w2()

# -- the events --------------------------------------------------------------------------------


def write_jsonl(path: Path, n: int, partitions: int, seed: int = 7) -> dict[str, int]:
    """``n`` events 10 ms apart, 5% up to 5 s late; returns each run's expected output count:
    ``W1``, ``W2`` (bounded: every window) and ``W2-streaming`` (the windows a streaming run
    has surely closed once it has read everything: those ending a window or more before the
    lowest partition's watermark; it is timed to that, and checked to have written them)."""
    rnd = random.Random(seed)
    over = 0
    windows: set[tuple[str, int]] = set()
    latest = [0] * partitions
    with path.open("wb") as f:
        lines = []
        for i in range(n):
            ts = START + i * 10 - (rnd.randint(1, 5_000) if rnd.random() < 0.05 else 0)
            user = f"u{rnd.randrange(10_000):05d}"
            city = CITIES[rnd.randrange(20)]
            amount = round(rnd.random() * 200, 2)
            over += amount > 100
            windows.add((city, ts // 60_000))
            p = partition_for_key(user.encode(), partitions)
            latest[p] = max(latest[p], ts)
            event = {
                "ts": ts,
                "user": user,
                "city": city,
                "category": CATEGORIES[rnd.randrange(8)],
                "amount": amount,
                "session": f"s-{rnd.getrandbits(48):012x}",
                "agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
                "profile": {
                    "name": f"User {user}",
                    "email": f"{user}@example.com",
                    "tags": ["new", "mobile"] if i % 3 else ["returning"],
                    "score": round(rnd.random(), 4),
                },
            }
            lines.append(msgspec.json.encode(event))
            if len(lines) == 50_000:
                f.write(b"\n".join(lines) + b"\n")
                lines = []
        if lines:
            f.write(b"\n".join(lines) + b"\n")
    watermark = min(latest) - 5_000
    closed = sum(1 for _, w in windows if (w + 2) * 60_000 <= watermark)
    return {"W1": over, "W2": len(windows), "W2-streaming": closed}


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "rheos", "--data-dir", str(data_dir), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env())


def _env() -> dict[str, str]:
    src = str(HERE.parent.parent / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def committed_count(data_dir: Path, topic: str) -> int:
    log = Log(data_dir)
    try:
        if not log.has_topic(topic):
            return 0
        with log.reader(topic) as reader:
            return sum(reader.end_offsets().values())
    finally:
        log.close()


# -- one run -----------------------------------------------------------------------------------


def run_bounded(data_dir: Path, flow: str, workers: int, mode: str, want: int) -> float | str:
    cmd = [sys.executable, "-m", "rheos", "run", f"{HERE}:{flow}", "--bounded"]
    cmd += ["--workers", str(workers), "--mode", mode, "--data-dir", str(data_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    if done.returncode != 0:
        return _refusal(done.stderr)
    match = re.search(r"(\d+) in, (\d+) out, .*?, ([0-9.]+)s \(", done.stdout)
    assert match is not None, done.stdout
    got = committed_count(data_dir, f"out-{flow}")
    assert got == want, f"{flow} bounded with {workers} workers wrote {got}, expected {want}"
    return float(match.group(3))


def run_streaming(data_dir: Path, flow: str, workers: int, mode: str, want: int) -> float | str:
    cmd = [sys.executable, "-m", "rheos", "run", f"{HERE}:{flow}"]
    cmd += ["--workers", str(workers), "--mode", mode, "--data-dir", str(data_dir)]
    errors = data_dir / "stderr.txt"
    with errors.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=_env())
    deadline = time.monotonic() + STREAMING_LIMIT_S
    try:
        while committed_count(data_dir, f"out-{flow}") < want:
            if proc.poll() is not None:
                return _refusal(errors.read_text())
            if time.monotonic() > deadline:
                return f"not done after {STREAMING_LIMIT_S} s"
            time.sleep(0.02)
        finished = time.time()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    name = f"scale-{flow}"
    started = min(e["time_ms"] for e in read_events(str(data_dir), name) if e["event"] == "started")
    got = committed_count(data_dir, f"out-{flow}")
    assert got >= want, f"{flow} streaming with {workers} workers wrote {got}, expected {want}"
    assert flow != "W1" or got == want, f"W1 streaming with {workers} workers wrote {got}"
    return finished - started / 1000


# -- Kafka (--source kafka) ---------------------------------------------------------------------


def start_broker(folder: Path) -> str:
    script = str(HERE.parent.parent / "scripts" / "kafka")
    subprocess.run([sys.executable, script, "fetch"], check=True, capture_output=True)
    done = subprocess.run(
        [sys.executable, script, "start", str(folder)], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def stop_broker(folder: Path) -> None:
    script = str(HERE.parent.parent / "scripts" / "kafka")
    subprocess.run([sys.executable, script, "stop", str(folder)], check=True)


def produce_to_kafka(servers: str, lines: Path, partitions: int) -> str:
    """A new topic of ``partitions`` partitions holding the events of ``lines``, keyed by
    user; each record goes to the partition the embedded log gives its key (the same split
    into tasks as from the log). Returns the topic's name."""
    from confluent_kafka import Producer  # rheos[kafka]
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"scale-{os.getpid()}-{random.randrange(10**9)}"
    admin = AdminClient({"bootstrap.servers": servers})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 20})
    user = re.compile(rb'"user":"([^"]*)"')
    with lines.open("rb") as f:
        for line in f:
            value = line.rstrip(b"\n")
            found = user.search(value)
            assert found is not None
            key = found.group(1)
            p = partition_for_key(key, partitions)
            while True:
                try:
                    producer.produce(topic, value, key, partition=p)
                    break
                except BufferError:
                    producer.poll(0.05)
    assert producer.flush(60) == 0
    return topic


def _spin() -> None:
    x = 0
    for i in range(10_000_000):
        x += i


def parallel_ceiling(n: int) -> float:
    """How many times the work of one CPU-bound process ``n`` of them get done in the same
    time right now (``n`` on an idle machine with ``n`` free cores): the most ``n`` workers
    can gain here, on a machine others share."""

    def wall(k: int) -> float:
        started = time.perf_counter()
        pids = []
        for _ in range(k):
            pid = os.fork()
            if pid == 0:
                _spin()
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        return time.perf_counter() - started

    return n * wall(1) / wall(n)


def _refusal(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


# -- the table ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", default="1,2", help="comma-separated, up to 16")
    parser.add_argument("--flows", default="W1,W2")
    parser.add_argument("--modes", default="stream-first,micro-batch")
    parser.add_argument("--kinds", default="bounded,streaming")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--source", choices=["log", "kafka"], default="log")
    parser.add_argument("--bootstrap", help="--source kafka: a running broker (default: start one)")
    args = parser.parse_args()
    counts = sorted({int(w) for w in args.workers.split(",")} | {1})
    if max(counts) > 16 or min(counts) < 1:
        parser.error("--workers: between 1 and 16")
    with tempfile.TemporaryDirectory(prefix="rheos-scaleout-") as tmp:
        seed = Path(tmp) / "seed"
        lines = Path(tmp) / "events.jsonl"
        want = write_jsonl(lines, args.events, args.partitions)
        if args.source == "kafka":
            broker = Path(tmp) / "broker"
            servers = args.bootstrap or start_broker(broker)
            os.environ[KAFKA_ENV] = servers
            os.environ[KAFKA_TOPIC_ENV] = produce_to_kafka(servers, lines, args.partitions)
            seed.mkdir()
        else:
            cli(seed, "topic", "create", TOPIC, "--partitions", str(args.partitions))
            cli(seed, "produce", TOPIC, "--file", str(lines), "--key", "user")
        try:
            rows, ceilings = _runs(args, counts, Path(tmp), seed, want)
        finally:
            if args.source == "kafka" and not args.bootstrap:
                stop_broker(broker)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"events": args.events, "partitions": args.partitions, "cpus": os.cpu_count()}
            | {"source": args.source, "parallel_ceiling": ceilings, "rows": rows},
            indent=2,
        )
    )


def _runs(
    args: argparse.Namespace, counts: list[int], tmp: Path, seed: Path, want: dict[str, int]
) -> tuple[list[dict[str, Any]], dict[int, float]]:
    """Every run of the table, printed as it ends; the rows and the parallel ceilings."""
    rows: list[dict[str, Any]] = []
    ceilings = {n: round(parallel_ceiling(n), 2) for n in counts if n > 1}
    where = "a Kafka topic of " if args.source == "kafka" else ""
    print(
        f"{args.events:,} events in {where}{args.partitions} partitions; {os.cpu_count()} CPUs; "
        f"workers {counts}; CPU-bound processes now: "
        + ", ".join(f"{n} do {c}x the work of 1" for n, c in ceilings.items()),
        flush=True,
    )
    print(f"{'flow':4} {'run':9} {'mode':12} {'workers':>7} {'events/s':>11} {'vs 1':>6}")
    for flow in args.flows.split(","):
        for kind in args.kinds.split(","):
            for mode in args.modes.split(","):
                base = None
                for workers in counts:
                    expected = want.get(f"{flow}-{kind}", want[flow])
                    best = _best(tmp, seed, flow, kind, mode, workers, expected, args.repeat)
                    row = _row(flow, kind, mode, workers, best, args.events, base)
                    if workers == 1 and isinstance(best, float):
                        base = row["events_per_s"]
                    rows.append(row)
                    if isinstance(best, str):
                        print(f"{flow:4} {kind:9} {mode:12} {workers:>7}  refused: {best}")
                        break
                    print(
                        f"{flow:4} {kind:9} {mode:12} {workers:>7} "
                        f"{row['events_per_s']:>11,.0f} {row['ratio']:>5.2f}x",
                        flush=True,
                    )
    return rows, ceilings


def _best(
    tmp: Path,
    seed: Path,
    flow: str,
    kind: str,
    mode: str,
    workers: int,
    expected: int,
    repeat: int,
) -> float | str:
    """The best time of ``repeat`` runs, each from a fresh copy of ``seed`` (or a refusal)."""
    runs = {"bounded": run_bounded, "streaming": run_streaming}
    best: float | str = "no run"
    for _ in range(repeat):
        run_dir = tmp / "run"
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(seed, run_dir)
        got = runs[kind](run_dir, flow, workers, mode, expected)
        if isinstance(got, str):
            return got
        best = got if isinstance(best, str) else min(best, got)
    return best


def _row(
    flow: str, kind: str, mode: str, workers: int, best: float | str, n: int, base: float | None
) -> dict[str, Any]:
    row: dict[str, Any] = {"flow": flow, "run": kind, "mode": mode, "workers": workers}
    if isinstance(best, str):
        return row | {"refused": best}
    rate = n / best
    return row | {"seconds": round(best, 3), "events_per_s": rate, "ratio": rate / (base or rate)}


if __name__ == "__main__":
    main()
