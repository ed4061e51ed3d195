"""``rheos log check``: every batch read, damage reported with where, nothing skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from rheos.operations.cli import main
from rheos.transport import Log
from rheos.transport.check import check_topic
from rheos.transport.segment import index_path

from .conftest import segment_files


def filled(data: Path) -> Log:
    log = Log(data)
    log.create_topic("t", partitions=2, segment_bytes=8 * 1024)
    with log.producer("t") as p:
        for i in range(200):
            p.append([b"record %d of batch %d " % (j, i) * 4 for j in range(5)], partition=i % 2)
    return log


def run(data: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data), "log", "check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_sound_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = filled(tmp_path)
    result = check_topic(log, "t")
    assert result.ok and not result.findings
    assert result.records == 1_000 and result.segments > 2
    code, out, _ = run(tmp_path, capsys)
    assert code == 0 and "ok" in out


def test_a_flipped_byte_inside_the_log_is_damage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = filled(tmp_path)
    segment = segment_files(log, "t", 1)[0]
    raw = bytearray(segment.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    segment.write_bytes(bytes(raw))
    code, out, err = run(tmp_path, capsys, "t")
    assert code == 1
    assert "at risk" in out
    assert f"damaged: topic 't', partition 1, {segment.name} at byte" in err
    assert "valid batches follow it" in err or "the rest of this segment" in err


def test_a_torn_tail_is_reported_but_is_no_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = filled(tmp_path)
    newest = segment_files(log, "t", 0)[-1]
    with open(newest, "r+b") as f:
        f.truncate(newest.stat().st_size - 7)
    (index_path(segment_files(log, "t", 1)[0])).unlink()
    code, out, err = run(tmp_path, capsys)
    assert code == 0, err
    assert f"torn tail: topic 't', partition 0, {newest.name}" in out
    assert "never acknowledged" in out
    assert "index: topic 't', partition 1" in out


def test_an_unknown_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    filled(tmp_path)
    code, _, err = run(tmp_path, capsys, "nope")
    assert code == 2 and "no such topic" in err
