"""The transport's end-offset check, against a broker that under-reports end offsets."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from router.admin import ensure_topics
from router.catalog import TopicSpec
from router.embedded import EmbeddedBroker
from router.transport import true_end_offsets

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
