"""Stage 2, keyed by consumer fingerprint: dedup, suppression, score, and match buyers."""

from __future__ import annotations

from datetime import datetime, timedelta

from router import catalog, dedup, outcomes, suppression
from router.dedup import DedupState
from router.market import Market
from router.matching import left_out, match
from router.records import Emit, NormalizedLead, Offer
from router.scoring import score


def screen(
    lead: NormalizedLead,
    state: DedupState,
    market: Market,
    window: timedelta,
    now: datetime,
) -> tuple[DedupState, list[Emit]]:
    verdict, new_state = dedup.check(lead.event_id, lead.occurred_at, state, window)
    if verdict.duplicate_of is not None:
        emit = outcomes.decision(
            lead, "duplicate", now, reasons=[f"duplicate_of:{verdict.duplicate_of}"]
        )
        return new_state, [emit]

    if suppression.is_suppressed(lead, market.suppressed):
        return new_state, [outcomes.decision(lead, "suppressed", now, reasons=["suppressed"])]

    publisher_id = lead.source.get("publisher_id")
    lead_score = score(lead, market.publisher(publisher_id) if publisher_id else None)
    candidates, verdicts = match(lead, lead_score.value, market.config, now)
    if not candidates:
        below_floor = any(v.reason == "below_floor" for v in verdicts)
        return new_state, outcomes.unsold(
            lead,
            lead_score.value,
            verdicts,
            "below_floor" if below_floor else "no_matching_buyer",
            now,
        )
    max_buyers = market.config.policy(lead.vertical).max_buyers
    offer = Offer(
        lead=lead,
        score=lead_score.value,
        score_reasons=lead_score.reasons,
        candidates=candidates,
        max_buyers=max_buyers,
        slots_left=max_buyers,
        left_out=left_out(verdicts),
    )
    return new_state, [Emit(catalog.OFFERS, candidates[0].buyer_id, offer)]
