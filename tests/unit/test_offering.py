from __future__ import annotations

import copy
import json
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import asdict
from test_filters import NOW, make_buyer
from test_screening import make_lead

from router import accounting, catalog, matching, offering
from router.buyers import Buyer, Caps
from router.records import (
    BuyerLead,
    Candidate,
    Decision,
    Emit,
    NormalizedLead,
    Offer,
    PublisherSignal,
    Sale,
    UnsoldLead,
    Verdict,
)

pytestmark = pytest.mark.unit

OCCURRED = NOW - timedelta(minutes=5)  # 10:55 in New York
PRICES = {"b1": 40.0, "b2": 30.0, "b3": 20.0, "gone": 50.0}
FILTERED = Verdict(buyer_id="zed", reason="filtered:state")
SCORE_REASONS = ["channel:form+25", "consent+8"]


def without(record: Any, *names: str) -> dict[str, Any]:
    """The record's fields, less `names`."""
    return {name: value for name, value in asdict(record).items() if name not in names}


def not_none(record: Any) -> dict[str, Any]:
    return {name: value for name, value in asdict(record).items() if value is not None}


def buyer(buyer_id: str, **fields: Any) -> Buyer:
    return make_buyer(buyer_id, price=PRICES[buyer_id], **fields)


def make_offer(
    lead: NormalizedLead,
    ranking: list[str],
    *,
    max_buyers: int = 1,
    exclusive_only: tuple[str, ...] = (),
    position: int = 0,
    screened: list[Verdict] | None = None,
    verdicts: tuple[Verdict, ...] = (),
) -> Offer:
    return Offer(
        lead=lead,
        score=72,
        score_reasons=SCORE_REASONS,
        candidates=[
            Candidate(buyer_id=b, price=PRICES[b], priority=i, exclusive_only=b in exclusive_only)
            for i, b in enumerate(ranking)
        ],
        position=position,
        max_buyers=max_buyers,
        slots_left=max_buyers,
        left_out=matching.left_out([FILTERED] if screened is None else screened),
        verdicts=list(verdicts),
    )


def roundtrip(value: Any) -> Any:
    # The cap table's changelog is JSON: what a recovered worker reads back.
    return json.loads(json.dumps(value))


class Desk:
    """The buyer desk's offer handling (router/agents.py) over a dict standing in for the cap
    table: read the keys `state_keys` names, decide, assign `writes` in order."""

    def __init__(self, *buyers: Buyer) -> None:
        self.buyers = {b.id: b for b in buyers}
        self.table: dict[str, Any] = {}
        self.writes: list[list[str]] = []

    def offer(self, offer: Offer, now: datetime = NOW) -> offering.OfferResult:
        found = self.buyers.get(offering.current_buyer_id(offer))
        ledger = offering.ledger_key(offer)
        state: dict[str, Any] = {ledger: self.table.get(ledger)}
        if found is not None:
            keys = offering.state_keys(offer, found)
            state = {k: self.table.get(k) for k in (*keys.counts, keys.ledger, keys.slots)}
        before = copy.deepcopy(state)
        result = offering.decide(offer, found, state, now)
        assert state == before, "decide mutated its inputs"
        for key, value in result.writes:
            self.table[key] = roundtrip(value)
        self.writes.append([key for key, _ in result.writes])
        return result

    def walk(self, offer: Offer, now: datetime = NOW) -> list[Emit]:
        """Offer a lead and follow it down the ranking: every emit but the forwarded offers."""
        emits: list[Emit] = []
        pending = [offer]
        while pending:
            for emit in self.offer(pending.pop(), now).emits:
                if emit.topic == catalog.OFFERS:
                    pending.append(passed([emit]))
                else:
                    emits.append(emit)
        return emits


def passed(emits: list[Emit]) -> Offer:
    """The one forwarded offer, keyed by its next buyer."""
    assert [e.topic for e in emits] == [catalog.OFFERS]
    offer = emits[0].value
    assert isinstance(offer, Offer)
    assert emits[0].key == offering.current_buyer_id(offer)
    return offer


def decision_of(emits: list[Emit]) -> Decision:
    (decision,) = [e.value for e in emits if e.topic == catalog.DECISIONS]
    assert isinstance(decision, Decision)
    return decision


