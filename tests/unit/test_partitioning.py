"""A key's partition, as the producer's partitioner picks it."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from router.partitioning import key_partition

pytestmark = pytest.mark.unit


@given(key=st.binary(min_size=1, max_size=64), partitions=st.integers(1, 64))
def test_a_key_lands_where_the_producers_partitioner_puts_it(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert key_partition(key, partitions) == DefaultPartitioner()(key, every, every)
