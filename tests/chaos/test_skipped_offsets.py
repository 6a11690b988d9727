"""Eight producers write one partition at once; a consumer must still see every offset.

The embedded broker advances a partition's end before it stores the batch, so a fetch can
return a later producer's batch while an earlier one is still being stored: the reader skips
offsets that are there a moment later. Faust books such a jump as processed and commits past
it. The router's consumer reads a hole again (`router/offset_holes.py`); this scenario drives
the same guard and transport helpers against the real broker, next to an unguarded reader that
counts the holes the broker produced, and fails if the guarded reader misses a single offset.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from router import embedded
from router.offset_holes import HoleGuard, first_hole
from router.transport import consumer_positions, read_holes_again

pytestmark = pytest.mark.slow

PRODUCERS = 8
RECORDS_PER_PRODUCER = 100  # one record per produce request: many small batches
ROUNDS = 60  # a fresh topic each: the broker's fetch slows as a partition's batches pile up
BUDGET_S = 180.0


async def _produce(bootstrap: str, topic: str) -> int:
    producers = [
        AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0) for _ in range(PRODUCERS)
    ]
    for producer in producers:
        await producer.start()

    async def write(producer: AIOKafkaProducer) -> None:
        for _ in range(RECORDS_PER_PRODUCER):
            await producer.send_and_wait(topic, b"x" * 20, partition=0)

    try:
        await asyncio.gather(*(write(p) for p in producers))
    finally:
        for producer in producers:
            await producer.stop()
    return PRODUCERS * RECORDS_PER_PRODUCER


async def _read(
    bootstrap: str, topic: str, total: int, guard: HoleGuard | None, deadline: float
) -> tuple[list[int], int]:
    """Offsets handed on, in order, and how many fetches came back with a hole."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=2, request_timeout_ms=60000
    )
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    handed: list[int] = []
    holes = 0
    try:
        # Until the last offset: an unguarded reader that skipped some never has them all.
        while not (handed and handed[-1] >= total - 1) and time.monotonic() < deadline:
            positions = consumer_positions(consumer, {topic})
            fetched = await consumer.getmany(timeout_ms=200)
            if first_hole(fetched.get(tp, []), positions.get(tp)) is not None:
                holes += 1
            if guard is not None:
                fetched = read_holes_again(consumer, guard, fetched, positions)
            handed += [record.offset for record in fetched.get(tp, [])]
    finally:
        await consumer.stop()
    return handed, holes


async def _round(bootstrap: str, deadline: float) -> dict[str, int]:
    topic = f"holes-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    total = PRODUCERS * RECORDS_PER_PRODUCER
    guard = HoleGuard(frozenset({topic}))
    produced, (guarded, guarded_holes), (plain, plain_holes) = await asyncio.gather(
        _produce(bootstrap, topic),
        _read(bootstrap, topic, total, guard, deadline),
        _read(bootstrap, topic, total, None, deadline),
    )
    assert produced == total
    assert guarded == list(range(total)), "the guarded reader skipped or repeated offsets"
    return {
        "records": total,
        "holes_read_again": guarded_holes,
        "holes_seen_unguarded": plain_holes,
        "skipped_unguarded": total - len(set(plain)),
    }


def test_a_partition_written_by_many_producers_is_read_without_holes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + BUDGET_S
    with embedded.running(tmp_path / "tansu.log") as broker:
        rounds = []
        for _ in range(ROUNDS):
            if time.monotonic() > deadline - 30:
                break
            round_deadline = min(deadline, time.monotonic() + 30)
            rounds.append(asyncio.run(_round(broker.bootstrap_servers, round_deadline)))
    summary = {
        "scenario": "offset_holes",
        "rounds": len(rounds),
        "records": sum(r["records"] for r in rounds),
        "holes_read_again": sum(r["holes_read_again"] for r in rounds),
        "holes_seen_unguarded": sum(r["holes_seen_unguarded"] for r in rounds),
        "skipped_unguarded": sum(r["skipped_unguarded"] for r in rounds),
        "violations": [],
    }
    print(orjson.dumps(summary).decode())
    assert len(rounds) == ROUNDS, "not every round finished within the budget"