def sold_to(emits: list[Emit]) -> dict[str, BuyerLead]:
    return {e.value.buyer_id: e.value for e in emits if isinstance(e.value, BuyerLead)}


# --- one sale ----------------------------------------------------------------------------------


def test_sale_emits_buyer_lead_publisher_signal_and_sold_decision() -> None:
    lead = make_lead(1, occurred_at=OCCURRED)
    desk = Desk(buyer("b1"))
    emits = desk.offer(make_offer(lead, ["b1", "b2", "b3"])).emits

    assert [(e.topic, e.key, type(e.value)) for e in emits] == [
        ("buyer.b1", "lead-1", BuyerLead),
        (catalog.PUBLISHER_SIGNALS, "pub-1", PublisherSignal),
        (catalog.DECISIONS, "evt-1", Decision),
    ]
    sold = emits[0].value
    assert isinstance(sold, BuyerLead)
    assert (sold.buyer_id, sold.price, sold.score, sold.sold_at) == ("b1", 40.0, 72, NOW)
    assert sold.exclusive is True
    assert without(sold, "buyer_id", "price", "score", "sold_at", "exclusive") == asdict(lead)
    assert emits[1].value == PublisherSignal(
        publisher_id="pub-1", lead_id="lead-1", buyer_id="b1", type="sold"
    )

    decision = emits[2].value
    assert isinstance(decision, Decision)
    assert decision.outcome == "sold"
    assert (decision.event_id, decision.lead_id) == ("evt-1", "lead-1")
    assert decision.buyers == ["b1"]
    assert decision.sales == [Sale(buyer_id="b1", price=40.0)]
    assert decision.price == 40.0
    assert (decision.score, decision.score_reasons) == (72, SCORE_REASONS)
    assert decision.reasons == ["sold"]
    assert decision.considered == [
        FILTERED,
        Verdict(buyer_id="b1", reason="sold"),
        Verdict(buyer_id="b2", reason="outbid"),
        Verdict(buyer_id="b3", reason="outbid"),
    ]
    assert decision.timings.decided_at == NOW

    # Counts in every buyer-local window, then the ledger entry (with the publisher).
    windows = ["b1|hour|2026-06-03T10-0400", "b1|day|2026-06-03", "b1|week|2026-W23"]
    windows.append("b1|month|2026-06")
    assert desk.writes == [[*windows, "b1|lead|lead-1"]]
    for key in windows:
        assert desk.table[key] == {"sold": 1, "spend": 40.0, "returned": 0}
    entry = desk.table["b1|lead|lead-1"]
    assert (entry["reason"], entry["sold_at"], entry["price"]) == ("sold", NOW.isoformat(), 40.0)
    assert entry["publisher"] == "pub-1"


def test_a_lead_without_a_publisher_sends_no_signal() -> None:
    lead = make_lead(1, source={})
    desk = Desk(buyer("b1"))
    emits = desk.offer(make_offer(lead, ["b1"])).emits
    assert [e.topic for e in emits] == ["buyer.b1", catalog.DECISIONS]
    assert desk.table["b1|lead|lead-1"]["publisher"] is None


def test_sale_further_down_the_ranking_keeps_earlier_verdicts() -> None:
    capped = Verdict(buyer_id="b1", reason="capped:daily")
    offer = make_offer(make_lead(2), ["b1", "b2", "b3"], position=1, verdicts=(capped,))
    emits = Desk(buyer("b2")).offer(offer).emits
    assert sold_to(emits)["b2"].price == 30.0
    decision = decision_of(emits)
    assert decision.buyers == ["b2"]
    assert decision.considered == [
        FILTERED,
        capped,
        Verdict(buyer_id="b2", reason="sold"),
        Verdict(buyer_id="b3", reason="outbid"),
    ]


def test_replayed_sale_re_emits_the_same_buyer_lead_and_writes_nothing() -> None:
    offer = make_offer(make_lead(3), ["b1", "b2"])
    desk = Desk(buyer("b1", caps=Caps(daily=1)))
    first = desk.offer(offer).emits
    table = copy.deepcopy(desk.table)
    again = desk.offer(offer, NOW + timedelta(minutes=7))
    assert again.writes == []
    assert desk.table == table
    assert again.emits[:2] == first[:2]
    assert sold_to(again.emits)["b1"].sold_at == NOW
    assert without(decision_of(again.emits), "timings") == without(decision_of(first), "timings")


