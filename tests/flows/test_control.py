"""Stopping a streaming run: SIGINT/SIGTERM, timeout, stop_after, stop() from another thread."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ._rh import rh


def log_flow(tmp_path, out: list):
    flow = rh.Flow("ctl", data_dir=tmp_path, checkpoint_interval=None)
    flow.source(rh.log_source("in")).sink(rh.list_sink(out))
    with_topic(tmp_path)
    return flow


def with_topic(tmp_path) -> None:
    from rheos.transport import Log

    log = Log(tmp_path)
    with log.producer("in", create_partitions=1) as p:
        p.append([b"1", b"2", b"3"])
    log.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_the_run_cleanly(tmp_path, sig) -> None:
    out: list = []
    flow = log_flow(tmp_path, out)
    before = signal.getsignal(sig)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), sig))
    timer.start()
    summary = flow.run(timeout=10)
    timer.join()
    assert summary.stopped == "signal"
    assert out == [1, 2, 3] and summary.events_in == 3
    assert signal.getsignal(sig) == before  # handlers are put back


def test_timeout_and_stop_after(tmp_path) -> None:
    out: list = []
    flow = log_flow(tmp_path, out)
    assert flow.run(timeout=0.2).stopped == "timeout"
    out.clear()
    summary = flow.run(stop_after=2)
    assert summary.stopped == "stop_after" and out == [1, 2] and summary.events_in == 2


def test_stop_after_counts_the_events_of_every_source(tmp_path) -> None:
    """Two topics of 100 events, stop_after=150: 150 events run in both modes (micro-batch
    mode counts what it holds for one source against the other's room)."""
    from rheos.transport import Log

    log = Log(tmp_path)
    for topic in ("a", "b"):
        with log.producer(topic, create_partitions=1) as p:
            p.append([b'{"ts": %d}' % i for i in range(100)])
    log.close()
    out: list = []
    flow = rh.Flow("two", data_dir=tmp_path, checkpoint_interval=None)
    a = flow.source(rh.log_source("a"), timestamp="ts", timestamp_unit="ms", name="a")
    b = flow.source(rh.log_source("b"), timestamp="ts", timestamp_unit="ms", name="b")
    a.union(b).sink(rh.list_sink(out))
    summary = flow.run(stop_after=150)
    assert summary.stopped == "stop_after"
    assert summary.events_in == len(out) == 150
    assert sum(s.events for s in summary.sources.values()) == 150


def test_run_in_a_thread_installs_no_signal_handler(tmp_path) -> None:
    out: list = []
    flow = log_flow(tmp_path, out)
    result: list = []
    before = signal.getsignal(signal.SIGINT)
    t = threading.Thread(target=lambda: result.append(flow.run()))
    t.start()
    time.sleep(0.2)
    assert signal.getsignal(signal.SIGINT) == before
    flow.stop()
    t.join(10)
    assert result[0].stopped == "stopped"
    how = "" if result[0].executor == "stream-first" else "micro-batch, "
    assert f"flow 'ctl' (streaming, {how}stopped): 3 in, 3 out" in str(result[0])
