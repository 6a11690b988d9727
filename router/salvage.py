"""A lead record on a stage topic that the router cannot read: its dead letter, and the
decision of the intake event it carried, when its bytes still say which event that was.

Without the decision, such a record (written by an incompatible version, or damaged) would end
its intake event's story in `leads.rejected` alone, against "every intake event ends in exactly
one recorded outcome". The bytes are read loosely, value by value, and only values that pass
their own check are used; anything else leaves the decision out or the field empty.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import orjson

from router import catalog, codec, intake
from router.codec import Unreadable
from router.contract import CHANNELS
from router.normalize import MAX_EVENT_ID
from router.records import DeadLetter, Decision, Emit, IntakeRef, Sale, Timings

REASON = "unreadable_stage_record"
MAX_VERTICAL = 64  # the contract's pattern allows 64 characters


def unreadable_lead(raw: bytes, ref: IntakeRef, error: Unreadable, now: datetime) -> list[Emit]:
    """A `leads.screen` record: the lead itself."""
    return _close(raw, ref, error, now, in_offer=False)


def unreadable_offer(raw: bytes, ref: IntakeRef, error: Unreadable, now: datetime) -> list[Emit]:
    """A `leads.offers` record: the lead is under `lead`, the sales made so far under `sales`."""
    return _close(raw, ref, error, now, in_offer=True)


def _close(
    raw: bytes, ref: IntakeRef, error: Unreadable, now: datetime, *, in_offer: bool
) -> list[Emit]:
    dead = intake.unreadable(raw, ref, error, now)
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [dead]
    if not isinstance(record, dict):
        return [dead]
    lead = record.get("lead") if in_offer else record
    if not isinstance(lead, dict):
        return [dead]
    event_id = _text(lead.get("event_id"), MAX_EVENT_ID)
    if event_id is None:
        return [dead]

    # Buyers already charged keep their sale on record: the walk ended early, not unsold.
    sales = _sales(record.get("sales")) if in_offer else []
    received_at = _instant(lead.get("received_at"))
    channel = lead.get("channel")
    decision = Decision(
        event_id=event_id,
        lead_id=_text(lead.get("lead_id"), MAX_EVENT_ID),
        outcome="sold" if sales else "rejected",
        buyers=[sale.buyer_id for sale in sales],
        price=round(sum(sale.price for sale in sales), 2) if sales else None,
        sales=sales,
        reasons=["sold", REASON] if sales else [REASON],
        channel=channel if channel in CHANNELS else "unknown",
        vertical=_text(lead.get("vertical"), MAX_VERTICAL),
        intake=_intake_ref(lead.get("intake")) or ref,
        timings=Timings(
            occurred_at=_instant(lead.get("occurred_at")),
            received_at=received_at,
            decided_at=now,
            pipeline_ms=(now - received_at).total_seconds() * 1000 if received_at else None,
        ),
    )
    letter = dead.value
    assert isinstance(letter, DeadLetter)
    key = intake.intake_key(ref, event_id)
    return [
        Emit(catalog.REJECTED, key, msgspec.structs.replace(letter, event_id=event_id)),
        Emit(catalog.DECISIONS, key, decision),
    ]


def _text(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.utcoffset() is not None else None


def _intake_ref(value: Any) -> IntakeRef | None:
    try:
        return codec.convert(IntakeRef, value)
    except Unreadable:
        return None


def _sales(value: Any) -> list[Sale]:
    if not isinstance(value, list):
        return []
    try:
        return [codec.convert(Sale, item) for item in value]
    except Unreadable:
        return []
