"""Reading topics back from the beginning, without a consumer group: for the demo, the
CLI and tests (an auditor's view, independent of the router's own state)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def _assigned(bootstrap_servers: str, topics: Iterable[str]) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    await consumer.topics()  # loads cluster metadata so partitions_for_topic answers
    partitions = [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    consumer.assign(partitions)
    if partitions:  # a topic not created yet simply has nothing to read
        await consumer.seek_to_beginning(*partitions)
    return consumer


async def read_all(
    bootstrap_servers: str, topics: Iterable[str], timeout_s: float = 60.0
) -> list[ConsumerRecord]:
    """Every record currently in the topics (up to their end offsets at call time)."""
    deadline = time.monotonic() + timeout_s
    consumer = await _assigned(bootstrap_servers, topics)
    try:
        assignment = consumer.assignment()
        end = await consumer.end_offsets(list(assignment))
        records: list[ConsumerRecord] = []
        pending = {tp for tp, offset in end.items() if offset > 0}
        # Some Kafka-protocol brokers report the start of the last batch as the end offset,
        # so a partition holding one batch reports 0: poll a little past the known ends.
        extra_polls = 2 if len(pending) < len(end) else 0
        while True:
            batch = await consumer.getmany(timeout_ms=300)
            for tp, messages in batch.items():
                records.extend(messages)
                if messages and messages[-1].offset + 1 >= end[tp]:
                    pending.discard(tp)
            if not pending:
                if extra_polls == 0:
                    return records
                extra_polls -= 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions not read to their end: {sorted(pending)}")
    finally:
        await consumer.stop()


async def follow(
    bootstrap_servers: str, topics: Iterable[str], until: float, poll_ms: int = 200
) -> AsyncIterator[list[ConsumerRecord]]:
    """Yield batches from the beginning of the topics until `until` (a monotonic time)."""
    consumer = await _assigned(bootstrap_servers, topics)
    try:
        while time.monotonic() < until:
            batch = await consumer.getmany(timeout_ms=poll_ms)
            yield [record for messages in batch.values() for record in messages]
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
