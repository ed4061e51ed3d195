"""Keyed state on disk (``state="disk"``): the same results as in memory on the flow test
shapes (tumbling, sliding, calendar and session windows, keyed process), a Hypothesis
property comparing the two backends, the cache's bound with many more keys than it holds,
checkpoints and restore in one process, and the clear refusals."""

from __future__ import annotations

import heapq
import json
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rheos as rh
from rheos.errors import CheckpointError, FlowDefinitionError
from rheos.runtime import MODE_ENV
from rheos.runtime.replay import roll_back
from rheos.state.disk import DiskHeap, KeyTable, StateDB, WindowTable
from rheos.windowing import MAX_WATERMARK, WindowOperator, count, mean, sum, tumbling

SMALL = rh.disk_state(cache_keys=16)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RHEOS_DATA_DIR", raising=False)
    monkeypatch.delenv(MODE_ENV, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def events(n: int, keys: int, seed: int = 1, spread: int = 60) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [
        {"k": f"k{rnd.randrange(keys)}", "t": i * 7 + rnd.randrange(-spread, spread), "v": i % 13}
        for i in range(n)
    ]


def windowed(evs: list[dict[str, Any]], spec: Any, state: Any, **kw: Any) -> tuple[list, list]:
    flow = rh.Flow("w", state=state)
    out: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    w = (
        flow.source(
            rh.iterable_source(evs, batch_size=64),
            timestamp="t",
            timestamp_unit="ms",
            out_of_orderness=40,
        )
        .key_by("k")
        .window(spec, **kw)
    )
    w.aggregate(n=count(), total=sum("v"), avg=mean("v"), first=rh.first("v")).sink(
        rh.list_sink(out)
    )
    w.late().sink(rh.list_sink(late))
    flow.run()
    return out, late


SHAPES = [
    (tumbling("1s"), {}),
    (tumbling("1s"), {"emit": "update"}),
    (tumbling("1s"), {"allowed_lateness": "100ms"}),
    (rh.sliding("2s", "500ms"), {}),
    (rh.sliding("2s", "500ms"), {"emit": "update"}),
    (rh.calendar("day", tz="UTC"), {}),
    (rh.session("150ms"), {}),
    (rh.session("150ms"), {"emit": "update"}),
    (rh.session("400ms"), {"allowed_lateness": "100ms"}),
]


@pytest.mark.parametrize(("spec", "kw"), SHAPES, ids=lambda x: repr(x)[:40])
def test_windows_on_disk_give_what_windows_in_memory_give(spec: Any, kw: dict[str, Any]) -> None:
    evs = events(3_000, 300)
    memory = windowed(evs, spec, "memory", **kw)
    assert memory[0] and (memory[1] or "emit" in kw or "allowed_lateness" in kw)
    assert windowed(evs, spec, SMALL, **kw) == memory


class Quiet:
    """A running count per key, and a timer saying when a key has been quiet for 200 ms."""

    def process(self, ctx: Any, event: Any) -> None:
        state = ctx.state or {"n": 0, "sum": 0, "timer": None}
        if state["timer"] is not None:
            ctx.delete_timer(state["timer"])
        state["n"] += 1
        state["sum"] += event["v"]
        state["timer"] = ctx.timestamp + 200
        ctx.register_timer(state["timer"])
        if state["n"] % 5 == 0:
            ctx.state = None  # dropped, starts again
        else:
            ctx.state = state
        ctx.emit({"k": ctx.key, "n": state["n"]})

    def on_timer(self, ctx: Any, timestamp: int) -> None:
        state = ctx.state
        ctx.emit({"k": ctx.key, "quiet": timestamp, "n": None if state is None else state["n"]})


def processed(evs: list[dict[str, Any]], state: Any) -> list[Any]:
    flow = rh.Flow("p", state=state)
    out: list[Any] = []
    flow.source(
        rh.iterable_source(evs, batch_size=64),
        timestamp="t",
        timestamp_unit="ms",
        out_of_orderness=40,
    ).key_by("k").process(Quiet).sink(rh.list_sink(out))
    flow.run()
    return out


def test_keyed_process_on_disk_gives_what_it_gives_in_memory() -> None:
    evs = events(5_000, 300)
    memory = processed(evs, "memory")
    assert any("quiet" in row for row in memory)
    assert processed(evs, SMALL) == memory


raw_events = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 20_000), st.integers(-5, 5)),
    max_size=300,
)


@settings(max_examples=40, deadline=None)
@given(
    raw=raw_events,
    spec=st.sampled_from(
        [tumbling(1_000), rh.sliding(3_000, 1_000), tumbling(250), rh.session(700)]
    ),
    bound=st.sampled_from([0, 500, 5_000]),
)
def test_disk_and_memory_backends_agree_on_any_input(raw: list, spec: Any, bound: int) -> None:
    evs = [{"k": k, "t": t, "v": v} for k, t, v in raw]

    def run(state: Any) -> tuple[list, list]:
        flow = rh.Flow("prop", state=state)
        out: list[Any] = []
        late: list[Any] = []
        w = (
            flow.source(
                rh.iterable_source(evs, batch_size=7),
                timestamp="t",
                timestamp_unit="ms",
                out_of_orderness=bound,
            )
            .key_by("k")
            .window(spec)
        )
        w.aggregate(n=count(), total=sum("v")).sink(rh.list_sink(out))
        w.late().sink(rh.list_sink(late))
        flow.run()
        return out, late

    assert run(SMALL) == run("memory")


