"""Soak: a live W2 for minutes, checkpoints every second, ``kill -9`` every minute.

    python benchmarks/soak.py [--seconds 600] [--rate 50000] [--kill-every 60] [--plot FILE]

Everything goes through the command line, as a user runs it:

1. A feed writes user-shaped JSON events -- ``ts`` (the wall clock, 5% of the events up to
   3 s late), ``sent`` (the wall clock), ``user``, ``city``, ``category``, ``amount`` (2
   decimals), ``device`` (a field no step reads) -- at ``--rate`` events/s into ``rheos
   produce events --key city --timestamp ts`` through a pipe, for ``--seconds``.
2. The flow (``rheos run soak_app.py``; checkpoints every 1 s, exactly-once log sinks): W2, a
   60 s tumbling count and sum of ``amount`` by ``city`` (``out_of_orderness="5s"``), and an
   alert per event over 990 (the output that measures end-to-end latency all along). It is
   killed with SIGKILL every ``--kill-every`` seconds and started again at once.
3. Every second: the flow process's RSS, its consumer lag (from the metrics it saves, which
   ``rheos status`` reads), and the end-to-end latency of that second's alerts -- from the
   feed writing the event to a reader of the alerts topic getting it -- at p50 and p99, both
   as soon as written (``isolation="uncommitted"``: processing) and once committed (what an
   exactly-once reader sees: up to a checkpoint interval more).
4. Then the feed stops; the flow reads what is left and stops with ``--drain``; an
   uninterrupted run of the same flow over the same topic, stopped the same way, computes
   the reference. The committed outputs must be equal (window totals to 1e-6: float sums in
   another order), and memory flat: the peak RSS of the last quarter of the soak at most 1.25x
   that of the second quarter.

Prints one line per sample period, a summary, and exits 1 when a check fails. ``--plot``
draws RSS, p99 latency and consumer lag over time (matplotlib, the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import msgspec

from rheos.transport import Log

APP = """
import rheos as rh

flow = rh.Flow({name!r}, checkpoint_interval="1s")
events = flow.source(rh.log_source("events"), timestamp="ts", out_of_orderness="5s")
(events.key_by("city")
    .window(rh.tumbling("60s"))
    .aggregate(n=rh.count(), total=rh.sum("amount"))
    .sink(rh.log_sink({windows!r})))
(events.filter(lambda e: e["amount"] > 990)
    .map(lambda e: {{"user": e["user"], "amount": e["amount"], "ts": e["ts"], "sent": e["sent"]}})
    .sink(rh.log_sink({alerts!r})))
