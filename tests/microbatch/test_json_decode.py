"""The bulk JSON decoder of the micro-batch log reader gives exactly what msgspec gives record
by record -- same fields, order, types and values -- or declines (the batch goes per record).

Compared through ``msgspec.json.encode``, which tells ``1`` from ``1.0`` and keeps field order.
"""

from __future__ import annotations

import itertools
from array import array
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rheos.connectors import list_sink, log_source
from rheos.connectors.base import OpenContext
from rheos.flows.expressions import col
from rheos.runtime import Flow
from rheos.runtime.microbatch import jsondecode
from rheos.runtime.microbatch.jsondecode import PROBE, STRUCTS_FROM, JsonDecoder
from rheos.runtime.microbatch.sources import ColumnarLogReader
from rheos.transport import Log, RecordBatch
from rheos.windowing import count, sum, tumbling

encode = msgspec.json.encode


def batch_of(values: list[bytes], base: int = 0, pad: int = 0) -> RecordBatch:
    """A record batch holding ``values`` (after ``pad`` records that the view leaves out)."""
    values = [b"{}"] * pad + values
    ends = array("I", [0])
    for v in values:
        ends.append(ends[-1] + len(v))
    stamps = array("q", range(len(values)))
    return RecordBatch("t", 0, base, 0, stamps, ends, b"".join(values), start=pad)


def split(values: list[bytes], cuts: list[int]) -> list[RecordBatch]:
    """``values`` as consecutive record batches, cut at ``cuts``."""
    points = sorted({c % (len(values) + 1) for c in cuts} | {0, len(values)})
    return [
        batch_of(values[a:b], base=a, pad=a % 3) for a, b in itertools.pairwise(points) if b > a
    ]


def expected(values: list[bytes]) -> list[bytes] | None:
    """msgspec, record by record, re-encoded; None if a record does not decode."""
    try:
        return [encode(msgspec.json.decode(v)) for v in values]
    except msgspec.DecodeError:
        return None


def check(
    values: list[bytes], cuts: list[int] | None = None, primed: list[bytes] | None = None
) -> bool:
    """Decode in bulk; assert it is exact when it does not decline. Returns whether it
    decoded. ``primed``: records decoded first by the same decoder (whose fields and types
    it then reads ``values`` with)."""
    decoder = JsonDecoder()
    if primed:
        decoder.frame([batch_of(primed)])
    frame = decoder.frame(split(values, cuts or []))
    if frame is None:
        return False
    want = expected(values)
    assert want is not None, "decoded in bulk what msgspec rejects"
    assert [encode(r) for r in frame.to_dicts()] == want
    return True


# -- examples ---------------------------------------------------------------------------------

UNIFORM = [encode({"id": i, "ts": 1000 + i, "k": f"k{i % 3}", "v": i / 8}) for i in range(500)]


def test_uniform_records_decode_in_bulk_across_batches() -> None:
    assert check(UNIFORM)
    assert check(UNIFORM, [7, 100, 101, 499])


@pytest.mark.parametrize(
    "late",
    [
        b'{"id":1,"ts":2,"k":"a","v":0.5,"extra":1}',  # a field only a later record has
        b'{"id":1,"ts":2,"k":"a"}',  # a missing field
        b'{"id":1,"ts":2,"k":"a","v":null}',  # null
        b'{"id":1,"ts":2,"k":"a","v":2}',  # an integer in a float field
        b'{"id":1,"ts":2,"k":"a","v":1e400}',  # out of range for a double
        b'{"id":1.5,"ts":2,"k":"a","v":0.5}',  # a float in an int field
        b'{"id":99999999999999999999,"ts":2,"k":"a","v":0.5}',  # beyond int64
        b'{"id":1,"ts":2,"k":3,"v":0.5}',  # a number in a string field
        b'{"id":1,"ts":2,"k":"a","v":[1]}',  # nested
        b'{"id":1,"ts":2,"k":"a","v":NaN}',  # not JSON
        b'{"id":1,"ts":2,"k":"a","v":0.5,"id":3}',  # a duplicate field
        b'{"ts":2,"id":1,"k":"a","v":0.5}',  # another field order
        b'{"id":1,"ts":2,"v":0.5,"k" :"a"}',  # another order, with a space
        b'{"id":1,"ts":2,\n"k":"a","v":0.5}',  # over two lines
        b' {"id":1,"ts":2,"k":"a","v":0.5}',  # leading whitespace
        b'{"id":1,"ts":2,"k":"a","v":0.5}{"id":1,"ts":2,"k":"a","v":0.5}',  # two objects
        b'{"id":1,"ts":2,"k":"a\xff","v":0.5}',  # not UTF-8
        b'{"id":1,"ts":2,"k":"\\ud800","v":0.5}',  # a lone surrogate
        b"[1,2]",
        b"{}",
    ],
)
def test_a_late_record_that_differs_is_never_decoded_wrong(late: bytes) -> None:
    values = [*UNIFORM[:300], late, *UNIFORM[300:]]
    assert not check(values)
    assert not check(values, [300])
    assert not check(values, [301])
    assert not check(values, primed=UNIFORM[:10])  # read with the known fields and types


