"""Buyer feedback and call events, keyed by buyer id like offers, so they reach the partition
that holds that buyer's caps.

A return inside the buyer's window and under its return rate gives the cap slot and the spend
back in the windows the lead was sold in. Every feedback event gets one recorded result.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from router import accounting, catalog
from router.buyers import Buyer
from router.records import (
    CallEvent,
    Emit,
    Feedback,
    FeedbackOutcome,
    FeedbackResult,
    PublisherSignal,
    SignalType,
)


class Handled(NamedTuple):
    writes: list[tuple[str, Any]]  # table assignments, in order
    emits: list[Emit]


def ledger_key(buyer_id: str, lead_id: str) -> str:
    return accounting.ledger_key(buyer_id, lead_id)


def counts_keys(buyer: Buyer, entry: accounting.LedgerEntry | None) -> tuple[str, ...]:
    """The counts a return would credit: those of the windows the lead was sold in."""
    if entry is None:
        return ()
    return accounting.counts_keys(buyer.id, accounting.windows_of(entry))


def _result(feedback: Feedback, result: FeedbackOutcome, reason: str | None, now: datetime) -> Emit:
    record = FeedbackResult(
        lead_id=feedback.lead_id,
        buyer_id=feedback.buyer_id,
        type=feedback.type,
        result=result,
        reason=reason,
        decided_at=now,
    )
    return Emit(catalog.FEEDBACK_RESULTS, feedback.lead_id, record)


def _signal(feedback: Feedback, entry: accounting.LedgerEntry, kind: SignalType) -> list[Emit]:
    publisher = entry.get("publisher")
    if not publisher:
        return []
    signal = PublisherSignal(
        publisher_id=publisher,
        lead_id=feedback.lead_id,
        buyer_id=feedback.buyer_id,
        type=kind,
    )
    return [Emit(catalog.PUBLISHER_SIGNALS, publisher, signal)]


def handle(
    feedback: Feedback,
    buyer: Buyer | None,
    state: Mapping[str, Any],
    now: datetime,
    record_key: bytes | None,
) -> Handled:
    """`state` holds the ledger entry (`ledger_key`) and the counts (`counts_keys`).

    `record_key` is the Kafka key it came with: it must be the buyer id, or the event sits on
    a partition that does not hold that buyer's caps.
    """
    if record_key != feedback.buyer_id.encode():
        return Handled([], [_result(feedback, "invalid", "key_is_not_buyer_id", now)])
    if buyer is None:
        return Handled([], [_result(feedback, "refused", "unknown_buyer", now)])
    key = ledger_key(buyer.id, feedback.lead_id)
    entry = state.get(key)
    if entry is None or entry["sold_at"] is None:
        return Handled([], [_result(feedback, "refused", "unknown_lead", now)])
    if feedback.type == "contacted":
        return Handled([], [_result(feedback, "recorded", None, now)])
    if feedback.type == "converted":
        return Handled(
            [], [_result(feedback, "recorded", None, now), *_signal(feedback, entry, "converted")]
        )

    counts = {k: state.get(k) for k in counts_keys(buyer, entry)}
    outcome = accounting.credit_return(buyer, entry, counts, now, feedback.at)
    if outcome.reason == "credited":
        # The ledger first: a crash after it loses one credit, never frees a slot twice.
        writes: list[tuple[str, Any]] = [(key, outcome.entry), *outcome.counts.items()]
        emits = [_result(feedback, "credited", None, now), *_signal(feedback, entry, "returned")]
        return Handled(writes, emits)
    if outcome.reason == "duplicate":
        return Handled([], [_result(feedback, "duplicate", None, now)])
    return Handled([], [_result(feedback, "refused", outcome.reason, now)])


def call_ended(event: CallEvent, slots: accounting.Slots | None) -> accounting.Slots | None:
    """The buyer's call slots with this call's freed (the same object if it held none)."""
    return accounting.release_call(slots, event.lead_id)


def call_key_matches(event: CallEvent, record_key: bytes | None) -> bool:
    """A call event must be keyed by its buyer id, or it sits on a partition that does not
    hold that buyer's call slots."""
    return record_key == event.buyer_id.encode()
