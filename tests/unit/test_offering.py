from __future__ import annotations

import copy
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import caps, catalog, offering
from router.buyers import Buyer, Caps
from router.caps import Counts, LedgerEntry
from router.records import (
    BuyerLead,
    Candidate,
    Decision,
    Emit,
    IntakeRef,
    NormalizedContact,
    NormalizedLead,
    Offer,
    UnsoldLead,
    Verdict,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 1, 18, 0, tzinfo=UTC)
OCCURRED = datetime(2026, 6, 1, 17, 30, tzinfo=UTC)
PRICES = {"b1": 40.0, "b2": 30.0, "b3": 20.0, "gone": 50.0}
FILTERED = Verdict(buyer_id="zed", reason="state_not_served")


def make_lead(n: int, occurred_at: datetime = OCCURRED) -> NormalizedLead:
    return NormalizedLead(
        lead_id=f"lead-{n}",
        event_id=f"evt-{n}",
        channel="form",
        vertical="solar",
        occurred_at=occurred_at,
        received_at=occurred_at,
        fingerprint=f"fp-{n}",
        source={"publisher_id": "pub-1"},
        contact=NormalizedContact(first_name="Jane", phone="+14155552671"),
        intake=IntakeRef(topic="intent.form", partition=0, offset=n),
    )


def make_buyer(
    buyer_id: str,
    hourly: int | None = None,
    daily: int | None = None,
    timezone: str = "America/New_York",
) -> Buyer:
    return Buyer(
        id=buyer_id,
        name=buyer_id.upper(),
        verticals=["solar"],
        price=PRICES[buyer_id],
        caps=Caps(hourly=hourly, daily=daily),
        timezone=timezone,
    )


def make_offer(
    lead: NormalizedLead,
    buyer_ids: list[str],
    position: int = 0,
    verdicts: list[Verdict] | None = None,
) -> Offer:
    return Offer(
        lead=lead,
        score=72,
        score_reasons=["channel:form+20", "consent+15"],
        candidates=[
            Candidate(buyer_id=b, price=PRICES[b], priority=i) for i, b in enumerate(buyer_ids)
        ],
        position=position,
        verdicts=[FILTERED] if verdicts is None else verdicts,
    )


def decide(
    offer: Offer,
    buyer: Buyer | None,
    counts: Counts | None = None,
    entry: LedgerEntry | None = None,
    now: datetime = NOW,
) -> offering.OfferResult:
    before = copy.deepcopy((counts, entry))
    result = offering.decide(offer, buyer, counts, entry, now)
    assert (counts, entry) == before, "decide mutated its inputs"
    return result


class Agent:
    """The offer agent's table handling, as in router/agents.py."""

    def __init__(self, buyers: dict[str, Buyer]) -> None:
        self.buyers = buyers
        self.table: dict[str, Any] = {}
        self.writes: list[list[str]] = []
        self.pruned_through: dict[str, str] = {}

    def offer(self, offer: Offer, now: datetime = NOW) -> offering.OfferResult:
        buyer = self.buyers.get(offering.current_buyer_id(offer))
        keys = offering.cap_keys(offer, buyer) if buyer else None
        counts = self.table.get(keys.counts) if keys else None
        entry = self.table.get(keys.ledger) if keys else None
        result = decide(offer, buyer, counts, entry, now)
        written: list[str] = []
        if keys and buyer:
            if keys.day > self.pruned_through.get(buyer.id, ""):
                for stale in caps.expired_keys(list(self.table), buyer.id, keys.day):
                    del self.table[stale]
                self.pruned_through[buyer.id] = keys.day
            if result.counts is not counts:
                self.table[keys.counts] = result.counts
                written.append(keys.counts)
            if result.entry is not entry:
                self.table[keys.ledger] = result.entry
                written.append(keys.ledger)
        self.writes.append(written)
        return result


# --- sale --------------------------------------------------------------------------------


