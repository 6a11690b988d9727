from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from test_filters import NOW, make_buyer, make_lead

from router import codec, filters, matching, pricing, strategies
from router.buyers import Buyer, BuyersConfig, Pricing, ScoreBand, VerticalPolicy
from router.contract import CHANNELS
from router.matching import left_out, match, verdicts_of
from router.records import Candidate, LeadConsent, NormalizedLead, Verdict

pytestmark = pytest.mark.unit


def config(*buyers: Buyer, **policies: VerticalPolicy) -> BuyersConfig:
    return BuyersConfig(buyers=list(buyers), verticals=policies)


def reason_for(buyer: Buyer, lead: NormalizedLead, score: int = 50) -> str | None:
    """What `match` says about one buyer; it must agree with the filters' own answer."""
    candidates, verdicts = match(lead, score, config(buyer), NOW)
    direct = filters.rejection_reason(buyer, lead, score, VerticalPolicy(), NOW)
    if direct is None:
        assert [c.buyer_id for c in candidates] == [buyer.id]
        assert verdicts == []
        return None
    assert candidates == []
    assert verdicts == [Verdict(buyer_id=buyer.id, reason=direct)]
    return direct


def ids(candidates: list[Candidate]) -> list[str]:
    return [c.buyer_id for c in candidates]


# --- filters, through match -------------------------------------------------------------------


def test_accepts_a_lead_every_filter_allows() -> None:
    buyer = make_buyer(channels=["form"], states=["NY"], postal_codes=["100"], min_score=50)
    assert reason_for(buyer, make_lead(), score=50) is None


def test_each_filter_leaves_the_buyer_out_with_its_reason() -> None:
    lead = make_lead()
    assert reason_for(make_buyer(verticals=["mortgage"]), lead) == "filtered:vertical"
    assert reason_for(make_buyer(channels=["call"]), lead) == "filtered:channel"
    assert reason_for(make_buyer(states=["CA", "TX"]), lead) == "filtered:state"
    assert reason_for(make_buyer(postal_codes=["110"]), lead) == "filtered:postal_code"
    assert reason_for(make_buyer(min_score=60), lead, score=59) == "filtered:min_score"
    assert reason_for(make_buyer(status="paused"), lead) == "paused"
    assert reason_for(make_buyer(requires_consent=True), lead) == "consent"
    consented = make_lead(consent=LeadConsent(sellers=["other", "acme"]))
    assert reason_for(make_buyer(requires_consent=True), consented) is None


def test_a_buyer_gets_only_leads_consented_for_each_way_it_makes_contact() -> None:
    texts = make_buyer(contact_by=["call", "sms"])
    # Declaring how it makes contact asks for consent naming the buyer, as requires_consent.
    assert reason_for(texts, make_lead()) == "consent"
    elsewhere = LeadConsent(sellers=["other"], channels=["call", "sms"])
    assert reason_for(texts, make_lead(consent=elsewhere)) == "consent"
    calls_only = LeadConsent(sellers=["acme"], channels=["call"])
    assert reason_for(texts, make_lead(consent=calls_only)) == "consent:sms"
    no_channels = LeadConsent(sellers=["*"])
    assert reason_for(texts, make_lead(consent=no_channels)) == "consent:call"
    both = LeadConsent(sellers=["*"], channels=["sms", "email", "call"])
    assert reason_for(texts, make_lead(consent=both)) is None
    # A buyer that does not say how it makes contact is not held to the channels.
    assert reason_for(make_buyer(requires_consent=True), make_lead(consent=calls_only)) is None


def test_a_changed_market_is_matched_against_its_own_buyers() -> None:
    # Matching settles paused and other-vertical buyers once per config and vertical; a new
    # config (the control plane replaced the market) must never get the old one's answers.
    lead = make_lead()
    before = config(make_buyer("acme"), make_buyer("bee", verticals=["mortgage"]))
    assert ids(match(lead, 50, before, NOW)[0]) == ["acme"]
    after = config(make_buyer("acme", status="paused"), make_buyer("bee"))
    candidates, verdicts = match(lead, 50, after, NOW)
    assert ids(candidates) == ["bee"]
    assert verdicts == [Verdict(buyer_id="acme", reason="paused")]
    assert ids(match(lead, 50, before, NOW)[0]) == ["acme"]
    mortgage = make_lead(vertical="mortgage")
    assert ids(match(mortgage, 50, before, NOW)[0]) == ["bee"]