"""
RHEOS = [sys.executable, "-m", "rheos"]
CITIES = [f"city-{i:02d}" for i in range(40)]
CATEGORIES = ["food", "travel", "games", "books", "music", "home", "health", "sport"]
DEVICES = ["ios", "android", "web"]


def rheos(data_dir: Path, *args: str, **options: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*RHEOS, "--data-dir", str(data_dir), *args],
        cwd=data_dir.parent,
        **options,
    )


def feed(pipe: IO[bytes], rate: int, seconds: float, seed: int, done: threading.Event) -> None:
    """Write ``rate`` events/s into ``pipe`` for ``seconds``, in 10 ms steps."""
    rnd = random.Random(seed)
    encode = msgspec.json.Encoder().encode
    started = time.monotonic()
    sent = 0
    while not done.is_set():
        elapsed = time.monotonic() - started
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) - sent
        now_ms = int(time.time() * 1000)
        lines = []
        for _ in range(due):
            late = rnd.randint(1, 3_000) if rnd.random() < 0.05 else 0
            event = {
                "ts": now_ms - late,
                "sent": now_ms,
                "user": f"u{rnd.randrange(100_000)}",
                "city": rnd.choice(CITIES),
                "category": rnd.choice(CATEGORIES),
                "amount": round(rnd.uniform(1, 1_000), 2),
                "device": rnd.choice(DEVICES),
            }
            lines.append(encode(event))
        if lines:
            pipe.write(b"\n".join(lines) + b"\n")
            pipe.flush()
            sent += len(lines)
        time.sleep(0.01)
    pipe.close()


class Latencies:
    """Tails the alerts topic in two readers and keeps, per reader, the latencies (ms) of
    the alerts read since the last :meth:`take`."""

    def __init__(self, data_dir: Path, topic: str) -> None:
        self.log = Log(data_dir)
        self.topic = topic
        self.seen: dict[str, list[float]] = {"uncommitted": [], "committed": []}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [
            threading.Thread(target=self._tail, args=(iso,), daemon=True) for iso in self.seen
        ]
        for thread in self.threads:
            thread.start()

    def _tail(self, isolation: Any) -> None:
        while not self.log.has_topic(self.topic) and not self.done.is_set():
            time.sleep(0.1)
        decode = msgspec.json.Decoder().decode
        with self.log.reader(self.topic, isolation=isolation) as reader:
            while not self.done.is_set():
                batches = reader.poll(timeout=0.1)
                now = time.time() * 1000
                got = [now - decode(v)["sent"] for b in batches for v in b.values()]
                with self.lock:
                    self.seen[isolation].extend(got)

    def take(self) -> dict[str, tuple[float, float] | None]:
        with self.lock:
            seen, self.seen = self.seen, {k: [] for k in self.seen}
        return {k: _p50_p99(v) for k, v in seen.items()}

    def close(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()


def _p50_p99(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    values.sort()
    return values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def metrics(data_dir: Path, flow: str) -> dict[str, Any]:
    try:
        data = json.loads((data_dir / "flows" / flow / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def committed(data_dir: Path, topic: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*RHEOS, "--data-dir", str(data_dir), "consume", topic],
        capture_output=True,
        check=True,
    )
    return [json.loads(line)["value"] for line in done.stdout.splitlines()]


def windows_of(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((r["key"], r["window_start"], r["n"], round(r["total"], 6)) for r in rows)


def alerts_of(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((r["user"], r["amount"], r["ts"]) for r in rows)


def soak(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="rheos-soak-"))
    data_dir = root / "data"
    (root / "soak_app.py").write_text(APP.format(name="soak", windows="w2", alerts="alerts"))
    (root / "reference.py").write_text(
        APP.format(name="reference", windows="w2-ref", alerts="alerts-ref")
    )
    subprocess.run(
        [*RHEOS, "--data-dir", str(data_dir), "topic", "create", "events", "--partitions", "2"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    produce = rheos(
        data_dir,
        "produce",
        "events",
        "--key",
        "city",
        "--timestamp",
        "ts",
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert produce.stdin is not None
    stop = threading.Event()
    feeder = threading.Thread(
        target=feed, args=(produce.stdin, args.rate, args.seconds, args.seed, stop), daemon=True
    )
    flow_log = (root / "flow-stderr.txt").open("ab")
    flow = rheos(data_dir, "run", "soak_app.py", stdout=subprocess.DEVNULL, stderr=flow_log)
    started = time.monotonic()
    feeder.start()
    latencies = Latencies(data_dir, "alerts")
    samples: list[dict[str, Any]] = []
    kills = 0
    next_kill = started + args.kill_every
    try:
        while feeder.is_alive():
            time.sleep(1.0)
            now = time.monotonic()
            snap = metrics(data_dir, "soak")
            got = latencies.take()
            sample = {
                "t": round(now - started, 1),
                "rss_mb": rss_mb(flow.pid),
                "lag": snap.get("consumer_lag") if snap.get("pid") == flow.pid else None,
                "kills": kills,
            }
            for isolation, pair in got.items():
                sample[f"{isolation}_p50_ms"] = None if pair is None else round(pair[0], 1)
                sample[f"{isolation}_p99_ms"] = None if pair is None else round(pair[1], 1)
            samples.append(sample)
            if len(samples) % args.print_every == 0:
                print(_line(sample), flush=True)
            if now >= next_kill and now - started < args.seconds - 5:
                flow.send_signal(signal.SIGKILL)
                flow.wait()
                kills += 1
                next_kill = now + args.kill_every
                flow = rheos(
                    data_dir, "run", "soak_app.py", stdout=subprocess.DEVNULL, stderr=flow_log
                )
            elif flow.poll() is not None:
                print(f"the flow stopped by itself (exit {flow.returncode}); see {flow_log.name}")
                return 1
    finally:
        stop.set()
        feeder.join()
        latencies.close()
    produce.wait(timeout=60)
    flow.send_signal(signal.SIGKILL)  # the last incarnation; one more reads what is left
    flow.wait()
    written = sum(_end_offsets(data_dir).values())
    drained(data_dir, "soak_app.py", "soak", written, flow_log)
    drained(data_dir, "reference.py", "reference", written, flow_log)
    same_windows = windows_of(committed(data_dir, "w2")) == windows_of(
        committed(data_dir, "w2-ref")
    )
    same_alerts = alerts_of(committed(data_dir, "alerts")) == alerts_of(
        committed(data_dir, "alerts-ref")
    )
    quarter = max(1, len(samples) // 4)
    second = [s["rss_mb"] for s in samples[quarter : 2 * quarter] if s["rss_mb"]]
    last = [s["rss_mb"] for s in samples[-quarter:] if s["rss_mb"]]
    flat = bool(second and last) and max(last) <= 1.25 * max(second)
    print(
        f"\n{args.seconds:.0f} s at {args.rate:,} events/s ({written:,} events), {kills} kills "
        f"(SIGKILL every {args.kill_every:.0f} s), checkpoints every 1 s"
    )
    for isolation in ("uncommitted", "committed"):
        p99s = [s[f"{isolation}_p99_ms"] for s in samples if s[f"{isolation}_p99_ms"] is not None]
        p50s = [s[f"{isolation}_p50_ms"] for s in samples if s[f"{isolation}_p50_ms"] is not None]
        if p99s:
            print(
                f"latency, {isolation + ' reader':<18} p50 {_median(p50s):>6.0f} ms, p99 "
                f"{_median(p99s):>6.0f} ms (medians of the per-second values); worst second's "
                f"p99 {max(p99s):.0f} ms (a restart catching up)"
            )
    if second and last:
        print(
            f"RSS: second quarter peak {max(second):.1f} MB, last quarter peak {max(last):.1f} MB"
        )
    print(f"windows equal to an uninterrupted run: {same_windows}")
    print(f"alerts equal to an uninterrupted run:  {same_alerts}")
    print(f"memory flat (last quarter <= 1.25x second): {flat}")
    if args.plot:
        plot(samples, args.plot, args)
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({"args": vars(args), "samples": samples}))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if same_windows and same_alerts and flat else 1


def drained(data_dir: Path, app: str, flow: str, events: int, log: IO[bytes]) -> None:
    """Run ``app`` streaming (``rheos run APP --drain``) until its flow has read ``events``
    and checkpointed past them, then stop it with Ctrl-C: every window closes. (A bounded
    run would do as well, but holds its whole input in memory.)"""
    proc = rheos(data_dir, "run", app, "--drain", stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        snap = metrics(data_dir, flow)
        read = sum(s.get("position", 0) for s in _partitions(snap))
        if read >= events and snap.get("pid") == proc.pid:
            break
        time.sleep(0.5)
    time.sleep(1.5)  # a checkpoint of this run past the end
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _line(s: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    return (
        f"{s['t']:>7.0f} s  rss {s['rss_mb'] or 0:>6.1f} MB  lag "
        f"{s['lag'] if s['lag'] is not None else '-':>7}  latency p50/p99 written "
        f"{ms(s['uncommitted_p50_ms']):>5}/{ms(s['uncommitted_p99_ms']):>5} ms, committed "
        f"{ms(s['committed_p50_ms']):>5}/{ms(s['committed_p99_ms']):>5} ms  kills {s['kills']}"
    )


def _partitions(snap: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for s in snap.get("sources", []) for p in s.get("partitions", [])]


def _end_offsets(data_dir: Path) -> dict[int, int]:
    with Log(data_dir).reader("events") as reader:
        return reader.end_offsets()


def plot(samples: list[dict[str, Any]], path: str, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    series = [
        (["rss_mb"], "RSS (MB)"),
        (["uncommitted_p99_ms", "committed_p99_ms"], "p99 latency (ms)"),
        (["lag"], "consumer lag"),
    ]
    for ax, (fields, label) in zip(axes, series, strict=True):
        for field in fields:
            values = [s[field] if s[field] is not None else float("nan") for s in samples]
            ax.plot(t, values, label=field.removesuffix("_p99_ms"))
        if len(fields) > 1:
            ax.set_yscale("log")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        for s0, s1 in itertools.pairwise(samples):
            if s1["kills"] > s0["kills"]:
                ax.axvline(s1["t"], color="red", alpha=0.3, linewidth=0.8)
    axes[0].set_title(
        f"soak: W2 + alerts at {args.rate:,} events/s, checkpoints every 1 s, "
        f"kill -9 every {args.kill_every:.0f} s (red)"
    )
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--kill-every", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--print-every", type=int, default=10, help="samples between lines")
    parser.add_argument("--plot", help="write the RSS/latency/lag plot to this PNG")
    parser.add_argument(
        "--results",
        default=str(Path(__file__).parent / "results" / "soak.json"),
        help="where the samples go as JSON",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    os.environ.pop("RHEOS_DATA_DIR", None)
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
