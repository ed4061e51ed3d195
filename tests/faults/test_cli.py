"""The CLI of fault tolerance: checkpoints, dlq, replay, consume --uncommitted, run flags."""

from __future__ import annotations

from pathlib import Path

import pytest

import rheos as rh
from rheos.operations.cli import main

APP = """
import rheos as rh

flow = rh.Flow("app", checkpoint_interval="20ms")
(flow.source(rh.log_source("in"))
    .map(lambda e: {"n": 100 // e["n"]})
    .sink(rh.log_sink("out")))
"""
FIXED = APP.replace('100 // e["n"]', 'e["n"]')


def setup(tmp_path: Path) -> Path:
    log = rh.Log(tmp_path)
    with log.producer("in", create_partitions=1) as p:
        p.append([b'{"n": 1}', b'{"n": 0}', b'{"n": 4}'])
    app = tmp_path / "app.py"
    app.write_text(APP)
    return app


def test_checkpoints_dlq_and_replay_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RHEOS_DATA_DIR", str(tmp_path))
    app = setup(tmp_path)
    from rheos.operations.run_command import find_flow, load_module

    flow = find_flow(load_module(str(app)), None, str(app))
    flow.run(stop_after=3)
    capsys.readouterr()
    assert main(["checkpoints", "app"]) == 0
    assert "source 0:3" in capsys.readouterr().out
    assert main(["dlq", "app"]) == 0
    listing = capsys.readouterr().out
    assert "map" in listing and "UserFunctionError" in listing and "in/0@1" in listing
    assert main(["dlq", "app", "--show"]) == 0
    assert "ZeroDivisionError" in capsys.readouterr().out
    app.write_text(FIXED)
    assert main(["dlq", f"{app}:flow", "--replay"]) == 0
    capsys.readouterr()
    assert main(["consume", "out"]) == 0
    assert capsys.readouterr().out.count('"n"') == 3  # 100, 25, then the fixed 0
    assert main(["replay", "app", "--checkpoint", "1"]) == 0
    assert "epoch 1" in capsys.readouterr().out
    assert main(["replay", "app", "--latest"]) == 0
    assert "epoch 2" in capsys.readouterr().out
    assert main(["replay", "app", "--latest"]) == 2  # nothing left to fail back from


def test_consume_uncommitted_sees_what_a_checkpoint_has_not_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = rh.Log(tmp_path)
    log.create_topic("t", 1)
    producer = log.producer("t", transactional=True)
    producer.append([b'{"a": 1}'])
    producer.commit()
    producer.append([b'{"a": 2}'])
    producer.flush()
    assert main(["--data-dir", str(tmp_path), "consume", "t"]) == 0
    assert capsys.readouterr().out.count('"a"') == 1
    assert main(["--data-dir", str(tmp_path), "consume", "t", "--uncommitted"]) == 0
    assert capsys.readouterr().out.count('"a"') == 2
    producer.close()


def test_run_takes_a_checkpoint_interval(tmp_path: Path) -> None:
    app = tmp_path / "once.py"
    app.write_text(
        "import rheos as rh\n"
        "flow = rh.Flow('once')\n"
        "flow.source(rh.iterable_source([1, 2])).sink(rh.list_sink([]))\n"
    )
    assert main(["--data-dir", str(tmp_path), "run", str(app), "--checkpoint-interval", "1s"]) == 0
    assert main(["--data-dir", str(tmp_path), "run", str(app), "--checkpoint-interval", "off"]) == 0
    assert main(["--data-dir", str(tmp_path), "run", str(app), "--checkpoint-interval", "x"]) == 2