def test_verticals_nobody_buys_share_one_answer() -> None:
    cfg = config(make_buyer("acme"), make_buyer("zed", status="paused"))
    for junk in ("kitchens", "x" * 200, ""):
        candidates, verdicts = match(make_lead(vertical=junk), 50, cfg, NOW)
        assert candidates == []
        assert verdicts == [
            Verdict(buyer_id="acme", reason="filtered:vertical"),
            Verdict(buyer_id="zed", reason="paused"),
        ]
    assert len(matching._splits[id(cfg)].by_vertical) == 1


def test_consent_age_is_judged_under_the_verticals_policy() -> None:
    buyer = make_buyer(requires_consent=True)
    lead = make_lead(
        consent=LeadConsent(sellers=["*"], captured_at=datetime(2026, 1, 1, tzinfo=UTC))
    )
    assert ids(match(lead, 50, config(buyer), NOW)[0]) == ["acme"]
    strict = config(buyer, solar=VerticalPolicy(consent_max_age_days=30))
    assert match(lead, 50, strict, NOW) == ([], [Verdict(buyer_id="acme", reason="consent")])


# --- pricing and the floor --------------------------------------------------------------------


def test_pricing_adjustments_flow_into_the_candidate_price() -> None:
    buyer = make_buyer(
        price=20.0,
        pricing=Pricing(
            states={"NY": 2.5},
            channels={"form": -1.25},
            score_bands=[ScoreBand(min=40, max=60, adjust=0.75)],
        ),
    )
    (candidate,), _ = match(make_lead(), 50, config(buyer), NOW)
    assert candidate.price == 22.0
    assert candidate.price == pricing.price_for(buyer, make_lead(), 50)
    (outside_band,), _ = match(make_lead(state="CA"), 61, config(buyer), NOW)
    assert outside_band.price == 18.75


def test_a_price_below_the_verticals_floor_is_below_floor() -> None:
    buyers = [
        make_buyer("low", price=9.99),
        make_buyer("at", price=10.0),
        # 8 base, +3 for New York: the adjusted price is what must clear the floor.
        make_buyer("adjusted", price=8.0, pricing=Pricing(states={"NY": 3.0})),
        make_buyer("elsewhere", price=5.0, verticals=["mortgage"]),
    ]
    floored = config(*buyers, solar=VerticalPolicy(floor_price=10.0))
    candidates, verdicts = match(make_lead(), 50, floored, NOW)
    assert ids(candidates) == ["adjusted", "at"]
    assert verdicts == [
        Verdict(buyer_id="elsewhere", reason="filtered:vertical"),
        Verdict(buyer_id="low", reason="below_floor"),
    ]
    # The floor is the vertical's own: another vertical's floor does not apply.
    other = config(*buyers, mortgage=VerticalPolicy(floor_price=100.0))
    assert ids(match(make_lead(), 50, other, NOW)[0]) == ["adjusted", "at", "low"]


def test_a_filtered_buyer_keeps_its_filter_reason_whatever_its_price() -> None:
    cfg = config(make_buyer("west", price=1.0, states=["CA"]), solar=VerticalPolicy(floor_price=10))
    assert match(make_lead(), 50, cfg, NOW) == (
        [],
        [Verdict(buyer_id="west", reason="filtered:state")],
    )


# --- ranking per the vertical's strategy ---------------------------------------------------------

RANKED = [
    make_buyer("cheap", price=5.0, priority=0),
    make_buyer("zeta", price=20.0, priority=1),
    make_buyer("alpha", price=20.0, priority=1),
    make_buyer("first", price=20.0, priority=0),
    make_buyer("rich", price=30.0, priority=9),
    make_buyer("nope", verticals=["mortgage"], price=99.0),
]


def test_highest_bid_ranks_by_price_then_priority_then_id() -> None:
    candidates, verdicts = match(make_lead(), 50, config(*RANKED), NOW)
    assert ids(candidates) == ["rich", "first", "alpha", "zeta", "cheap"]
    assert [(c.price, c.priority) for c in candidates[:2]] == [(30.0, 9), (20.0, 0)]
    assert verdicts == [Verdict(buyer_id="nope", reason="filtered:vertical")]