def test_state_keys_are_the_buyer_local_windows() -> None:
    offer = make_offer(make_lead(10, occurred_at=datetime(2026, 3, 10, 3, 30, tzinfo=UTC)), ["b1"])
    la = offering.state_keys(offer, buyer("b1", timezone="America/Los_Angeles"))
    assert la == accounting.AccountKeys(
        (
            "b1|hour|2026-03-09T20-0700",
            "b1|day|2026-03-09",
            "b1|week|2026-W11",
            "b1|month|2026-03",
        ),
        "b1|lead|lead-10",
        "b1|calls",
    )
    assert offering.state_keys(offer, buyer("b1", timezone="UTC")).counts[1] == "b1|day|2026-03-10"


# --- declines ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caps", "reason"),
    [
        (Caps(hourly=0), "capped:hourly"),
        (Caps(daily=0), "capped:daily"),
        (Caps(weekly=0), "capped:weekly"),
        (Caps(monthly=0), "capped:monthly"),
        (Caps(daily_budget=39.99), "budget"),
        (Caps(monthly_budget=10), "budget"),
    ],
)
def test_a_capped_buyer_passes_the_offer_to_the_next_candidate(caps: Caps, reason: str) -> None:
    offer = make_offer(make_lead(4), ["b1", "b2", "b3"])
    desk = Desk(buyer("b1", caps=caps))
    nxt = passed(desk.offer(offer).emits)
    assert offering.current_buyer_id(nxt) == "b2"
    assert nxt.position == 1
    assert nxt.verdicts == [Verdict(buyer_id="b1", reason=reason)]
    assert without(nxt, "position", "verdicts") == without(offer, "position", "verdicts")
    # Only the answer is recorded: no counts.
    assert desk.writes == [["b1|lead|lead-4"]]
    assert desk.table["b1|lead|lead-4"]["reason"] == reason


def test_caps_fill_up_lead_by_lead() -> None:
    desk = Desk(buyer("b1", caps=Caps(hourly=1, daily_budget=75)))
    assert "b1" in sold_to(desk.offer(make_offer(make_lead(5), ["b1"])).emits)
    hourly = passed(desk.offer(make_offer(make_lead(6), ["b1", "b3"])).emits)
    assert hourly.verdicts[-1] == Verdict(buyer_id="b1", reason="capped:hourly")
    # The next hour is free, but 80 spent would be over the day's 75.
    later = make_lead(7, occurred_at=OCCURRED + timedelta(hours=1))
    budget = passed(desk.offer(make_offer(later, ["b1", "b3"])).emits)
    assert budget.verdicts[-1] == Verdict(buyer_id="b1", reason="budget")
    assert desk.table["b1|day|2026-06-03"] == {"sold": 1, "spend": 40.0, "returned": 0}


def test_live_calls_fill_the_buyers_slots() -> None:
    desk = Desk(buyer("b1", caps=Caps(concurrent_calls=1, call_slot_ttl_s=600)))
    first = make_offer(make_lead(1, channel="call"), ["b1"])
    assert "b1" in sold_to(desk.offer(first).emits)
    assert desk.writes[-1][-2:] == ["b1|calls", "b1|lead|lead-1"]
    second = make_offer(make_lead(2, channel="call"), ["b1", "b2"])
    assert passed(desk.offer(second).emits).verdicts[-1] == Verdict(
        buyer_id="b1", reason="slots_full"
    )
    # A form lead needs no slot.
    assert "b1" in sold_to(desk.offer(make_offer(make_lead(3), ["b1"])).emits)
    # Once the slot expires, a new call gets it.
    third = make_offer(make_lead(4, channel="call"), ["b1"])
    assert "b1" in sold_to(desk.offer(third, NOW + timedelta(seconds=601)).emits)
    assert list(desk.table["b1|calls"]) == ["lead-4"]