def test_the_cache_holds_at_most_cache_keys_with_200_000_keys(tmp_path: Path) -> None:
    """200,000 keys in one window through a cache of 1,000: never more than 1,000 in memory,
    and the window's rows are the in-memory operator's, in the same order."""
    aggs = {"n": count(), "total": sum("v")}
    memory = WindowOperator(tumbling("1h"), aggs)
    disk = WindowOperator(tumbling("1h"), aggs)
    db = StateDB(tmp_path / "state.sqlite", flow="bound", durable=False)
    try:
        table = WindowTable(db, "w", 1_000, lambda s: disk._dump(s, 1), disk._load)
        disk.keep_keys_in(table.keys_of)
        most = 0
        for i in range(200_000):
            event = {"v": i % 7}
            memory.process(i, event, i)
            disk.process(i, event, i)
            if i % 1_000 == 0:
                disk.process(i // 3, event, i)  # an old key again: read back from the file
                memory.process(i // 3, event, i)
                most = max(most, table.cached)
        assert most <= 1_000
        assert disk.state_size == memory.state_size == 200_000
        chunks: list[list[dict[str, Any]]] = []
        rest = disk.advance(MAX_WATERMARK, sink=chunks.append)
        assert len(chunks) > 1  # handed over in chunks, not one list of 200,000 rows
        assert [row for chunk in chunks for row in chunk] + rest == memory.advance(MAX_WATERMARK)
        assert table.cached == 0 and disk.state_size == 0
    finally:
        db.close()
    assert not (tmp_path / "state.sqlite").exists()  # a scratch file goes at close


def test_checkpoint_and_restore_in_one_process(tmp_path: Path) -> None:
    """A run stopped halfway and resumed from its checkpoint (state on disk, in the flow's
    folder) gives what one uninterrupted in-memory run gives: tumbling and session windows,
    a keyed process step with timers, and a join (whose state stays in memory)."""
    evs = events(4_000, 500, spread=20)
    topics = ("tumbling", "sessions", "quiet", "pairs")

    def flow(data_dir: Path, state: Any) -> rh.Flow:
        f = rh.Flow("resume", data_dir=data_dir, state=state, checkpoint_interval="1h")
        events = f.source(
            rh.log_source("in"), timestamp="t", timestamp_unit="ms", out_of_orderness=40
        )
        keyed = events.key_by("k")
        keyed.window(tumbling("500ms")).aggregate(n=count(), total=sum("v")).sink(
            rh.log_sink("tumbling")
        )
        keyed.window(rh.session("300ms")).aggregate(n=count()).sink(rh.log_sink("sessions"))
        keyed.process(Quiet).sink(rh.log_sink("quiet"))
        odd = events.filter(lambda e: e["v"] % 2 == 1).key_by("k")
        even = events.filter(lambda e: e["v"] % 2 == 0).key_by("k")
        odd.join(even, window=tumbling("1s"), combine=lambda a, b: a["v"] + b["v"]).sink(
            rh.log_sink("pairs")
        )
        return f

    def output(data_dir: Path, topic: str) -> list[bytes]:
        with rh.Log(data_dir).reader(topic) as reader:
            return [r.value for r in reader.read()]

    for name in ("memory", "disk"):
        log = rh.Log(tmp_path / name)
        log.create_topic("in", 1)
        with log.producer("in") as producer:
            producer.append([json.dumps(e).encode() for e in evs])
    flow(tmp_path / "memory", "memory").run(stop_after=len(evs))
    flow(tmp_path / "disk", SMALL).run(stop_after=len(evs) // 2)
    assert (tmp_path / "disk" / "flows" / "resume" / "state.sqlite").exists()
    flow(tmp_path / "disk", SMALL).run(stop_after=len(evs) - len(evs) // 2)
    for topic in topics:
        memory = output(tmp_path / "memory", topic)
        assert memory, topic
        if topic == "quiet":  # timers due at the same time: no set order after a restore
            assert sorted(output(tmp_path / "disk", topic)) == sorted(memory)
        else:
            assert output(tmp_path / "disk", topic) == memory, topic
    # the checkpoint says where its keys are: the other backend is refused
    with pytest.raises(CheckpointError, match="state='disk', and this run has state='memory'"):
        flow(tmp_path / "disk", "memory").run(stop_after=1)
    # and the file holds only the latest state: no roll back to an older checkpoint
    with pytest.raises(CheckpointError, match="cannot be rolled back to checkpoint 1"):
        roll_back(str(tmp_path / "disk"), "resume", checkpoint=1)


def test_micro_batch_refuses_disk_state(monkeypatch: pytest.MonkeyPatch) -> None:
    tumbled = rh.Flow("mb", state="disk")
    tumbled.source(
        rh.iterable_source([{"k": 1, "t": 1}]), timestamp="t", timestamp_unit="ms"
    ).key_by("k").window(tumbling("1s")).aggregate(n=count()).sink(rh.list_sink([]))
    monkeypatch.setenv(MODE_ENV, "micro-batch")
    with pytest.raises(FlowDefinitionError, match=r"flow 'mb'.*micro-batch"):
        tumbled.run()


def test_bad_state_options_are_refused() -> None:
    with pytest.raises(FlowDefinitionError, match="state must be"):
        rh.Flow("x", state="rocks")  # type: ignore[arg-type]
    with pytest.raises(FlowDefinitionError, match="cache_keys"):
        rh.disk_state(cache_keys=3)


def test_a_key_table_keeps_at_most_cache_keys_and_reads_back_what_it_wrote(
    tmp_path: Path,
) -> None:
    db = StateDB(tmp_path / "state.sqlite", flow="keys", durable=False)
    try:
        table = KeyTable(db, "p", 1_000)
        for i in range(50_000):
            state = table.get(i % 20_000)  # read, changed in place, written back later
            if state is None:
                table[i % 20_000] = {"n": 1, "tags": [i]}
            else:
                state["n"] += 1
            if i % 7 == 0:
                table[(i, "pair")] = [i]
                del table[(i, "pair")]
            assert table.cached <= 1_000
        assert len(table) == 20_000
        assert [table.get(k)["n"] for k in (0, 9_999, 19_999)] == [3, 3, 2]
        assert table.get((7, "pair")) is None
    finally:
        db.close()


@settings(max_examples=30, deadline=None)
@given(
    ops=st.lists(st.one_of(st.integers(0, 1_000), st.just("pop"), st.just("flush")), max_size=200)
)
def test_a_disk_heap_pops_what_heapq_pops(ops: list[Any]) -> None:
    """Items go to the file past the cache (4 items) and at a flush; pops still come in
    heap order, whichever side holds the smallest."""
    with tempfile.TemporaryDirectory() as folder:
        db = StateDB(Path(folder) / "heap.sqlite", flow="heap", durable=False)
        try:
            heap = DiskHeap(db, "s", "_ends", 2, 4)
            expected: list[tuple[int, int, str]] = []
            for n, op in enumerate(ops):
                if op == "flush":
                    heap.flush()
                elif op == "pop":
                    top = heap.peek()
                    assert top == (expected[0] if expected else None)
                    if expected:
                        assert heap.pop() == heapq.heappop(expected)
                else:
                    item = (op, n, f"k{op % 5}")
                    heap.push(item)
                    heapq.heappush(expected, item)
            while expected:
                assert heap.pop() == heapq.heappop(expected)
            assert heap.peek() is None
        finally:
            db.close()


def test_a_bounded_run_given_no_mode_runs_a_disk_state_flow_stream_first(tmp_path: Path) -> None:
    """A bounded run picks micro-batch for a flow that runs columnar there, but not for one
    with state on disk (micro-batch keeps state in memory)."""
    log = rh.Log(tmp_path)
    log.create_topic("in", 1)
    evs = [{"k": f"k{i % 200}", "t": 1_700_000_000_000 + i * 3, "v": i % 13} for i in range(3_000)]
    with log.producer("in") as producer:
        producer.append([json.dumps(e).encode() for e in evs])

    def run(state: Any) -> tuple[str, list[Any]]:
        flow = rh.Flow("bounded", data_dir=tmp_path, state=state)
        out: list[Any] = []
        flow.source(rh.log_source("in"), timestamp="t", timestamp_unit="ms").key_by("k").window(
            tumbling("500ms")
        ).aggregate(n=count()).sink(rh.list_sink(out))
        summary = flow.run(bounded=True)
        return summary.executor, out

    memory, disk = run("memory"), run(SMALL)
    assert (memory[0], disk[0]) == ("micro-batch", "stream-first")
    assert disk[1] == memory[1]


def test_a_window_over_a_window_on_disk() -> None:
    """The rows of a closing window (read from the file a page at a time) go straight into
    a second disk-backed window, whose cache writes back meanwhile."""
    evs = events(8_000, 600)

    def run(state: Any) -> list[Any]:
        flow = rh.Flow("chain", state=state)
        out: list[Any] = []
        flow.source(
            rh.iterable_source(evs, batch_size=64),
            timestamp="t",
            timestamp_unit="ms",
            out_of_orderness=40,
        ).key_by("k").window(tumbling("500ms")).aggregate(n=count(), total=sum("v")).key_by(
            "n"
        ).window(tumbling("2s")).aggregate(keys=count(), total=sum("total")).sink(rh.list_sink(out))
        flow.run()
        return out

    memory = run("memory")
    assert len(memory) > 20
    assert run(SMALL) == memory
