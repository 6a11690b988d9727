"""Stage 2, keyed by consumer fingerprint: dedup, score, and match buyers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from router import catalog, dedup, outcomes
from router.buyers import Buyer
from router.dedup import DedupState
from router.matching import match
from router.records import Emit, NormalizedLead, Offer
from router.scoring import score


def screen(
    lead: NormalizedLead,
    state: DedupState,
    buyers: Iterable[Buyer],
    window: timedelta,
    now: datetime,
) -> tuple[DedupState, list[Emit]]:
    verdict, new_state = dedup.check(lead.event_id, lead.occurred_at, state, window)
    if verdict.duplicate_of is not None:
        emit = outcomes.decision(
            lead, "duplicate", now, reasons=[f"duplicate_of:{verdict.duplicate_of}"]
        )
        return new_state, [emit]

    lead_score = score(lead)
    candidates, filtered = match(lead, lead_score.value, buyers)
    if not candidates:
        return new_state, outcomes.unsold(
            lead, lead_score.value, filtered, "no_matching_buyer", now
        )
    offer = Offer(
        lead=lead,
        score=lead_score.value,
        score_reasons=lead_score.reasons,
        candidates=candidates,
        verdicts=filtered,
    )
    return new_state, [Emit(catalog.OFFERS, candidates[0].buyer_id, offer)]