def test_highest_bid_weighs_the_quality_multiplier() -> None:
    buyers = [
        make_buyer("pricey", price=20.0),
        make_buyer("good", price=15.0, quality_multiplier=1.5),
    ]
    candidates, _ = match(make_lead(), 50, config(*buyers), NOW)
    assert ids(candidates) == ["good", "pricey"]
    # The candidate carries the buyer's price, not the weighted bid.
    assert [c.price for c in candidates] == [15.0, 20.0]


def test_priority_strategy_is_a_waterfall_by_tier_then_price() -> None:
    policy = VerticalPolicy(strategy="priority")
    candidates, _ = match(make_lead(), 50, config(*RANKED, solar=policy), NOW)
    assert ids(candidates) == ["first", "cheap", "alpha", "zeta", "rich"]


def test_weighted_round_robin_draws_a_fixed_order_per_lead() -> None:
    buyers = [
        make_buyer(b, price=p, weight=w)
        for b, p, w in [("a", 30.0, 1), ("b", 20.0, 3), ("c", 10.0, 6)]
    ]
    wrr = config(*buyers, solar=VerticalPolicy(strategy="weighted_round_robin"))
    orders = set()
    for n in range(40):
        lead = replace(make_lead(), lead_id=f"lead-{n}")
        # Efraimidis-Spirakis: log(u) / weight, highest first, u fixed by lead and buyer.
        expected = sorted(
            buyers,
            key=lambda b: -math.log(strategies.wrr_uniform(lead.lead_id, b.id)) / b.weight,
        )
        candidates, _ = match(lead, 50, wrr, NOW)
        assert ids(candidates) == [b.id for b in expected]
        assert match(lead, 50, wrr, NOW)[0] == candidates
        orders.add(tuple(ids(candidates)))
    # Not the price order every time: the strategy, not the bids, picks the order.
    assert len(orders) > 1


def test_each_vertical_uses_its_own_policy() -> None:
    buyers = [
        make_buyer("cheap", price=5.0, priority=0, verticals=["solar", "auto"]),
        make_buyer("rich", price=30.0, priority=9, verticals=["solar", "auto"]),
    ]
    cfg = config(*buyers, auto=VerticalPolicy(strategy="priority"))
    assert ids(match(make_lead(vertical="solar"), 50, cfg, NOW)[0]) == ["rich", "cheap"]
    assert ids(match(make_lead(vertical="auto"), 50, cfg, NOW)[0]) == ["cheap", "rich"]


def test_candidates_carry_the_buyers_exclusive_only_flag() -> None:
    buyers = [make_buyer("solo", price=30.0, exclusive_only=True), make_buyer("shared", price=20.0)]
    candidates, _ = match(make_lead(), 50, config(*buyers), NOW)
    assert [(c.buyer_id, c.exclusive_only) for c in candidates] == [
        ("solo", True),
        ("shared", False),
    ]


def test_verdicts_are_sorted_by_buyer_id() -> None:
    buyers = [
        make_buyer("zz", verticals=["auto"]),
        make_buyer("mm", status="paused"),
        make_buyer("aa", channels=["call"]),
        make_buyer("kk", price=1.0),
    ]
    _, verdicts = match(make_lead(), 50, config(*buyers, solar=VerticalPolicy(floor_price=2)), NOW)
    assert verdicts == [
        Verdict(buyer_id="aa", reason="filtered:channel"),
        Verdict(buyer_id="kk", reason="below_floor"),
        Verdict(buyer_id="mm", reason="paused"),
        Verdict(buyer_id="zz", reason="filtered:vertical"),
    ]


# --- property: match partitions the buyers and ranks by the policy --------------------------------

BUYER_IDS = ["a", "b", "c", "d", "e", "f", "g", "h"]
VERTICALS = ["solar", "mortgage", "auto"]
STATES = ["NY", "CA", "TX"]


