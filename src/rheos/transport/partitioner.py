"""Choosing a partition for a record.

Keys are hashed with murmur2, the same function and seed Kafka's default partitioner uses, so
a key lands on the same partition number here, in every process and run, and in a Kafka topic
with the same partition count. (Python's own ``hash()`` of bytes is salted per process and
would not do.) Records without a key go round-robin.

>>> murmur2(b"foobar")  # the value Kafka's own tests expect
-790332482
>>> murmur2(b"AAPL")
1691292177
>>> partition_for_key(b"AAPL", 4)
1
"""

from __future__ import annotations

from functools import lru_cache

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """32-bit murmur2 of ``data`` as a signed int (Kafka's ``Utils.murmur2``)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    tail = 4 * n4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@lru_cache(maxsize=65_536)
def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (Kafka's ``toPositive(murmur2) % n``)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


__all__ = ["murmur2", "partition_for_key"]
