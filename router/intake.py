"""Stage 1: turn raw intake bytes into a lead for screening, or a dead letter and decision."""

from __future__ import annotations

import base64
from datetime import datetime

from router import catalog
from router.codec import Unreadable
from router.contract import Channel
from router.normalize import normalize
from router.records import (
    DeadLetter,
    Decision,
    Emit,
    IntakeRef,
    NormalizedLead,
    Rejection,
    Timings,
)


def unreadable(raw: bytes, ref: IntakeRef, error: Unreadable | str, now: datetime) -> Emit:
    """A record the router cannot read, or that is keyed wrongly, on any topic it consumes
    after intake (feedback, call events, and its own stage topics), kept with its bytes."""
    if isinstance(error, str):
        reason, field = error, None
    else:
        reason, field = f"invalid_event: {error.message}", error.field
    letter = dead_letter(raw, ref, reason, field, None, now)
    return Emit(catalog.REJECTED, intake_key(ref, None), letter)


def intake_key(ref: IntakeRef, event_id: str | None) -> str:
    """Decision key: the event id, or the record's coordinates when it had none."""
    return event_id or f"{ref.topic}/{ref.partition}/{ref.offset}"


def process(
    raw: bytes, channel: Channel, ref: IntakeRef, received_at: datetime, now: datetime
) -> list[Emit]:
    result = normalize(raw, channel, ref, received_at)
    if isinstance(result, NormalizedLead):
        return [Emit(catalog.SCREEN, result.fingerprint, result)]
    return rejected(raw, channel, ref, received_at, now, result)


def dead_letter(
    raw: bytes,
    ref: IntakeRef,
    reason: str,
    field: str | None,
    event_id: str | None,
    now: datetime,
) -> DeadLetter:
    """The original bytes and where they were read, with why they were refused."""
    return DeadLetter(
        original_b64=base64.b64encode(raw).decode("ascii"),
        topic=ref.topic,
        partition=ref.partition,
        offset=ref.offset,
        reason=reason,
        field=field,
        event_id=event_id,
        rejected_at=now,
    )


def rejected(
    raw: bytes,
    channel: Channel,
    ref: IntakeRef,
    received_at: datetime,
    now: datetime,
    rejection: Rejection,
) -> list[Emit]:
    reason = f"{rejection.reason}:{rejection.field}" if rejection.field else rejection.reason
    key = intake_key(ref, rejection.event_id)
    dead = dead_letter(
        raw,
        ref,
        f"{rejection.reason}: {rejection.message}",
        rejection.field,
        rejection.event_id,
        now,
    )
    decision = Decision(
        event_id=rejection.event_id,
        outcome="rejected",
        reasons=[reason],
        channel=channel,
        intake=ref,
        timings=Timings(
            received_at=received_at,
            decided_at=now,
            pipeline_ms=(now - received_at).total_seconds() * 1000,
        ),
    )
    return [Emit(catalog.REJECTED, key, dead), Emit(catalog.DECISIONS, key, decision)]