def test_uniform_records_are_read_with_the_types_of_earlier_ones() -> None:
    decoder = JsonDecoder()
    assert decoder.frame([batch_of(UNIFORM[:100])]) is not None
    assert (decoder.inferred_reads, decoder.known_reads) == (1, 0)
    frame = decoder.frame(split(UNIFORM[100:], [150, 300]))
    assert frame is not None and (decoder.inferred_reads, decoder.known_reads) == (1, 1)
    assert [encode(r) for r in frame.to_dicts()] == expected(UNIFORM[100:])


TWO_FLOATS = [encode({"id": i, "x": i + 0.5, "y": i / 4 + 0.1, "k": "k"}) for i in range(50)]


@pytest.mark.parametrize(
    "late",
    [  # what Polars reads without a word when it is given the fields and types
        b'{"id":1,"x":0.5,"y":0.1,"k":3}',  # a number in a string field: "3"
        b'{"id":1,"x":0.5,"y":0.1,"k":true}',
        b'{"id":1,"x":0.5,"y":0.1,"k":{"q":1}}',
        b'{"id":1,"x":0.5,"y":0.1,"k":"k","z":1}',  # a field it was not asked for
        b'{"id":1,"x":0.5,"z":1,"y":0.1,"k":"k"}',
        b'{"id":1,"x":1e5,"":1,"y":0.1,"k":"k"}',  # hidden where 1e5 is shorter than 100000.0
        b'{"id":1,"x":0.5,"y":1e5,"":1,"k":"k"}',
        b'{"id":1,"x":0.5,"y":0.1,"k":"k","k":"j"}',  # twice
        b'{"id":1,"x":0.5,"y":0.1,"k":"k","id":1}',
        b'{"id":1,"x":5E-1,"y":0.1,"k":"k"}',  # other number formats
        b'{"id":1,"x":0.50,"y":0.1,"k":"k"}',
        b'{"id":1,"x":0.5,"y":1.0E-1,"k":"k"}',
        b'{"id":-0,"x":0.5,"y":0.1,"k":"k"}',
        b'{"id":1,"x":2,"y":0.1,"k":"k"}',  # an integer in a float field
        b'{"id":1,"x":2  ,"y":0.1,"k":"k"}',
        rb'{"id":1,"x":0.5,"y":0.1,"k":"\u006b"}',  # an escape (the same string)
        b'{"id":1, "x":0.5,"y":0.1,"k":"k"}',  # spacing
        b'{"x":0.5,"id":1,"y":0.1,"k":"k"}',  # order
    ],
)
def test_what_polars_reads_loosely_is_never_decoded_wrong(late: bytes) -> None:
    values = [*TWO_FLOATS[:20], late, *TWO_FLOATS[20:]]
    decoder = JsonDecoder()
    assert decoder.frame([batch_of(TWO_FLOATS[:5])]) is not None
    assert decoder.schema is not None  # so these are read with known fields and types first
    frame = decoder.frame([batch_of(values)])
    assert frame is None or [encode(r) for r in frame.to_dicts()] == expected(values)
    assert decoder.frame([batch_of(TWO_FLOATS)]) is not None


