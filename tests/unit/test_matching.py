from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.buyers import Buyer
from router.contract import CHANNELS, Channel, Consent
from router.matching import match, rejection_reason
from router.records import IntakeRef, NormalizedContact, NormalizedLead

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def make_lead(
    *,
    vertical: str = "solar",
    channel: Channel = "form",
    state: str | None = "NY",
    postal_code: str | None = "10001",
    consent: Consent | None = None,
    offset: int = 0,
) -> NormalizedLead:
    return NormalizedLead(
        lead_id=f"lead-{offset}",
        event_id=f"evt-{offset}",
        channel=channel,
        vertical=vertical,
        occurred_at=RECEIVED_AT - timedelta(seconds=5),
        received_at=RECEIVED_AT,
        fingerprint=f"fp-{offset}",
        source={"publisher_id": "pub-1"},
        contact=NormalizedContact(email="jane@example.com", state=state, postal_code=postal_code),
        consent=consent,
        intake=IntakeRef(topic="intent.form", partition=0, offset=offset),
    )


def make_buyer(buyer_id: str = "acme", **fields: Any) -> Buyer:
    return Buyer(
        id=buyer_id,
        name=fields.pop("name", buyer_id.title()),
        verticals=fields.pop("verticals", ["solar"]),
        price=fields.pop("price", 10.0),
        **fields,
    )


def reason_for(buyer: Buyer, lead: NormalizedLead, score: int = 50) -> str | None:
    # Both entry points must agree: the single-buyer check and the full match.
    direct = rejection_reason(buyer, lead, score)
    candidates, filtered = match(lead, score, [buyer])
    if direct is None:
        assert [c.buyer_id for c in candidates] == [buyer.id]
        assert filtered == []
    else:
        assert candidates == []
        assert [(v.buyer_id, v.reason) for v in filtered] == [(buyer.id, direct)]
    return direct


def test_accepts_a_lead_every_filter_allows() -> None:
    buyer = make_buyer(
        channels=["form"], states=["NY"], postal_codes=["100"], min_score=50, requires_consent=False
    )
    assert reason_for(buyer, make_lead(), score=50) is None


def test_vertical_filter() -> None:
    assert reason_for(make_buyer(verticals=["mortgage"]), make_lead()) == "filtered:vertical"


def test_channel_filter() -> None:
    buyer = make_buyer(channels=["call"])
    assert reason_for(buyer, make_lead(channel="form")) == "filtered:channel"
    assert reason_for(buyer, make_lead(channel="call")) is None


def test_state_filter() -> None:
    buyer = make_buyer(states=["CA", "TX"])
    assert reason_for(buyer, make_lead(state="NY")) == "filtered:state"
    assert reason_for(buyer, make_lead(state=None)) == "filtered:state"
    assert reason_for(buyer, make_lead(state="TX")) is None
    assert reason_for(make_buyer(states=[]), make_lead(state=None)) is None


def test_postal_code_prefix_filter() -> None:
    buyer = make_buyer(postal_codes=["100"])
    assert reason_for(buyer, make_lead(postal_code="10001")) is None
    assert reason_for(buyer, make_lead(postal_code="11001")) == "filtered:postal_code"
    assert reason_for(buyer, make_lead(postal_code=None)) == "filtered:postal_code"
    exact = make_buyer(postal_codes=["90210", "10001"])
    assert reason_for(exact, make_lead(postal_code="10001")) is None
    assert reason_for(exact, make_lead(postal_code="10002")) == "filtered:postal_code"


def test_min_score_filter() -> None:
    buyer = make_buyer(min_score=60)
    assert reason_for(buyer, make_lead(), score=59) == "filtered:min_score"
    assert reason_for(buyer, make_lead(), score=60) is None


def test_consent_filter() -> None:
    buyer = make_buyer("acme", requires_consent=True)
    assert reason_for(buyer, make_lead(consent=None)) == "consent"
    assert reason_for(buyer, make_lead(consent=Consent(sellers=["other"]))) == "consent"
    assert reason_for(buyer, make_lead(consent=Consent(sellers=[]))) == "consent"
    assert reason_for(buyer, make_lead(consent=Consent(sellers=["*"]))) is None
    assert reason_for(buyer, make_lead(consent=Consent(sellers=["other", "acme"]))) is None
    # A buyer that does not require consent takes a lead without any.
    assert reason_for(make_buyer("acme"), make_lead(consent=None)) is None


