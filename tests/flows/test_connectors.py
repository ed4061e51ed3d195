"""File sources and sinks, stdout and callback sinks, the run command, doctests."""

from __future__ import annotations

import doctest
import importlib
import io
import json
from pathlib import Path

import pytest

import rheos.connectors.codecs
import rheos.connectors.python
import rheos.durations
import rheos.flows.flow
import rheos.flows.logic
import rheos.flows.steps
import rheos.runtime
import rheos.runtime.runner
from rheos.operations.run_command import run_app, split_target
from rheos.runtime.deadletters import read_dead_letters
from rheos.transport import Log

from ._rh import rh

EVENTS = [
    {"k": "a", "t": 1_000, "v": 1},
    {"k": "b", "t": 2_000, "v": 2},
    {"k": "a", "t": 11_000, "v": 3},
]


def counts(source, **kw) -> list:
    flow = rh.Flow("files")
    out: list = []
    (
        flow.source(source, timestamp="t", timestamp_unit="ms")
        .key_by("k")
        .window(rh.tumbling("10s"))
        .aggregate(total=rh.sum("v"))
        .sink(rh.list_sink(out))
    )
    flow.run(**kw)
    return [(r["key"], r["window_start"], r["total"]) for r in out]


EXPECTED = [("a", 0, 1), ("b", 0, 2), ("a", 10_000, 3)]


def test_jsonl_source_and_sink(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in EVENTS) + "\n\n")
    assert counts(rh.jsonl_source(path)) == EXPECTED
    flow = rh.Flow("copy")
    flow.source(rh.jsonl_source(path)).map(lambda e: e["v"]).sink(rh.jsonl_sink(tmp_path / "o"))
    flow.run()
    assert (tmp_path / "o").read_text() == "1\n2\n3\n"


@pytest.mark.parametrize("bounded", [False, True])
def test_jsonl_bad_line_is_dead_lettered_naming_file_and_line(
    tmp_path: Path, bounded: bool
) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(e) for e in EVENTS]
    path.write_text("\n".join([lines[0], "{oops", "", lines[1], lines[2]]) + "\n")
    flow = rh.Flow("files", data_dir=tmp_path / "data")
    out: list = []
    (
        flow.source(rh.jsonl_source(path), timestamp="t", timestamp_unit="ms")
        .key_by("k")
        .window(rh.tumbling("10s"))
        .aggregate(total=rh.sum("v"))
        .sink(rh.list_sink(out))
    )
    summary = flow.run(bounded=bounded)
    assert [(r["key"], r["window_start"], r["total"]) for r in out] == EXPECTED
    assert summary.dead_lettered == {("source", "EventError"): 1}
    letters = list(read_dead_letters(Log(tmp_path / "data"), "files"))
    assert [(x.source_topic, x.source_offset, x.value) for x in letters] == [
        (str(path), 2, b"{oops")
    ]
    assert "bad.jsonl line 2" in letters[0].message
    # the same file again: the same bad line is already a dead letter, not written twice
    again = flow.run(bounded=bounded)
    assert again.dead_letters_again == 1
    assert len(list(read_dead_letters(Log(tmp_path / "data"), "files"))) == 1


def test_csv_source_infers_numbers(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("k,t,v\n" + "".join(f"{e['k']},{e['t']},{e['v']}\n" for e in EVENTS))
    assert counts(rh.csv_source(path), bounded=True) == EXPECTED


def test_parquet_source(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(EVENTS), tmp_path / "in.parquet")
    assert counts(rh.parquet_source(tmp_path / "in.parquet")) == EXPECTED


def test_stdout_and_callback_sinks() -> None:
    buffer = io.StringIO()
    seen: list = []
    flow = rh.Flow("print")
    s = flow.source(rh.iterable_source([{"a": 1}, {"a": (1, 2)}]))
    s.sink(rh.stdout_sink(buffer))
    s.sink(rh.callback_sink(seen.append))
    flow.run()
    assert buffer.getvalue() == '{"a":1}\n{"a":[1,2]}\n'
    assert seen == [{"a": 1}, {"a": (1, 2)}]


APP = """
import rheos.runtime as rt
from rheos.connectors import iterable_source, jsonl_sink
doubles = rt.Flow("doubles")
doubles.source(iterable_source([1, 2, 3])).map(lambda x: 2 * x).sink(jsonl_sink("out.jsonl"))
"""


def test_run_command_loads_a_file_and_runs_its_flow(tmp_path: Path, capsys) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    assert run_app(str(app), bounded=True, data_dir=str(tmp_path / "data")) == 0
    assert Path("out.jsonl").read_text() == "2\n4\n6\n"
    assert "flow 'doubles' (bounded" in capsys.readouterr().out
    assert run_app(f"{app}:doubles", bounded=False, data_dir=None) == 0
    with pytest.raises(rh.RheosError, match="no flow named 'nope'"):
        run_app(f"{app}:nope", bounded=False, data_dir=None)
    with pytest.raises(rh.RheosError, match="no such file"):
        run_app(str(tmp_path / "missing.py"), bounded=False, data_dir=None)
    assert split_target("C:app.py") == ("C:app.py", None)


@pytest.mark.parametrize(
    "module",
    [
        rheos.connectors.codecs,
        rheos.connectors.python,
        rheos.flows.flow,
        rheos.flows.logic,
        rheos.flows.steps,
        rheos.runtime,
        rheos.runtime.runner,
        importlib.import_module("rheos.operations.run_command"),
    ],
    ids=lambda m: m.__name__,
)
def test_docstring_examples_run(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
