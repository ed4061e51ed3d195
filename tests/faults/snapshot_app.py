"""The flow of the forked-snapshot tests: window, process (state and timers) and join state.

``python snapshot_app.py DATA_DIR`` runs it until SIGTERM. The first half of the events
touches keys ``a*`` only, the second half ``b*`` only, with a pause between: a periodic
checkpoint then writes the ``a*`` keys' final state, which no later checkpoint rewrites.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

import rheos as rh

EVENTS = "events"
N = 20_000
KEYS = 200


def write_events(data_dir: Path, n: int = N, seed: int = 3, *, distinct: bool = False) -> None:
    """``n`` events; ``distinct``: a key of its own each (no checkpoint after the one that
    should hold a key's state writes that key again)."""
    rnd = random.Random(seed)
    log = rh.Log(data_dir)
    log.create_topic(EVENTS, 1)
    events = [
        msgspec.json.encode(
            {
                "i": i,
                "key": f"{'a' if i < n // 2 else 'b'}{i if distinct else rnd.randrange(KEYS)}",
                "ts": 1_700_000_000_000 + i * 5,
                "v": rnd.randint(-9, 99),
            }
        )
        for i in range(n)
    ]
    with log.producer(EVENTS) as producer:
        for at in range(0, n, 500):  # a batch is read at a time: checkpoints come between
            producer.append(events[at : at + 500])


def pace(event: Any) -> None:
    """Give periodic checkpoints room: a little sleep now and then, a longer one halfway."""
    if event["i"] == N // 2 - 1:
        time.sleep(0.3)
    elif event["i"] % 500 == 0:
        time.sleep(0.005)


class Quiet:
    """Counts a key's events; says so once the key has been quiet for 2 s of event time."""

    def process(self, ctx: Any, event: Any) -> None:
        state = ctx.state or {"n": 0, "timer": None}
        if state["timer"] is not None:
            ctx.delete_timer(state["timer"])
        state["n"] += 1
        state["timer"] = ctx.timestamp + 2_000
        ctx.register_timer(state["timer"])
        ctx.state = state

    def on_timer(self, ctx: Any, timestamp: int) -> None:
        ctx.emit({"key": ctx.key, "n": ctx.state["n"], "at": timestamp})
        ctx.state = {"n": ctx.state["n"], "timer": None}


def build(data_dir: str, interval: str = "0.05s") -> rh.Flow:
    flow = rh.Flow("snap", data_dir=data_dir, checkpoint_interval=interval)
    events = flow.source(
        rh.log_source(EVENTS), timestamp="ts", timestamp_unit="ms", out_of_orderness="1s"
    ).inspect(pace)
    keyed = events.key_by("key")
    keyed.window(rh.tumbling("1h")).aggregate(n=rh.count(), total=rh.sum("v")).sink(
        rh.log_sink("windows")
    )
    keyed.process(Quiet).sink(rh.log_sink("quiet"))
    evens = events.filter(lambda e: e["v"] % 2 == 0).key_by("key")
    odds = events.filter(lambda e: e["v"] % 2 == 1).key_by("key")
    evens.join(odds, window=rh.tumbling("1h"), combine=lambda a, b: a["i"] + b["i"]).sink(
        rh.log_sink("pairs")
    )
    return flow


if __name__ == "__main__":
    build(sys.argv[1]).run()  # until SIGTERM