def test_replayed_decline_keeps_its_verdict_after_the_day_fills() -> None:
    at = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)
    desk = Desk(buyer("b1", caps=Caps(hourly=1, daily=2)))
    desk.offer(make_offer(make_lead(11, occurred_at=at), ["b1"]))
    declined = make_offer(make_lead(12, occurred_at=at + timedelta(minutes=30)), ["b1", "b2"])
    first = desk.offer(declined).emits
    assert passed(first).verdicts[-1] == Verdict(buyer_id="b1", reason="capped:hourly")
    later = make_lead(13, occurred_at=at + timedelta(hours=1))
    assert "b1" in sold_to(desk.offer(make_offer(later, ["b1"])).emits)
    assert desk.table["b1|day|2026-06-01"]["sold"] == 2  # the day is full now
    table = copy.deepcopy(desk.table)

    again = desk.offer(declined, NOW + timedelta(hours=2))
    assert again.emits == first
    assert again.writes == []
    assert desk.table == table


def test_last_decline_emits_unsold_with_every_verdict() -> None:
    desk = Desk(*(buyer(b, caps=Caps(daily=0)) for b in ("b1", "b2", "b3")))
    offer = make_offer(make_lead(7), ["b1", "b2", "b3"])
    emits = desk.walk(offer)

    assert [(e.topic, e.key) for e in emits] == [
        (catalog.UNSOLD, "lead-7"),
        (catalog.DECISIONS, "evt-7"),
    ]
    every = [FILTERED, *(Verdict(buyer_id=b, reason="capped:daily") for b in ("b1", "b2", "b3"))]
    unsold = emits[0].value
    assert isinstance(unsold, UnsoldLead)
    assert (unsold.lead, unsold.score, unsold.verdicts) == (offer.lead, 72, every)
    decision = decision_of(emits)
    assert decision.outcome == "unsold"
    assert decision.reasons == ["all_candidates_declined"]
    assert decision.considered == every
    assert decision.buyers == [] and decision.sales == [] and decision.price is None


def test_unknown_buyer_is_a_verdict_and_the_offer_moves_on() -> None:
    result = offering.decide(make_offer(make_lead(8), ["gone", "b2"]), None, {}, NOW)
    assert [key for key, _ in result.writes] == ["gone|lead|lead-8"]
    nxt = passed(result.emits)
    assert offering.current_buyer_id(nxt) == "b2"
    assert nxt.verdicts == [Verdict(buyer_id="gone", reason="unknown_buyer")]

    last = offering.decide(make_offer(make_lead(9), ["gone"], screened=[]), None, {}, NOW)
    assert [e.topic for e in last.emits] == [catalog.UNSOLD, catalog.DECISIONS]
    assert decision_of(last.emits).considered == [Verdict(buyer_id="gone", reason="unknown_buyer")]


def test_a_buyer_configured_again_before_a_replay_does_not_fork_the_walk() -> None:
    desk = Desk(buyer("b2"))
    offer = make_offer(make_lead(1), ["gone", "b2"])
    first = desk.offer(offer).emits
    assert sold_to(desk.walk(passed(first))).keys() == {"b2"}

    desk.buyers["gone"] = make_buyer("gone", price=PRICES["gone"])
    again = desk.offer(offer)
    assert again.emits == first, "the replay must pass the lead on exactly as before"
    assert again.writes == []


def test_paused_buyer_declines_and_the_answer_survives_a_resume() -> None:
    desk = Desk(buyer("b1", status="paused"), buyer("b2"))
    offer = make_offer(make_lead(1), ["b1", "b2"])
    first = desk.offer(offer).emits
    nxt = passed(first)
    assert nxt.verdicts[-1] == Verdict(buyer_id="b1", reason="paused")
    assert desk.writes == [["b1|lead|lead-1"]]
    assert desk.table["b1|lead|lead-1"]["reason"] == "paused"
    emits = desk.walk(nxt)
    assert list(sold_to(emits)) == ["b2"]
    assert decision_of(emits).considered[1:] == [
        Verdict(buyer_id="b1", reason="paused"),
        Verdict(buyer_id="b2", reason="sold"),
    ]
    # Resumed before the offer is replayed: the recorded answer stands, so the walk never forks.
    desk.buyers["b1"] = buyer("b1")
    again = desk.offer(offer)
    assert again.emits == first
    assert again.writes == []


