"""Stage 3, keyed by buyer id: the cap keeper. One buyer's caps live on one partition.

An offer walks down its ranking one buyer at a time. Each buyer's answer is written to that
buyer's ledger before anything is sent, so a replayed offer gets the same answer and the
walk never forks: a lead is sold to at most `max_buyers` buyers, never twice to one buyer,
and an exclusive-only buyer never shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import msgspec

from router import accounting, catalog, matching, outcomes
from router.accounting import LedgerEntry
from router.buyers import Buyer
from router.records import BuyerLead, Emit, NormalizedLead, Offer, PublisherSignal, Sale, Verdict


class OfferResult(NamedTuple):
    writes: list[tuple[str, Any]]  # table assignments, in the order they must happen
    emits: list[Emit]


def current_buyer_id(offer: Offer) -> str:
    return offer.candidates[offer.position].buyer_id


def state_keys(offer: Offer, buyer: Buyer) -> accounting.AccountKeys:
    """The table entries `decide` reads for this offer."""
    return _state_keys(buyer.id, buyer.timezone, offer.lead.occurred_at, offer.lead.lead_id)


@lru_cache(maxsize=1024)  # the agent asks before `decide`, and `decide` asks again
def _state_keys(
    buyer_id: str, timezone: str, occurred_at: datetime, lead_id: str
) -> accounting.AccountKeys:
    return accounting.keys_for(buyer_id, accounting.windows(timezone, occurred_at), lead_id)


def ledger_key(offer: Offer) -> str:
    """The current candidate's ledger entry for this lead; readable even for a buyer that is
    no longer configured."""
    return accounting.ledger_key(current_buyer_id(offer), offer.lead.lead_id)


def _decline(timezone: str, offer: Offer, reason: str, price: float, now: datetime) -> LedgerEntry:
    wins = accounting.windows(timezone, offer.lead.occurred_at)
    return LedgerEntry(
        reason=reason,
        windows=wins._asdict(),
        price=price,
        decided_at=now.isoformat(),
        sold_at=None,
        returned=False,
        credited_at=None,
    )


def _account(
    offer: Offer, buyer: Buyer, state: Mapping[str, Any], now: datetime
) -> tuple[str, str | None, list[tuple[str, Any]]]:
    """The buyer's answer, when it bought (as first recorded), and the table writes that
    record it: counts, slots, then the ledger, so a crash between them can only waste
    capacity, never exceed a cap."""
    candidate = offer.candidates[offer.position]
    keys = state_keys(offer, buyer)
    entry = state.get(keys.ledger)
    if entry is None and buyer.status == "paused":
        return (
            "paused",
            None,
            [(keys.ledger, _decline(buyer.timezone, offer, "paused", candidate.price, now))],
        )
    if entry is None and candidate.exclusive_only and offer.sales:
        # Someone already bought it; an exclusive-only buyer never shares a lead.
        reason = "exclusive_only"
        return (
            reason,
            None,
            [(keys.ledger, _decline(buyer.timezone, offer, reason, candidate.price, now))],
        )
    slots = state.get(keys.slots)
    check = accounting.check(
        buyer,
        offer.lead.lead_id,
        offer.lead.channel,
        candidate.price,
        offer.lead.occurred_at,
        {key: state.get(key) for key in keys.counts},
        entry,
        slots,
        now,
    )
    writes: list[tuple[str, Any]] = list(check.counts.items())
    if check.slots is not slots:
        writes.append((keys.slots, check.slots))
    if check.entry is not entry:
        new_entry = check.entry
        if check.reason == accounting.SOLD:
            new_entry = LedgerEntry(**check.entry, publisher=_publisher(offer.lead))
        writes.append((keys.ledger, new_entry))
    return check.reason, check.sold_at, writes


def _publisher(lead: NormalizedLead) -> str | None:
    publisher = lead.source.get("publisher_id")
    return publisher if isinstance(publisher, str) else None


# With a `fields:` list, only these keys of the channel's block and of `source` go out: the
# rest can identify the consumer (the caller's number, the IP address, the browser).
_SAFE_CHANNEL_DETAILS = frozenset(
    {"call_id", "dialed_number", "ad_id", "keyword", "url", "product", "plan"}
)
_SAFE_SOURCE = frozenset({"publisher_id", "campaign_id", "sub_id", "page_url"})


def for_buyer(lead: NormalizedLead, buyer: Buyer) -> dict[str, Any]:
    """The lead as this buyer may see it, as field values. With `fields:`, contact fields
    outside the list are left out, and so is whatever else could identify the consumer: the
    fingerprint (a hash a phone number can be guessed back from), the caller's number, IP and
    browser, and top-level extras, which may hold anything.

    Values stay records (the lead's own): the buyer's copy is built from them as they are,
    not dumped and read back (docs/performance.md, rows 38 and 41).
    """
    data = msgspec.structs.asdict(lead)
    if buyer.fields is None:
        return data
    allowed = set(buyer.fields)
    contact = lead.contact
    data["contact"] = msgspec.structs.replace(
        contact, **{name: None for name in contact.__struct_fields__ if name not in allowed}
    )
    data["fingerprint"] = ""
    data["channel_details"] = {
        k: v for k, v in lead.channel_details.items() if k in _SAFE_CHANNEL_DETAILS
    }
    data["source"] = {k: v for k, v in lead.source.items() if k in _SAFE_SOURCE}
    data["extra"] = {}
    return data


def decide(
    offer: Offer, buyer: Buyer | None, state: Mapping[str, Any], now: datetime
) -> OfferResult:
    """Offer the lead to the current candidate, then pass it on or close its story.

    `state` holds the table values for `state_keys(offer, buyer)`. `buyer` is None when the
    candidate left the config while the offer was in flight.
    """
    candidate = offer.candidates[offer.position]
    lead = offer.lead
    writes: list[tuple[str, Any]] = []
    sold_at: str | None = None
    if buyer is None:
        # Recorded too: if the buyer is configured again before a replay, the replay must
        # still walk past it, or the lead could be sold twice.
        key = ledger_key(offer)
        entry = state.get(key)
        if entry is None:
            reason = "unknown_buyer"
            writes = [(key, _decline("UTC", offer, reason, candidate.price, now))]
        else:
            reason, sold_at = entry["reason"], entry["sold_at"]
    else:
        reason, sold_at, writes = _account(offer, buyer, state, now)

    emits: list[Emit] = []
    sales = offer.sales
    slots_left = offer.slots_left
    if reason == accounting.SOLD and sold_at is not None:
        sales = [*sales, Sale(buyer_id=candidate.buyer_id, price=candidate.price)]
        slots_left = 0 if candidate.exclusive_only else slots_left - 1
        if buyer is not None:  # else a replay of a sale to a buyer removed since: delivered
            sold = BuyerLead(
                **{
                    **for_buyer(lead, buyer),
                    "buyer_id": buyer.id,
                    "price": candidate.price,
                    "score": offer.score,
                    "sold_at": datetime.fromisoformat(sold_at),
                    "exclusive": offer.max_buyers == 1 or candidate.exclusive_only,
                }
            )
            emits.append(Emit(catalog.buyer_topic(buyer.id), lead.lead_id, sold))
        publisher = _publisher(lead)
        if publisher is not None:
            signal = PublisherSignal(
                publisher_id=publisher,
                lead_id=lead.lead_id,
                buyer_id=candidate.buyer_id,
                type="sold",
            )
            emits.append(Emit(catalog.PUBLISHER_SIGNALS, publisher, signal))

    verdicts = [*offer.verdicts, Verdict(buyer_id=candidate.buyer_id, reason=reason)]
    next_position = offer.position + 1
    if slots_left > 0 and next_position < len(offer.candidates):
        passed = msgspec.structs.replace(
            offer,
            position=next_position,
            verdicts=verdicts,
            sales=sales,
            slots_left=slots_left,
        )
        emits.append(Emit(catalog.OFFERS, current_buyer_id(passed), passed))
        return OfferResult(writes, emits)

    considered = [*matching.verdicts_of(offer.left_out), *verdicts]
    if not sales:
        emits += outcomes.unsold(lead, offer.score, considered, "all_candidates_declined", now)
        return OfferResult(writes, emits)
    untried = [
        Verdict(buyer_id=c.buyer_id, reason="outbid") for c in offer.candidates[next_position:]
    ]
    emits.append(
        outcomes.decision(
            lead,
            "sold",
            now,
            score=offer.score,
            buyers=[s.buyer_id for s in sales],
            price=round(sum(s.price for s in sales), 2),
            sales=sales,
            reasons=["sold"],
            score_reasons=offer.score_reasons,
            considered=[*considered, *untried],
        )
    )
    return OfferResult(writes, emits)
