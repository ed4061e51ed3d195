"""Micro-batch mode and faults: bad events are dead-lettered alone (the same records, counts and
policies as stream-first mode, the rest of their batch goes on), checkpoints fall between
rounds, and live metrics are sampled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

import rheos as rh
import rheos.windowing as w
from rheos.runtime.deadletters import read_dead_letters
from rheos.runtime.microbatch import BatchExecutor, MicroBatchRunner
from rheos.runtime.microbatch.sources import BULK_FROM, ColumnarLogReader, Part
from rheos.runtime.runner import Runner

GOOD = [{"k": f"k{i % 4}", "v": i, "ts": 1_000 * i} for i in range(60)]
BAD_JSON = [b"{not json", b"\x00\xff\xfe garbage"]
BAD_TS = [b'{"k": "k1", "v": 3}', b'{"k": "k1", "v": 3, "ts": "soon"}']
BOOM = [{"k": "boom", "v": 100 + i, "ts": 30_000 + i} for i in range(3)]
NOKEY = [{"v": 7, "ts": 40_000}]


def write_input(data_dir: Path, *, undecodable: bool = True) -> int:
    log = rh.Log(data_dir)
    log.create_topic("in", 1)
    enc = msgspec.json.encode
    values = [enc(e) for e in GOOD[:20]]
    values += BAD_TS + [enc(e) for e in BOOM] + [enc(e) for e in NOKEY]
    values += [enc(e) for e in GOOD[20:40]]
    if undecodable:
        values += BAD_JSON
    values += [enc(e) for e in GOOD[40:]]
    with log.producer("in") as p:
        p.append(values)
    return len(values)


def build(data_dir: Path, name: str = "bad", **options: Any) -> rh.Flow:
    def double(event: dict[str, Any]) -> dict[str, Any]:
        if event.get("k") == "boom":
            raise ValueError(f"cannot double {event['k']}")
        return {**event, "v": 2 * event["v"]}

    flow = rh.Flow(name, data_dir=data_dir, checkpoint_interval="50ms", **options)
    (
        flow.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms")
        .map(double, name="double")
        .filter(lambda e: e["v"] % 3 != 0, name="not3")
        .key_by("k", name="key")
        .window(w.tumbling("5s"))
        .aggregate(name="win", n=w.count(), s=w.sum("v"))
        .sink(rh.log_sink("out"))
    )
    return flow


def letters(data_dir: Path, flow: str) -> list[tuple[Any, ...]]:
    return sorted(
        (
            x.source_offset,
            x.step,
            x.source,
            x.error_type,
            x.message,
            x.value,
            x.value_format,
            x.event_time,
            x.source_topic,
            x.source_partition,
        )
        for x in read_dead_letters(rh.Log(data_dir), flow)
    )


def outputs(data_dir: Path) -> list[Any]:
    return [msgspec.json.decode(r.value) for r in rh.Log(data_dir).reader("out").read()]


def run_both(
    tmp_path: Path, bounded: bool, batch_size: int, *, undecodable: bool = True
) -> tuple[Any, Any, Path, Path]:
    first, micro = tmp_path / "first", tmp_path / "micro"
    write_input(first, undecodable=undecodable)
    write_input(micro, undecodable=undecodable)
    events = len(GOOD) + len(BOOM) + len(NOKEY)  # records that decode and have a time
    opts: dict[str, Any] = (
        {"bounded": True} if bounded else {"stop_after": events, "drain": True, "timeout": 30}
    )
    a = build(first).run(**opts)
    b = build(micro).run(mode="micro-batch", batch_size=batch_size, **opts)
    return a, b, first, micro


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("batch_size", [1, 7, 1_000])
def test_bad_events_are_dead_lettered_alone_as_in_stream_first(
    tmp_path: Path, bounded: bool, batch_size: int
) -> None:
    a, b, first, micro = run_both(tmp_path, bounded, batch_size)
    assert letters(micro, "bad") == letters(first, "bad")
    assert len(letters(micro, "bad")) == len(BAD_JSON) + len(BAD_TS) + len(BOOM) + len(NOKEY)
    assert (
        b.dead_lettered
        == a.dead_lettered
        == {
            ("source", "EventError"): len(BAD_JSON) + len(BAD_TS),
            ("double", "UserFunctionError"): len(BOOM),
            ("key", "EventError"): len(NOKEY),
        }
    )
    assert outputs(micro) == outputs(first) and outputs(first)
    assert (b.events_in, b.events_out, b.late) == (a.events_in, a.events_out, a.late)


@pytest.mark.parametrize("batch_size", [3, 1_000])
def test_columnar_batches_without_undecodable_records(tmp_path: Path, batch_size: int) -> None:
    a, b, first, micro = run_both(tmp_path, False, batch_size, undecodable=False)
    assert letters(micro, "bad") == letters(first, "bad")
    assert b.dead_lettered == a.dead_lettered
    assert outputs(micro) == outputs(first) and outputs(first)


def test_rejected_records_of_a_schema_source(tmp_path: Path) -> None:
    class Event(msgspec.Struct):
        k: str
        v: int
        ts: int | None = None

    results = {}
    for mode in ("stream-first", "micro-batch"):
        data = tmp_path / mode
        write_input(data)
        flow = rh.Flow("schema", data_dir=data, checkpoint_interval="50ms")
        flow.source(rh.log_source("in", schema=Event, max_record_bytes=200), timestamp="ts").sink(
            rh.log_sink("out")
        )
        summary = flow.run(mode=mode, batch_size=5, stop_after=len(GOOD), timeout=30)
        results[mode] = (letters(data, "schema"), summary.dead_lettered, outputs(data))
    assert results["micro-batch"] == results["stream-first"]
    assert results["stream-first"][0]


def test_skip_and_fail_policies(tmp_path: Path) -> None:
    write_input(tmp_path)
    flow = build(tmp_path, "skip", on_error="skip")
    summary = flow.run(mode="micro-batch", batch_size=10, bounded=True)
    assert summary.dead == 0 and summary.skipped == {
        ("source", "EventError"): len(BAD_JSON) + len(BAD_TS),
        ("double", "UserFunctionError"): len(BOOM),
        ("key", "EventError"): len(NOKEY),
    }
    assert not rh.Log(tmp_path).has_topic("skip.dlq")
    errors = []
    for mode in ("stream-first", "micro-batch"):
        for bounded in (True, False):
            strict = build(tmp_path, "strict", on_error="fail")
            with pytest.raises(rh.EventError) as caught:
                if bounded:
                    strict.run(mode=mode, batch_size=10, bounded=True)
                else:
                    strict.run(mode=mode, batch_size=10, stop_after=64, drain=True, timeout=30)
            errors.append(str(caught.value))
    # the first bad record by offset (a timestamp missing), not the first that failed to
    # decode further on in the same read
    assert len(set(errors)) == 1 and "offset 20)" in errors[0], errors


def test_without_a_data_directory() -> None:
    results = []
    for mode in ("stream-first", "micro-batch"):
        out: list[Any] = []
        flow = rh.Flow("mem")
        flow.source(rh.iterable_source([1, 0, 2, 0, 4])).map(lambda x: 4 // x).sink(
            rh.list_sink(out)
        )
        summary = flow.run(mode=mode)
        results.append((out, [(x.value, x.step, x.error_type) for x in summary.dead_letters]))
    assert results[0] == results[1] == ([4, 2, 1], [(b"0", "map", "UserFunctionError")] * 2)


def test_checkpoints_between_rounds_resume_exactly_once(tmp_path: Path) -> None:
    def flow(data: Path) -> rh.Flow:
        f = rh.Flow("ckpt", data_dir=data, checkpoint_interval="10ms")
        (
            f.source(
                rh.log_source("in"), timestamp="ts", timestamp_unit="ms", out_of_orderness="2s"
            )
            .key_by("k")
            .window(w.tumbling("5s"))
            .aggregate(n=w.count(), s=w.sum("v"))
            .sink(rh.log_sink("out"))
        )
        return f

    events = [
        {"k": f"k{i % 3}", "v": i, "ts": 500 * i - (700 if i % 5 == 0 else 0)} for i in range(200)
    ]
    for name in ("first", "micro"):
        log = rh.Log(tmp_path / name)
        log.create_topic("in", 1)
        with log.producer("in") as p:
            p.append([msgspec.json.encode(e) for e in events])
    whole = flow(tmp_path / "first").run(stop_after=len(events), drain=True)
    one = flow(tmp_path / "micro").run(mode="micro-batch", batch_size=16, stop_after=73)
    assert one.stopped == "stop_after" and one.checkpoints.count >= 1
    two = flow(tmp_path / "micro").run(
        mode="micro-batch", batch_size=16, stop_after=len(events) - 73, drain=True
    )
    assert two.checkpoints.restored_from is not None
    assert whole.events_out == one.events_out + two.events_out
    assert outputs(tmp_path / "micro") == outputs(tmp_path / "first") and outputs(
        tmp_path / "first"
    )


def test_live_metrics_are_sampled_per_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rheos.runtime.metrics as metrics_module

    samples: list[dict[str, Any]] = []
    sample = metrics_module.FlowMetrics.sample

    def counting(self: Any, run: Any, **kw: Any) -> None:
        sample(self, run, **kw)
        samples.append(self.latest)

    monkeypatch.setattr(metrics_module, "SAMPLE_EVERY_S", 0.0)  # due at every round
    monkeypatch.setattr(metrics_module.FlowMetrics, "sample", counting)
    write_input(tmp_path, undecodable=False)
    runner = MicroBatchRunner(
        build(tmp_path, "live").graph(), data_dir=str(tmp_path), batch_size=8, batch_interval_ms=0
    )
    events = len(GOOD) + len(BOOM) + len(NOKEY)
    summary = runner.run(stop_after=events, drain=True, timeout=30)
    assert runner.metrics is not None and runner.metrics.latest is samples[-1]
    assert len(samples) > 3  # the first, some while running, the last
    assert [s["running"] for s in samples[:-1]] == [True] * (len(samples) - 1)
    last = samples[-1]
    assert last["running"] is False and last["stopped"] == "stop_after"
    assert sum(s["events"] for s in last["sources"]) == summary.events_in
    assert sum(s["events"] for s in last["sinks"]) == summary.events_out > 0


class Tally:
    """A running count and sum per key; raises on some keys (after emitting, for ``k3``)."""

    def __repr__(self) -> str:  # error messages name process logic objects by their repr
        return "Tally"

    def process(self, ctx: Any, event: Any) -> None:
        if ctx.key == "boom":
            raise ValueError(f"no tally for {ctx.key}")
        state = ctx.state or {"n": 0, "s": 0}
        state["n"] += 1
        state["s"] += event["v"]
        ctx.state = state
        ctx.emit({"k": ctx.key, **state})
        if ctx.key == "k3" and event["v"] % 8 == 7:
            raise ValueError(f"cannot tally {event['v']}")


def build_process(data_dir: Path) -> rh.Flow:
    flow = rh.Flow("proc", data_dir=data_dir, checkpoint_interval="50ms")
    (
        flow.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms")
        .key_by("k", name="key")
        .process(Tally, name="tally")
        .sink(rh.log_sink("out"))
    )
    return flow


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("batch_size", [1, 7, 1_000])
def test_process_step_errors_are_dead_lettered_alone_as_in_stream_first(
    tmp_path: Path, bounded: bool, batch_size: int
) -> None:
    first, micro = tmp_path / "first", tmp_path / "micro"
    write_input(first)
    write_input(micro)
    events = len(GOOD) + len(BOOM) + len(NOKEY)
    opts: dict[str, Any] = (
        {"bounded": True} if bounded else {"stop_after": events, "drain": True, "timeout": 30}
    )
    a = build_process(first).run(**opts)
    b = build_process(micro).run(mode="micro-batch", batch_size=batch_size, **opts)
    k3_bad = sum(1 for e in GOOD if e["k"] == "k3" and e["v"] % 8 == 7)
    assert k3_bad
    assert letters(micro, "proc") == letters(first, "proc")
    assert (
        b.dead_lettered
        == a.dead_lettered
        == {
            ("source", "EventError"): len(BAD_JSON) + len(BAD_TS),
            ("tally", "UserFunctionError"): len(BOOM) + k3_bad,
            ("key", "EventError"): len(NOKEY),
        }
    )
    assert outputs(micro) == outputs(first) and outputs(first)
    assert (b.events_in, b.events_out, b.late) == (a.events_in, a.events_out, a.late)
    assert b.steps["tally"].events_in == a.steps["tally"].events_in


# -- undecodable records: only their stretch is read per record -------------------------------
PER_BATCH = BULK_FROM  # (smaller polls are decoded per record anyway)
"""Records per record batch: about 100 KB, over a poll's 64 KB budget, so one batch a poll."""


