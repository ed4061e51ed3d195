"""``rheos nexmark generate`` and ``rheos nexmark run``."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import rheos as rh
from rheos.nexmark import GeneratorConfig, build, generate
from rheos.operations.cli import main


def test_generate_to_a_file_then_run_each_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    assert (
        main(["nexmark", "generate", "--events", "20000", "--out", str(path), "--seed", "1"]) == 0
    )
    assert "20000 Nexmark events" in capsys.readouterr().err
    config = GeneratorConfig(events=20_000, seed=1)
    assert [msgspec.json.decode(line) for line in path.read_bytes().splitlines()] == list(
        generate(config)
    )
    expected: list[object] = []
    build("q5", rh.iterable_source(generate(config)), rh.list_sink(expected)).run(bounded=True)
    assert expected
    for extra in ([], ["--mode", "micro-batch"], ["--bounded"]):
        code = main(["nexmark", "run", "q5", "--input", str(path), *extra])
        assert code == 0
        out, err = capsys.readouterr()
        assert [msgspec.json.decode(line) for line in out.splitlines()] == expected
        assert "20000 events in" in err and "events/s" in err


def test_generate_one_file_per_kind_then_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "events"
    assert main(["nexmark", "generate", "--events", "20000", "--out-dir", str(folder)]) == 0
    events = list(generate(GeneratorConfig(events=20_000)))
    for kind in ("person", "auction", "bid"):
        lines = (folder / f"{kind}.jsonl").read_bytes().splitlines()
        assert [msgspec.json.decode(x) for x in lines] == [e for e in events if e["kind"] == kind]
    expected: list[dict[str, object]] = []
    build("q3", rh.iterable_source(events), rh.list_sink(expected)).run(bounded=True)
    capsys.readouterr()
    for mode in ("stream-first", "micro-batch"):
        assert main(["nexmark", "run", "q3", "--input-dir", str(folder), "--mode", mode]) == 0
        out = capsys.readouterr().out
        # two sources: the same pairs, in the order the two files are read
        assert sorted(out.splitlines()) == sorted(msgspec.json.encode(e).decode() for e in expected)


def test_generate_to_a_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    args = ["nexmark", "generate", "--events", "1000", "--topic", "nexmark", "--data-dir", data]
    assert main(args) == 0
    events = list(generate(GeneratorConfig(events=1_000)))
    log = rh.Log(data)
    try:
        for kind in ("person", "auction", "bid"):
            records = list(log.reader(f"nexmark.{kind}", start="beginning").read())
            expected = [e for e in events if e["kind"] == kind]
            assert [msgspec.json.decode(r.value) for r in records] == expected
            assert [r.timestamp for r in records] == [e["dateTime"] for e in expected]
    finally:
        log.close()
    capsys.readouterr()
    expected_q8: list[object] = []
    source = rh.iterable_source(events)
    build("q8", source, rh.list_sink(expected_q8), data_dir=data).run(bounded=True)
    run = ["nexmark", "run", "q8", "--topic", "nexmark", "--data-dir", data]
    assert main([*run, "--bounded", "--mode", "micro-batch"]) == 0
    out = capsys.readouterr().out
    assert [msgspec.json.decode(line) for line in out.splitlines()] == expected_q8
    assert main(run) == 2
    assert "--bounded" in capsys.readouterr().err


def test_an_unknown_query_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nexmark", "run", "q99", "--input", "x.jsonl"]) == 2
    assert "invalid choice" in capsys.readouterr().err
