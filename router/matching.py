"""Which buyers accept a lead, and in what order they are offered it."""

from __future__ import annotations

from collections.abc import Iterable

from router.buyers import Buyer
from router.records import Candidate, NormalizedLead, Verdict


def rejection_reason(buyer: Buyer, lead: NormalizedLead, score: int) -> str | None:
    """The first filter the lead fails for this buyer, or None if the buyer accepts it."""
    if lead.vertical not in buyer.verticals:
        return "filtered:vertical"
    if lead.channel not in buyer.channels:
        return "filtered:channel"
    contact = lead.contact
    if buyer.states and contact.state not in buyer.states:
        return "filtered:state"
    if buyer.postal_codes and not (
        contact.postal_code and contact.postal_code.startswith(tuple(buyer.postal_codes))
    ):
        return "filtered:postal_code"
    if score < buyer.min_score:
        return "filtered:min_score"
    if buyer.requires_consent:
        sellers = lead.consent.sellers if lead.consent else []
        if buyer.id not in sellers and "*" not in sellers:
            return "consent"
    return None


def match(
    lead: NormalizedLead, score: int, buyers: Iterable[Buyer]
) -> tuple[list[Candidate], list[Verdict]]:
    """Rank accepting buyers by price (high first), then priority (low first), then id."""
    candidates: list[Candidate] = []
    filtered: list[Verdict] = []
    for buyer in buyers:
        reason = rejection_reason(buyer, lead, score)
        if reason is None:
            candidates.append(
                Candidate(buyer_id=buyer.id, price=buyer.price, priority=buyer.priority)
            )
        else:
            filtered.append(Verdict(buyer_id=buyer.id, reason=reason))
    candidates.sort(key=lambda c: (-c.price, c.priority, c.buyer_id))
    filtered.sort(key=lambda v: v.buyer_id)
    return candidates, filtered