class Observed(BatchExecutor):
    """The micro-batch executor, keeping every part its sources gave (to see how each was
    read)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parts: list[Part] = []

    def _poll(self, src: Any, timeout: float) -> list[Part]:
        parts = super()._poll(src, timeout)
        self.parts += parts
        return parts


def write_batches(data_dir: Path, bad: dict[int, bytes]) -> int:
    """Three record batches of padded good records, record ``i`` replaced by ``bad[i]``;
    returns the number of good records."""
    n = 3 * PER_BATCH
    values = [
        bad.get(i) or msgspec.json.encode({**GOOD[i % 60], "ts": 100 * i, "pad": "x" * 60})
        for i in range(n)
    ]
    log = rh.Log(data_dir)
    log.create_topic("in", 1)
    with log.producer("in") as p:
        for at in range(0, n, PER_BATCH):
            p.append(values[at : at + PER_BATCH])
    log.close()
    return n - len(bad)


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("batch_size", [PER_BATCH, 2 * PER_BATCH])
@pytest.mark.parametrize(
    "bad",
    [
        {PER_BATCH + 500: BAD_JSON[0]},
        {
            PER_BATCH + 200: BAD_JSON[0],
            PER_BATCH + 201: BAD_JSON[1],
            PER_BATCH + 700: b'{"k": "k1", "v": ',
        },
        {3 * PER_BATCH - 1: BAD_JSON[1]},
    ],
    ids=["middle", "several", "last"],
)
def test_undecodable_records_leave_the_rest_columnar(
    tmp_path: Path, bounded: bool, batch_size: int, bad: dict[int, bytes]
) -> None:
    first, micro = tmp_path / "first", tmp_path / "micro"
    events = write_batches(first, bad)
    write_batches(micro, bad)
    opts: dict[str, Any] = (
        {"bounded": True} if bounded else {"stop_after": events, "drain": True, "timeout": 30}
    )
    a = build(first).run(**opts)
    observed = Observed(batch_size=batch_size)
    runner = Runner(
        build(micro).graph(),
        executor=observed,
        data_dir=str(micro),
        checkpoint_interval_ms=50,
    )
    b = runner.run(**opts)
    # the same results and dead letters (topic, partition, offset, message) as stream-first
    assert letters(micro, "bad") == letters(first, "bad")
    assert sorted(x[0] for x in letters(micro, "bad")) == sorted(bad)
    assert b.dead_lettered == a.dead_lettered == {("source", "EventError"): len(bad)}
    assert outputs(micro) == outputs(first) and outputs(first)
    assert (b.events_in, b.events_out, b.late) == (a.events_in, a.events_out, a.late)
    # only the poll holding them (batch_size records: whole record batches of the log when
    # bounded) was read per record: before and after it, the source gave frames
    poll = batch_size
    per_record = set()
    for part in observed.parts:
        assert part.chunk is not None and part.chunk.offsets is not None
        polls = {o // poll for o in part.chunk.offsets}
        assert len(polls) == 1
        if part.frame is None:
            per_record |= polls
    assert per_record == {o // poll for o in bad}
    assert sum(map(len, observed.parts)) == events  # each event once
    reader = runner.sources[0].reader
    assert isinstance(reader, ColumnarLogReader)
    assert reader.positions() == {0: 3 * PER_BATCH}


# -- dead-letter replay of a micro-batch flow ---------------------------------------------------
def build_keyed(data_dir: Path, *, fixed: bool) -> rh.Flow:
    """A keyed windowed flow whose ``map`` fails on every 7th value until it is fixed."""

    def scale(event: dict[str, Any]) -> dict[str, Any]:
        if not fixed and event["v"] % 7 == 0:
            raise ValueError(f"cannot scale {event['v']}")
        return {**event, "v": 10 * event["v"]}

    flow = rh.Flow("keyed", data_dir=data_dir, checkpoint_interval="20ms")
    (
        flow.source(rh.log_source("in"), timestamp="ts", timestamp_unit="ms", out_of_orderness="3s")
        .map(scale, name="scale")
        .key_by("k")
        .window(w.tumbling("5s"))
        .aggregate(name="win", n=w.count(), s=w.sum("v"))
        .sink(rh.log_sink("out"))
    )
    return flow


def topic(data_dir: Path, name: str) -> list[Any]:
    log = rh.Log(data_dir)
    if not log.has_topic(name):
        return []
    return [msgspec.json.decode(r.value) for r in log.reader(name).read()]


def test_replaying_dead_letters_of_a_micro_batch_run_as_in_stream_first(tmp_path: Path) -> None:
    """A micro-batch run dead-letters some events and checkpoints; the fixed code replays them
    (event by event, from the micro-batch checkpoint) and the micro-batch run goes on from the
    replay's checkpoint: the same output, late output and dead letters as all in stream-first."""
    events = [
        {"k": f"k{i % 3}", "v": i, "ts": 200 * i - (900 if i % 4 == 0 else 0)} for i in range(300)
    ]
    head = 170  # the dead letters of the last windows are replayed while they are open
    results = {}
    for mode in ("stream-first", "micro-batch"):
        data = tmp_path / mode
        log = rh.Log(data)
        log.create_topic("in", 1)
        with log.producer("in") as p:
            p.append([msgspec.json.encode(e) for e in events])
        log.close()
        opts: dict[str, Any] = {"mode": mode, "batch_size": 16}
        one = build_keyed(data, fixed=False).run(stop_after=head, **opts)
        assert one.checkpoints.count >= 1 and one.dead_lettered == {
            ("scale", "UserFunctionError"): len(range(0, head, 7))
        }
        replay = build_keyed(data, fixed=True).replay_dead_letters()
        assert replay.dead_letters_replayed == len(range(0, head, 7)) and not replay.dead
        two = build_keyed(data, fixed=True).run(stop_after=len(events) - head, drain=True, **opts)
        assert two.checkpoints.restored_from is not None and not two.dead
        results[mode] = (
            topic(data, "out"),
            topic(data, "keyed.late"),
            letters(data, "keyed"),
            (one.events_out, replay.events_out, two.events_out, two.late),
        )
    assert results["micro-batch"] == results["stream-first"]
    out, late, dead, _ = results["stream-first"]
    assert len(out) > 30 and len(dead) == len(range(0, head, 7))
    assert 0 < len(late) < len(dead)  # some replayed events were late, some on time
    on_time = {(r["key"], r["window_start"]): r["n"] for r in out}
    assert sum(on_time.values()) + len(late) == len(events)