def test_sale_emits_buyer_lead_and_sold_decision() -> None:
    lead = make_lead(1)
    offer = make_offer(lead, ["b1", "b2", "b3"])
    counts, entry, emits = decide(offer, make_buyer("b1"))

    assert [(e.topic, e.key, type(e.value)) for e in emits] == [
        ("buyer.b1", "lead-1", BuyerLead),
        (catalog.DECISIONS, "evt-1", Decision),
    ]
    sold = emits[0].value
    assert isinstance(sold, BuyerLead)
    assert sold.buyer_id == "b1"
    assert sold.price == 40.0
    assert sold.score == 72
    assert sold.exclusive is True
    assert sold.sold_at == NOW
    assert sold.model_dump(exclude={"buyer_id", "price", "score", "sold_at", "exclusive"}) == (
        lead.model_dump()
    )

    decision = emits[1].value
    assert isinstance(decision, Decision)
    assert decision.outcome == "sold"
    assert decision.event_id == "evt-1"
    assert decision.lead_id == "lead-1"
    assert decision.buyers == ["b1"]
    assert decision.price == 40.0
    assert decision.score == 72
    assert decision.score_reasons == ["channel:form+20", "consent+15"]
    assert decision.reasons == ["sold"]
    assert decision.considered == [
        FILTERED,
        Verdict(buyer_id="b1", reason="sold"),
        Verdict(buyer_id="b2", reason="outbid"),
        Verdict(buyer_id="b3", reason="outbid"),
    ]
    assert decision.timings.decided_at == NOW
    # 17:30 UTC is 13:30 in New York.
    assert counts == {"day": 1, "hours": {"2026-06-01T13-0400": 1}}
    assert entry == {"reason": "sold", "hour": "2026-06-01T13-0400", "sold_at": NOW.isoformat()}


def test_sale_further_down_the_ranking_keeps_earlier_verdicts() -> None:
    capped = Verdict(buyer_id="b1", reason="capped:daily")
    offer = make_offer(make_lead(2), ["b1", "b2", "b3"], position=1, verdicts=[FILTERED, capped])
    _, _, emits = decide(offer, make_buyer("b2"))
    assert emits[0].topic == "buyer.b2"
    assert isinstance(emits[0].value, BuyerLead)
    assert emits[0].value.price == 30.0
    decision = emits[1].value
    assert isinstance(decision, Decision)
    assert decision.buyers == ["b2"]
    assert decision.considered == [
        FILTERED,
        capped,
        Verdict(buyer_id="b2", reason="sold"),
        Verdict(buyer_id="b3", reason="outbid"),
    ]


def test_replayed_sale_re_emits_the_same_buyer_lead_and_keeps_counts() -> None:
    offer = make_offer(make_lead(3), ["b1", "b2"])
    b1 = make_buyer("b1", daily=1)
    counts, entry, first = decide(offer, b1)
    again = decide(offer, b1, counts, entry, NOW + timedelta(minutes=7))
    assert again.counts is counts
    assert again.entry is entry
    assert counts is not None
    assert counts["day"] == 1
    assert again.emits[0] == first[0]
    sold = again.emits[0].value
    assert isinstance(sold, BuyerLead)
    assert sold.sold_at == NOW


# --- declines ----------------------------------------------------------------------------


def _passed(emits: list[Emit]) -> Offer:
    assert len(emits) == 1
    assert emits[0].topic == catalog.OFFERS
    passed = emits[0].value
    assert isinstance(passed, Offer)
    assert emits[0].key == offering.current_buyer_id(passed)
    return passed


def test_daily_capped_buyer_passes_offer_to_next_candidate() -> None:
    offer = make_offer(make_lead(4), ["b1", "b2", "b3"])
    counts, entry, emits = decide(offer, make_buyer("b1", daily=0))
    passed = _passed(emits)
    assert emits[0].key == "b2"
    assert passed.position == 1
    assert passed.verdicts == [FILTERED, Verdict(buyer_id="b1", reason="capped:daily")]
    assert passed.model_dump(exclude={"position", "verdicts"}) == offer.model_dump(
        exclude={"position", "verdicts"}
    )
    assert counts is None
    assert entry == {"reason": "capped:daily", "hour": "2026-06-01T13-0400", "sold_at": None}


def test_hourly_capped_buyer_passes_offer_to_next_candidate() -> None:
    b1 = make_buyer("b1", hourly=1)
    counts, _, _ = decide(make_offer(make_lead(5), ["b1"]), b1)
    result = decide(make_offer(make_lead(6), ["b1", "b3"]), b1, counts)
    passed = _passed(result.emits)
    assert result.emits[0].key == "b3"
    assert passed.verdicts[-1] == Verdict(buyer_id="b1", reason="capped:hourly")
    assert result.counts is counts
    assert counts == {"day": 1, "hours": {"2026-06-01T13-0400": 1}}
    assert result.entry is not None
    assert result.entry["reason"] == "capped:hourly"


