"""The ``rheos`` command line, in process (``main([...])``) and as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
from tests.waiting import wait_until

from rheos.operations.cli import main
from rheos.transport import Log, partition_for_key

Run = tuple[int, str, str]


class RunCli(Protocol):
    def __call__(self, *args: str, stdin: str | bytes = ...) -> Run: ...


T0 = 1_714_564_800_000  # 2024-05-01T12:00:00Z in epoch ms


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def rheos(data: Path, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Run ``rheos --data-dir data ARGS`` in process, with ``stdin`` as the input."""

    def run(*args: str, stdin: str | bytes = b"") -> Run:
        raw = stdin.encode() if isinstance(stdin, str) else stdin
        old = sys.stdin
        sys.stdin = io.TextIOWrapper(io.BytesIO(raw))
        try:
            code = main(["--data-dir", str(data), *args])
        finally:
            sys.stdin = old
        out, err = capsys.readouterr()
        return code, out, err

    return run


def records(data: Path, topic: str) -> list[tuple[int, int, int, bytes | None, bytes]]:
    """(partition, offset, timestamp, key, value) of every record, by partition and offset."""
    log = Log(data)
    try:
        with log.reader(topic) as reader:
            got = [(r.partition, r.offset, r.timestamp, r.key, r.value) for r in reader.read()]
    finally:
        log.close()
    return sorted(got)


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_topic_create_list_describe_delete(rheos: RunCli, data: Path) -> None:
    code, out, _ = rheos("topic", "create", "quotes", "--partitions", "3", "--retention-ms", "7d")
    assert code == 0 and "quotes" in out
    assert Log(data).config("quotes").retention_ms == 7 * 86_400_000
    assert rheos("topic", "create", "quotes", "-p", "3", "--exist-ok")[0] == 0
    code, _, err = rheos("topic", "create", "quotes", "-p", "3")
    assert code == 2 and err.count("\n") == 1 and "'quotes'" in err and "exists" in err

    rheos("produce", "quotes", "--key", "k", stdin='{"k": "a"}\n{"k": "b"}\n')
    code, out, _ = rheos("topic", "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["topic", "partitions", "records", "size"]
    assert out.splitlines()[1].split()[:3] == ["quotes", "3", "2"]
    code, out, _ = rheos("topic", "list", "--json")
    [row] = json.loads(out)
    assert row["name"] == "quotes" and row["partitions"] == 3 and row["records"] == 2
    assert row["size_bytes"] > 0

    code, out, _ = rheos("topic", "describe", "quotes", "--json")
    info = json.loads(out)
    assert info["config"]["partitions"] == 3 and info["records"] == 2
    parts = info["partitions"]
    assert [p["partition"] for p in parts] == [0, 1, 2]
    assert sum(p["next_offset"] for p in parts) == 2
    used = [p for p in parts if p["records"]]
    assert all(p["first_time"].endswith("Z") and p["segments"] == 1 for p in used)
    code, out, _ = rheos("topic", "describe", "quotes")
    assert code == 0 and "retention 7d" in out and "first time UTC" in out

    code, _, err = rheos("topic", "delete", "quotes")  # stdin is no terminal: needs --yes
    assert code == 2 and "--yes" in err
    assert rheos("topic", "delete", "quotes", "--yes")[0] == 0
    assert rheos("topic", "list", "--json")[1].strip() == "[]"


def test_bad_topic_name_and_missing_topic(rheos: RunCli) -> None:
    bad: list[tuple[str, list[str]]] = [
        ("../escape", ["topic", "create", "../escape", "-p", "1"]),
        ("a/b", ["produce", "a/b"]),
        ("..", ["consume", ".."]),
    ]
    for name, args in bad:
        code, out, err = rheos(*args)
        assert code == 2 and out == ""
        assert err.startswith("rheos: error: invalid topic name") and err.count("\n") == 1
        assert repr(name) in err
    for args in (["topic", "describe", "nope"], ["consume", "nope"], ["produce", "nope"]):
        code, _, err = rheos(*args, stdin='{"a": 1}\n')
        assert code == 2 and err.count("\n") == 1
        assert "rheos: error: no such topic" in err and "'nope'" in err
    assert rheos("topic", "delete", "nope", "--yes")[0] == 2


def test_produce_skips_bad_lines_and_keeps_the_valid_ones(rheos: RunCli, data: Path) -> None:
    rheos("topic", "create", "t", "-p", "1")
    text = '{"a": 1}\nnot json\n\n  \n{"a":  2 , "b": [1, 2]}\n{"a": \n"x"\n'
    code, _, err = rheos("produce", "t", stdin=text)
    assert code == 0
    assert "line 2: not valid JSON" in err and "line 6: not valid JSON" in err
    assert "line 3" not in err and "line 4" not in err and "line 7" not in err
    assert "wrote 3 records" in err and "skipped 2 bad lines" in err
    assert [r[4] for r in records(data, "t")] == [b'{"a":1}', b'{"a":2,"b":[1,2]}', b'"x"']


def test_produce_strict_stops_but_keeps_what_came_before(rheos: RunCli, data: Path) -> None:
    rheos("topic", "create", "t", "-p", "2")
    text = "".join(f'{{"n": {i}}}\n' for i in range(25_000)) + "{oops\n" + '{"n": -1}\n'
    code, _, err = rheos("produce", "t", "--strict", stdin=text)
    assert code == 1
    assert "error: line 25001: not valid JSON" in err and "wrote 25000 records" in err
    values = sorted(json.loads(r[4])["n"] for r in records(data, "t"))
    assert values == list(range(25_000))


def test_produce_key_and_timestamp(rheos: RunCli, data: Path) -> None:
    rheos("topic", "create", "t", "-p", "4")
    rows = [
        {"sym": "ACME", "ts": 1_714_564_800_123},  # epoch ms
        {"sym": "XYZ", "ts": 1_714_564_800},  # epoch seconds
        {"sym": "QQQ", "ts": 1_714_564_800.5},  # fractional seconds
        {"sym": "ACME", "ts": "2024-05-01T12:00:00Z"},  # ISO-8601
        {"sym": 42, "ts": "2024-05-01T12:00:00"},  # naive: UTC; non-string key: JSON text
        {"sym": "NOPE", "ts": "yesterday"},  # unreadable time: skipped
        {"ts": 1},  # no key field: skipped
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    code, _, err = rheos("produce", "t", "--key", "sym", "--timestamp", "ts", stdin=text)
    assert code == 0 and "wrote 5 records" in err
    assert "line 6: timestamp 'yesterday'" in err and "line 7: no field 'sym'" in err
    noon = int(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp() * 1000)
    got = {(json.loads(v)["sym"], ts): (p, k) for p, _, ts, k, v in records(data, "t")}
    assert set(got) == {
        ("ACME", noon + 123),
        ("XYZ", noon),
        ("QQQ", noon + 500),
        ("ACME", noon),
        (42, noon),
    }
    for (sym, _), (partition, key) in got.items():
        assert key == str(sym).encode()
        assert partition == partition_for_key(key, 4)

    code, _, err = rheos("produce", "t", "--strict", "--timestamp", "ts", stdin='{"ts": "x"}\n')
    assert code == 1 and "line 1: timestamp 'x'" in err


def test_produce_raw_partition_file_and_create(rheos: RunCli, data: Path, tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"plain text\n{not json}\r\n\n  spaced  \n")
    code, _, err = rheos(
        "produce",
        "new",
        "--raw",
        "--file",
        str(path),
        "--create-partitions",
        "3",
        "--partition",
        "2",
    )
    assert code == 0 and "wrote 3 records" in err
    assert Log(data).partitions("new") == 3
    got = records(data, "new")
    assert [(p, v) for p, _, _, _, v in got] == [
        (2, b"plain text"),
        (2, b"{not json}"),
        (2, b"  spaced  "),
    ]
    code, _, err = rheos("produce", "new", "--file", str(tmp_path / "missing"))
    assert code == 2 and "missing" in err


@pytest.fixture
def quotes(rheos: RunCli, data: Path) -> Path:
    """Topic ``q``, 2 partitions, 10 records per partition, timestamps T0 + 1000 * n ms."""
    rheos("topic", "create", "q", "-p", "2")
    text = "".join(json.dumps({"n": n, "ts": T0 + 1000 * n}) + "\n" for n in range(20))
    rheos("produce", "q", "--timestamp", "ts", stdin=text)  # round-robin: n % 2
    return data


def test_consume_from_beginning_end_offset_time(rheos: RunCli, quotes: Path) -> None:
    code, out, _ = rheos("consume", "q")
    got = lines(out)
    assert code == 0 and len(got) == 20
    assert set(got[0]) == {"partition", "offset", "timestamp", "key", "value"}
    assert sorted(r["value"]["n"] for r in got) == list(range(20))
    assert all(r["timestamp"] == T0 + 1000 * r["value"]["n"] for r in got)
    assert all(r["key"] is None for r in got)

    assert rheos("consume", "q", "--from", "end")[1] == ""
    got = lines(rheos("consume", "q", "--from", "8")[1])
    assert sorted((r["partition"], r["offset"]) for r in got) == [(0, 8), (0, 9), (1, 8), (1, 9)]
    assert rheos("consume", "q", "--from", "99")[1] == ""  # past the end: the end
    when = datetime.fromtimestamp(T0 / 1000 + 15, tz=UTC).isoformat()
    got = lines(rheos("consume", "q", "--from", when)[1])
    assert sorted(r["value"]["n"] for r in got) == [15, 16, 17, 18, 19]
    code, _, err = rheos("consume", "q", "--from", "soon")
    assert code == 2 and "--from" in err and "ISO-8601" in err


def test_consume_partition_and_limit(rheos: RunCli, quotes: Path) -> None:
    got = lines(rheos("consume", "q", "--partition", "1")[1])
    assert [r["offset"] for r in got] == list(range(10)) and {r["partition"] for r in got} == {1}
    got = lines(rheos("consume", "q", "--partition", "0", "-n", "3", "--from", "2")[1])
    assert [(r["partition"], r["offset"]) for r in got] == [(0, 2), (0, 3), (0, 4)]
    assert len(lines(rheos("consume", "q", "--limit", "7")[1])) == 7
    code, _, err = rheos("consume", "q", "--partition", "5")
    assert code == 2 and "no partition 5" in err


def test_consume_group_resumes_where_it_stopped(rheos: RunCli, quotes: Path) -> None:
    first = lines(rheos("consume", "q", "--group", "g", "--limit", "6")[1])
    second = lines(rheos("consume", "q", "--group", "g")[1])
    third = lines(rheos("consume", "q", "--group", "g")[1])
    seen = [(r["partition"], r["offset"]) for r in first + second]
    assert len(first) == 6 and len(second) == 14 and third == []
    assert sorted(seen) == sorted({*seen}) and len(seen) == 20
    log = Log(quotes)
    assert log.groups.committed("g", "q") == {0: 10, 1: 10}
    log.close()
    # Another group is independent; --from applies to partitions it never committed.
    assert len(lines(rheos("consume", "q", "--group", "h", "--from", "end")[1])) == 0
    assert len(lines(rheos("consume", "q", "--group", "h", "--from", "beginning")[1])) == 0
    assert rheos("produce", "q", stdin='{"late": true}\n')[0] == 0
    assert [r["value"] for r in lines(rheos("consume", "q", "--group", "h")[1])] == [{"late": True}]


def test_consume_keys_and_values_that_are_not_json(rheos: RunCli, data: Path) -> None:
    log = Log(data)
    log.create_topic("b")
    with log.producer("b") as p:
        p.append(
            [b'{"a":\n 1}', b"plain", b"\xff\x00", b"[1,2]"],
            keys=[b"k", b"\xfe", None, "ключ".encode()],
        )
    log.close()
    got = lines(rheos("consume", "b")[1])
    assert got[0]["key"] == "k" and got[0]["value"] == {"a": 1}
    assert got[1]["key_b64"] == "/g==" and "key" not in got[1] and got[1]["value"] == "plain"
    assert got[2]["key"] is None and got[2]["value_b64"] == "/wA=" and "value" not in got[2]
    assert got[3]["key"] == "ключ" and got[3]["value"] == [1, 2]
    assert rheos("consume", "b", "--raw", "--limit", "2")[1] == '{"a":\n 1}\nplain\n'


def test_data_dir_after_the_command_and_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["topic", "create", "t", "-p", "1", "--data-dir", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "topics" / "t" / "topic.json").exists()
    monkeypatch.setenv("RHEOS_DATA_DIR", str(tmp_path / "b"))
    assert main(["topic", "create", "u", "-p", "1"]) == 0
    assert (tmp_path / "b" / "topics" / "u" / "topic.json").exists()
    capsys.readouterr()
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("rheos ")
    assert main([]) == 2
    assert main(["topic", "create", "t"]) == 2  # --partitions is required


# -- real processes ----------------------------------------------------------------------------


RHEOS = [sys.executable, "-m", "rheos"]


def cli(data: Path, *args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*RHEOS, "--data-dir", str(data), *args],
        input=input,
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_subprocess_produce_and_consume(data: Path) -> None:
    assert cli(data, "topic", "create", "s", "--partitions", "2").returncode == 0
    text = b'{"id": 1}\nbroken\n{"id": 2}\n'
    done = cli(data, "produce", "s", "--key", "id", input=text)
    assert done.returncode == 0
    assert b"line 2" in done.stderr and b"wrote 2 records" in done.stderr
    assert b"Traceback" not in done.stderr
    done = cli(data, "consume", "s")
    assert sorted(json.loads(x)["key"] for x in done.stdout.splitlines()) == ["1", "2"]
    done = cli(data, "consume", "missing")
    assert done.returncode == 2
    assert done.stderr == b"rheos: error: no such topic (topic 'missing')\n"


def ends(data: Path, topic: str) -> dict[int, int]:
    with Log(data).reader(topic) as reader:
        return reader.end_offsets()


def test_subprocess_produce_from_a_live_pipe_appends_as_lines_come(data: Path) -> None:
    """A pipe that pauses has what was read appended at once, not 10,000 lines later."""
    assert cli(data, "topic", "create", "live", "--partitions", "1").returncode == 0
    with subprocess.Popen(
        [*RHEOS, "--data-dir", str(data), "produce", "live", "--key", "n"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdin is not None and proc.stderr is not None
        for n in range(3):
            proc.stdin.write(b'{"n": %d}\n' % n)
            proc.stdin.flush()
            wait_until(lambda n=n: ends(data, "live") == {0: n + 1})
        proc.stdin.write(b'{"n": 3}')  # a last line without its newline
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert b"wrote 4 records" in proc.stderr.read()
    values = [json.loads(r.value)["n"] for r in Log(data).reader("live").read()]
    assert values == [0, 1, 2, 3]


def test_subprocess_consume_into_a_closed_pipe_is_quiet(data: Path) -> None:
    total = 50_000  # far more than a pipe holds
    text = b"".join(b'{"n": %d, "pad": "%s"}\n' % (n, b"x" * 100) for n in range(total))
    assert cli(data, "produce", "p", "--create-partitions", "1", input=text).returncode == 0
    with subprocess.Popen(
        [*RHEOS, "--data-dir", str(data), "consume", "p", "-g", "g"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert json.loads(proc.stdout.readline())["offset"] == 0
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0
        assert proc.stderr.read() == b""
    log = Log(data)
    committed = log.groups.committed("g", "p")[0]
    log.close()
    assert 1 <= committed < total  # what reached the pipe, not the whole topic


def test_subprocess_follow_sees_new_records_and_commits_on_terminate(data: Path) -> None:
    assert cli(data, "topic", "create", "f", "-p", "2").returncode == 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [*RHEOS, "--data-dir", str(data), "consume", "f", "--follow", "--group", "watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert cli(data, "produce", "f", input=b'{"hello": "world"}\n').returncode == 0
            line = json.loads(proc.stdout.readline())
            assert line["value"] == {"hello": "world"}
        finally:
            proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None and proc.stderr.read() == b""
    log = Log(data)
    assert sum(log.groups.committed("watch", "f").values()) == 1
    log.close()
    assert cli(data, "consume", "f", "--group", "watch").stdout == b""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_produce_from_a_file_shows_a_progress_bar_only_on_a_terminal(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(f'{{"n": {i}}}\n' for i in range(3000)))
    assert (
        main(["--data-dir", str(data), "produce", "t", "-f", str(path), "--create-partitions", "1"])
        == 0
    )
    out, err = capsys.readouterr()
    assert out == "" and "wrote 3000 records" in err  # not a terminal: quiet
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["--data-dir", str(data), "produce", "t", "-f", str(path)]) == 0
    assert "produce t" in terminal.getvalue()  # the bar was drawn (then cleared)
    assert "wrote 3000 records" in capsys.readouterr().err
    assert len(records(data, "t")) == 6000