def test_timestamp_like_strings_stay_strings() -> None:
    values = [encode({"at": f"2024-01-0{1 + i % 9}T00:00:00", "n": i}) for i in range(50)]
    decoder = JsonDecoder()
    frame = decoder.frame([batch_of(values)])
    assert frame is not None and frame.get_column("at").dtype == frame.schema["at"]
    assert [encode(r) for r in frame.to_dicts()] == expected(values)
    # remembered: the next batch reads the field as a string at once
    frame = decoder.frame([batch_of(values[:5])])
    assert frame is not None and frame.to_dicts()[0]["at"] == "2024-01-01T00:00:00"


def test_whole_floats_written_as_floats_decode_in_bulk() -> None:
    values = [encode({"x": float(i), "y": -0.0}) for i in range(20)]
    assert check(values)


# -- properties -------------------------------------------------------------------------------

SCALARS = {
    "int": st.integers(-(2**70), 2**70),
    "small": st.integers(-5, 5),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "whole": st.integers(-1000, 1000).map(float),
    "str": st.text(max_size=8),
    "stamp": st.sampled_from(["2024-01-01T00:00:00", "2024-01-01", "12:00", "x"]),
    "bool": st.booleans(),
    "none": st.none(),
    "list": st.lists(st.integers(0, 3), max_size=2),
}


@st.composite
def record_sets(draw: st.DrawFn) -> list[bytes]:
    """Mostly uniform records, with a few perturbed ones."""
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "ts"]), min_size=1, unique=True))
    kinds = {n: draw(st.sampled_from(sorted(SCALARS))) for n in names}
    n = draw(st.integers(1, 60))
    out = []
    for _ in range(n):
        record: dict[str, Any] = {name: draw(SCALARS[kinds[name]]) for name in names}
        change = draw(st.sampled_from(["none"] * 12 + ["kind", "drop", "add", "order", "raw"]))
        if change == "kind":
            record[draw(st.sampled_from(names))] = draw(st.one_of(*SCALARS.values()))
        elif change == "drop":
            record.pop(draw(st.sampled_from(names)))
        elif change == "add":
            record["z"] = draw(st.one_of(*SCALARS.values()))
        elif change == "order":
            record = dict(reversed(record.items()))
        raw = encode(record)
        if change == "raw":
            raw = draw(
                st.sampled_from(
                    [
                        b"{",
                        b'{"a":1 }',
                        b'{ "a" : 1}',
                        b"null",
                        raw + b" ",
                        raw[:-1] + b',"":1}',
                        raw.replace(b":", b":1e2,", 1).replace(b"1e2,", b"1e2", 1),
                        raw.replace(b",", b' ,"":0,', 1),
                    ]
                )
            )
        out.append(raw)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=record_sets(), cuts=st.lists(st.integers(0, 100), max_size=3))
def test_bulk_decoding_is_exact_or_declines(values: list[bytes], cuts: list[int]) -> None:
    check(values, cuts)
    check(values, cuts, primed=values[:1])  # read with the first record's fields and types


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1))
def test_floats_read_the_same_as_msgspec(values: list[float]) -> None:
    records = [encode({"x": v + 0.5 if v == int(v) and abs(v) < 2**52 else v}) for v in values]
    check(records)


# -- through a flow: both modes give the same results ----------------------------------------


def write(data_dir: Any, values: list[bytes]) -> None:
    log = Log(data_dir)
    log.create_topic("in", 1, exist_ok=True)
    with log.producer("in") as producer:
        for at in range(0, len(values), 37):  # many small record batches
            producer.append(values[at : at + 37])
    log.close()


def run(data_dir: Any, name: str, windowed: bool, **options: Any) -> list[bytes]:
    out: list[Any] = []
    flow = Flow(name, data_dir=data_dir, checkpoint_interval=None)
    src = flow.source(log_source("in"), timestamp="ts", timestamp_unit="ms")
    if windowed:
        src.key_by("k").window(tumbling(100)).aggregate(n=count(), s=sum("v")).sink(list_sink(out))
    else:
        src.filter(col("v") > 1).with_columns(w=col("v") * 2).sink(list_sink(out))
    flow.run(bounded=True, **options)
    return [encode(r) for r in out]