def test_replayed_decline_keeps_its_verdict_after_the_day_fills() -> None:
    b1 = make_buyer("b1", hourly=1, daily=2)
    at = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)
    agent = Agent({"b1": b1})
    agent.offer(make_offer(make_lead(11, at), ["b1"]))
    declined = make_offer(make_lead(12, at + timedelta(minutes=30)), ["b1", "b2"])
    first = agent.offer(declined).emits
    assert _passed(first).verdicts[-1] == Verdict(buyer_id="b1", reason="capped:hourly")
    sold = agent.offer(make_offer(make_lead(13, at + timedelta(hours=1)), ["b1"])).emits
    assert sold[0].topic == "buyer.b1"
    counts = agent.table["b1|2026-06-01"]
    assert counts["day"] == 2  # the day is full now
    ledger = agent.table["b1|2026-06-01|lead-12"]

    again = agent.offer(declined, NOW + timedelta(hours=2))
    assert again.emits == first
    assert again.counts is counts
    assert again.entry is ledger
    assert agent.writes[-1] == []
    assert agent.table["b1|2026-06-01"] is counts


def test_last_decline_emits_unsold_with_every_verdict() -> None:
    buyers = {b: make_buyer(b, daily=0) for b in ("b1", "b2", "b3")}
    offer = make_offer(make_lead(7), ["b1", "b2", "b3"])
    emits: list[Emit] = [Emit(catalog.OFFERS, "b1", offer)]
    for _ in range(3):
        current = _passed(emits)
        _, _, emits = decide(current, buyers[offering.current_buyer_id(current)])

    assert [(e.topic, e.key) for e in emits] == [
        (catalog.UNSOLD, "lead-7"),
        (catalog.DECISIONS, "evt-7"),
    ]
    every = [FILTERED, *(Verdict(buyer_id=b, reason="capped:daily") for b in ("b1", "b2", "b3"))]
    unsold = emits[0].value
    assert isinstance(unsold, UnsoldLead)
    assert unsold.lead == offer.lead
    assert unsold.score == 72
    assert unsold.verdicts == every
    decision = emits[1].value
    assert isinstance(decision, Decision)
    assert decision.outcome == "unsold"
    assert decision.reasons == ["all_candidates_declined"]
    assert decision.considered == every
    assert decision.buyers == []


def test_unknown_buyer_is_a_verdict_and_the_offer_moves_on() -> None:
    offer = make_offer(make_lead(8), ["gone", "b2"])
    counts, entry, emits = decide(offer, None)
    assert counts is None
    assert entry is None
    passed = _passed(emits)
    assert emits[0].key == "b2"
    assert passed.verdicts == [FILTERED, Verdict(buyer_id="gone", reason="unknown_buyer")]

    _, _, last = decide(make_offer(make_lead(9), ["gone"], verdicts=[]), None)
    assert [e.topic for e in last] == [catalog.UNSOLD, catalog.DECISIONS]
    assert isinstance(last[0].value, UnsoldLead)
    assert last[0].value.verdicts == [Verdict(buyer_id="gone", reason="unknown_buyer")]


def test_cap_keys_are_the_buyer_local_day() -> None:
    offer = make_offer(make_lead(10, datetime(2026, 3, 10, 3, 30, tzinfo=UTC)), ["b1"])
    assert offering.cap_keys(offer, make_buyer("b1", timezone="America/Los_Angeles")) == (
        offering.CapKeys("2026-03-09", "b1|2026-03-09", "b1|2026-03-09|lead-10")
    )
    assert offering.cap_keys(offer, make_buyer("b1", timezone="UTC")) == (
        offering.CapKeys("2026-03-10", "b1|2026-03-10", "b1|2026-03-10|lead-10")
    )


# --- property: a tiny agent --------------------------------------------------------------

ZONES = ["America/New_York", "America/Los_Angeles", "UTC"]
# 14 hours across UTC, New York and Los Angeles midnights and the New York fall-back.
START = datetime(2026, 10, 31, 20, 0, tzinfo=UTC)
hourly_caps = st.sampled_from([None, 0, 1, 2])
daily_caps = st.sampled_from([None, 0, 1, 2, 3])


