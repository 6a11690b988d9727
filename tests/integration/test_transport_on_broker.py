"""The transport against a real broker: the end-offset check (the embedded broker under-reports
end offsets), and the seeks the hole guard must see."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from router.admin import ensure_topics
from router.catalog import TopicSpec
from router.embedded import EmbeddedBroker
from router.transport import record_seeks, true_end_offsets

pytestmark = pytest.mark.integration


async def scenario(bootstrap: str) -> tuple[dict[TP, int], dict[TP, int]]:
    topics = [
        TopicSpec("ends.batched", "test", "-", "-"),
        TopicSpec("ends.empty", "test", "-", "-"),
    ]
    await ensure_topics(bootstrap, topics, 1, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for batch in (1, 5, 1, 10, 3):  # 20 records in five batches
            for _ in range(batch):
                await producer.send("ends.batched", b"x")
            await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        reported = await consumer.end_offsets(
            [TopicPartition("ends.batched", 0), TopicPartition("ends.empty", 0)]
        )
    finally:
        await consumer.stop()
    as_tp = {TP(tp.topic, tp.partition): end for tp, end in reported.items()}
    return as_tp, await true_end_offsets(bootstrap, as_tp)


def test_true_end_offsets_reads_past_an_under_reported_end(broker: EmbeddedBroker) -> None:
    reported, true = asyncio.run(scenario(broker.bootstrap_servers))
    assert true[TP("ends.batched", 0)] == 20
    assert true[TP("ends.empty", 0)] == 0
    assert all(true[tp] >= reported[tp] for tp in reported)


async def seeks_noted(bootstrap: str) -> tuple[list[dict[TopicPartition, int]], int]:
    tp = TopicPartition("seeks.noted", 0)
    await ensure_topics(bootstrap, [TopicSpec(tp.topic, "test", "-", "-")], 1, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for _ in range(10):
            await producer.send(tp.topic, b"x")
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id="seeks-noted", enable_auto_commit=False
    )
    noted = record_seeks(consumer)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: 7})
        seen = []
        consumer.seek(tp, 3)
        seen.append(dict(noted))
        noted.clear()
        await consumer.seek_to_committed(tp)  # what Faust's perform_seek calls
        seen.append(dict(noted))
        records = await consumer.getmany(tp, timeout_ms=5000)
        return seen, records[tp][0].offset
    finally:
        await consumer.stop()


def test_every_kind_of_seek_is_noted_for_the_hole_guard(broker: EmbeddedBroker) -> None:
    tp = TopicPartition("seeks.noted", 0)
    seen, first = asyncio.run(seeks_noted(broker.bootstrap_servers))
    assert seen == [{tp: 3}, {tp: 7}]
    assert first == 7, "the noted offset is where the next fetch starts"
