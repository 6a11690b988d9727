from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from router import metrics, observability
from router.accounting import Counts
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


CAPPED = BUYER.model_copy(
    update={
        "caps": Caps(hourly=5, daily=20, weekly=50, daily_budget=500.0, concurrent_calls=3),
    }
)
UNCAPPED = Buyer(id="free", name="Free", verticals=["mortgage"], price=40)
ALL_WINDOWS = (
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "daily_budget",
    "monthly_budget",
    "concurrent_calls",
)


def counts(sold: int, spend: float, returned: int = 0) -> Counts:
    return Counts(sold=sold, spend=spend, returned=returned)


def cap_sample(registry: CollectorRegistry, kind: str, buyer: str, window: str) -> float | None:
    name = f"router_buyer_cap_{kind}"
    return registry.get_sample_value(name, {"buyer": buyer, "window": window})


def fresh() -> tuple[CollectorRegistry, metrics.Metrics]:
    registry = CollectorRegistry()
    return registry, metrics.create(registry)


def decision(outcome: str, reasons: list[str]) -> Decision:
    return Decision(
        event_id="e1",
        lead_id="l1",
        outcome=outcome,
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
    (record,) = [r for r in caplog.records if r.name == "router.decisions"]
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
    soon = (NOW + timedelta(minutes=10)).isoformat()
    table = {  # 15:00Z is 09:00 in Chicago, on a Monday of ISO week 48
        "acme|hour|2026-11-23T09-0600": counts(sold=1, spend=40.0),
        "acme|hour|2026-11-23T08-0600": counts(sold=3, spend=120.0),  # the hour before
        "acme|day|2026-11-23": counts(sold=4, spend=160.0, returned=1),
        "acme|week|2026-W48": counts(sold=6, spend=240.0),
        "acme|month|2026-11": counts(sold=9, spend=360.0),
        "acme|calls": {"l1": soon, "l2": soon, "l0": (NOW - timedelta(seconds=1)).isoformat()},
        "acme|lead|l1": {"reason": "sold"},  # ledger entries are not usage
    }
    observability.publish_cap_usage(m, [CAPPED], table.get, NOW)

    used = {w: cap_sample(registry, "used", "acme", w) for w in ALL_WINDOWS}
    assert used == {
        "hourly": 1,
        "daily": 4,
        "weekly": 6,
        "monthly": None,  # not capped: no series
        "daily_budget": 160.0,
        "monthly_budget": None,
        "concurrent_calls": 2,  # the expired slot does not count
    }
    limits = {w: cap_sample(registry, "limit", "acme", w) for w in ALL_WINDOWS}
    assert limits == {
        "hourly": 5,
        "daily": 20,
        "weekly": 50,
        "monthly": None,
        "daily_budget": 500.0,
        "monthly_budget": None,
        "concurrent_calls": 3,
    }

    # Past the buyer's midnight the gauges read the new hour and day (still the same week).
    observability.publish_cap_usage(m, [CAPPED], table.get, NOW + timedelta(hours=15))
    assert cap_sample(registry, "used", "acme", "hourly") == 0
    assert cap_sample(registry, "used", "acme", "daily") == 0
    assert cap_sample(registry, "used", "acme", "daily_budget") == 0
    assert cap_sample(registry, "used", "acme", "weekly") == 6
    assert cap_sample(registry, "used", "acme", "concurrent_calls") == 0  # all expired by then
    assert cap_sample(registry, "limit", "acme", "daily") == 20


def test_an_uncapped_buyer_still_exports_hourly_and_daily_usage() -> None:
    registry, m = fresh()
    table = {
        "free|hour|2026-11-23T10-0500": counts(sold=2, spend=80.0),
        "free|day|2026-11-23": counts(sold=7, spend=280.0),
    }
    observability.publish_cap_usage(m, [UNCAPPED], table.get, NOW)  # 10:00 in New York
    assert cap_sample(registry, "used", "free", "hourly") == 2
    assert cap_sample(registry, "used", "free", "daily") == 7
    for window in ALL_WINDOWS:
        assert cap_sample(registry, "limit", "free", window) is None, window
    for window in ("weekly", "monthly", "daily_budget", "monthly_budget", "concurrent_calls"):
        assert cap_sample(registry, "used", "free", window) is None, window


def test_a_worker_without_the_buyer_s_partition_exports_zero_usage_and_the_limits() -> None:
    registry, m = fresh()
    observability.publish_cap_usage(m, [CAPPED], lambda key: None, NOW)
    for window in ("hourly", "daily", "weekly", "daily_budget", "concurrent_calls"):
        assert cap_sample(registry, "used", "acme", window) == 0, window
    assert cap_sample(registry, "limit", "acme", "hourly") == 5


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
    assert sample("router_revenue_dollars_total", {"buyer": "acme"}) == 0
    assert sample("router_decisions_total", {"outcome": "unsold", "reason": "below_floor"}) == 0
    assert sample("router_decisions_total", {"outcome": "suppressed", "reason": "suppressed"}) == 0