# --- shared leads ------------------------------------------------------------------------------


def test_shared_lead_is_sold_to_max_buyers_of_three() -> None:
    desk = Desk(buyer("b1"), buyer("b2"), buyer("b3"))
    emits = desk.walk(make_offer(make_lead(1), ["b1", "b2", "b3"], max_buyers=2))

    sales = sold_to(emits)
    assert list(sales) == ["b1", "b2"]
    assert [s.price for s in sales.values()] == [40.0, 30.0]
    assert all(s.exclusive is False for s in sales.values())
    decision = decision_of(emits)
    assert decision.outcome == "sold"
    assert decision.buyers == ["b1", "b2"]
    assert decision.sales == [Sale(buyer_id="b1", price=40.0), Sale(buyer_id="b2", price=30.0)]
    assert decision.price == 70.0
    assert decision.considered == [
        FILTERED,
        Verdict(buyer_id="b1", reason="sold"),
        Verdict(buyer_id="b2", reason="sold"),
        Verdict(buyer_id="b3", reason="outbid"),
    ]
    assert "b3|lead|lead-1" not in desk.table


def test_the_walk_carries_sales_and_slots_to_the_next_buyer() -> None:
    desk = Desk(buyer("b1"), buyer("b2"), buyer("b3"))
    nxt = passed(desk.offer(make_offer(make_lead(1), ["b1", "b2", "b3"], max_buyers=3)).emits[2:])
    assert (nxt.position, nxt.slots_left, nxt.max_buyers) == (1, 2, 3)
    assert nxt.sales == [Sale(buyer_id="b1", price=40.0)]


def test_a_declined_buyer_in_a_shared_walk_lets_the_next_one_buy() -> None:
    desk = Desk(buyer("b1"), buyer("b2", caps=Caps(daily=0)), buyer("b3"))
    emits = desk.walk(make_offer(make_lead(1), ["b1", "b2", "b3"], max_buyers=2))
    decision = decision_of(emits)
    assert decision.buyers == ["b1", "b3"]
    assert decision.price == 60.0
    assert [v.reason for v in decision.considered] == [
        FILTERED.reason,
        "sold",
        "capped:daily",
        "sold",
    ]


def test_a_shared_lead_fewer_buyers_want_is_sold_to_those() -> None:
    desk = Desk(buyer("b1", caps=Caps(daily=0)), buyer("b2"), buyer("b3", status="paused"))
    decision = decision_of(desk.walk(make_offer(make_lead(1), ["b1", "b2", "b3"], max_buyers=3)))
    assert (decision.outcome, decision.buyers, decision.price) == ("sold", ["b2"], 30.0)
    assert [v.reason for v in decision.considered] == [
        FILTERED.reason,
        "capped:daily",
        "sold",
        "paused",
    ]


@pytest.mark.parametrize(
    ("max_buyers", "exclusive_only", "exclusive"),
    [(1, False, True), (1, True, True), (2, False, False), (3, True, True)],
)
def test_buyer_lead_is_exclusive_when_nobody_else_can_get_it(
    max_buyers: int, exclusive_only: bool, exclusive: bool
) -> None:
    flagged = ("b1",) if exclusive_only else ()
    offer = make_offer(make_lead(1), ["b1"], max_buyers=max_buyers, exclusive_only=flagged)
    assert sold_to(Desk(buyer("b1")).offer(offer).emits)["b1"].exclusive is exclusive


def test_an_exclusive_only_buyer_never_shares() -> None:
    desk = Desk(buyer("b1"), buyer("b2"), buyer("b3"))
    # After someone bought: it declines and the walk moves on.
    after = make_offer(make_lead(1), ["b1", "b2", "b3"], max_buyers=3, exclusive_only=("b2",))
    emits = desk.walk(after)
    assert decision_of(emits).buyers == ["b1", "b3"]
    assert Verdict(buyer_id="b2", reason="exclusive_only") in decision_of(emits).considered
    assert desk.table["b2|lead|lead-1"]["reason"] == "exclusive_only"
    assert "b2|day|2026-06-03" not in desk.table
    # First to buy: it takes every slot, the rest are outbid.
    first = make_offer(make_lead(2), ["b2", "b1", "b3"], max_buyers=3, exclusive_only=("b2",))
    emits = desk.walk(first)
    assert list(sold_to(emits)) == ["b2"]
    assert sold_to(emits)["b2"].exclusive is True
    assert [v.reason for v in decision_of(emits).considered] == [
        FILTERED.reason,
        "sold",
        "outbid",
        "outbid",
    ]


