"""Stage 3, keyed by buyer id: the cap keeper. One buyer's caps live on one partition."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from router import caps, catalog, outcomes
from router.buyers import Buyer
from router.caps import Counts, LedgerEntry
from router.records import BuyerLead, Emit, Offer, Verdict


class CapKeys(NamedTuple):
    day: str
    counts: str
    ledger: str


class OfferResult(NamedTuple):
    counts: Counts | None  # the input object when unchanged
    entry: LedgerEntry | None  # the input object when unchanged
    emits: list[Emit]


def current_buyer_id(offer: Offer) -> str:
    return offer.candidates[offer.position].buyer_id


def cap_keys(offer: Offer, buyer: Buyer) -> CapKeys:
    day, _ = caps.local_windows(buyer, offer.lead.occurred_at)
    return CapKeys(
        day, caps.counts_key(buyer.id, day), caps.ledger_key(buyer.id, day, offer.lead.lead_id)
    )


def decide(
    offer: Offer,
    buyer: Buyer | None,
    counts: Counts | None,
    entry: LedgerEntry | None,
    now: datetime,
) -> OfferResult:
    """Sell to the current candidate if under cap, else pass the offer down the ranking.

    `buyer` is None when the candidate left the config while the offer was in flight.
    """
    candidate = offer.candidates[offer.position]
    lead = offer.lead
    if buyer is None:
        reason, sold_at = "unknown_buyer", None
    else:
        result = caps.check(buyer, lead.lead_id, lead.occurred_at, counts, entry, now)
        reason, sold_at, counts, entry = result.reason, result.sold_at, result.counts, result.entry

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
        return OfferResult(
            counts,
            entry,
            [
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
            ],
        )

    verdicts = [*offer.verdicts, Verdict(buyer_id=candidate.buyer_id, reason=reason)]
    next_position = offer.position + 1
    if next_position < len(offer.candidates):
        passed = offer.model_copy(update={"position": next_position, "verdicts": verdicts})
        return OfferResult(counts, entry, [Emit(catalog.OFFERS, current_buyer_id(passed), passed)])
    return OfferResult(
        counts, entry, outcomes.unsold(lead, offer.score, verdicts, "all_candidates_declined", now)
    )
