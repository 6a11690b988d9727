"""The order in which accepting buyers are offered a lead, per vertical strategy. Pure.

Every order is total and ignores input order: after its strategy's own key, a ranking falls
back to buyer_id and then to the bid's remaining fields, so even duplicate ids sort the same
way every time.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from router.buyers import Buyer, Strategy

# sha256 gives 256 bits; 52 of them make an odd numerator over 2**53, which is exact in a
# float and can be neither 0 nor 1 (log(0) is undefined, u == 1 would beat every weight).
_U_BITS = 52


@dataclass(frozen=True, slots=True, order=True)
class Bid:
    """One accepting buyer's offer for one lead. Field order is the last-resort tie-break."""

    buyer_id: str
    price: float
    priority: int
    weight: int = 1
    quality_multiplier: float = 1.0

    def __post_init__(self) -> None:
        # 10 vs 10.0 and -0.0 vs 0.0 compare equal but print differently; normalising them
        # keeps "input order never matters" true of the output's repr too.
        object.__setattr__(self, "price", float(self.price) + 0.0)
        object.__setattr__(self, "quality_multiplier", float(self.quality_multiplier))
        if not math.isfinite(self.price) or self.price < 0:
            raise ValueError(f"{self.buyer_id}: price must be finite and >= 0, not {self.price}")
        if self.weight < 1:
            raise ValueError(f"{self.buyer_id}: weight must be >= 1, not {self.weight}")
        if not (math.isfinite(self.quality_multiplier) and self.quality_multiplier > 0):
            raise ValueError(
                f"{self.buyer_id}: quality_multiplier must be > 0, not {self.quality_multiplier}"
            )

    @classmethod
    def of(cls, buyer: Buyer, price: float) -> Bid:
        """The bid of `buyer` at `price` (usually `pricing.price_for` of this lead)."""
        return cls(
            buyer_id=buyer.id,
            price=price,
            priority=buyer.priority,
            weight=buyer.weight,
            quality_multiplier=buyer.quality_multiplier,
        )


def effective_bid(bid: Bid) -> Decimal:
    """price * quality_multiplier, exact in decimal: 10 * 1.1 ties with 11 * 1 (the floats
    would differ in the last bit and let that, not priority, decide)."""
    return Decimal(repr(bid.price)) * Decimal(repr(bid.quality_multiplier))


def wrr_uniform(lead_id: str, buyer_id: str) -> float:
    """A uniform draw in the open interval (0, 1), fixed by the lead and the buyer."""
    digest = hashlib.sha256(f"{lead_id}|{buyer_id}".encode()).digest()
    bits = int.from_bytes(digest[:8], "big") >> (64 - _U_BITS)
    return (2 * bits + 1) / 2.0 ** (_U_BITS + 1)


def wrr_key(lead_id: str, bid: Bid) -> float:
    """Efraimidis-Spirakis key, higher first: log(u^(1/w)) = log(u)/w, the same order as
    u^(1/w) without underflow for large weights. The first place goes to each buyer with
    probability weight / total weight, and the rest of the order follows the same law."""
    return math.log(wrr_uniform(lead_id, bid.buyer_id)) / bid.weight


def _priority_key(bid: Bid) -> tuple[Any, ...]:
    return (bid.priority, -bid.price, bid)


def _highest_bid_key(bid: Bid) -> tuple[Any, ...]:
    return (-effective_bid(bid), bid.priority, bid)


def rank(bids: Sequence[Bid], strategy: Strategy, lead_id: str) -> list[Bid]:
    """The order in which the bidders are offered the lead.

    - priority: waterfall by priority tier (lower first), then price (higher first).
    - highest_bid: price * quality_multiplier (higher first), then priority (lower first);
      with multipliers of 1 this is `matching.match`'s price, priority, buyer_id order.
    - weighted_round_robin: a weighted random permutation drawn from sha256(lead_id|buyer_id),
      so the same lead and bids give the same order on every worker and every retry.

    Remaining ties go to buyer_id, then to the other bid fields.
    """
    key: Callable[[Bid], tuple[Any, ...]]
    if strategy == "priority":
        key = _priority_key
    elif strategy == "highest_bid":
        key = _highest_bid_key
    elif strategy == "weighted_round_robin":

        def key(bid: Bid) -> tuple[Any, ...]:
            return (-wrr_key(lead_id, bid), bid)

    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    return sorted(bids, key=key)
