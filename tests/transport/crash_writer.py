"""A writer process for the crash tests: appends batches forever and prints each
acknowledged append as ``first_offset count run seq`` once ``append`` has returned.

Usage: python crash_writer.py DATA_DIR TOPIC DURABILITY RUN

Every record says who it is, so any record found later can be checked on its own: the key is
``run:seq``, the value is derived from it by :func:`expected_value`, the timestamp is
``run * 1_000_000 + seq``.
"""

from __future__ import annotations

import random
import sys


def expected_value(run: int, seq: int) -> bytes:
    return (b"%d:%d;" % (run, seq)) * (1 + (run * 7919 + seq * 104_729) % 120)


def expected_timestamp(run: int, seq: int) -> int:
    return run * 1_000_000 + seq


def main() -> None:
    from rheos.transport import Log

    data_dir, topic, durability, run_text = sys.argv[1:5]
    run = int(run_text)
    rng = random.Random(run)
    log = Log(data_dir)
    producer = log.producer(topic, durability=durability)
    seq = 0
    while True:
        count = rng.randint(1, 40)
        seqs = range(seq, seq + count)
        [(_, first, n)] = producer.append(
            [expected_value(run, s) for s in seqs],
            keys=[b"%d:%d" % (run, s) for s in seqs],
            timestamps=[expected_timestamp(run, s) for s in seqs],
        )
        sys.stdout.write(f"{first} {n} {run} {seq}\n")
        sys.stdout.flush()
        seq += count


if __name__ == "__main__":
    main()
