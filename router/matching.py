"""Which buyers accept a lead, what each pays, and in what order they are offered it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache

from router import filters, pricing, strategies
from router.buyers import BuyersConfig
from router.records import Candidate, NormalizedLead, Verdict


@lru_cache(maxsize=16384)
def _verdict(buyer_id: str, reason: str) -> Verdict:
    # Every lead gets a verdict from every buyer, mostly the same few; records are frozen,
    # so one instance per (buyer, reason) serves them all.
    return Verdict(buyer_id=buyer_id, reason=reason)


def left_out(verdicts: Iterable[Verdict]) -> dict[str, list[str]]:
    """Verdicts grouped by reason, each group's buyer ids in the verdicts' order."""
    grouped: dict[str, list[str]] = {}
    for verdict in verdicts:
        grouped.setdefault(verdict.reason, []).append(verdict.buyer_id)
    return grouped


def verdicts_of(grouped: Mapping[str, Iterable[str]]) -> list[Verdict]:
    """`left_out`'s verdicts again, sorted by buyer id as `match` returns them."""
    verdicts = [_verdict(buyer_id, reason) for reason, ids in grouped.items() for buyer_id in ids]
    verdicts.sort(key=lambda v: v.buyer_id)
    return verdicts


def match(
    lead: NormalizedLead, score: int, config: BuyersConfig, now: datetime
) -> tuple[list[Candidate], list[Verdict]]:
    """Accepting buyers ranked by the vertical's strategy, and why every other buyer was left out.

    A buyer whose price for this lead is below the vertical's floor gets `below_floor`.
    """
    policy = config.policy(lead.vertical)
    bids: list[strategies.Bid] = []
    by_id = {}
    verdicts: list[Verdict] = []
    for buyer in config.buyers:
        reason = filters.rejection_reason(buyer, lead, score, policy, now)
        if reason is None:
            price = pricing.price_for(buyer, lead, score)
            if pricing.below_floor(price, policy):
                reason = "below_floor"
            else:
                bids.append(
                    strategies.Bid(
                        buyer_id=buyer.id,
                        price=price,
                        priority=buyer.priority,
                        weight=buyer.weight,
                        quality_multiplier=buyer.quality_multiplier,
                    )
                )
                by_id[buyer.id] = buyer
        if reason is not None:
            verdicts.append(_verdict(buyer.id, reason))
    # Built from already-typed values: validating ~50 of them per lead was 3-4 % of a worker's
    # samples (docs/performance.md); tests/unit/test_matching.py checks they round-trip.
    candidates = [
        Candidate.model_construct(
            buyer_id=bid.buyer_id,
            price=bid.price,
            priority=bid.priority,
            exclusive_only=by_id[bid.buyer_id].exclusive_only,
        )
        for bid in strategies.rank(bids, policy.strategy, lead.lead_id)
    ]
    verdicts.sort(key=lambda v: v.buyer_id)
    return candidates, verdicts