@st.composite
def buyer_pools(draw: st.DrawFn) -> list[Buyer]:
    chosen = draw(st.lists(st.sampled_from(BUYER_IDS), unique=True, max_size=len(BUYER_IDS)))
    return [
        make_buyer(
            buyer_id,
            status=draw(st.sampled_from(["active", "active", "active", "paused"])),
            verticals=draw(st.lists(st.sampled_from(VERTICALS), min_size=1, max_size=3)),
            channels=draw(st.lists(st.sampled_from(CHANNELS), unique=True, max_size=4)),
            states=draw(st.lists(st.sampled_from(STATES), unique=True, max_size=2)),
            postal_codes=draw(
                st.lists(st.sampled_from(["1", "10", "100", "10001", "9", "90210"]), max_size=2)
            ),
            min_score=draw(st.integers(0, 100)),
            price=draw(st.sampled_from([1.0, 5.0, 12.5, 20.0])),
            pricing=Pricing(
                states=draw(st.dictionaries(st.sampled_from(STATES), st.sampled_from([-4.0, 3.5]))),
                score_bands=draw(
                    st.lists(
                        st.builds(
                            ScoreBand,
                            min=st.integers(0, 100),
                            adjust=st.sampled_from([-2.0, 1.25]),
                        ),
                        max_size=2,
                    )
                ),
            ),
            priority=draw(st.integers(0, 3)),
            weight=draw(st.integers(1, 4)),
            quality_multiplier=draw(st.sampled_from([0.5, 1.0, 1.5])),
            exclusive_only=draw(st.booleans()),
            requires_consent=draw(st.booleans()),
        )
        for buyer_id in chosen
    ]


policies = st.builds(
    VerticalPolicy,
    max_buyers=st.integers(1, 3),
    strategy=st.sampled_from(["priority", "highest_bid", "weighted_round_robin"]),
    floor_price=st.sampled_from([0.0, 5.0, 12.5, 30.0]),
)


@st.composite
def leads(draw: st.DrawFn) -> NormalizedLead:
    consent = draw(
        st.one_of(
            st.none(),
            st.builds(
                LeadConsent, sellers=st.lists(st.sampled_from(["*", *BUYER_IDS]), max_size=3)
            ),
        )
    )
    lead = make_lead(
        vertical=draw(st.sampled_from(VERTICALS)),
        channel=draw(st.sampled_from(CHANNELS)),
        state=draw(st.one_of(st.none(), st.sampled_from(STATES))),
        postal_code=draw(st.one_of(st.none(), st.sampled_from(["10001", "11001", "90210"]))),
        consent=consent,
    )
    return replace(lead, lead_id=draw(st.sampled_from(["l1", "l2", "l3"])))


@settings(max_examples=200, deadline=None)
@given(
    leads(),
    st.integers(0, 100),
    buyer_pools(),
    st.dictionaries(st.sampled_from(VERTICALS), policies),
)
def test_match_partitions_buyers_and_ranks_by_the_policy(
    lead: NormalizedLead, score: int, pool: list[Buyer], verticals: dict[str, VerticalPolicy]
) -> None:
    cfg = BuyersConfig(buyers=pool, verticals=verticals)
    policy = cfg.policy(lead.vertical)
    candidates, verdicts = match(lead, score, cfg, NOW)
    by_id = {b.id: b for b in pool}

    assert sorted(ids(candidates) + [v.buyer_id for v in verdicts]) == sorted(by_id)
    for v in verdicts:
        buyer = by_id[v.buyer_id]
        filtered = filters.rejection_reason(buyer, lead, score, policy, NOW)
        if filtered is None:
            assert v.reason == "below_floor"
            assert pricing.price_for(buyer, lead, score) < policy.floor_price
        else:
            assert v.reason == filtered
    bids = []
    for c in candidates:
        buyer = by_id[c.buyer_id]
        assert filters.rejection_reason(buyer, lead, score, policy, NOW) is None
        assert c.price == pricing.price_for(buyer, lead, score) >= policy.floor_price
        assert (c.priority, c.exclusive_only) == (buyer.priority, buyer.exclusive_only)
        # Built without validation: it must read back as the same record.
        assert codec.decode(Candidate, codec.encode(c)) == c
        assert type(c.price) is float and type(c.priority) is int
        bids.append(strategies.Bid.of(buyer, c.price))

    assert ids(candidates) == [
        b.buyer_id for b in strategies.rank(bids, policy.strategy, lead.lead_id)
    ]
    assert [v.buyer_id for v in verdicts] == sorted(v.buyer_id for v in verdicts)
    # What an offer carries of them (grouped by reason) gives the same verdicts back.
    assert verdicts_of(left_out(verdicts)) == verdicts
    # The order of the buyers file does not change the outcome.
    reordered = BuyersConfig(buyers=list(reversed(pool)), verticals=verticals)
    assert match(lead, score, reordered, NOW) == (candidates, verdicts)