def test_a_micro_batch_runner_replays_dead_letters_event_by_event(tmp_path: Path) -> None:
    """The runner of a micro-batch run replays dead letters as the stream-first one does
    (a replay runs event by event whatever the runner's executor), drained too: the same
    output, late output and dead-letter positions."""
    events = [{"k": f"k{i % 3}", "v": i, "ts": 200 * i} for i in range(120)]
    results = {}
    for mode in ("stream-first", "micro-batch"):
        data = tmp_path / mode
        log = rh.Log(data)
        log.create_topic("in", 1)
        with log.producer("in") as p:
            p.append([msgspec.json.encode(e) for e in events])
        log.close()
        one = build_keyed(data, fixed=False).run(mode="micro-batch", batch_size=16, stop_after=90)
        assert one.dead_lettered == {("scale", "UserFunctionError"): len(range(0, 90, 7))}
        graph = build_keyed(data, fixed=True).graph()
        runner = (
            Runner(graph, data_dir=str(data))
            if mode == "stream-first"
            else MicroBatchRunner(graph, data_dir=str(data), batch_size=16)
        )
        replay = runner.replay_dead_letters(drain=True)
        assert replay.dead_letters_replayed == len(range(0, 90, 7)) and not replay.dead
        assert replay.stopped == "drained"
        results[mode] = (topic(data, "out"), topic(data, "keyed.late"), replay.events_out)
    assert results["micro-batch"] == results["stream-first"]
    assert results["stream-first"][2] > 0
