"""SIGKILL a worker mid-stream, restart it, and audit every output topic."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from conftest import read, wait_for
from test_pipeline import assert_within_caps, decisions_by_key, write_buyers

from router import catalog, codec
from router.loadgen import ProduceReport, produce
from router.records import BuyerLead

pytestmark = pytest.mark.integration

EVENTS = 1500
WARM_UP = 100


def undecided(broker) -> list[str]:  # type: ignore[no-untyped-def]
    """Where each intake event without a decision got to: for diagnosing a loss."""
    decided = {key.decode() for key in decisions_by_key(broker)}
    screened = {orjson.loads(r.value)["event_id"] for r in read(broker, catalog.SCREEN)}
    offered = Counter(
        orjson.loads(r.value)["lead"]["event_id"] for r in read(broker, catalog.OFFERS)
    )
    intake = read(broker, *catalog.INTAKE.values())
    committed = asyncio.run(
        committed_offsets(broker, "router-test", {(r.topic, r.partition) for r in intake})
    )
    story = [f"{len(intake)} intake records"]
    for r in intake:
        try:
            event_id = orjson.loads(r.value).get("event_id")
        except (orjson.JSONDecodeError, AttributeError):
            event_id = None
        key = event_id if isinstance(event_id, str) else f"{r.topic}/{r.partition}/{r.offset}"
        if key not in decided:
            story.append(
                f"{key} at {r.topic}/{r.partition}/{r.offset} (committed "
                f"{committed.get((r.topic, r.partition))}): screened={key in screened} "
                f"offers={offered[key]}"
            )
    return story[:20]


async def committed_offsets(  # type: ignore[no-untyped-def]
    broker, group: str, partitions: set[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(
            group, partitions=[TopicPartition(t, p) for t, p in sorted(partitions)]
        )
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()


def test_sigkill_mid_stream_loses_nothing_and_never_oversells(workers, tmp_path: Path) -> None:
    buyers_file, buyers = write_buyers(tmp_path)
    group = workers(buyers_file)
    first = group.start()
    broker = group.broker

    # Warm up first, so the kill lands while the steady feed is flowing, not during start-up.
    asyncio.run(produce(broker.bootstrap_servers, WARM_UP, rate=0, seed=22))

    def warmed_up() -> tuple[bool, object]:
        count = len(decisions_by_key(broker))
        return count >= WARM_UP, count

    wait_for(warmed_up, timeout=120, interval=0.5)
    reports: list[ProduceReport] = []
    feeder = threading.Thread(
        target=lambda: reports.append(
            asyncio.run(produce(broker.bootstrap_servers, EVENTS - WARM_UP, rate=150, seed=23))
        )
    )
    feeder.start()

    def some_decided() -> tuple[bool, object]:
        count = len(decisions_by_key(broker))
        return count >= WARM_UP + 200, count

    wait_for(some_decided, timeout=120, interval=0.3)
    group.kill(first)
    killed_at = len(decisions_by_key(broker))
    assert killed_at < EVENTS, "the kill must land mid-stream"
    group.start()
    feeder.join(timeout=60)
    assert reports and reports[0].produced == EVENTS - WARM_UP

    def all_decided() -> tuple[bool, object]:
        grouped = decisions_by_key(broker)
        return len(grouped) >= EVENTS, len(grouped)

    try:
        wait_for(all_decided, timeout=240)
    except pytest.fail.Exception:
        pytest.fail(f"events without a decision: {undecided(broker)}")
    grouped = decisions_by_key(broker)

    # Every event has an outcome; a replayed decision repeats the same outcome and buyers.
    assert len(grouped) == EVENTS
    for key, records in grouped.items():
        stories = {(r.outcome, tuple(r.buyers), r.lead_id) for r in records}
        assert len(stories) == 1, (key, stories)

    # No lead reaches two buyers, re-deliveries are identical pairs, caps hold.
    buyer_of: dict[str, set[str]] = defaultdict(set)
    sold: dict[str, list[BuyerLead]] = {}
    for buyer_id in buyers:
        sold[buyer_id] = [
            codec.decode(BuyerLead, r.value) for r in read(broker, catalog.buyer_topic(buyer_id))
        ]
        for lead in sold[buyer_id]:
            buyer_of[lead.lead_id].add(buyer_id)
    assert all(len(owners) == 1 for owners in buyer_of.values())
    assert_within_caps(sold, buyers)
    sold_decisions = {
        (records[0].lead_id, records[0].buyers[0])
        for records in grouped.values()
        if records[0].outcome == "sold"
    }
    delivered = {(lead_id, next(iter(owners))) for lead_id, owners in buyer_of.items()}
    assert delivered == sold_decisions
    redelivered = sum(len(records) - 1 for records in grouped.values())
    print(f"killed after {killed_at} decisions; {redelivered} decisions re-delivered")