def test_considered_names_every_buyer_with_its_reason() -> None:
    desk = Desk(
        buyer("b1", status="paused"), buyer("b2", caps=Caps(monthly=0)), buyer("b3"), buyer("gone")
    )
    # As `match` gives them: by buyer id, reasons interleaved (the offer carries them grouped).
    screened = [
        Verdict(buyer_id="aa", reason="filtered:state"),
        Verdict(buyer_id="mm", reason="below_floor"),
        FILTERED,
    ]
    offer = make_offer(make_lead(1), ["b1", "b2", "b3", "gone"], screened=screened)
    decision = decision_of(desk.walk(offer))
    assert decision.considered == [
        *screened,
        Verdict(buyer_id="b1", reason="paused"),
        Verdict(buyer_id="b2", reason="capped:monthly"),
        Verdict(buyer_id="b3", reason="sold"),
        Verdict(buyer_id="gone", reason="outbid"),
    ]


# --- what the buyer may see --------------------------------------------------------------------


def call_lead() -> NormalizedLead:
    return make_lead(
        1,
        channel="call",
        channel_details={
            "call_id": "c-1",
            "caller_phone": "+12125550100",
            "dialed_number": "+1800",
        },
        extra={"utm_source": "tv", "ssn": "000-00-0000"},
    )


def test_fields_minimize_what_the_buyer_receives() -> None:
    lead = call_lead()
    desk = Desk(buyer("b1", fields=["email"]), buyer("b2", fields=["phone", "state"]), buyer("b3"))
    emits = desk.walk(make_offer(lead, ["b1", "b2", "b3"], max_buyers=3))
    sales = sold_to(emits)

    email_only = sales["b1"]
    assert not_none(email_only.contact) == {"email": "jane@example.com"}
    assert email_only.channel_details == {"call_id": "c-1", "dialed_number": "+1800"}
    assert email_only.extra == {}
    # The fingerprint is a hash of the phone, which can be guessed back: withheld too.
    assert email_only.fingerprint == ""
    assert set(email_only.source) <= {"publisher_id", "campaign_id", "sub_id", "page_url"}
    assert (email_only.lead_id, email_only.attributes) == (lead.lead_id, lead.attributes)

    phone = sales["b2"]
    assert not_none(phone.contact) == {"phone": "+12125550100", "state": "NY"}
    assert phone.channel_details == {"call_id": "c-1", "dialed_number": "+1800"}
    assert phone.extra == {}

    # No `fields`: the whole lead.
    whole = asdict(sales["b3"])
    assert {name: whole[name] for name in NormalizedLead.__struct_fields__} == asdict(lead)
    # Only the buyer's copy is minimized: the offer walks on with the whole lead.
    first = desk.offer(make_offer(lead, ["b1", "b2"], max_buyers=2)).emits
    assert sold_to(first)["b1"].contact.phone is None
    assert passed(first[2:]).lead == lead


# --- property: many offers, replays, every kind of cap -------------------------------------------

BUYER_IDS = ["b1", "b2", "b3", "b4"]
VERTICALS = ["solar", "auto"]
ZONES = ["America/New_York", "America/Los_Angeles", "Asia/Tokyo"]
# 20 hours across the Tokyo, New York and Los Angeles midnights.
START = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
BUDGET_KEYS = {"day": "daily_budget", "month": "monthly_budget"}
CAP_KEYS = dict(accounting.COUNT_CAPS)
small = st.sampled_from([None, None, 0, 1, 2, 3])
caps = st.one_of(
    st.just(Caps()),  # open buyers too, so that shared leads do find several of them
    st.builds(
        Caps,
        hourly=small,
        daily=small,
        weekly=small,
        monthly=st.sampled_from([None, 2, 4]),
        daily_budget=st.sampled_from([None, 0.0, 15.0, 30.0, 45.0]),
        monthly_budget=st.sampled_from([None, 25.0, 60.0]),
        concurrent_calls=st.sampled_from([None, 0, 1, 2]),
        call_slot_ttl_s=st.sampled_from([60, 600]),
    ),
)


