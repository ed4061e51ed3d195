"""Soak: the crash test of tests/faults/test_chaos.py, longer.

    python scripts/soak_checkpoints.py [--events 2000000] [--kills 100] [--seed 1]

Writes the events, computes the reference output with an uninterrupted run, then runs the
flow in a subprocess, SIGKILLs it ``--kills`` times at random moments (every third one inside
a checkpoint), lets it finish, and compares the committed output. Exits 1 on a difference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.faults import chaos_app, test_chaos  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    test_chaos.N = args.events
    root = Path(tempfile.mkdtemp(prefix="rheos-soak-"))
    reference, chaos = root / "reference", root / "chaos"
    for d in (reference, chaos):
        test_chaos.write_events(d, args.events)
    chaos_app.build(str(reference)).run(stop_after=args.events)
    inside = test_chaos.chaos_run(chaos, args.kills, seed=args.seed)
    bad = [
        topic
        for topic in ("windows", "running")
        if test_chaos.committed(chaos, topic) != test_chaos.committed(reference, topic)
    ]
    print(f"{args.kills} kills ({inside} inside a checkpoint), {args.events:,} events: ", end="")
    print("output differs in " + ", ".join(bad) if bad else "output identical")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
