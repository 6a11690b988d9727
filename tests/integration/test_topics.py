"""`router topics create` and `router produce` against the embedded broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import orjson
import pytest
from conftest import read

from router import catalog
from router.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration


def router(broker: EmbeddedBroker, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, **env}
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def partition_counts(broker: EmbeddedBroker, topics: list[str]) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    await consumer.start()
    try:
        await consumer.topics()
        return {t: len(consumer.partitions_for_topic(t) or ()) for t in topics}
    finally:
        await consumer.stop()


def test_topics_create_is_idempotent_and_covers_buyers(broker: EmbeddedBroker) -> None:
    first = router(broker, "topics", "create", ROUTER_PARTITIONS="3", ROUTER_APP_ID="topics-t")
    assert first.returncode == 0, first.stderr
    second = router(broker, "topics", "create", ROUTER_PARTITIONS="3", ROUTER_APP_ID="topics-t")
    assert second.returncode == 0, second.stderr

    names = [s.name for s in catalog.catalog("topics-t", ["backstop", "acme-auto"])]
    created = {line.split()[1]: line.split()[0] for line in first.stdout.splitlines()}
    assert set(names) <= set(created)
    assert all(line.startswith("exists") for line in second.stdout.splitlines())
    counts = asyncio.run(partition_counts(broker, names))
    assert set(counts.values()) == {3}, counts


def test_produce_writes_every_channel(broker: EmbeddedBroker) -> None:
    result = router(broker, "produce", "--count", "200", "--rate", "0", "--seed", "5")
    assert result.returncode == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["produced"] == 200
    records = read(broker, *catalog.INTAKE.values())
    assert len(records) >= 200
    assert {r.topic for r in records} == set(catalog.INTAKE.values())


def test_a_co_partitioned_topic_with_another_count_is_refused_before_any_creation(
    fresh_broker: EmbeddedBroker,
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def create_feedback_upstream() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=fresh_broker.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(catalog.FEEDBACK, 3, 1)])
        finally:
            await admin.close()

    asyncio.run(create_feedback_upstream())
    result = router(fresh_broker, "topics", "create", ROUTER_PARTITIONS="2")

    assert result.returncode == 2, result.stdout
    assert f"topic '{catalog.FEEDBACK}' has 3 partitions; the router needs 2" in result.stderr
    counts = asyncio.run(partition_counts(fresh_broker, [catalog.OFFERS]))
    assert counts == {catalog.OFFERS: 0}, "nothing may be created next to a wrong topic"
