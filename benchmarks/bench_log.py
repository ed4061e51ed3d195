"""Throughput of the embedded log beside the raw speed of the same disk, in the same run.

Appends 100-byte and 1 KiB values under each durability policy (``os``, ``100ms``, ``batch``)
and reads them back three ways (columnar batches, ``values()`` lists, ``Record`` objects).
Beside every number it measures the physical limit: a plain file written with the same
bytes, the same ``write()`` chunks and the same fsync policy, and read back sequentially in
1 MiB chunks. Cold reads drop the page cache first (this needs root; without it the reads
are warm and the output says so).

    python benchmarks/bench_log.py [--records N] [--dir PATH] [--quick]

Each number is the median of ``--repeats`` runs; each value size runs in a fresh interpreter.
Prints a table and the issue's targets with PASS/MISS, and writes
``benchmarks/results/log.json`` (not with ``--quick``, unless ``--output`` is given). MB means
10**6 bytes of value payload; the bytes rheos puts on disk are in the JSON (``disk_bytes``),
with the page faults taken per 1,000 records. Nothing here asserts a time: this is not a test.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import multiprocessing
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import rheos
from rheos.transport import Log, RecordBatch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "log.json"
BATCH_RECORDS = 1_000  # records per append() call, and per raw write()
READ_MAX_RECORDS = 10_000  # poll(max_records=...) for the reads: the default
POLICIES = ("os", "os+sync", "100ms", "batch")
"""``os+sync`` is the ``os`` policy timed until everything written is on the disk (an
``os.sync()`` at the end, for rheos and the raw file alike): the disk's own bandwidth, where
``os`` alone measures copying into the page cache."""
DISTINCT_BATCHES = 16  # different payloads cycled through, so caches do not flatter the CPU
MB = 1_000_000
FAULTS = "page_faults_per_1000_records"


@dataclass
class Row:
    """One line of the table: a rheos measurement and its physical baseline."""

    workload: str
    value_bytes: int
    policy: str
    records: int
    payload_bytes: int
    rheos_seconds: list[float]
    raw_seconds: list[float]
    disk_bytes: int | None = None
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def rheos_s(self) -> float:
        return statistics.median(self.rheos_seconds)

    @property
    def raw_s(self) -> float:
        return statistics.median(self.raw_seconds)

    @property
    def rec_per_s(self) -> float:
        return self.records / self.rheos_s

    @property
    def mb_per_s(self) -> float:
        return self.payload_bytes / self.rheos_s / MB

    @property
    def raw_mb_per_s(self) -> float:
        return self.payload_bytes / self.raw_s / MB

    @property
    def ratio(self) -> float:
        return self.mb_per_s / self.raw_mb_per_s

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out.update(
            rheos_records_per_s=round(self.rec_per_s),
            rheos_mb_per_s=round(self.mb_per_s, 1),
            raw_mb_per_s=round(self.raw_mb_per_s, 1),
            ratio=round(self.ratio, 3),
        )
        return out


# -- the disk -------------------------------------------------------------------------------


def drop_caches() -> bool:
    """Write dirty pages back and drop the page cache; False if not allowed (not root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


class IntervalSync:
    """Background fdatasync of one file every ``interval`` seconds (the raw ``100ms`` policy)."""

    def __init__(self, fd: int, interval: float) -> None:
        self.fd = fd
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            os.fdatasync(self.fd)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def raw_write(path: Path, chunks: list[bytes], n_chunks: int, policy: str) -> float:
    """Write ``n_chunks`` chunks to a new plain file under ``policy``; return the seconds."""
    os.sync()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        syncer = IntervalSync(fd, 0.1) if policy == "100ms" else None
        every = policy == "batch"
        start = time.perf_counter()
        for i in range(n_chunks):
            os.write(fd, chunks[i % len(chunks)])
            if every:
                os.fdatasync(fd)
        if policy == "os+sync":
            os.sync()
        seconds = time.perf_counter() - start
        if syncer is not None:
            syncer.close()
    finally:
        os.close(fd)
    return seconds


def raw_read(path: Path, cold: bool) -> float:
    """Read a file sequentially in 1 MiB chunks; return the seconds."""
    if cold:
        drop_caches()
    buf = bytearray(1 << 20)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return time.perf_counter() - start


# -- rheos ----------------------------------------------------------------------------------


def make_batches(size: int) -> list[list[bytes]]:
    """``DISTINCT_BATCHES`` lists of ``BATCH_RECORDS`` random values of ``size`` bytes."""
    rng = random.Random(size)
    out = []
    for _ in range(DISTINCT_BATCHES):
        blob = rng.randbytes(size * BATCH_RECORDS)
        out.append([blob[i : i + size] for i in range(0, len(blob), size)])
    return out


def rheos_append(
    log: Log, topic: str, batches: list[list[bytes]], n: int, policy: str
) -> tuple[float, int]:
    """Append ``n`` batches with ``Producer.append``; return the seconds (close not timed)
    and the minor page faults the process took meanwhile (fresh memory it touched)."""
    os.sync()
    producer = log.producer(topic, durability=policy.removesuffix("+sync"))
    producer.append(batches[0][:1])  # open the partition writer outside the timing
    faults = minor_faults()
    start = time.perf_counter()
    for i in range(n):
        producer.append(batches[i % len(batches)])
    if policy == "os+sync":
        os.sync()
    seconds = time.perf_counter() - start
    faults = minor_faults() - faults
    producer.close()
    return seconds, faults


def rheos_send(log: Log, topic: str, batches: list[list[bytes]], n: int) -> float:
    """Send ``n`` batches' worth of records one by one, then flush; return the seconds."""
    os.sync()
    producer = log.producer(topic, durability="os")
    producer.append(batches[0][:1])
    start = time.perf_counter()
    for i in range(n):
        send = producer.send
        for value in batches[i % len(batches)]:
            send(value)
    producer.flush()
    seconds = time.perf_counter() - start
    producer.close()
    return seconds


def _count_batches(batch: RecordBatch) -> int:
    return len(batch)


def _count_values(batch: RecordBatch) -> int:
    return len(batch.values())


def _count_records(batch: RecordBatch) -> int:
    collections.deque(batch.records(), maxlen=0)  # build every Record, keep none
    return len(batch)


READ_WAYS: dict[str, Callable[[RecordBatch], int]] = {
    "read: columnar batches (len)": _count_batches,
    "read: values() lists": _count_values,
    "read: Record objects": _count_records,
}


def rheos_read(
    log: Log, topic: str, count: Callable[[RecordBatch], int], cold: bool
) -> tuple[float, int]:
    """Read the whole topic from the beginning; return the seconds and the page faults."""
    if cold:
        drop_caches()
    faults = minor_faults()
    start = time.perf_counter()
    got = 0
    with log.reader(topic) as reader:
        while batches := reader.poll(max_records=READ_MAX_RECORDS):
            for batch in batches:
                got += count(batch)
    seconds = time.perf_counter() - start
    faults = minor_faults() - faults
    if got == 0:
        raise RuntimeError(f"read nothing back from {topic}")
    return seconds, faults


def minor_faults() -> int:
    """Minor page faults of this process so far: each is a fresh page of memory touched."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def per_thousand(count: float, records: int) -> float:
    return round(count * 1000 / records, 1)


def disk_usage(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.log"))


# -- the run --------------------------------------------------------------------------------


@dataclass
class Settings:
    records_100: int
    repeats: int
    cold: bool
    workdir: Path
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)


def bench_size(settings: Settings, size: int, records: int, log: Log) -> list[Row]:
    """Every append policy, then every read way, for one value size."""
    batches = make_batches(size)
    chunks = [b"".join(b) for b in batches]
    n = records // BATCH_RECORDS
    records = n * BATCH_RECORDS
    payload = records * size
    rows: list[Row] = []
    for policy in POLICIES:
        rheos_s, raw_s, faults, disk = [], [], [], 0
        for r in range(settings.repeats):
            topic = f"v{size}-{policy.replace('+', '-')}-{r}"
            log.create_topic(topic, 1, durability=policy.removesuffix("+sync"))
            seconds, fault_count = rheos_append(log, topic, batches, n, policy)
            rheos_s.append(seconds)
            faults.append(fault_count)
            disk = disk_usage(log.topic_dir(topic))
            keep = policy == "os" and r == 0
            if not keep:
                log.delete_topic(topic)
            raw = settings.workdir / f"raw-{size}-{policy}-{r}"
            raw_s.append(raw_write(raw, chunks, n, policy))
            if not keep:
                raw.unlink()
        workload = f"append (batches of {BATCH_RECORDS:,})"
        row = Row(workload, size, policy, records, payload, rheos_s, raw_s, disk)
        row.notes[FAULTS] = per_thousand(statistics.median(faults), records)
        rows.append(row)
    if size == 100:
        rows.append(bench_send(settings, log, batches, n, rows[0]))
    source, raw = f"v{size}-os-0", settings.workdir / f"raw-{size}-os-0"
    caches = ("cold cache", "warm cache") if settings.cold else ("warm cache",)
    for cache in caches:
        cold = cache == "cold cache"
        # One untimed pass over both files first, so both sit in the same caches (the
        # guest's for warm reads; on a virtual disk, also the host's for cold ones).
        raw_read(raw, cold=False)
        rheos_read(log, source, _count_batches, cold=False)
        raw_s = [raw_read(raw, cold) for _ in range(settings.repeats)]
        for workload, count in READ_WAYS.items():
            runs = [rheos_read(log, source, count, cold) for _ in range(settings.repeats)]
            row = Row(workload, size, cache, records, payload, [r[0] for r in runs], raw_s)
            row.notes[FAULTS] = per_thousand(statistics.median(r[1] for r in runs), records)
            rows.append(row)
    log.delete_topic(source)
    raw.unlink()
    return rows


def run_fresh(settings: Settings, size: int, records: int) -> list[Row]:
    """Run one value size in a new interpreter, so one size's heap does not sway the other."""
    print(f"{size} B values ...", file=sys.stderr, flush=True)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        rows: list[Row] = pool.apply(_bench_size_in_child, (settings, size, records))
    return rows


def _bench_size_in_child(settings: Settings, size: int, records: int) -> list[Row]:
    log = Log(settings.workdir / f"log-{size}")
    try:
        return bench_size(settings, size, records, log)
    finally:
        log.close()


def bench_send(settings: Settings, log: Log, batches: list[list[bytes]], n: int, base: Row) -> Row:
    """``send`` + ``flush`` of 100-byte values under ``os``; the raw baseline is the append's."""
    seconds = []
    for r in range(settings.repeats):
        topic = f"send-{r}"
        log.create_topic(topic, 1, durability="os")
        seconds.append(rheos_send(log, topic, batches, n))
        log.delete_topic(topic)
    row = Row(
        "send + flush (per record)",
        100,
        "os",
        base.records,
        base.payload_bytes,
        seconds,
        base.raw_seconds,
    )
    row.notes["raw"] = "the raw write of the append row (same bytes, 1,000-record writes)"
    return row


def check_targets(rows: list[Row]) -> list[dict[str, object]]:
    """The issue's targets, each against the rows it is about."""
    out: list[dict[str, object]] = []

    def add(target: str, row: Row, measured: float, threshold: float, unit: str) -> None:
        out.append(
            {
                "target": target,
                "row": f"{row.workload.split(' (')[0]}, {row.value_bytes} B, {row.policy}",
                "measured": round(measured, 4 if unit == "ratio" else 0),
                "threshold": threshold,
                "unit": unit,
                "passed": measured >= threshold,
            }
        )

    for row in rows:
        if row.workload.startswith("append") and row.value_bytes == 100 and row.policy == "os":
            add("OS flushing: append >= 1,000,000 rec/s (100 B)", row, row.rec_per_s, 1e6, "rec/s")
    for row in rows:
        if row.workload.startswith("read") and row.value_bytes == 100:
            add("read >= 3,000,000 rec/s, one process (100 B)", row, row.rec_per_s, 3e6, "rec/s")
    for row in rows:
        if row.workload.startswith("append") and row.value_bytes == 1024:
            add("1 KiB append >= 50% of raw write bandwidth", row, row.ratio, 0.5, "ratio")
    return out


def machine(settings: Settings) -> dict[str, object]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu_count": os.cpu_count(),
        "load_average_at_start": settings.load,
        "cpu_model": cpu,
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "rheos": rheos.__version__,
        "filesystem": filesystem(settings.workdir),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def filesystem(path: Path) -> str:
    """The device and type of the mount that holds ``path`` (from /proc/mounts)."""
    best = ("", "unknown", "unknown")
    with open("/proc/mounts") as f:
        for line in f:
            dev, mount, kind = line.split()[:3]
            if str(path).startswith(mount) and len(mount) > len(best[0]):
                best = (mount, dev, kind)
    return f"{best[1]} ({best[2]}) mounted at {best[0]}"


# -- output ---------------------------------------------------------------------------------


def table_rows(rows: list[Row]) -> list[list[str]]:
    return [
        [
            r.workload,
            "1 KiB" if r.value_bytes == 1024 else f"{r.value_bytes} B",
            r.policy,
            f"{r.rec_per_s:,.0f}",
            f"{r.mb_per_s:,.1f}",
            f"{r.raw_mb_per_s:,.1f}",
            f"{r.ratio:.2f}",
        ]
        for r in rows
    ]


def target_rows(targets: list[dict[str, object]]) -> list[list[str]]:
    out = []
    for t in targets:
        m = t["measured"]
        shown = f"{m:.2f}" if t["unit"] == "ratio" else f"{m:,.0f} rec/s"
        out.append([str(t["target"]), str(t["row"]), shown, "PASS" if t["passed"] else "MISS"])
    return out


def show(title: str, header: list[str], body: list[list[str]], right: int) -> None:
    """A rich table if rich is installed, else aligned plain text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
        print(f"\n{title}")
        for line in [header, *body]:
            cells = [
                c.rjust(w) if i >= right else c.ljust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ]
            print("  ".join(cells))
        return
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if i >= right else "left")
    for line in body:
        table.add_row(*line)
    console = Console()
    console.width = max(console.width, 110)
    console.print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records",
        type=int,
        default=1_000_000,
        help="records of 100-byte values (1 KiB values use a fifth); default 1,000,000",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help="where to put the data (a fresh subfolder is made and removed); default: beside "
        "the repository, on the same disk",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of the records, one repeat, no JSON"
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per number (the median)")
    parser.add_argument("--output", type=Path, help=f"JSON results (default {RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    records = args.records // 10 if args.quick else args.records
    repeats = 1 if args.quick else args.repeats
    parent = args.dir if args.dir is not None else REPO.parent
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="rheos-bench-log-", dir=parent))
    settings = Settings(records, repeats, drop_caches(), workdir, os.getloadavg())
    print(
        f"data in {workdir}; {records:,} records of 100 B, {records // 5:,} of 1 KiB; "
        f"median of {repeats}; cold reads: {'yes' if settings.cold else 'NO (not root)'}"
    )
    if settings.load[0] > 0.5:
        print(f"note: load average {settings.load[0]:.2f}: other work is running, expect noise")
    try:
        rows = run_fresh(settings, 100, records) + run_fresh(settings, 1024, records // 5)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    targets = check_targets(rows)
    header = ["workload", "value size", "policy", "rheos rec/s", "rheos MB/s", "raw MB/s", "ratio"]
    show("rheos log vs. raw file, same disk, same run", header, table_rows(rows), right=3)
    show("targets (issue 2)", ["target", "measured on", "measured", ""], target_rows(targets), 2)
    if not settings.cold:
        print("note: the page cache could not be dropped (not root): every read is warm")
    output = args.output or (None if args.quick else RESULTS)
    if output is not None:
        write_json(output, settings, rows, targets)
        print(f"results written to {output}")
    return 0


def write_json(
    path: Path, settings: Settings, rows: list[Row], targets: list[dict[str, object]]
) -> None:
    doc = {
        "benchmark": "log",
        "command": " ".join(["python benchmarks/bench_log.py", *sys.argv[1:]]),
        "machine": machine(settings),
        "settings": {
            "records_100_bytes": settings.records_100,
            "records_1_kib": settings.records_100 // 5,
            "append_batch_records": BATCH_RECORDS,
            "read_max_records": READ_MAX_RECORDS,
            "repeats": settings.repeats,
            "statistic": "median",
            "isolation": "each value size runs in a fresh interpreter",
            "cold_reads": settings.cold,
            "mb": "10**6 bytes of value payload",
        },
        "results": [r.to_json() for r in rows],
        "targets": targets,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
