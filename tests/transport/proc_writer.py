"""A writer process for the multi-process tests.

Usage: python proc_writer.py DATA_DIR TOPIC PARTITION COUNT PREFIX

Appends COUNT records ``PREFIX-i`` to PARTITION in batches of varying size, printing
``locked`` after the first append (it holds the partition's writer lock from then on) and
``done`` at the end; then keeps the lock until its stdin closes.
"""

from __future__ import annotations

import sys


def main() -> None:
    from rheos.transport import Log

    data_dir, topic, partition_text, count_text, prefix = sys.argv[1:6]
    partition, count = int(partition_text), int(count_text)
    log = Log(data_dir)
    with log.producer(topic) as producer:
        i = 0
        size = 1
        while i < count:
            n = min(size, count - i)
            producer.append(
                [f"{prefix}-{j}".encode() for j in range(i, i + n)], partition=partition
            )
            if i == 0:
                print("locked", flush=True)
            i += n
            size = size % 37 + 1
        print("done", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
