"""Kafka's default partitioner for keyed records: murmur2 of the key, modulo the partitions.

Using Kafka's exact hash means a key lands on the partition it would land on in a real cluster
with the same partition count, so a lesson's "TXN5001 goes to partition 2" holds on both.
Keyless records are spread by the producer (the sticky partitioner), not here.
"""

from __future__ import annotations

__all__ = ["murmur2", "partition_for_key", "to_positive"]

_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24


def _signed(value: int) -> int:
    value &= _MASK
    return value - (1 << 32) if value & 0x80000000 else value


def murmur2(data: bytes) -> int:
    """The 32-bit murmur2 hash as Kafka's ``Utils.murmur2`` computes it (a signed int)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> _R
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return _signed(h)


def to_positive(value: int) -> int:
    """Kafka's ``Utils.toPositive``: drop the sign bit (not the absolute value)."""
    return value & 0x7FFFFFFF


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's producer picks for ``key`` among ``partitions``."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return to_positive(murmur2(key)) % partitions