def test_ranking_price_then_priority_then_id() -> None:
    buyers = [
        make_buyer("cheap", price=5.0, priority=0),
        make_buyer("zeta", price=20.0, priority=1),
        make_buyer("alpha", price=20.0, priority=1),
        make_buyer("first", price=20.0, priority=0),
        make_buyer("rich", price=30.0, priority=9),
        make_buyer("nope", verticals=["mortgage"], price=99.0),
    ]
    candidates, filtered = match(make_lead(), 50, buyers)
    assert [c.buyer_id for c in candidates] == ["rich", "first", "alpha", "zeta", "cheap"]
    assert [(c.price, c.priority) for c in candidates[:2]] == [(30.0, 9), (20.0, 0)]
    assert [(v.buyer_id, v.reason) for v in filtered] == [("nope", "filtered:vertical")]


BUYER_IDS = ["a", "b", "c", "d", "e", "f", "g", "h"]
VERTICALS = ["solar", "mortgage", "auto"]
STATES = ["NY", "CA", "TX"]


@st.composite
def buyers(draw: st.DrawFn) -> list[Buyer]:
    ids = draw(st.lists(st.sampled_from(BUYER_IDS), unique=True, max_size=len(BUYER_IDS)))
    return [
        make_buyer(
            buyer_id,
            verticals=draw(st.lists(st.sampled_from(VERTICALS), min_size=1, max_size=3)),
            channels=draw(st.lists(st.sampled_from(CHANNELS), unique=True, max_size=4)),
            states=draw(st.lists(st.sampled_from(STATES), unique=True, max_size=2)),
            postal_codes=draw(
                st.lists(st.sampled_from(["1", "10", "100", "10001", "9", "90210"]), max_size=2)
            ),
            min_score=draw(st.integers(0, 100)),
            price=draw(st.sampled_from([1.0, 5.0, 12.5, 20.0])),
            priority=draw(st.integers(0, 3)),
            requires_consent=draw(st.booleans()),
        )
        for buyer_id in ids
    ]


@st.composite
def leads(draw: st.DrawFn) -> NormalizedLead:
    consent = draw(
        st.one_of(
            st.none(),
            st.builds(Consent, sellers=st.lists(st.sampled_from(["*", *BUYER_IDS]), max_size=3)),
        )
    )
    return make_lead(
        vertical=draw(st.sampled_from(VERTICALS)),
        channel=draw(st.sampled_from(CHANNELS)),
        state=draw(st.one_of(st.none(), st.sampled_from(STATES))),
        postal_code=draw(st.one_of(st.none(), st.sampled_from(["10001", "11001", "90210"]))),
        consent=consent,
    )


@settings(max_examples=200, deadline=None)
@given(leads(), st.integers(0, 100), buyers())
def test_match_partitions_buyers_and_ranks(
    lead: NormalizedLead, score: int, pool: list[Buyer]
) -> None:
    candidates, filtered = match(lead, score, pool)
    by_id = {b.id: b for b in pool}

    seen = [c.buyer_id for c in candidates] + [v.buyer_id for v in filtered]
    assert sorted(seen) == sorted(by_id)

    for c in candidates:
        buyer = by_id[c.buyer_id]
        assert rejection_reason(buyer, lead, score) is None
        assert (c.price, c.priority) == (buyer.price, buyer.priority)
        assert lead.vertical in buyer.verticals and lead.channel in buyer.channels
        assert score >= buyer.min_score
    for v in filtered:
        assert v.reason == rejection_reason(by_id[v.buyer_id], lead, score)
        assert v.reason is not None

    keys = [(-c.price, c.priority, c.buyer_id) for c in candidates]
    assert keys == sorted(keys)
    assert [v.buyer_id for v in filtered] == sorted(v.buyer_id for v in filtered)
    # Order of the buyers file does not change the outcome.
    assert match(lead, score, list(reversed(pool))) == (candidates, filtered)
