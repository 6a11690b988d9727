"""A real worker on the embedded broker, fed a mixed stream; every output read back."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from conftest import read, wait_for

from router import accounting, catalog, codec
from router.buyers import DEFAULT_POLICY, Buyer
from router.config_file import load_buyers
from router.filters import rejection_reason
from router.loadgen import produce
from router.records import BuyerLead, DeadLetter, Decision

pytestmark = pytest.mark.integration

BUYERS_YAML = """
buyers:
  - id: auto-small
    name: Small auto buyer
    verticals: [auto_insurance]
    channels: [form, call, click]
    price: 50
    caps: {daily: 5, weekly: 30}
    timezone: America/Los_Angeles
  - id: auto-east
    name: East coast auto
    verticals: [auto_insurance]
    states: [NY, NJ, PA, FL, GA, MA, VA, NC]
    price: 20
    caps: {hourly: 4}
  - id: mortgage-consent
    name: Mortgage, consent required
    verticals: [mortgage]
    requires_consent: true
    price: 80
    caps: {daily: 10, monthly: 6}
    timezone: America/Chicago
  - id: edu-picky
    name: Education, good leads only
    verticals: [education]
    min_score: 50
    price: 15
    caps: {daily: 8, daily_budget: 60}
  - id: saas-trials
    name: SaaS trials
    verticals: [saas]
    channels: [trial]
    price: 9
"""
# home_services has no buyer at all, so those leads are unsold with no_matching_buyer.

EVENTS = 600


def write_buyers(tmp_path: Path) -> tuple[Path, dict[str, Buyer]]:
    path = tmp_path / "buyers.yaml"
    path.write_text(BUYERS_YAML)
    return path, {b.id: b for b in load_buyers(path)}


def decisions_by_key(broker) -> dict[bytes, list[Decision]]:  # type: ignore[no-untyped-def]
    grouped: dict[bytes, list[Decision]] = defaultdict(list)
    for record in read(broker, catalog.DECISIONS):
        grouped[record.key].append(codec.decode(Decision, record.value))
    return grouped


def assert_within_caps(sold: dict[str, list[BuyerLead]], buyers: dict[str, Buyer]) -> None:
    """Recount every count window and budget from the buyer topics, in the buyer's zone: not
    from the router's own state."""
    for buyer_id, leads in sold.items():
        buyer = buyers[buyer_id]
        distinct = {lead.lead_id: lead for lead in leads}.values()
        counts: dict[str, Counter[str]] = {kind: Counter() for kind in accounting.KINDS}
        spend: dict[str, Counter[str]] = {"day": Counter(), "month": Counter()}
        for lead in distinct:
            wins = accounting.windows(buyer.timezone, lead.occurred_at)._asdict()
            for kind in accounting.KINDS:
                counts[kind][wins[kind]] += 1
            for kind in spend:
                spend[kind][wins[kind]] += lead.price
        for kind, cap in accounting.COUNT_CAPS:
            limit = getattr(buyer.caps, cap)
            if limit is not None and counts[kind]:
                assert max(counts[kind].values()) <= limit, (buyer_id, cap, counts[kind])
        budgets = (("day", buyer.caps.daily_budget), ("month", buyer.caps.monthly_budget))
        for kind, budget in budgets:
            if budget is not None and spend[kind]:
                assert max(spend[kind].values()) <= budget + 1e-6, (buyer_id, kind, spend[kind])


def test_mixed_stream_every_event_gets_one_outcome(workers, tmp_path: Path) -> None:
    buyers_file, buyers = write_buyers(tmp_path)
    group = workers(buyers_file)
    group.start()
    broker = group.broker
    report = asyncio.run(
        produce(broker.bootstrap_servers, EVENTS, rate=0, seed=11, keep_events=True)
    )

    def all_decided() -> tuple[bool, object]:
        grouped = decisions_by_key(broker)
        return len(grouped) >= EVENTS, grouped

    grouped = wait_for(all_decided, timeout=180)
    assert isinstance(grouped, dict)

    # Exactly one decision per intake event, and every produced event id is among them.
    assert len(grouped) == EVENTS
    assert all(len(records) == 1 for records in grouped.values())
    decided_ids = {records[0].event_id for records in grouped.values()}
    # Malformed payloads may carry an id the router cannot read; those are keyed by offset.
    produced_ids = {e.event_id for e in report.events if e.kind in ("valid", "duplicate")}
    assert produced_ids <= decided_ids

    outcomes = Counter(records[0].outcome for records in grouped.values())
    assert set(outcomes) == {"sold", "unsold", "rejected", "duplicate"}, outcomes
    expected_bad = [e for e in report.events if e.kind in ("invalid", "malformed")]
    assert outcomes["rejected"] == len(expected_bad)
    assert outcomes["duplicate"] > 0

    # Every malformed or invalid payload is a dead letter with its original bytes.
    dead = [codec.decode(DeadLetter, r.value) for r in read(broker, catalog.REJECTED)]
    dead_bytes = Counter(base64.b64decode(d.original_b64) for d in dead)
    for event in expected_bad:
        assert dead_bytes[event.payload] >= 1, event.note
    assert all(d.reason and d.topic.startswith("intent.") for d in dead)

    # Buyer topics hold only leads that match that buyer, within its caps.
    sold: dict[str, list[BuyerLead]] = {}
    for buyer_id, buyer in buyers.items():
        records = read(broker, catalog.buyer_topic(buyer_id))
        sold[buyer_id] = [codec.decode(BuyerLead, r.value) for r in records]
        for record, lead in zip(records, sold[buyer_id], strict=True):
            assert record.key == lead.lead_id.encode()
            assert lead.buyer_id == buyer_id
            assert rejection_reason(buyer, lead, lead.score, DEFAULT_POLICY, lead.sold_at) is None
    assert_within_caps(sold, buyers)
    assert sum(len(v) for v in sold.values()) == outcomes["sold"]

    # Caps really were reached, so the assertion above had something to hold back.
    verdicts = Counter(v.reason for records in grouped.values() for v in records[0].considered)
    for reason in ("capped:daily", "capped:hourly", "capped:monthly", "budget"):
        assert verdicts[reason] > 0, verdicts
    unsold_reasons = Counter(
        records[0].reasons[0] for records in grouped.values() if records[0].outcome == "unsold"
    )
    assert unsold_reasons["no_matching_buyer"] > 0, unsold_reasons
    unsold_topic = read(broker, catalog.UNSOLD)
    assert len({r.key for r in unsold_topic}) == outcomes["unsold"]
    assert all(orjson.loads(r.value)["verdicts"] for r in unsold_topic)