@pytest.mark.parametrize("windowed", [False, True])
def test_fields_that_appear_or_change_type_later_give_the_same_results(
    tmp_path: Any, windowed: bool
) -> None:
    events: list[dict[str, Any]] = []
    for i in range(3000):
        event: dict[str, Any] = {"ts": i, "k": f"k{i % 4}", "v": (i % 7) + 0.25}
        if i >= 1500:
            event["extra"] = i  # a field only later records have
        if 2000 <= i < 2100:
            event["v"] = i % 7  # integers in a float field
        events.append(event)
    write(tmp_path, [encode(e) for e in events])
    want = run(tmp_path, "sf", windowed, mode="stream-first")
    assert b'"extra":1500' in b"".join(want) or windowed
    for size in [1, 99, 1000, 100_000]:
        got = run(tmp_path, f"mb{size}", windowed, mode="micro-batch", batch_size=size)
        assert got == want, size


# -- the reader: read-ahead is invisible -----------------------------------------------------


def test_read_ahead_commits_and_ends_only_at_what_was_returned(tmp_path: Any) -> None:
    values = [encode({"id": i, "pad": "x" * 40}) for i in range(6000)]
    log = Log(tmp_path)
    log.create_topic("in", 1)
    with log.producer("in") as producer:
        for at in range(0, 6000, 2000):  # record batches over the reader's 64 KB budget
            producer.append(values[at : at + 2000])
    log.close()
    ctx = OpenContext("f", str(tmp_path))
    reader = ColumnarLogReader(log_source("in", group="g"), ctx, max_records=1_500, read_ahead=True)
    parts = reader.poll(1.0)  # 1,500 of the first record batch: the rest is kept
    assert [len(p) for p in parts] == [1_500] and reader.positions() == {0: 1_500}
    parts = reader.poll(1.0)  # its last 500 and 1,000 of the next
    assert [len(p) for p in parts] == [1_500] and reader.positions() == {0: 3_000}
    assert [encode(r) for r in parts[0].get_rows()] == values[1_500:3_000]
    reader.commit()  # more was read ahead, but not returned
    reader.close()
    again = ColumnarLogReader(log_source("in", group="g"), ctx, max_records=10_000)
    rows = [r for p in again.poll(1.0) for r in p.get_rows()]
    assert [encode(r) for r in rows] == values[3_000:]
    again.close()
    ctx.close()


def test_decoding_reuses_its_buffer_without_touching_earlier_frames() -> None:
    decoder = JsonDecoder()
    first = decoder.frame([batch_of(UNIFORM[:200])])
    assert first is not None
    copy = first.clone()
    assert decoder.frame([batch_of(UNIFORM[300:])]) is not None
    assert first.equals(copy)


def test_a_large_first_poll_learns_from_its_first_records_then_reads_them_all_fast() -> None:
    values = [
        encode({"id": i, "ts": 1000 + i, "k": f"k{i % 3}", "v": i / 8}) for i in range(PROBE * 5)
    ]
    decoder = JsonDecoder(split_above=2**62)
    frame = decoder.frame(split(values, [PROBE * 2 + 7]))
    assert frame is not None and [encode(r) for r in frame.to_dicts()] == expected(values)
    assert (decoder.inferred_reads, decoder.known_reads) == (1, 1)  # the probe, then all


@pytest.mark.parametrize("at", [PROBE - 1, PROBE, PROBE * 4])
def test_what_the_first_records_did_not_show_is_still_decoded_exactly(at: int) -> None:
    values = [encode({"id": i, "k": f"k{i % 3}", "v": i / 8}) for i in range(PROBE * 5)]
    values[at] = b'{"id":1,"k":3,"v":0.5}'  # a number where the probe saw strings
    decoder = JsonDecoder(split_above=2**62)
    frame = decoder.frame([batch_of(values)])
    assert frame is None or [encode(r) for r in frame.to_dicts()] == expected(values)
    assert decoder.known_reads == 0


# -- only some fields (rheos.runtime.projection) ---------------------------------------------

ONLY = frozenset({"id", "k", "x"})
WIDE = [
    encode(
        {
            "id": i,
            "meta": {"id": "not this one", "k": [1, None, {"x": "}"}]},
            "k": f"k{i % 3}",
            "none": None,
            "x": i / 4 + 0.5,
            "tags": ["a", "b"],
        }
    )
    for i in range(50)
]


