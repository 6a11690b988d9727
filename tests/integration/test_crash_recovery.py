"""SIGKILL a worker mid-stream, restart it, and audit every output topic."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import read, wait_for
from test_pipeline import assert_within_caps, decisions_by_key, write_buyers

from router import catalog, codec
from router.loadgen import ProduceReport, produce
from router.records import BuyerLead

pytestmark = pytest.mark.integration

EVENTS = 1500


def test_sigkill_mid_stream_loses_nothing_and_never_oversells(workers, tmp_path: Path) -> None:
    buyers_file, buyers = write_buyers(tmp_path)
    group = workers(buyers_file)
    first = group.start()
    broker = group.broker

    reports: list[ProduceReport] = []
    feeder = threading.Thread(
        target=lambda: reports.append(
            asyncio.run(produce(broker.bootstrap_servers, EVENTS, rate=150, seed=23))
        )
    )
    feeder.start()

    def some_decided() -> tuple[bool, object]:
        count = len(decisions_by_key(broker))
        return count >= EVENTS // 5, count

    wait_for(some_decided, timeout=120, interval=0.5)
    group.kill(first)
    killed_at = len(decisions_by_key(broker))
    assert killed_at < EVENTS, "the kill must land mid-stream"
    group.start()
    feeder.join(timeout=60)
    assert reports and reports[0].produced == EVENTS

    def all_decided() -> tuple[bool, object]:
        grouped = decisions_by_key(broker)
        return len(grouped) >= EVENTS, len(grouped)

    wait_for(all_decided, timeout=240)
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