@st.composite
def pools(draw: st.DrawFn) -> dict[str, Buyer]:
    return {
        b: make_buyer(
            b,
            price=draw(st.sampled_from([10.0, 12.5, 20.0])),
            status=draw(st.sampled_from(["active"] * 5 + ["paused"])),
            exclusive_only=draw(st.sampled_from([False, False, True])),
            timezone=draw(st.sampled_from(ZONES)),
            caps=draw(caps),
        )
        for b in BUYER_IDS
    }


@st.composite
def offers(draw: st.DrawFn, pool: dict[str, Buyer], policies: dict[str, int]) -> list[Offer]:
    made = []
    for n in range(draw(st.integers(min_value=1, max_value=10))):
        vertical = draw(st.sampled_from(VERTICALS))
        lead = make_lead(
            n,
            occurred_at=START + timedelta(minutes=20 * draw(st.integers(0, 60))),
            channel=draw(st.sampled_from(["form", "call"])),
            vertical=vertical,
        )
        ranking = draw(
            st.lists(st.sampled_from([*BUYER_IDS, "gone"]), min_size=1, max_size=5, unique=True)
        )
        candidates = [
            Candidate(
                buyer_id=b,
                price=pool[b].price if b in pool else 50.0,
                priority=0,
                exclusive_only=b in pool and pool[b].exclusive_only,
            )
            for b in ranking
        ]
        max_buyers = policies[vertical]
        made.append(
            Offer(
                lead=lead,
                score=60,
                score_reasons=[],
                candidates=candidates,
                max_buyers=max_buyers,
                slots_left=max_buyers,
                left_out=matching.left_out([FILTERED]),
            )
        )
    return made


def signature(emit: Emit) -> tuple[Any, ...]:
    """What a replay must reproduce exactly: everything but the time of the decision."""
    value = emit.value
    if isinstance(value, Decision):
        dumped = without(value, "timings")
    elif isinstance(value, UnsoldLead):
        dumped = without(value, "decided_at")
    else:
        dumped = asdict(value)
    return (emit.topic, emit.key, repr(dumped))


def counts_of(table: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if k.split("|")[1] in accounting.KINDS}


def check_table(desk: Desk, now: datetime) -> None:
    """No window count, budget or live-call slot count over its buyer's cap."""
    for key, value in desk.table.items():
        buyer_id, kind, *_ = key.split("|")
        if kind == "lead":
            continue  # ledger entries, also for a buyer no longer configured
        limits = desk.buyers[buyer_id].caps
        if kind in CAP_KEYS:
            cap = getattr(limits, CAP_KEYS[kind])
            assert cap is None or value["sold"] <= cap, (key, value)
            budget = getattr(limits, BUDGET_KEYS[kind]) if kind in BUDGET_KEYS else None
            assert budget is None or value["spend"] <= budget, (key, value)
        elif kind == "calls":
            live = [e for e in value.values() if datetime.fromisoformat(e) > now]
            assert limits.concurrent_calls is not None
            assert len(live) <= limits.concurrent_calls, (key, value)
        else:
            raise AssertionError(f"unexpected cap table key {key}")


