"""Stage 3, keyed by buyer id: the cap keeper. One buyer's caps live on one partition."""

from __future__ import annotations

from datetime import datetime

from router import caps, catalog, outcomes
from router.buyers import Buyer
from router.caps import CapState
from router.records import BuyerLead, Emit, Offer, Verdict


def current_buyer_id(offer: Offer) -> str:
    return offer.candidates[offer.position].buyer_id


def cap_key(offer: Offer, buyer: Buyer) -> str:
    day, _ = caps.local_windows(buyer, offer.lead.occurred_at)
    return caps.table_key(buyer.id, day)


def decide(
    offer: Offer, buyer: Buyer | None, state: CapState, now: datetime
) -> tuple[CapState, list[Emit]]:
    """Sell to the current candidate if under cap, else pass the offer down the ranking.

    `buyer` is None when the candidate left the config while the offer was in flight.
    """
    candidate = offer.candidates[offer.position]
    lead = offer.lead
    if buyer is None:
        reason, new_state, sold_at = "unknown_buyer", state, None
    else:
        result = caps.check(buyer, lead.lead_id, lead.occurred_at, state, now)
        reason, new_state, sold_at = result["reason"], result["state"], result["sold_at"]

    if sold_at is not None:
        sold = BuyerLead(
            **lead.model_dump(),
            buyer_id=candidate.buyer_id,
            price=candidate.price,
            score=offer.score,
            sold_at=datetime.fromisoformat(sold_at),
            exclusive=True,
        )
        untried = [
            Verdict(buyer_id=c.buyer_id, reason="outbid")
            for c in offer.candidates[offer.position + 1 :]
        ]
        considered = [
            *offer.verdicts,
            Verdict(buyer_id=candidate.buyer_id, reason="sold"),
            *untried,
        ]
        return new_state, [
            Emit(catalog.buyer_topic(candidate.buyer_id), lead.lead_id, sold),
            outcomes.decision(
                lead,
                "sold",
                now,
                score=offer.score,
                buyers=[candidate.buyer_id],
                price=candidate.price,
                reasons=["sold"],
                score_reasons=offer.score_reasons,
                considered=considered,
            ),
        ]

    verdicts = [*offer.verdicts, Verdict(buyer_id=candidate.buyer_id, reason=reason)]
    next_position = offer.position + 1
    if next_position < len(offer.candidates):
        passed = offer.model_copy(update={"position": next_position, "verdicts": verdicts})
        return new_state, [Emit(catalog.OFFERS, current_buyer_id(passed), passed)]
    return new_state, outcomes.unsold(lead, offer.score, verdicts, "all_candidates_declined", now)
