from __future__ import annotations

import itertools
import math
import random
import uuid
from collections import Counter
from decimal import Decimal
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.buyers import Buyer, Strategy
from router.normalize import LEAD_ID_NAMESPACE
from router.strategies import Bid, effective_bid, rank, wrr_key, wrr_uniform

STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)

# Few distinct values, so ties on every key component are common.
bids_st = st.builds(
    Bid,
    buyer_id=st.sampled_from(["a", "b", "c", "d", "e", "f"]),
    price=st.sampled_from([0.0, 1.0, 9.99, 10.0, 11.0, 25.5]),
    priority=st.integers(0, 3),
    weight=st.integers(1, 5),
    quality_multiplier=st.sampled_from([0.5, 1.0, 1.1, 1.25, 2.0]),
)
# One bid per buyer, as the router produces them.
unique_bids_st = st.lists(bids_st, max_size=6, unique_by=lambda b: b.buyer_id)
lead_ids = st.text(min_size=1, max_size=40)


@given(st.lists(bids_st, max_size=8), st.sampled_from(STRATEGIES), lead_ids)
def test_rank_is_a_permutation(bids: list[Bid], strategy: Strategy, lead_id: str) -> None:
    assert Counter(rank(bids, strategy, lead_id)) == Counter(bids)


# Duplicates of a buyer id included on purpose: even then the input order must not matter.
@given(st.lists(bids_st, max_size=8), st.sampled_from(STRATEGIES), lead_ids, st.randoms())
def test_rank_ignores_input_order(
    bids: list[Bid], strategy: Strategy, lead_id: str, rnd: random.Random
) -> None:
    shuffled = list(bids)
    rnd.shuffle(shuffled)
    assert rank(shuffled, strategy, lead_id) == rank(bids, strategy, lead_id)


def _non_decreasing(keys: list[tuple[object, ...]]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(keys))


@given(unique_bids_st)
def test_priority_is_a_waterfall_by_tier_then_price_then_id(bids: list[Bid]) -> None:
    ranked = rank(bids, "priority", "lead")
    assert _non_decreasing([(b.priority, -b.price, b.buyer_id) for b in ranked])


@given(unique_bids_st)
def test_highest_bid_orders_by_effective_bid_then_priority_then_id(bids: list[Bid]) -> None:
    ranked = rank(bids, "highest_bid", "lead")
    assert _non_decreasing([(-effective_bid(b), b.priority, b.buyer_id) for b in ranked])


def test_effective_bid_is_exact_so_equal_products_fall_to_priority() -> None:
    # 10 * 1.1 is 11.000000000000002 in floats; in decimal it ties with 11 * 1.
    boosted = Bid("boosted", 10.0, priority=5, quality_multiplier=1.1)
    plain = Bid("plain", 11.0, priority=1)
    assert effective_bid(boosted) == effective_bid(plain) == Decimal("11")
    assert [b.buyer_id for b in rank([boosted, plain], "highest_bid", "x")] == ["plain", "boosted"]


def test_quality_multiplier_can_outbid_a_higher_price() -> None:
    cheap_good = Bid("good", 10.0, priority=1, quality_multiplier=1.5)
    dear_poor = Bid("poor", 12.0, priority=1, quality_multiplier=1.0)
    assert rank([dear_poor, cheap_good], "highest_bid", "x")[0] is cheap_good


def test_priority_waterfall_ignores_price_across_tiers() -> None:
    bids = [Bid("rich", 50.0, 2), Bid("first", 5.0, 1), Bid("second", 6.0, 1), Bid("tie", 6.0, 1)]
    assert [b.buyer_id for b in rank(bids, "priority", "x")] == ["second", "tie", "first", "rich"]


@given(unique_bids_st)
def test_highest_bid_with_unit_multipliers_keeps_the_legacy_router_order(
    bids: list[Bid],
) -> None:
    # The order matching.match used before strategies existed: price desc, priority, id.
    # Spelled out here rather than calling match(), which now delegates to rank().
    unit = [Bid(b.buyer_id, b.price, b.priority, b.weight) for b in bids]
    legacy = sorted(unit, key=lambda b: (-b.price, b.priority, b.buyer_id))
    assert rank(unit, "highest_bid", "lead") == legacy


