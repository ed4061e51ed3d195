"""A log source decodes a record batch of JSON in one call (its text joined by newlines,
``LogReader._joined``): the chunk -- events, rejects, offsets, record bytes -- is exactly the
one decoding each record gives, whatever the records hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rheos as rh
from rheos.connectors.base import Chunk, OpenContext
from rheos.connectors.log import JOIN_FROM, LogReader
from rheos.transport.format import BatchValues

GOOD = st.builds(
    lambda i, s, x: msgspec.json.encode({"i": i, "s": s, "x": x}),
    st.integers(-(2**70), 2**70),
    st.text(max_size=8),
    st.one_of(st.floats(allow_nan=False), st.none(), st.lists(st.integers(), max_size=2)),
)
ODD = st.sampled_from(
    [
        b"",  # not JSON
        b"   ",  # blanks only (a blank line is skipped when lines are decoded together)
        b'{"i": 1,\n "s": "two lines"}',  # valid JSON over two lines
        b'{"i": 1}{"i": 2}',  # two values in one record
        b'{"i": 1}\r',  # trailing whitespace: valid
        b"[1, 2]",  # not an object
        b'{"i": NaN}',
        b'{"s": "\xff"}',  # invalid UTF-8
        b'{"i": 1, "i": 2}',  # a field twice (the last one wins, in both ways)
        b"7",
    ]
)


def chunks(data_dir: Path, values: list[bytes], fields: frozenset[str] | None) -> list[Chunk]:
    log = rh.Log(data_dir)
    log.create_topic("in", 1)
    with log.producer("in") as p:
        p.append(values)
    reader = rh.log_source("in").open(OpenContext("f", str(data_dir), bounded=True))
    assert isinstance(reader, LogReader)
    if fields is not None:
        assert reader.project(fields)
    got = []
    try:
        while not reader.exhausted:
            got.extend(reader.poll(0.0))
    finally:
        reader.close()
    log.close()
    return got


def reference(values: list[bytes], fields: frozenset[str] | None) -> tuple[Any, ...]:
    """Each record decoded alone: the events, their offsets and bytes, the rejects' offsets
    (the values are one record batch; where a record does not decode to the fields read, the
    source decodes the batch's records whole)."""
    whole = msgspec.json.Decoder().decode
    decode = whole if fields is None else msgspec.json.Decoder(_typed(fields)).decode
    for value in values:
        try:
            decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            decode = whole
    events, offsets, raw, rejects = [], [], [], []
    for offset, value in enumerate(values):
        try:
            events.append(decode(value))
        except (msgspec.DecodeError, msgspec.ValidationError):
            rejects.append(offset)
            continue
        offsets.append(offset)
        raw.append(value)
    return events, offsets, raw, rejects


def _typed(fields: frozenset[str]) -> Any:
    return TypedDict("Only", dict.fromkeys(fields, Any), total=False)  # type: ignore[misc]


def flat(got: list[Chunk]) -> tuple[Any, ...]:
    events = [v for c in got for v in c.values]
    offsets = [o for c in got for o in (c.offsets or [])]
    raw = [bytes(r) for c in got for r in (c.raw or [])]
    rejects = [r[0] for c in got for r in (c.rejects or [])]
    return events, offsets, raw, rejects


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    good=st.lists(GOOD, min_size=JOIN_FROM, max_size=3 * JOIN_FROM),
    odd=st.lists(st.tuples(st.integers(0, 10_000), ODD), max_size=3),
    project=st.booleans(),
)
def test_a_batch_decoded_at_once_is_each_record_decoded(
    tmp_path_factory: pytest.TempPathFactory,
    good: list[bytes],
    odd: list[tuple[int, bytes]],
    project: bool,
) -> None:
    values = list(good)
    for at, value in odd:
        values.insert(at % (len(values) + 1), value)
    fields = frozenset({"i", "x"}) if project else None
    got = chunks(tmp_path_factory.mktemp("log"), values, fields)
    assert flat(got) == reference(values, fields)


def test_a_batch_of_good_records_is_decoded_at_once(tmp_path: Path) -> None:
    """The one-call path is taken (its chunk keeps the batch's bytes lazily), and a late or
    bad event's record bytes are the record's."""
    values = [msgspec.json.encode({"i": i, "s": "x" * (i % 5)}) for i in range(500)]
    got = chunks(tmp_path, values, None)
    assert all(isinstance(c.raw, BatchValues) for c in got)
    assert flat(got)[0] == [msgspec.json.decode(v) for v in values]
    raw = got[0].raw
    assert raw is not None
    assert raw[0] == values[0] and raw[-1] == values[len(raw) - 1]
    assert raw[3:6] == values[3:6] and list(raw) == values[: len(raw)]
    with pytest.raises(IndexError):
        raw[len(raw)]


def test_a_record_over_lines_is_read_record_by_record(tmp_path: Path) -> None:
    values = [msgspec.json.encode({"i": i}) for i in range(200)]
    values[50] = b'{"i":\n50}'  # valid JSON, but two lines: the batch is not joined
    got = chunks(tmp_path, values, None)
    assert not any(isinstance(c.raw, BatchValues) for c in got)
    assert flat(got)[0] == [{"i": i} for i in range(200)]


def test_records_that_would_shift_the_lines_are_read_record_by_record(tmp_path: Path) -> None:
    """Two values in one record and a blank record would leave the count of lines right and
    every event after them wrong: neither is joined (a blank record is no line)."""
    values = [msgspec.json.encode({"i": i}) for i in range(200)]
    values[10] = b'{"i": 1}{"i": 2}'  # not one value: a reject
    values[20] = b" "  # blanks only: a reject
    values[30] = b' {"i": 30}'  # valid, starts with a blank: read record by record
    got = chunks(tmp_path, values, None)
    assert flat(got) == reference(values, None)
    assert flat(got)[3] == [10, 20]
