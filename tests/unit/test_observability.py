from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from router import metrics, observability
from router.buyers import Buyer, Caps
from router.records import (
    BuyerLead,
    DeadLetter,
    Decision,
    Emit,
    IntakeRef,
    NormalizedContact,
    Timings,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
REF = IntakeRef(topic="intent.form", partition=0, offset=7)
BUYER = Buyer(
    id="acme",
    name="Acme",
    verticals=["mortgage"],
    price=40,
    caps=Caps(hourly=5, daily=20),
    timezone="America/Chicago",
)


def fresh() -> tuple[CollectorRegistry, metrics.Metrics]:
    registry = CollectorRegistry()
    return registry, metrics.create(registry)


def decision(outcome: str, reasons: list[str]) -> Decision:
    return Decision(
        event_id="e1",
        lead_id="l1",
        outcome=outcome,  # type: ignore[arg-type]
        reasons=reasons,
        channel="form",
        intake=REF,
        timings=Timings(decided_at=NOW),
    )


def sold_lead(occurred_at: datetime) -> BuyerLead:
    return BuyerLead(
        lead_id="l1",
        event_id="e1",
        channel="form",
        vertical="mortgage",
        occurred_at=occurred_at,
        received_at=occurred_at,
        fingerprint="f",
        source={"publisher_id": "p"},
        contact=NormalizedContact(phone="+14155552671", email="jo@example.com"),
        intake=REF,
        buyer_id="acme",
        price=40.0,
        score=70,
        sold_at=NOW,
        exclusive=True,
    )


def test_decisions_are_counted_by_outcome_and_reason_code() -> None:
    registry, m = fresh()
    observability.observe(
        m,
        [
            Emit("leads.decisions", "e1", decision("rejected", ["invalid_phone:contact.phone"])),
            Emit("leads.decisions", "e2", decision("sold", ["sold"])),
        ],
        NOW,
    )
    sample = registry.get_sample_value
    labels = {"outcome": "rejected", "reason": "invalid_phone"}
    assert sample("router_decisions_total", labels) == 1.0
    assert sample("router_decisions_total", {"outcome": "sold", "reason": "sold"}) == 1.0


def test_a_sale_counts_revenue_and_end_to_end_latency() -> None:
    registry, m = fresh()
    lead = sold_lead(NOW - timedelta(milliseconds=30))
    observability.observe(m, [Emit("buyer.acme", "l1", lead)], NOW)
    sample = registry.get_sample_value
    assert sample("router_leads_sold_total", {"buyer": "acme"}) == 1.0
    assert sample("router_revenue_dollars_total", {"buyer": "acme"}) == 40.0
    assert sample("router_end_to_end_latency_seconds_bucket", {"le": "0.025"}) == 0.0
    assert sample("router_end_to_end_latency_seconds_bucket", {"le": "0.05"}) == 1.0


def test_a_dead_letter_is_counted_and_logged_without_the_payload(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, m = fresh()
    dead = DeadLetter(
        original_b64="eyJwaG9uZSI6IjU1NSJ9",
        topic="intent.form",
        partition=1,
        offset=9,
        reason="invalid_phone: not a valid phone number 555",
        field="contact.phone",
        event_id="e9",
        rejected_at=NOW,
    )
    with caplog.at_level(logging.WARNING, logger="router.decisions"):
        observability.observe(m, [Emit("leads.rejected", "e9", dead)], NOW)
    assert registry.get_sample_value("router_dead_letters_total", {"reason": "invalid_phone"}) == 1
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.__dict__["event_id"] == "e9" and record.__dict__["reason"] == "invalid_phone"
    assert "555" not in str(record.__dict__) and "original_b64" not in record.__dict__


def test_vertical_labels_are_bounded_by_what_buyers_buy() -> None:
    known = frozenset({"mortgage"})
    assert observability.vertical_label("mortgage", known) == "mortgage"
    assert observability.vertical_label("anything_upstream_invents", known) == metrics.OTHER
    assert observability.vertical_label(None, known) == "unknown"


def test_cap_gauges_show_usage_of_the_buyer_s_current_windows() -> None:
    registry, m = fresh()
    counts = {"day": 2, "hours": {"2026-11-23T09-0600": 1, "2026-11-23T08-0600": 1}}
    table = {"acme|2026-11-23": counts}
    observability.publish_cap_usage(m, [BUYER], table.get, NOW)  # 15:00Z is 09:00 Chicago
    observability.publish_cap_limits(m, [BUYER])
    sample = registry.get_sample_value
    assert sample("router_buyer_cap_used", {"buyer": "acme", "window": "daily"}) == 2
    assert sample("router_buyer_cap_used", {"buyer": "acme", "window": "hourly"}) == 1
    assert sample("router_buyer_cap_limit", {"buyer": "acme", "window": "daily"}) == 20

    # Past the buyer's midnight the gauges read the new day's (empty) window.
    observability.publish_cap_usage(m, [BUYER], table.get, NOW + timedelta(hours=15))
    assert sample("router_buyer_cap_used", {"buyer": "acme", "window": "daily"}) == 0


def test_local_hour_is_the_buyer_s() -> None:
    registry, m = fresh()
    observability.publish_local_hours(m, [BUYER], NOW)
    assert registry.get_sample_value("router_buyer_local_hour", {"buyer": "acme"}) == 9


def test_known_series_exist_at_zero_before_anything_happens() -> None:
    registry, m = fresh()
    observability.initialize_series(m, [BUYER], ["leads.decisions", "buyer.acme"])
    sample = registry.get_sample_value
    assert sample("router_dead_letters_total", {"reason": "invalid_json"}) == 0
    assert sample("router_producer_send_errors_total", {"topic": "buyer.acme"}) == 0
    assert (
        sample("router_decisions_total", {"outcome": "unsold", "reason": "no_matching_buyer"}) == 0
    )
    assert sample("router_leads_sold_total", {"buyer": "acme"}) == 0
