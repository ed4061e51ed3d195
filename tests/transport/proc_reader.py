"""A reader process for the multi-process tests.

Usage: python proc_reader.py DATA_DIR TOPIC MODE [COUNT]

MODE ``collect``: tail from the beginning until COUNT records arrived (or 30 s without
anything new), then print each as ``partition offset value``.
MODE ``latency``: tail from the end; for each record, whose value is the writer's
``time.monotonic_ns()`` just before its append, print the nanoseconds until it was seen
(CLOCK_MONOTONIC is the same clock in every process). Stops at a record ``stop``.
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    from rheos.transport import Log

    data_dir, topic, mode = sys.argv[1:4]
    log = Log(data_dir)
    reader = log.reader(topic, start="beginning" if mode == "collect" else "end")
    print("ready", flush=True)
    if mode == "collect":
        count = int(sys.argv[4])
        seen = []
        for r in reader.follow(timeout=30):
            seen.append(f"{r.partition} {r.offset} {r.value.decode()}")
            if len(seen) == count:
                break
        print("\n".join(seen), flush=True)
    else:
        for r in reader.follow(timeout=30):
            now = time.monotonic_ns()
            if r.value == b"stop":
                break
            print(now - int(r.value), flush=True)
    reader.close()
    log.close()


if __name__ == "__main__":
    main()
