"""Where Kafka's default partitioner puts a key.

Faust's and aiokafka's producers (and Kafka's Java client) use murmur2 of the key bytes, so a
key's partition is known without asking the broker, as long as the partition count is.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def key_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
