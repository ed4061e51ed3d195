"""Property test of the log's crash recovery.

Random sequences of appends (random batch sizes, keys, out-of-order timestamps, value sizes
including empty values), reads from random offsets and times, segment rolls (tiny segments),
close and reopen, and simulated torn writes made while the writer is closed:

- garbage appended to the active segment;
- a valid batch for the next offset, cut short, appended to the active segment;
- the last batch of the active segment cut by a few bytes (its records were acknowledged by
  the model when written; once cut they count as never acknowledged, as after a crash in the
  middle of their write).

A model keeps the acknowledged records. Readers must serve exactly the model, in order, with
the right offsets, keys, values and timestamps, both before the next writer opens (the torn
bytes are never served) and after it (the torn tail is cut and appends continue at the right
offset).
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from rheos.transport import Log, Producer
from rheos.transport.format import encode_batch, parse_header
from rheos.transport.partition import now_ms
from rheos.transport.segment import list_segments, segment_path

TOPIC = "prop"
NOW_FLOOR = 10**12  # default timestamps (append time) are far above the explicit ones

keys = st.none() | st.binary(max_size=8)
values = st.binary(max_size=64) | st.binary(min_size=300, max_size=1500)
explicit_ts = st.integers(min_value=0, max_value=1000)
batches = st.lists(st.tuples(keys, values, explicit_ts), min_size=1, max_size=12)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="rheos-prop-"))
        self.log = Log(self.root)
        self.producer: Producer | None = None
        # the acknowledged records: (key, value, timestamp or None for "append time")
        self.model: list[tuple[bytes | None, bytes, int | None]] = []
        self.batch_sizes: list[int] = []  # records per batch, in order (one append = one batch)

    @initialize(segment_bytes=st.sampled_from([150, 700, 4096, 1 << 20]))
    def create(self, segment_bytes: int) -> None:
        self.log.create_topic(TOPIC, segment_bytes=segment_bytes)
        self.producer = self.log.producer(TOPIC)

    def teardown(self) -> None:
        if self.producer is not None:
            self.producer.close()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self.log.topic_dir(TOPIC) / "0"

    def active_segment(self) -> Path:
        return segment_path(self.folder, list_segments(self.folder)[-1])

    def close_writer(self) -> None:
        assert self.producer is not None
        self.producer.close()
        self.producer = None

    def check_all(self) -> None:
        with self.log.reader(TOPIC) as reader:
            got = [(r.offset, r.key, r.value, r.timestamp) for r in reader.read()]
            assert reader.end_offsets() == {0: len(self.model)}
        assert [g[0] for g in got] == list(range(len(self.model)))
        for (_, key, value, ts), (mkey, mvalue, mts) in zip(got, self.model, strict=True):
            assert (key, value) == (mkey, mvalue)
            assert ts == mts if mts is not None else ts >= NOW_FLOOR

    def append_now(self, rows: list[tuple[bytes | None, bytes, int]], explicit: bool) -> None:
        if self.producer is None:
            self.producer = self.log.producer(TOPIC)
        vals = [v for _, v, _ in rows]
        ks = [k for k, _, _ in rows]
        tss = [t for _, _, t in rows] if explicit else None
        before = now_ms()
        result = self.producer.append(vals, keys=ks, timestamps=tss)
        assert result == [(0, len(self.model), len(rows))]
        assert now_ms() >= before
        for k, v, t in rows:
            self.model.append((k, v, t if explicit else None))
        self.batch_sizes.append(len(rows))

    # -- operations -------------------------------------------------------------------------

    @rule(rows=batches, explicit=st.booleans())
    def append(self, rows: list[tuple[bytes | None, bytes, int]], explicit: bool) -> None:
        self.append_now(rows, explicit)

    @rule(where=st.floats(min_value=0, max_value=1))
    def read_from_offset(self, where: float) -> None:
        start = int(where * len(self.model))
        with self.log.reader(TOPIC, start=start) as reader:
            got = [(r.offset, r.key, r.value) for r in reader.read()]
        expected = [(o, k, v) for o, (k, v, _) in enumerate(self.model)][start:]
        assert got == expected

    @rule(t=st.integers(min_value=0, max_value=1001))
    def read_from_time(self, t: int) -> None:
        when = datetime.fromtimestamp(t / 1000, UTC)
        with self.log.reader(TOPIC, start=when) as reader:
            first = next(iter(reader.read()), None)
        expected = next(
            (o for o, (_, _, ts) in enumerate(self.model) if ts is None or ts >= t), None
        )
        assert (first.offset if first else None) == expected

    @rule()
    def reopen(self) -> None:
        self.close_writer()
        self.log.close()
        self.log = Log(self.root)
        self.check_all()
        self.producer = self.log.producer(TOPIC)

    @rule(garbage=st.binary(min_size=1, max_size=200))
    def torn_garbage(self, garbage: bytes) -> None:
        self.close_writer()
        with open(self.active_segment(), "ab") as f:
            f.write(garbage)
        self.after_damage()

    @rule(rows=batches, cut=st.floats(min_value=0.01, max_value=0.99))
    def torn_batch(self, rows: list[tuple[bytes | None, bytes, int]], cut: float) -> None:
        self.close_writer()
        blob = encode_batch(
            len(self.model),
            [v for _, v, _ in rows],
            [t for _, _, t in rows],
            [k for k, _, _ in rows],
            None,
            now_ms(),
        )
        with open(self.active_segment(), "ab") as f:
            f.write(blob[: max(1, int(len(blob) * cut))])
        self.after_damage()

    @precondition(lambda self: self.model)
    @rule(by=st.integers(min_value=1, max_value=60))
    def truncate_last_batch(self, by: int) -> None:
        self.close_writer()
        path = self.active_segment()
        data = path.read_bytes()
        pos = last = 0
        while pos < len(data):
            last = pos
            pos += parse_header(data, pos).size
        if not data:
            return self.after_damage()  # the last batch is sealed in an older segment
        assert pos == len(data)
        cut = min(by, len(data) - last)
        with open(path, "r+b") as f:
            f.truncate(len(data) - cut)
        del self.model[len(self.model) - self.batch_sizes.pop() :]
        self.after_damage()

    def after_damage(self) -> None:
        # before any writer opens, readers never see the torn bytes
        self.check_all()
        # the next writer cuts the tail, and appends go on at the next acknowledged offset
        self.append_now([(b"k", b"after", 1)], explicit=True)
        self.check_all()

    @invariant()
    def end_matches(self) -> None:
        if self.producer is not None and self.model:
            with self.log.reader(TOPIC, start="end") as reader:
                assert reader.positions() == {0: len(self.model)}


LogMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLogRecovery = LogMachine.TestCase
