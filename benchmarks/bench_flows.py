"""Flow throughput: rheos stream-first against a plain Python loop over the same log.

1,000,000 synthetic JSON events (``--events N`` for quick runs) are written to an embedded log
(one partition), with event-time disorder: 5% of the events are up to 5 s late. Two workloads:

* **W1** filter + map: keep ``value > 50``, project to ``{"key", "v": value * 2}``.
* **W2** a 60-second tumbling window keyed by ``key`` (20 values): count and sum of ``value``,
  with ``out_of_orderness="5s"`` (so no event is late and the results are exact).

Each is run with rheos (``flow.run(stop_after=N, drain=True)`` on a ``log_source``) and as a
plain loop that polls the same log, decodes every value with ``msgspec.json`` and computes the
same result. The table shows events/s and rheos as a fraction of the plain loop (target >= 50%).

    python benchmarks/bench_flows.py [--events N] [--repeat R]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from typing import Any

import msgspec

from rheos.connectors import list_sink, log_source
from rheos.runtime import Flow
from rheos.transport import Log
from rheos.windowing import count, sum, tumbling

TOPIC = "bench"
KEYS = [f"k{i:02d}" for i in range(20)]
WINDOW_MS = 60_000


def write_events(data_dir: str, n: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    encode = msgspec.json.Encoder().encode
    log = Log(data_dir)
    log.create_topic(TOPIC, 1)
    start = 1_700_000_000_000
    with log.producer(TOPIC) as producer:
        batch: list[bytes] = []
        for i in range(n):
            ts = start + i * 10
            if rnd.random() < 0.05:
                ts -= rnd.randint(1, 5_000)
            event = {
                "id": i,
                "ts": ts,
                "key": KEYS[rnd.randrange(20)],
                "value": round(rnd.random() * 100, 3),
            }
            batch.append(encode(event))
            if len(batch) == 50_000:
                producer.append(batch)
                batch = []
        if batch:
            producer.append(batch)
    log.close()


# -- plain loops ----------------------------------------------------------------------------


def plain_loop(data_dir: str, n: int, per_batch: Callable[[list[Any]], None]) -> None:
    log = Log(data_dir)
    reader = log.reader(TOPIC)
    decode = msgspec.json.Decoder().decode
    seen = 0
    while seen < n:
        for batch in reader.poll(max_records=10_000):
            events = [decode(v) for v in batch.values()]
            per_batch(events)
            seen += len(events)
    reader.close()
    log.close()


def plain_w1(data_dir: str, n: int) -> list[Any]:
    out: list[Any] = []
    append = out.append

    def per_batch(events: list[Any]) -> None:
        for e in events:
            if e["value"] > 50:
                append({"key": e["key"], "v": e["value"] * 2})

    plain_loop(data_dir, n, per_batch)
    return out


def plain_w2(data_dir: str, n: int) -> dict[tuple[str, int], list[Any]]:
    groups: dict[tuple[str, int], list[Any]] = {}

    def per_batch(events: list[Any]) -> None:
        get = groups.get
        for e in events:
            ts = e["ts"]
            k = (e["key"], ts - ts % WINDOW_MS)
            acc = get(k)
            if acc is None:
                groups[k] = [1, e["value"]]
            else:
                acc[0] += 1
                acc[1] += e["value"]

    plain_loop(data_dir, n, per_batch)
    return groups


# -- rheos ----------------------------------------------------------------------------------


def rheos_w1(data_dir: str, n: int) -> list[Any]:
    out: list[Any] = []
    flow = Flow("w1", data_dir=data_dir, checkpoint_interval=None)
    (
        flow.source(log_source(TOPIC), timestamp="ts", timestamp_unit="ms", out_of_orderness="5s")
        .filter(lambda e: e["value"] > 50)
        .map(lambda e: {"key": e["key"], "v": e["value"] * 2})
        .sink(list_sink(out))
    )
    flow.run(stop_after=n, drain=True)
    return out


def rheos_w2(data_dir: str, n: int) -> dict[tuple[str, int], list[Any]]:
    out: list[Any] = []
    flow = Flow("w2", data_dir=data_dir, checkpoint_interval=None)
    (
        flow.source(log_source(TOPIC), timestamp="ts", timestamp_unit="ms", out_of_orderness="5s")
        .key_by("key")
        .window(tumbling("60s"))
        .aggregate(n=count(), total=sum("value"))
        .sink(list_sink(out))
    )
    summary = flow.run(stop_after=n, drain=True)
    assert summary.late == 0, summary
    return {(r["key"], r["window_start"]): [r["n"], r["total"]] for r in out}


def timed(fn: Callable[[str, int], Any], data_dir: str, n: int, repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn(data_dir, n)
        best = min(best, time.perf_counter() - started)
    return best, result


def same_groups(a: dict[Any, list[Any]], b: dict[Any, list[Any]]) -> bool:
    return a.keys() == b.keys() and all(
        a[k][0] == b[k][0] and abs(a[k][1] - b[k][1]) < 1e-6 * max(1.0, abs(b[k][1])) for k in a
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of R runs")
    args = parser.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory(prefix="rheos-bench-") as data_dir:
        started = time.perf_counter()
        write_events(data_dir, n)
        print(f"wrote {n:,} events in {time.perf_counter() - started:.2f}s\n")
        rows = []
        for name, plain, ours, check in [
            ("W1 filter+map", plain_w1, rheos_w1, lambda a, b: a == b),
            ("W2 tumbling 60s count+sum by key", plain_w2, rheos_w2, same_groups),
        ]:
            t_plain, r_plain = timed(plain, data_dir, n, args.repeat)
            t_ours, r_ours = timed(ours, data_dir, n, args.repeat)
            assert check(r_ours, r_plain), f"{name}: rheos and the plain loop disagree"
            rows.append((name, n / t_plain, n / t_ours, t_plain / t_ours))
    print(f"{'workload':<36} {'plain loop ev/s':>16} {'rheos ev/s':>14} {'rheos/plain':>12}")
    for name, plain_rate, our_rate, ratio in rows:
        print(f"{name:<36} {plain_rate:>16,.0f} {our_rate:>14,.0f} {ratio:>11.0%}")


if __name__ == "__main__":
    main()