def _signature(emit: Emit) -> tuple[Any, ...]:
    """What a replay must reproduce exactly: everything but the decision time."""
    value = emit.value
    if isinstance(value, Decision):
        dumped = value.model_dump(exclude={"timings"})
    elif isinstance(value, UnsoldLead):
        dumped = value.model_dump(exclude={"decided_at"})
    else:
        dumped = value.model_dump()
    return (emit.topic, emit.key, repr(dumped))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, Buyer], list[Offer]]:
    buyers = {
        b: make_buyer(
            b,
            hourly=draw(hourly_caps),
            daily=draw(daily_caps),
            timezone=draw(st.sampled_from(ZONES)),
        )
        for b in ("b1", "b2", "b3")
    }
    offers = []
    for n in range(draw(st.integers(min_value=1, max_value=10))):
        at = START + 30 * timedelta(minutes=draw(st.integers(min_value=0, max_value=27)))
        ranking = draw(
            st.lists(st.sampled_from(sorted(PRICES)), min_size=1, max_size=4, unique=True)
        )
        offers.append(make_offer(make_lead(n, at), ranking, verdicts=[]))
    return buyers, offers


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(), data=st.data())
def test_every_lead_gets_one_answer_and_caps_hold_under_replay(
    scenario: tuple[dict[str, Buyer], list[Offer]], data: st.DataObject
) -> None:
    buyers, initial = scenario
    agent = Agent(buyers)
    queue: deque[Offer] = deque(initial)
    history: list[Offer] = []
    answers: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    sales: dict[str, set[tuple[str, datetime]]] = defaultdict(set)
    decisions: dict[str, list[Decision]] = defaultdict(list)
    unsold: set[str] = set()
    now = NOW
    replays = data.draw(st.integers(min_value=0, max_value=20))

    while queue:
        if history and replays and data.draw(st.booleans()):
            replays -= 1
            queue.appendleft(data.draw(st.sampled_from(history)))
        offer = queue.popleft()
        history.append(offer)

        emits = agent.offer(offer, now).emits
        now += timedelta(seconds=1)
        buyer = buyers.get(offering.current_buyer_id(offer))
        if buyer:
            keys = offering.cap_keys(offer, buyer)
            # Counts before the ledger entry, and a ledger entry for every offer seen.
            assert agent.writes[-1] in ([], [keys.ledger], [keys.counts, keys.ledger])
            assert keys.ledger in agent.table
        else:
            assert agent.writes[-1] == []

        lead_id = offer.lead.lead_id
        signature = [_signature(e) for e in emits]
        assert answers.setdefault((lead_id, offer.position), signature) == signature
        for emit in emits:
            value = emit.value
            if isinstance(value, Offer):
                assert emit.key == offering.current_buyer_id(value)
                assert value.position == offer.position + 1
                queue.append(value)
            elif isinstance(value, BuyerLead):
                assert emit.topic == catalog.buyer_topic(value.buyer_id)
                sales[lead_id].add((value.buyer_id, value.sold_at))
            elif isinstance(value, Decision):
                decisions[lead_id].append(value)
            else:
                assert isinstance(value, UnsoldLead)
                unsold.add(lead_id)

    for offer in initial:
        lead_id = offer.lead.lead_id
        distinct = {repr(d.model_dump(exclude={"timings"})) for d in decisions[lead_id]}
        assert len(distinct) == 1, "every lead has exactly one distinct decision"
        decision = decisions[lead_id][0]
        assert [v.buyer_id for v in decision.considered] == [c.buyer_id for c in offer.candidates]
        assert len(sales[lead_id]) <= 1, "one buyer, one sold_at, however often replayed"
        if sales[lead_id]:
            [(buyer_id, _)] = sales[lead_id]
            assert buyer_id in buyers
            assert decision.outcome == "sold"
            assert decision.buyers == [buyer_id]
            assert lead_id not in unsold
        else:
            assert decision.outcome == "unsold"
            assert lead_id in unsold
            assert all(v.reason != "sold" for v in decision.considered)

    per_day: dict[tuple[str, str], set[str]] = defaultdict(set)
    per_hour: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_id = {o.lead.lead_id: o.lead for o in initial}
    for lead_id, sold in sales.items():
        for buyer_id, _ in sold:
            day, hour = caps.local_windows(buyers[buyer_id], by_id[lead_id].occurred_at)
            per_day[buyer_id, day].add(lead_id)
            per_hour[buyer_id, hour].add(lead_id)
    for (buyer_id, _), leads in per_day.items():
        daily = buyers[buyer_id].caps.daily
        assert daily is None or len(leads) <= daily
    for (buyer_id, _), leads in per_hour.items():
        hourly = buyers[buyer_id].caps.hourly
        assert hourly is None or len(leads) <= hourly

    # The stored counts match the recount from emitted sales exactly: no double counting.
    stored = {k: v for k, v in agent.table.items() if k.count("|") == 1}
    assert stored.keys() == {caps.counts_key(b, day) for b, day in per_day}
    for (buyer_id, day), leads in per_day.items():
        hours = {
            hour: len(hour_leads)
            for (b, hour), hour_leads in per_hour.items()
            if b == buyer_id and hour.startswith(day)
        }
        assert stored[caps.counts_key(buyer_id, day)] == {"day": len(leads), "hours": hours}