@pytest.fixture(params=["arrow", "msgspec"], autouse=False)
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which reader takes the fields asked for: Arrow's JSON reader (records under
    :data:`STRUCTS_FROM` bytes on average) or msgspec's structs (records over it)."""
    monkeypatch.setattr(jsondecode, "STRUCTS_FROM", 10**9 if request.param == "arrow" else 0)
    return str(request.param)


def projected(values: list[bytes]) -> list[bytes]:
    """msgspec, record by record, only the fields of ``ONLY`` (in name order), re-encoded."""
    out = []
    for v in values:
        event = msgspec.json.decode(v)
        out.append(encode({name: event[name] for name in sorted(ONLY)}))
    return out


def read_only(values: list[bytes], listed: bool = False) -> list[bytes] | None:
    """The fields of ``ONLY`` read in bulk, from a record batch or (``listed``) from a list
    of values, as a Kafka poll gives them."""
    decoder = JsonDecoder()
    decoder.project(ONLY)
    frame = decoder.values_frame(values) if listed else decoder.frame([batch_of(values)])
    if frame is None:
        return None
    assert sorted(frame.columns) == sorted(ONLY)
    return [encode({name: row[name] for name in sorted(ONLY)}) for row in frame.to_dicts()]


def test_only_the_fields_asked_for_are_read_in_bulk_past_nested_values_and_nulls(
    way: str,
) -> None:
    many = WIDE * 500  # (a poll large enough to be cut in pieces by Arrow's way)
    for listed in (False, True):
        assert read_only(WIDE, listed) == projected(WIDE)
        assert read_only(many, listed) == projected(many)


@pytest.mark.parametrize(
    "late",
    [
        b'{"id":1,"k":7,"x":0.5}',  # a number in a string field
        b'{"id":1,"k":true,"x":0.5}',
        b'{"id":1.0,"k":"k","x":0.5}',  # a float in an integer field
        b'{"id":1e2,"k":"k","x":0.5}',
        b'{"id":123456789012345678901234,"k":"k","x":0.5}',  # beyond 64 bits
        b'{"id":1,"k":"k","x":"0.5"}',  # a string in a float field
        b'{"id":1,"k":"k","x":false}',
        b'{"id":1,"k":"k","x":2}',  # an integer in a float field
        b'{"id":1,"k":"k","x":NaN}',  # not JSON
        b'{"id":1,"k":"k","x":0.5,"k":"j"}',  # twice
        b'{"id":1,"x":0.5}',  # missing
        b'{"id":1,"k":null,"x":0.5}',
        b'{"id":1,"k":{"k":"k"},"x":0.5}',  # nested where a scalar is read
        b'{"id":1,"k":"\xff","x":0.5}',  # invalid UTF-8
        b'{"id":1,"k":"k","x":0.5,"z":[1,}',  # invalid where nothing is read
        rb'{"id":1,"k":"\u006b","x":5E-1}',  # the same values, written otherwise
        b'{"x":0.5, "k":"k",  "id":1}',
    ],
)
def test_what_a_read_of_some_fields_takes_is_exact(late: bytes, way: str) -> None:
    values = [*WIDE[:20], late, *WIDE[20:]]
    try:
        want: list[bytes] | None = projected(values)
    except (msgspec.DecodeError, KeyError):
        want = None  # msgspec gives no such record: bulk must decline
    for listed in (False, True):
        got = read_only(values, listed)
        assert got is None or got == want