@given(unique_bids_st, lead_ids, st.randoms())
def test_weighted_round_robin_is_deterministic_per_lead(
    bids: list[Bid], lead_id: str, rnd: random.Random
) -> None:
    first = rank(bids, "weighted_round_robin", lead_id)
    shuffled = list(bids)
    rnd.shuffle(shuffled)
    assert rank(shuffled, "weighted_round_robin", lead_id) == first
    assert rank(list(reversed(bids)), "weighted_round_robin", lead_id) == first
    # And it depends on nothing but the lead, the ids and the weights.
    repriced = [Bid(b.buyer_id, b.price + 1, b.priority + 1, b.weight) for b in bids]
    assert [b.buyer_id for b in rank(repriced, "weighted_round_robin", lead_id)] == [
        b.buyer_id for b in first
    ]


@given(lead_ids, st.text(max_size=20))
def test_wrr_uniform_is_strictly_inside_the_unit_interval(lead_id: str, buyer_id: str) -> None:
    u = wrr_uniform(lead_id, buyer_id)
    assert 0.0 < u < 1.0
    assert math.isfinite(wrr_key(lead_id, Bid(buyer_id or "x", 1.0, 0, weight=10**9)))


def test_weighted_round_robin_order_varies_between_leads() -> None:
    bids = [Bid(i, 10.0, 1) for i in "abcd"]
    orders = {
        tuple(b.buyer_id for b in rank(bids, "weighted_round_robin", f"l{n}")) for n in range(200)
    }
    assert len(orders) > 12  # of 24 possible; equal weights should reach most of them


def test_weighted_round_robin_first_place_share_follows_weight() -> None:
    """First-place share over 10,000 realistic lead ids (UUIDv5 in the router's namespace).

    Bound chosen: the absolute reading, |share - w/W| <= 5 percentage points, plus a tighter
    4-sigma binomial bound (sd = sqrt(p(1-p)/n): 0.30, 0.40, 0.46 pp for p = .1, .2, .7).
    The relative reading (within 5 % of w/W) is not asserted: at p = 0.1 that is 0.5 pp,
    about 1.7 sd, which an honest sampler misses for roughly one lead-id set in ten (with
    uuid5(NAMESPACE_OID, str(i)) the weight-1 buyer lands at 9.42 %, 5.8 % low). The set used
    here measures 10.14 % / 19.59 % / 70.27 %, which happens to be inside it too.
    """
    n = 10_000
    weights = {"w1": 1, "w2": 2, "w7": 7}
    total = sum(weights.values())
    bids = [Bid(buyer_id, 10.0, 1, weight=w) for buyer_id, w in weights.items()]
    firsts = Counter(
        rank(bids, "weighted_round_robin", str(uuid.uuid5(LEAD_ID_NAMESPACE, f"evt-{i}")))[
            0
        ].buyer_id
        for i in range(n)
    )
    for buyer_id, weight in weights.items():
        expected = weight / total
        share = firsts[buyer_id] / n
        sd = math.sqrt(expected * (1 - expected) / n)
        assert abs(share - expected) <= 0.05, (buyer_id, share)
        assert abs(share - expected) <= 4 * sd, (buyer_id, share, sd)


@pytest.mark.parametrize(
    "fields",
    [
        {"price": -1.0},
        {"price": math.nan},
        {"price": math.inf},
        {"weight": 0},
        {"quality_multiplier": 0.0},
        {"quality_multiplier": math.nan},
    ],
)
def test_bid_rejects_nonsense(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Bid(**{"buyer_id": "a", "price": 1.0, "priority": 0, **fields})  # type: ignore[arg-type]


def test_bid_of_copies_the_buyer_ranking_fields() -> None:
    buyer = Buyer(
        id="acme",
        name="Acme",
        verticals=["solar"],
        price=10.0,
        priority=3,
        weight=4,
        quality_multiplier=1.2,
    )
    assert Bid.of(buyer, 12.34) == Bid("acme", 12.34, 3, 4, 1.2)


def test_negative_zero_and_int_prices_are_normalised() -> None:
    assert str(Bid("a", -0.0, 0).price) == "0.0"
    assert isinstance(Bid("a", 10, 0).price, float)


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        rank([], "round_robin", "x")  # type: ignore[arg-type]
