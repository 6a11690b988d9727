from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from msgspec.structs import replace
from test_filters import NOW
from test_filters import make_lead as filters_lead

from router import catalog, market, suppression
from router.buyers import Buyer, BuyersConfig, VerticalPolicy
from router.dedup import DedupState
from router.matching import match, verdicts_of
from router.records import (
    Decision,
    Emit,
    NormalizedLead,
    Offer,
    PublisherQuality,
    UnsoldLead,
    Verdict,
)
from router.scoring import score
from router.screening import screen

pytestmark = pytest.mark.unit

T0 = NOW - timedelta(minutes=5)
WINDOW = timedelta(hours=24)
PHONE = "+12125550100"  # test_filters' lead
EMAIL = "jane@example.com"


def make_lead(n: int = 1, *, occurred_at: datetime = T0, **fields: Any) -> NormalizedLead:
    """test_filters' lead under its own ids, received two seconds after it happened."""
    return replace(
        filters_lead(**fields),
        lead_id=f"lead-{n}",
        event_id=f"evt-{n}",
        occurred_at=occurred_at,
        received_at=occurred_at + timedelta(seconds=2),
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
MARKET = market.of(BUYERS)


def run(
    lead: NormalizedLead, state: DedupState | None = None, where: market.Market = MARKET
) -> tuple[DedupState, list[Emit]]:
    return screen(lead, {} if state is None else state, where, WINDOW, now_for(lead))


def only_decision(emits: list[Emit]) -> Decision:
    assert [e.topic for e in emits] == [catalog.DECISIONS]
    decision = emits[0].value
    assert isinstance(decision, Decision)
    return decision


def unsold_decision(emits: list[Emit]) -> Decision:
    assert [e.topic for e in emits] == [catalog.UNSOLD, catalog.DECISIONS]
    decision = emits[1].value
    assert isinstance(decision, Decision)
    assert decision.outcome == "unsold"
    return decision


# --- offers ------------------------------------------------------------------------------------


def test_first_lead_becomes_one_offer_to_the_top_candidate() -> None:
    lead = make_lead()
    state, emits = run(lead)

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
    assert offer.position == 0
    assert offer.sales == []
    assert (offer.max_buyers, offer.slots_left) == (1, 1)
    assert offer.left_out == {"filtered:vertical": ["mort"], "filtered:state": ["west"]}
    assert offer.verdicts == []  # no candidate asked yet
    assert lead.event_id in state


@pytest.mark.parametrize("max_buyers", [1, 2, 3])
def test_offer_carries_the_verticals_max_buyers_as_its_slots(max_buyers: int) -> None:
    config = BuyersConfig(
        buyers=BUYERS,
        verticals={
            "solar": VerticalPolicy(max_buyers=max_buyers),
            # Another vertical's policy is not this lead's.
            "mortgage": VerticalPolicy(max_buyers=max_buyers + 1),
        },
    )
    _, emits = run(make_lead(), where=market.Market(config))
    offer = emits[0].value
    assert isinstance(offer, Offer)
    assert (offer.max_buyers, offer.slots_left) == (max_buyers, max_buyers)


def test_offer_matches_matcher_output_under_the_verticals_strategy() -> None:
    lead = make_lead()
    config = BuyersConfig(buyers=BUYERS, verticals={"solar": VerticalPolicy(strategy="priority")})
    _, emits = run(lead, where=market.Market(config))
    offer = emits[0].value
    assert isinstance(offer, Offer)
    assert (offer.candidates, verdicts_of(offer.left_out)) == match(
        lead, score(lead).value, config, now_for(lead)
    )
    assert [c.buyer_id for c in offer.candidates] == ["acme", "bright", "cheap"]
    assert emits[0].key == "acme"


# --- duplicates --------------------------------------------------------------------------------


def test_second_event_from_same_fingerprint_is_duplicate() -> None:
    first = make_lead(1)
    state, _ = run(first)

    second = make_lead(2, occurred_at=T0 + timedelta(hours=3))
    new_state, emits = run(second, state)

    decision = only_decision(emits)
    assert emits[0].key == second.event_id
    assert decision.outcome == "duplicate"
    assert decision.reasons == [f"duplicate_of:{first.event_id}"]
    assert decision.event_id == second.event_id and decision.lead_id == second.lead_id
    assert decision.buyers == [] and decision.price is None and decision.sales == []
    assert second.event_id not in new_state

    # Replaying the duplicate against the returned state gives the same answer.
    assert run(second, new_state) == (new_state, emits)


def test_event_outside_window_is_not_duplicate() -> None:
    first = make_lead(1)
    state, _ = run(first)
    later = make_lead(2, occurred_at=T0 + WINDOW + timedelta(seconds=1))
    _, emits = run(later, state)
    assert [e.topic for e in emits] == [catalog.OFFERS]


# --- suppression -------------------------------------------------------------------------------


@pytest.mark.parametrize("opted_out", [PHONE, EMAIL])
def test_an_opted_out_consumer_is_suppressed_not_offered(opted_out: str) -> None:
    asked: list[str] = []

    def suppressed(key: str) -> bool:
        asked.append(key)
        return key == suppression.key(opted_out)

    lead = make_lead()
    state, emits = run(lead, where=market.of(BUYERS, suppressed=suppressed))
    decision = only_decision(emits)
    assert emits[0].key == lead.event_id
    assert decision.outcome == "suppressed"
    assert decision.reasons == ["suppressed"]
    assert decision.buyers == [] and decision.considered == []
    assert suppression.key(opted_out) in asked
    # Only hashes are looked up, never the contact details themselves.
    assert PHONE not in asked and EMAIL not in asked
    # Replays give the same answer.
    assert run(lead, state, market.of(BUYERS, suppressed=suppressed))[1] == emits


def test_email_opt_outs_match_whatever_the_case_of_the_leads_email() -> None:
    lead = replace(make_lead(), contact=replace(make_lead().contact, email="Jane@Example.com"))
    opted_out = market.of(BUYERS, suppressed=lambda k: k == suppression.key(EMAIL))
    assert only_decision(run(lead, where=opted_out)[1]).outcome == "suppressed"


def test_someone_else_opting_out_changes_nothing() -> None:
    lead = make_lead()
    others = market.of(BUYERS, suppressed=lambda k: k == suppression.key("+12125550199"))
    assert run(lead, where=others) == run(lead)


def test_a_duplicate_is_reported_as_duplicate_before_suppression() -> None:
    opted_out = market.of(BUYERS, suppressed=lambda k: k == suppression.key(PHONE))
    first = make_lead(1)
    state, emits = run(first, where=opted_out)
    assert only_decision(emits).outcome == "suppressed"
    second = make_lead(2, occurred_at=T0 + timedelta(minutes=1))
    assert only_decision(run(second, state, opted_out)[1]).outcome == "duplicate"


# --- unsold ------------------------------------------------------------------------------------


def test_no_matching_buyer_is_unsold_with_every_verdict() -> None:
    lead = make_lead(vertical="pets")
    now = now_for(lead)
    _, emits = run(lead)

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

    decision = unsold_decision(emits)
    assert decision.reasons == ["no_matching_buyer"]
    assert decision.considered == expected_verdicts
    assert decision.score == score(lead).value
    assert decision.timings.decided_at == now
    assert decision.timings.pipeline_ms == pytest.approx(250.0)


def test_no_buyers_at_all_is_unsold() -> None:
    decision = unsold_decision(run(make_lead(), where=market.of([]))[1])
    assert decision.considered == [] and decision.reasons == ["no_matching_buyer"]


def test_buyers_priced_below_the_floor_make_it_unsold_below_floor() -> None:
    floored = BuyersConfig(buyers=BUYERS, verticals={"solar": VerticalPolicy(floor_price=30.0)})
    decision = unsold_decision(run(make_lead(), where=market.Market(floored))[1])
    assert decision.reasons == ["below_floor"]
    assert decision.considered == [
        Verdict(buyer_id="acme", reason="below_floor"),
        Verdict(buyer_id="bright", reason="below_floor"),
        Verdict(buyer_id="cheap", reason="below_floor"),
        Verdict(buyer_id="mort", reason="filtered:vertical"),
        Verdict(buyer_id="west", reason="filtered:state"),
    ]
    # A floor some buyers clear still makes an offer, to them only.
    cleared = BuyersConfig(buyers=BUYERS, verticals={"solar": VerticalPolicy(floor_price=20.0)})
    offer = run(make_lead(), where=market.Market(cleared))[1][0].value
    assert isinstance(offer, Offer)
    assert [c.buyer_id for c in offer.candidates] == ["bright", "cheap"]
    assert Verdict(buyer_id="acme", reason="below_floor") in verdicts_of(offer.left_out)


def test_filtered_buyers_alone_are_no_matching_buyer_even_with_a_floor() -> None:
    floored = BuyersConfig(buyers=BUYERS, verticals={"pets": VerticalPolicy(floor_price=30.0)})
    decision = unsold_decision(run(make_lead(vertical="pets"), where=market.Market(floored))[1])
    assert decision.reasons == ["no_matching_buyer"]


@pytest.mark.parametrize("vertical", ["solar", "pets"])
def test_replay_against_returned_state_emits_the_same(vertical: str) -> None:
    lead = make_lead(vertical=vertical)
    state: DedupState = {"evt-older": (T0 - WINDOW * 3).isoformat()}
    first_state, first_emits = run(lead, state)
    replay_state, replay_emits = run(lead, first_state)
    assert replay_emits == first_emits
    assert replay_state == first_state
    decisions = [e.value for e in first_emits if isinstance(e.value, Decision)]
    assert [d.outcome for d in decisions] == ([] if vertical == "solar" else ["unsold"])


# --- publisher quality -------------------------------------------------------------------------


def test_a_publisher_with_many_returns_lowers_the_score_and_can_lose_the_sale() -> None:
    lead = make_lead()
    plain = score(lead).value
    records = {"pub-1": PublisherQuality(publisher_id="pub-1", sold=100, returned=60, converted=0)}
    asked: list[str] = []

    def publisher(publisher_id: str) -> PublisherQuality | None:
        asked.append(publisher_id)
        return records.get(publisher_id)

    picky = Buyer(id="picky", name="Picky", verticals=["solar"], price=40.0, min_score=plain)
    _, emits = run(lead, where=market.of([picky, *BUYERS], publisher=publisher))
    assert asked == ["pub-1"]
    offer = emits[0].value
    assert isinstance(offer, Offer)
    lowered = score(lead, records["pub-1"])
    assert offer.score == lowered.value == plain - 18
    assert "publisher:returns-18" in offer.score_reasons
    # The lower score is the one matched on: the picky buyer no longer takes it.
    assert Verdict(buyer_id="picky", reason="filtered:min_score") in verdicts_of(offer.left_out)
    assert run(lead, where=market.of([picky, *BUYERS]))[1][0].key == "picky"


def test_an_unknown_or_small_publisher_leaves_the_score_alone() -> None:
    lead = make_lead()
    small = PublisherQuality(publisher_id="pub-1", sold=5, returned=5, converted=0)
    for record in (None, small):
        offer = run(lead, where=market.of(BUYERS, publisher=lambda _p, r=record: r))[1][0].value
        assert isinstance(offer, Offer)
        assert offer.score == score(lead).value
