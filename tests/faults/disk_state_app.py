"""The flow of the disk-state crash tests: tumbling and session windows and a keyed
``process`` step with timers, their state on disk with a cache far smaller than the keys.

``python disk_state_app.py DATA_DIR`` runs it (``state="disk"``) until SIGTERM;
:func:`build` with ``state="memory"`` is the reference.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

import rheos as rh
from rheos.connectors.log import LogSource

EVENTS = "events"
N = 8_000
KEYS = 3_000
OUTPUTS = ("windows", "sessions", "quiet")


def write_events(data_dir: Path, n: int = N, seed: int = 5) -> None:
    rnd = random.Random(seed)
    log = rh.Log(data_dir)
    log.create_topic(EVENTS, 1)
    events = [
        msgspec.json.encode(
            {
                "i": i,
                "key": f"k{rnd.randrange(KEYS)}",
                "ts": 1_700_000_000_000 + i * 20 + rnd.randrange(-200, 200),
                "v": rnd.randint(-9, 99),
            }
        )
        for i in range(n)
    ]
    with log.producer(EVENTS) as producer:
        for at in range(0, n, 200):  # a batch is read at a time: checkpoints come between
            producer.append(events[at : at + 200])


def pace(event: Any) -> None:
    """Slow the run down enough for a test to kill it mid-stream (about 2.5 s in all)."""
    if event["i"] % 100 == 0:
        time.sleep(0.03)


class Quiet:
    """Counts a key's events; says so once the key has been quiet for 3 s of event time."""

    def process(self, ctx: Any, event: Any) -> None:
        state = ctx.state or {"n": 0, "timer": None}
        if state["timer"] is not None:
            ctx.delete_timer(state["timer"])
        state["n"] += 1
        state["timer"] = ctx.timestamp + 3_000
        ctx.register_timer(state["timer"])
        ctx.state = state

    def on_timer(self, ctx: Any, timestamp: int) -> None:
        ctx.emit({"key": ctx.key, "n": ctx.state["n"], "at": timestamp})
        ctx.state = None


def build(data_dir: str, state: Any = "disk", *, paced: bool = True) -> rh.Flow:
    if state == "disk":
        state = rh.disk_state(cache_keys=64)
    flow = rh.Flow("disk", data_dir=data_dir, checkpoint_interval="0.05s", state=state)
    # 200 records a poll: checkpoints come between polls
    source = LogSource(EVENTS, max_records=200)
    events = flow.source(source, timestamp="ts", timestamp_unit="ms", out_of_orderness="300ms")
    if paced:
        events = events.inspect(pace)
    keyed = events.key_by("key")
    keyed.window(rh.tumbling("2s")).aggregate(
        n=rh.count(), total=rh.sum("v"), top=rh.max("v")
    ).sink(rh.log_sink("windows"))
    keyed.window(rh.session("1500ms")).aggregate(n=rh.count(), total=rh.sum("v")).sink(
        rh.log_sink("sessions")
    )
    keyed.process(Quiet).sink(rh.log_sink("quiet"))
    return flow


if __name__ == "__main__":
    build(sys.argv[1]).run()  # until SIGTERM
