"""The files workers share: membership, task claims, and their summaries added up."""

from __future__ import annotations

from pathlib import Path

from rheos.runtime.summary import RunSummary, SourceStats, StepStats
from rheos.runtime.workers import summaries
from rheos.runtime.workers.membership import Membership, live_workers, worker_statuses


def test_claims_tell_a_takeover_from_a_handover(tmp_path: Path) -> None:
    data = str(tmp_path)
    a, b = Membership(data, "f", id="host-1"), Membership(data, "f", id="host-2")
    a.join()
    b.join()
    assert live_workers(data, "f") == ["host-1", "host-2"]
    assert a.claim(0) == ""  # never run
    assert b.claim(0) is None  # held by a live worker
    a.release(0, clean=True)  # handed back at a checkpoint
    assert b.claim(0) == ""
    assert a.claim(1) == ""
    assert a._lock is not None
    for f in [a._lock, *a._claims.values()]:  # a dies: the system frees its locks
        f.close()
    assert live_workers(data, "f") == ["host-2"]  # and its files are cleared away
    assert [w["id"] for w in worker_statuses(data, "f")] == ["host-2"]
    assert b.claim(1) == "host-1"  # a takeover: the claim names the dead worker
    b.leave({"summary": None})
    assert live_workers(data, "f") == []


def test_summaries_add_up_through_json() -> None:
    one = RunSummary("f", "streaming", events_in=10, events_out=8, late=1, bad_events=2)
    one.dead_lettered = {("map", "UserFunctionError"): 2}
    one.sources["source"] = SourceStats("source", 10, 1, 30)
    one.steps["window"] = StepStats("window", "window", 8, 3, 0, 0, 1, 5)
    two = RunSummary("f", "streaming", events_in=5, events_out=5)
    two.sources["source"] = SourceStats("source", 5, 0, 50)
    total = RunSummary("f", "streaming")
    for part in (one, two):
        summaries.add(total, summaries.from_json(summaries.to_json(part)))
    assert (total.events_in, total.events_out, total.late, total.bad_events) == (15, 13, 1, 2)
    assert total.dead_lettered == {("map", "UserFunctionError"): 2}
    assert total.sources["source"].events == 15
    assert total.sources["source"].max_delay_ms == 50
    assert total.steps["window"].state_size == 5
