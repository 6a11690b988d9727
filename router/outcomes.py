"""Building the records that close a lead's story (shared by screening and offering)."""

from __future__ import annotations

from datetime import datetime

from router import catalog
from router.records import (
    Decision,
    Emit,
    NormalizedLead,
    Outcome,
    Sale,
    Timings,
    UnsoldLead,
    Verdict,
)


def timings(lead: NormalizedLead, now: datetime) -> Timings:
    return Timings(
        occurred_at=lead.occurred_at,
        received_at=lead.received_at,
        decided_at=now,
        pipeline_ms=(now - lead.received_at).total_seconds() * 1000,
    )


def decision(
    lead: NormalizedLead,
    outcome: Outcome,
    now: datetime,
    *,
    score: int | None = None,
    score_reasons: list[str] | None = None,
    buyers: list[str] | None = None,
    price: float | None = None,
    sales: list[Sale] | None = None,
    reasons: list[str] | None = None,
    considered: list[Verdict] | None = None,
) -> Emit:
    return Emit(
        catalog.DECISIONS,
        lead.event_id,
        Decision(
            event_id=lead.event_id,
            lead_id=lead.lead_id,
            outcome=outcome,
            buyers=buyers or [],
            price=price,
            sales=sales or [],
            reasons=reasons or [],
            considered=considered or [],
            score=score,
            score_reasons=score_reasons or [],
            channel=lead.channel,
            vertical=lead.vertical,
            intake=lead.intake,
            timings=timings(lead, now),
        ),
    )


def unsold(
    lead: NormalizedLead, score: int, verdicts: list[Verdict], reason: str, now: datetime
) -> list[Emit]:
    return [
        Emit(
            catalog.UNSOLD,
            lead.lead_id,
            UnsoldLead(lead=lead, score=score, verdicts=verdicts, decided_at=now),
        ),
        decision(lead, "unsold", now, score=score, reasons=[reason], considered=verdicts),
    ]
