from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from router import catalog
from router.buyers import Buyer
from router.dedup import DedupState
from router.matching import match
from router.records import (
    Decision,
    IntakeRef,
    NormalizedContact,
    NormalizedLead,
    Offer,
    UnsoldLead,
    Verdict,
)
from router.scoring import score
from router.screening import screen

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
FINGERPRINT = "fp-jane-solar"


def make_lead(
    n: int = 1,
    *,
    occurred_at: datetime = T0,
    vertical: str = "solar",
    fingerprint: str = FINGERPRINT,
) -> NormalizedLead:
    return NormalizedLead(
        lead_id=f"lead-{n}",
        event_id=f"evt-{n}",
        channel="form",
        vertical=vertical,
        occurred_at=occurred_at,
        received_at=occurred_at + timedelta(seconds=2),
        fingerprint=fingerprint,
        source={"publisher_id": "pub-1"},
        contact=NormalizedContact(
            email="jane@example.com", phone="+14155552671", postal_code="10001", state="NY"
        ),
        intake=IntakeRef(topic="intent.form", partition=0, offset=n),
    )


def now_for(lead: NormalizedLead) -> datetime:
    return lead.received_at + timedelta(milliseconds=250)


BUYERS = [
    Buyer(id="acme", name="Acme", verticals=["solar"], price=10.0, priority=1),
    Buyer(id="bright", name="Bright", verticals=["solar"], price=25.0, priority=5),
    Buyer(id="cheap", name="Cheap", verticals=["solar"], price=25.0, priority=9),
    Buyer(id="mort", name="Mort", verticals=["mortgage"], price=99.0),
    Buyer(id="west", name="West", verticals=["solar"], states=["CA"], price=50.0),
]


def test_first_lead_becomes_one_offer_to_the_top_candidate() -> None:
    lead = make_lead()
    state, emits = screen(lead, {}, BUYERS, WINDOW, now_for(lead))

    assert len(emits) == 1
    (emit,) = emits
    assert emit.topic == catalog.OFFERS
    assert emit.key == "bright"
    offer = emit.value
    assert isinstance(offer, Offer)
    assert offer.lead == lead
    expected = score(lead)
    assert (offer.score, offer.score_reasons) == (expected.value, expected.reasons)
    assert [c.buyer_id for c in offer.candidates] == ["bright", "cheap", "acme"]
    assert offer.position == 0 and offer.sold_to == []
    assert offer.verdicts == [
        Verdict(buyer_id="mort", reason="filtered:vertical"),
        Verdict(buyer_id="west", reason="filtered:state"),
    ]
    assert lead.event_id in state


def test_second_event_from_same_fingerprint_is_duplicate() -> None:
    first = make_lead(1)
    state, _ = screen(first, {}, BUYERS, WINDOW, now_for(first))

    second = make_lead(2, occurred_at=T0 + timedelta(hours=3))
    new_state, emits = screen(second, state, BUYERS, WINDOW, now_for(second))

    assert len(emits) == 1
    (emit,) = emits
    assert emit.topic == catalog.DECISIONS
    assert emit.key == second.event_id
    decision = emit.value
    assert isinstance(decision, Decision)
    assert decision.outcome == "duplicate"
    assert decision.reasons == [f"duplicate_of:{first.event_id}"]
    assert decision.event_id == second.event_id and decision.lead_id == second.lead_id
    assert decision.buyers == [] and decision.price is None
    assert second.event_id not in new_state

    # Replaying the duplicate against the returned state gives the same answer.
    assert screen(second, new_state, BUYERS, WINDOW, now_for(second)) == (new_state, emits)


def test_event_outside_window_is_not_duplicate() -> None:
    first = make_lead(1)
    state, _ = screen(first, {}, BUYERS, WINDOW, now_for(first))
    later = make_lead(2, occurred_at=T0 + WINDOW + timedelta(seconds=1))
    _, emits = screen(later, state, BUYERS, WINDOW, now_for(later))
    assert [e.topic for e in emits] == [catalog.OFFERS]


def test_no_matching_buyer_is_unsold_with_every_verdict() -> None:
    lead = make_lead(vertical="pets")
    now = now_for(lead)
    _, emits = screen(lead, {}, BUYERS, WINDOW, now)

    assert [e.topic for e in emits] == [catalog.UNSOLD, catalog.DECISIONS]
    unsold_emit, decision_emit = emits
    assert unsold_emit.key == lead.lead_id
    assert decision_emit.key == lead.event_id

    expected_verdicts = [Verdict(buyer_id=b.id, reason="filtered:vertical") for b in BUYERS]
    unsold = unsold_emit.value
    assert isinstance(unsold, UnsoldLead)
    assert unsold.lead == lead
    assert unsold.score == score(lead).value
    assert unsold.verdicts == expected_verdicts
    assert unsold.decided_at == now

    decision = decision_emit.value
    assert isinstance(decision, Decision)
    assert decision.outcome == "unsold"
    assert decision.reasons == ["no_matching_buyer"]
    assert decision.considered == expected_verdicts
    assert decision.score == score(lead).value
    assert decision.timings.decided_at == now
    assert decision.timings.pipeline_ms == pytest.approx(250.0)


def test_no_buyers_at_all_is_unsold() -> None:
    lead = make_lead()
    _, emits = screen(lead, {}, [], WINDOW, now_for(lead))
    assert [e.topic for e in emits] == [catalog.UNSOLD, catalog.DECISIONS]
    decision = emits[1].value
    assert isinstance(decision, Decision)
    assert decision.considered == [] and decision.reasons == ["no_matching_buyer"]


@pytest.mark.parametrize("vertical", ["solar", "pets"])
def test_replay_against_returned_state_emits_the_same(vertical: str) -> None:
    lead = make_lead(vertical=vertical)
    now = now_for(lead)
    state: DedupState = {"evt-older": (T0 - WINDOW * 3).isoformat()}
    first_state, first_emits = screen(lead, state, BUYERS, WINDOW, now)
    replay_state, replay_emits = screen(lead, first_state, BUYERS, WINDOW, now)
    assert replay_emits == first_emits
    assert replay_state == first_state
    assert all(e.topic != catalog.DECISIONS or e.value.outcome != "duplicate" for e in first_emits)


def test_offer_matches_matcher_output() -> None:
    lead = make_lead()
    _, emits = screen(lead, {}, BUYERS, WINDOW, now_for(lead))
    offer = emits[0].value
    assert isinstance(offer, Offer)
    assert (offer.candidates, offer.verdicts) == match(lead, score(lead).value, BUYERS)
