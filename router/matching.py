"""Which buyers accept a lead, what each pays, and in what order they are offered it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from operator import attrgetter
from typing import NamedTuple

from router import filters, pricing, strategies
from router.buyers import Buyer, BuyersConfig
from router.records import Candidate, NormalizedLead, Verdict

_BY_BUYER_ID = attrgetter("buyer_id")


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
    return list(_sorted_verdicts(tuple((reason, tuple(ids)) for reason, ids in grouped.items())))


@lru_cache(maxsize=4096)
def _sorted_verdicts(grouped: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[Verdict, ...]:
    # A vertical's leads are left out by few distinct groupings (200 among the bench's 2,350
    # offers), and every closing decision lists them: one sort per grouping serves them all.
    verdicts = [_verdict(buyer_id, reason) for reason, ids in grouped for buyer_id in ids]
    verdicts.sort(key=_BY_BUYER_ID)
    return tuple(verdicts)


class _VerticalSplit(NamedTuple):
    left_out: tuple[Verdict, ...]  # buyers that never take the vertical: paused, or not theirs
    open_to: tuple[Buyer, ...]  # buyers whose answer depends on the lead itself


class _Splits(NamedTuple):
    config: BuyersConfig
    bought: frozenset[str]  # verticals some buyer buys
    by_vertical: dict[str | None, _VerticalSplit]  # those verticals; None: every other one


# Most buyers of a catalog buy other verticals; settling them once per vertical took matching
# from ~50 filter runs per lead to ~10. Keyed by config identity (configs are replaced, never
# changed); verticals nobody buys share one entry, so upstream junk cannot grow the cache.
_splits: dict[int, _Splits] = {}
_MAX_CONFIGS = 4  # configs change only when the control plane updates the market


def _split(config: BuyersConfig, vertical: str) -> _VerticalSplit:
    cached = _splits.get(id(config))
    if cached is None or cached.config is not config:
        if len(_splits) >= _MAX_CONFIGS:
            _splits.clear()
        bought = frozenset(v for buyer in config.buyers for v in buyer.verticals)
        cached = _splits[id(config)] = _Splits(config, bought, {})
    key = vertical if vertical in cached.bought else None
    split = cached.by_vertical.get(key)
    if split is None:
        left_out: list[Verdict] = []
        open_to: list[Buyer] = []
        for buyer in config.buyers:
            reason = filters.vertical_rejection(buyer, vertical)
            if reason is None:
                open_to.append(buyer)
            else:
                left_out.append(_verdict(buyer.id, reason))
        split = cached.by_vertical[key] = _VerticalSplit(tuple(left_out), tuple(open_to))
    return split


def match(
    lead: NormalizedLead, score: int, config: BuyersConfig, now: datetime
) -> tuple[list[Candidate], list[Verdict]]:
    """Accepting buyers ranked by the vertical's strategy, and why every other buyer was left out.

    A buyer whose price for this lead is below the vertical's floor gets `below_floor`.
    """
    policy = config.policy(lead.vertical)
    bids: list[strategies.Bid] = []
    by_id = {}
    split = _split(config, lead.vertical)
    verdicts = list(split.left_out)
    for buyer in split.open_to:
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
    candidates = [
        Candidate(
            buyer_id=bid.buyer_id,
            price=bid.price,
            priority=bid.priority,
            exclusive_only=by_id[bid.buyer_id].exclusive_only,
        )
        for bid in strategies.rank(bids, policy.strategy, lead.lead_id)
    ]
    verdicts.sort(key=_BY_BUYER_ID)
    return candidates, verdicts
