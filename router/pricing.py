"""What a buyer pays for one lead, and whether that clears the vertical's floor. Pure."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from router.buyers import Buyer, VerticalPolicy
from router.records import NormalizedLead

CENT = Decimal("0.01")


def _dec(value: float) -> Decimal:
    # Via repr, so 10.005 is the decimal the config file said, not its binary neighbour
    # 10.00499…: summing and rounding then behave the way a person checking an invoice expects.
    return Decimal(repr(value))


def price_for(buyer: Buyer, lead: NormalizedLead, score: int) -> float:
    """Base price plus the lead's state and channel adjustments and every score band that
    contains `score` (bounds inclusive); rounded half-up to cents, never below zero."""
    pricing = buyer.pricing
    total = _dec(buyer.price)
    state = lead.contact.state
    if state is not None and state in pricing.states:
        total += _dec(pricing.states[state])
    if lead.channel in pricing.channels:
        total += _dec(pricing.channels[lead.channel])
    for band in pricing.score_bands:
        if band.min <= score <= band.max:
            total += _dec(band.adjust)
    # Clamp before rounding so a tiny negative total cannot come back as -0.0.
    return float(max(total, Decimal(0)).quantize(CENT, rounding=ROUND_HALF_UP))


def below_floor(price: float, policy: VerticalPolicy) -> bool:
    """True when `price` is strictly below the vertical's floor; a price at the floor sells."""
    return price < policy.floor_price