@settings(max_examples=300, deadline=None)
@given(pool=pools(), data=st.data())
def test_offers_with_replays_sell_within_every_cap_and_tell_one_story(
    pool: dict[str, Buyer], data: st.DataObject
) -> None:
    policies = {v: data.draw(st.integers(1, 3), label=f"max_buyers:{v}") for v in VERTICALS}
    initial = data.draw(offers(pool, policies), label="offers")
    desk = Desk(*pool.values())
    queue: deque[Offer] = deque(initial)
    history: list[Offer] = []
    seen: dict[tuple[str, int], tuple[Offer, list[tuple[Any, ...]]]] = {}
    buyer_leads: dict[tuple[str, str], list[BuyerLead]] = defaultdict(list)
    decisions: dict[str, list[Decision]] = defaultdict(list)
    unsold: set[str] = set()
    now = NOW
    replays = data.draw(st.integers(0, 20), label="replays")

    while queue:
        if history and replays and data.draw(st.booleans()):
            replays -= 1
            queue.appendleft(data.draw(st.sampled_from(history), label="replay"))
        offer = queue.popleft()
        history.append(offer)

        counts_before = copy.deepcopy(counts_of(desk.table))
        result = desk.offer(offer, now)
        check_table(desk, now)
        now += timedelta(seconds=data.draw(st.integers(1, 90), label="pause"))

        key = (offer.lead.lead_id, offer.position)
        answer = [signature(e) for e in result.emits]
        if key in seen:
            # A replay (or the same offer forwarded twice): the first answer, nothing written.
            assert seen[key] == (offer, answer)
            assert result.writes == []
            assert counts_of(desk.table) == counts_before
        else:
            seen[key] = (offer, answer)
            found = desk.buyers.get(offering.current_buyer_id(offer))
            written = [k for k, _ in result.writes]
            if found is None:
                assert written == [offering.ledger_key(offer)]
            else:
                keys = offering.state_keys(offer, found)
                # Counts, then slots, then the ledger entry: a crash can only waste capacity.
                assert written[-1] == keys.ledger
                assert written[:-1] in (
                    [],
                    [keys.slots],
                    list(keys.counts),
                    [*keys.counts, keys.slots],
                )

        for emit in result.emits:
            value = emit.value
            if isinstance(value, Offer):
                assert emit.key == offering.current_buyer_id(value)
                assert value.position == offer.position + 1
                queue.append(value)
            elif isinstance(value, BuyerLead):
                assert emit.topic == catalog.buyer_topic(value.buyer_id)
                buyer_leads[value.lead_id, value.buyer_id].append(value)
            elif isinstance(value, Decision):
                decisions[value.lead_id or ""].append(value)
            elif isinstance(value, UnsoldLead):
                unsold.add(value.lead.lead_id)
            else:
                assert isinstance(value, PublisherSignal)

    # Recount every window from the sales that were emitted.
    recount: dict[str, dict[str, float]] = defaultdict(lambda: {"sold": 0, "spend": 0.0})
    for offer in initial:
        lead = offer.lead
        distinct = {repr(without(d, "timings")) for d in decisions[lead.lead_id]}
        assert len(distinct) == 1, "one decision per lead, however often replayed"
        decision = decisions[lead.lead_id][0]
        assert [v.buyer_id for v in decision.considered] == [
            FILTERED.buyer_id,
            *(c.buyer_id for c in offer.candidates),
        ]

        bought = [c for c in offer.candidates if (lead.lead_id, c.buyer_id) in buyer_leads]
        for c in bought:
            copies = buyer_leads[lead.lead_id, c.buyer_id]
            assert all(same == copies[0] for same in copies), "one sale per buyer"
            assert copies[0].price == c.price
            assert copies[0].exclusive == (offer.max_buyers == 1 or c.exclusive_only)
            wins = accounting.windows(pool[c.buyer_id].timezone, lead.occurred_at)
            for window in accounting.counts_keys(c.buyer_id, wins):
                recount[window]["sold"] += 1
                recount[window]["spend"] += c.price
        assert len(bought) <= offer.max_buyers
        if any(c.exclusive_only for c in bought):
            assert len(bought) == 1, "an exclusive-only buyer's lead goes to nobody else"

        if bought:
            assert decision.outcome == "sold"
            assert lead.lead_id not in unsold
            assert decision.sales == [Sale(buyer_id=c.buyer_id, price=c.price) for c in bought]
            assert decision.buyers == [c.buyer_id for c in bought]
            assert decision.price == round(sum(c.price for c in bought), 2)
        else:
            assert decision.outcome == "unsold"
            assert lead.lead_id in unsold
        sold_verdicts = [v.buyer_id for v in decision.considered if v.reason == "sold"]
        assert sold_verdicts == decision.buyers

    stored = counts_of(desk.table)
    assert stored.keys() == recount.keys(), "no counts without a sale"
    for window, value in stored.items():
        assert value["sold"] == recount[window]["sold"], window
        assert value["spend"] == pytest.approx(recount[window]["spend"]), window