@pytest.mark.parametrize(
    "odd",
    [
        [b'{"id":1,"k":"k",\n"x":0.5}'],  # a record over two lines
        [b"", b'{"id":1,"k":"k","x":0.5}\n{"id":2,"k":"k","x":0.5}'],  # two in one, one empty
        [b"", b'{"id":1,"k":"k","x":0.5} {"id":2,"k":"k","x":0.5}'],
        [b'{"id":1,"k":"k","x":0.5}{"id":2,"k":"k","x":0.5}'],
        [b" ", b'{"id":1,"k":"k","x":0.5}\r{"id":2,"k":"k","x":0.5}'],
        [b'{"id":1,"k":"k","x":0.5}\r'],
        [b' {"id":1,"k":"k","x":0.5}'],
        [b"{", b'"id":1,"k":"k","x":0.5}'],  # one record cut in two
        [b"{}"],
        [b"[]"],
    ],
)
def test_values_that_are_not_one_object_each_are_never_read_wrong(
    odd: list[bytes], way: str
) -> None:
    """Joined by newlines, these could shift every later record by one (a value holding two
    objects, an empty one) or be cut where they should not."""
    values = [*WIDE[:20], *odd, *WIDE[20:]]
    try:
        want: list[bytes] | None = projected(values)
    except (msgspec.DecodeError, LookupError, TypeError):
        want = None
    for listed in (False, True):
        got = read_only(values, listed)
        assert got is None or got == want


@st.composite
def wide_sets(draw: st.DrawFn) -> list[bytes]:
    """Records holding the fields of ``ONLY`` among others, each of a type kept by most."""
    kinds = {name: draw(st.sampled_from(sorted(SCALARS))) for name in sorted(ONLY)}
    out = []
    for _ in range(draw(st.integers(1, 40))):
        record: dict[str, Any] = {name: draw(SCALARS[kinds[name]]) for name in sorted(ONLY)}
        record["pad"] = {"k": "x" * draw(st.integers(0, 200)), "id": [None, 1.5]}
        change = draw(st.sampled_from(["none"] * 8 + ["kind", "drop", "order", "twice"]))
        if change == "kind":
            record[draw(st.sampled_from(sorted(ONLY)))] = draw(st.one_of(*SCALARS.values()))
        elif change == "drop":
            record.pop(draw(st.sampled_from(sorted(ONLY))))
        elif change == "order":
            record = dict(reversed(record.items()))
        raw = encode(record)
        if change == "twice":
            name = draw(st.sampled_from(sorted(ONLY)))
            raw = raw[:-1] + b"," + encode(name) + b":" + encode(draw(SCALARS["int"])) + b"}"
        out.append(raw)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=wide_sets())
def test_a_read_of_some_fields_is_exact_or_declines(values: list[bytes]) -> None:
    try:
        want: list[bytes] | None = projected(values)
    except KeyError:
        want = None
    for limit in (10**9, 0):  # Arrow's way, msgspec's way
        jsondecode.STRUCTS_FROM = limit
        try:
            for listed in (False, True):
                got = read_only(values, listed)
                assert got is None or got == want, (limit, listed)
        finally:
            jsondecode.STRUCTS_FROM = STRUCTS_FROM


def test_rows_that_make_no_frame_are_filtered_and_extended_from_the_fields_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows with a nested value and nulls (no frame of them all): ``filter`` and
    ``with_columns`` on expressions read a frame of their fields alone (not row by row), and
    give what they give row by row."""
    import numpy as np

    from rheos.flows.expressions import BinOp, WithColumns
    from rheos.flows.steps import OUT, TransformStep
    from rheos.runtime.microbatch.batch import Batch
    from rheos.runtime.microbatch.stateless import run_transform

    rows = [
        {"a": i, "meta": {"x": [i, None]}, "b": None if i % 3 else i / 2, "s": f"s{i}"}
        for i in range(120)
    ]
    batch = Batch(np.arange(120) * 3 + 2, np.arange(120), rows=rows)
    assert batch.columnar() is None
    row_by_row = BinOp.eval_row

    def refused(self: BinOp, event: Any) -> Any:
        raise AssertionError("evaluated row by row")

    monkeypatch.setattr(BinOp, "eval_row", refused)
    keep = TransformStep(1, "keep", ((0, OUT),), "filter", col("a") > 50)
    kept = run_transform("flow", keep, batch)
    assert [encode(r) for r in kept.rows] == [encode(r) for r in rows if r["a"] > 50]
    more = WithColumns({"c": col("a") * 2, "d": col("b") + 1, "a": col("a") - 1})
    extend = TransformStep(2, "extend", ((1, OUT),), "map", more)
    extended = run_transform("flow", extend, kept)
    assert extended.frame is None
    monkeypatch.setattr(BinOp, "eval_row", row_by_row)
    assert [encode(r) for r in extended.rows] == [encode(more(r)) for r in rows if r["a"] > 50]
