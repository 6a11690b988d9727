from __future__ import annotations

import base64
import copy
from datetime import datetime, timedelta
from typing import Any

import pytest
from test_filters import NOW
from test_offering import Desk, buyer, make_offer, roundtrip, sold_to
from test_screening import make_lead

from router import accounting, catalog, codec, feedback, intake
from router.buyers import Buyer, Caps
from router.codec import Unreadable
from router.records import (
    CallEvent,
    DeadLetter,
    Emit,
    Feedback,
    FeedbackResult,
    FeedbackType,
    IntakeRef,
    PublisherSignal,
)

pytestmark = pytest.mark.unit

LATER = NOW + timedelta(days=2)  # still inside the default 72 h return window
# Where lead-1, sold by test_offering's desk, was counted for b1 (New York time).
SOLD_IN = (
    "b1|hour|2026-06-03T10-0400",
    "b1|day|2026-06-03",
    "b1|week|2026-W23",
    "b1|month|2026-06",
)


def said(kind: FeedbackType, lead: int = 1, buyer_id: str = "b1", at: datetime = LATER) -> Feedback:
    return Feedback(lead_id=f"lead-{lead}", buyer_id=buyer_id, type=kind, at=at)


def selling(*buyers: Buyer, leads: int = 1, **lead_fields: Any) -> Desk:
    """A desk that sold leads 1..n to the first buyer (at NOW)."""
    desk = Desk(*buyers)
    for n in range(1, leads + 1):
        desk.offer(make_offer(make_lead(n, **lead_fields), [buyers[0].id]))
    return desk


def state_for(desk: Desk, event: Feedback) -> dict[str, Any]:
    """The table entries the buyer desk reads for a feedback event (router/agents.py)."""
    found = desk.buyers.get(event.buyer_id)
    key = feedback.ledger_key(event.buyer_id, event.lead_id)
    entry = desk.table.get(key)
    needed = feedback.counts_keys(found, entry) if found else ()
    return {key: entry, **{k: desk.table.get(k) for k in needed}}


def tell(desk: Desk, event: Feedback, now: datetime = LATER) -> feedback.Handled:
    """Handle a feedback event keyed by its buyer id and assign the writes, in order."""
    state = state_for(desk, event)
    before = copy.deepcopy(state)
    handled = feedback.handle(
        event, desk.buyers.get(event.buyer_id), state, now, event.buyer_id.encode()
    )
    assert state == before, "handle mutated its inputs"
    for k, value in handled.writes:
        desk.table[k] = roundtrip(value)
    return handled


def result_of(emits: list[Emit], event: Feedback, now: datetime = LATER) -> FeedbackResult:
    assert emits[0].topic == catalog.FEEDBACK_RESULTS
    assert emits[0].key == event.lead_id
    result = emits[0].value
    assert isinstance(result, FeedbackResult)
    assert (result.lead_id, result.buyer_id, result.type) == (
        event.lead_id,
        event.buyer_id,
        event.type,
    )
    assert result.decided_at == now
    return result


def outcome(
    handled: feedback.Handled, event: Feedback, now: datetime = LATER
) -> tuple[str, str | None]:
    result = result_of(handled.emits, event, now)
    return result.result, result.reason


def signals(emits: list[Emit]) -> list[PublisherSignal]:
    """The publisher signals among the emits, each keyed by its publisher."""
    found = []
    for emit in emits:
        if emit.topic == catalog.PUBLISHER_SIGNALS:
            assert isinstance(emit.value, PublisherSignal)
            assert emit.key == emit.value.publisher_id
            found.append(emit.value)
    return found


# --- returns -----------------------------------------------------------------------------------


def test_a_return_inside_the_window_credits_the_windows_it_was_sold_in() -> None:
    desk = selling(buyer("b1"), leads=2)
    assert desk.table[SOLD_IN[1]] == {"sold": 2, "spend": 80.0, "returned": 0}
    event = said("returned")
    handled = tell(desk, event)

    assert outcome(handled, event) == ("credited", None)
    # The ledger first, then the counts: a crash in between loses a credit, never frees twice.
    assert [k for k, _ in handled.writes] == ["b1|lead|lead-1", *SOLD_IN]
    for key in SOLD_IN:
        assert desk.table[key] == {"sold": 1, "spend": 40.0, "returned": 1}
    entry = desk.table["b1|lead|lead-1"]
    assert entry["returned"] is True
    assert entry["credited_at"] == LATER.isoformat()
    assert desk.table["b1|lead|lead-2"]["returned"] is False
    assert signals(handled.emits) == [
        PublisherSignal(publisher_id="pub-1", lead_id="lead-1", buyer_id="b1", type="returned")
    ]
    assert len(handled.emits) == 2


def test_a_credited_return_frees_the_cap_for_another_lead() -> None:
    desk = selling(buyer("b1", caps=Caps(daily=1)))
    full = desk.offer(make_offer(make_lead(2), ["b1"])).emits
    assert "b1" not in sold_to(full)
    tell(desk, said("returned", at=NOW + timedelta(hours=1)), NOW + timedelta(hours=1))
    assert "b1" in sold_to(desk.offer(make_offer(make_lead(3), ["b1"])).emits)


def test_a_return_of_a_lead_without_a_publisher_sends_no_signal() -> None:
    desk = selling(buyer("b1"), source={})
    event = said("returned")
    handled = tell(desk, event)
    assert outcome(handled, event) == ("credited", None)
    assert signals(handled.emits) == []


def test_a_late_return_is_refused_by_the_returns_own_time() -> None:
    desk = selling(buyer("b1", return_window_h=24))
    table = copy.deepcopy(desk.table)
    late = said("returned", at=NOW + timedelta(hours=24, seconds=1))
    handled = tell(desk, late)
    assert outcome(handled, late) == ("refused", "late")
    assert handled.writes == [] and signals(handled.emits) == []
    assert desk.table == table
    # Said in time, handled late (a backlog): still credited.
    in_time = said("returned", at=NOW + timedelta(hours=24))
    backlog = NOW + timedelta(hours=30)
    assert outcome(tell(desk, in_time, backlog), in_time, backlog) == ("credited", None)


def test_returns_over_the_buyers_rate_are_refused() -> None:
    desk = selling(buyer("b1", max_return_rate=0.5), leads=2)
    first = said("returned", lead=1)
    assert outcome(tell(desk, first), first) == ("credited", None)
    second = said("returned", lead=2)
    table = copy.deepcopy(desk.table)
    handled = tell(desk, second)
    assert outcome(handled, second) == ("refused", "over_limit")
    assert handled.writes == [] and signals(handled.emits) == []
    assert desk.table == table


def test_a_second_return_is_a_duplicate_and_changes_nothing() -> None:
    desk = selling(buyer("b1"))
    event = said("returned")
    tell(desk, event)
    table = copy.deepcopy(desk.table)
    later = LATER + timedelta(minutes=5)
    again = tell(desk, event, later)
    assert outcome(again, event, later) == ("duplicate", None)
    assert again.writes == [] and signals(again.emits) == []
    assert desk.table == table


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["returned", "converted", "contacted"])
def test_feedback_from_an_unknown_buyer_is_refused(kind: FeedbackType) -> None:
    desk = selling(buyer("b1"))
    event = said(kind, buyer_id="b9")
    handled = tell(desk, event)
    assert outcome(handled, event) == ("refused", "unknown_buyer")
    assert handled.writes == [] and len(handled.emits) == 1


@pytest.mark.parametrize("kind", ["returned", "converted", "contacted"])
def test_feedback_on_a_lead_the_buyer_never_bought_is_refused(kind: FeedbackType) -> None:
    desk = selling(buyer("b1"), buyer("b2"))
    # b2 was never offered lead-1; b1 declined lead-2 (daily cap of the one it sold).
    never = said(kind, buyer_id="b2")
    desk.buyers["b1"] = buyer("b1", caps=Caps(daily=1))
    desk.offer(make_offer(make_lead(2), ["b1", "b2"]))
    assert desk.table["b1|lead|lead-2"]["reason"] == "capped:daily"
    declined = said(kind, lead=2)
    for event in (never, declined):
        handled = tell(desk, event)
        assert outcome(handled, event) == ("refused", "unknown_lead")
        assert handled.writes == [] and len(handled.emits) == 1


@pytest.mark.parametrize("record_key", [b"b2", b"B1", b"lead-1", b"", None])
@pytest.mark.parametrize("buyer_id", ["b1", "b9"])
def test_feedback_not_keyed_by_its_buyer_id_is_invalid(
    record_key: bytes | None, buyer_id: str
) -> None:
    # On another partition than the buyer's caps: even a good return must not be credited.
    desk = selling(buyer("b1"))
    event = said("returned", buyer_id=buyer_id)
    state = state_for(desk, event)
    handled = feedback.handle(event, desk.buyers.get(buyer_id), state, LATER, record_key)
    assert outcome(handled, event) == ("invalid", "key_is_not_buyer_id")
    assert handled.writes == [] and len(handled.emits) == 1


# --- contacted and converted -------------------------------------------------------------------


def test_a_conversion_is_recorded_with_a_signal_and_no_state() -> None:
    desk = selling(buyer("b1"))
    table = copy.deepcopy(desk.table)
    event = said("converted")
    handled = tell(desk, event)
    assert outcome(handled, event) == ("recorded", None)
    assert handled.writes == []
    assert desk.table == table
    assert signals(handled.emits) == [
        PublisherSignal(publisher_id="pub-1", lead_id="lead-1", buyer_id="b1", type="converted")
    ]


def test_a_contact_is_recorded_and_nothing_else() -> None:
    desk = selling(buyer("b1"))
    event = said("contacted")
    handled = tell(desk, event)
    assert outcome(handled, event) == ("recorded", None)
    assert handled.writes == [] and len(handled.emits) == 1


# --- call events -------------------------------------------------------------------------------


def ended(lead: int, buyer_id: str = "b1") -> CallEvent:
    return CallEvent(type="call.ended", lead_id=f"lead-{lead}", buyer_id=buyer_id, at=NOW)


def test_call_ended_frees_its_slot_and_is_idempotent() -> None:
    slots = {"lead-1": (NOW + timedelta(hours=1)).isoformat(), "lead-2": LATER.isoformat()}
    before = dict(slots)
    freed = feedback.call_ended(ended(1), slots)
    assert freed == {"lead-2": LATER.isoformat()}
    assert slots == before, "call_ended mutated the table value"
    assert freed is not None
    assert feedback.call_ended(ended(1), freed) is freed
    assert feedback.call_ended(ended(3), slots) is slots
    assert feedback.call_ended(ended(1), None) is None


def test_a_freed_slot_takes_the_next_call() -> None:
    desk = Desk(buyer("b1", caps=Caps(concurrent_calls=1)), buyer("b2"))
    desk.offer(make_offer(make_lead(1, channel="call"), ["b1"]))
    busy = desk.offer(make_offer(make_lead(2, channel="call"), ["b1", "b2"])).emits
    assert "b1" not in sold_to(busy)
    key = accounting.slots_key("b1")
    desk.table[key] = feedback.call_ended(ended(1), desk.table[key])
    assert "b1" in sold_to(desk.offer(make_offer(make_lead(3, channel="call"), ["b1"])).emits)


def test_call_events_must_be_keyed_by_their_buyer_id() -> None:
    assert feedback.call_key_matches(ended(1), b"b1")
    for wrong in (b"b2", b"lead-1", b"", None):
        assert not feedback.call_key_matches(ended(1), wrong)


# --- dead letters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "model", "field"),
    [
        (
            b'{"lead_id": "l", "buyer_id": "b1", "type": "loved", "at": "2026-06-03T15:00:00Z"}',
            Feedback,
            "type",
        ),
        (
            b'{"buyer_id": "b1", "type": "returned", "at": "2026-06-03T15:00:00Z"}',
            Feedback,
            "lead_id",
        ),
        (
            b'{"type": "call.ended", "lead_id": "l", "buyer_id": "b1", "at": "soon"}',
            CallEvent,
            "at",
        ),
        (b"\xff not json", Feedback, None),
    ],
)
def test_an_unreadable_event_becomes_a_dead_letter_with_its_bytes(
    raw: bytes, model: type[Feedback] | type[CallEvent], field: str | None
) -> None:
    with pytest.raises(Unreadable) as caught:
        codec.decode(model, raw)
    ref = IntakeRef(topic=catalog.FEEDBACK, partition=3, offset=42)
    emit = intake.unreadable(raw, ref, caught.value, NOW)

    assert emit.topic == catalog.REJECTED
    assert emit.key == f"{catalog.FEEDBACK}/3/42"
    letter = emit.value
    assert isinstance(letter, DeadLetter)
    assert base64.b64decode(letter.original_b64) == raw
    assert (letter.topic, letter.partition, letter.offset) == (catalog.FEEDBACK, 3, 42)
    assert letter.field == field
    assert letter.reason.startswith("invalid_event: ")
    assert (letter.event_id, letter.rejected_at) == (None, NOW)


def test_a_wrongly_keyed_event_becomes_a_dead_letter_with_the_reason_given() -> None:
    raw = codec.encode(ended(1))
    ref = IntakeRef(topic=catalog.CALL_EVENTS, partition=0, offset=7)
    emit = intake.unreadable(
        raw, ref, "key_is_not_buyer_id: call events are keyed by buyer_id", NOW
    )
    letter = emit.value
    assert isinstance(letter, DeadLetter)
    assert (emit.topic, emit.key) == (catalog.REJECTED, f"{catalog.CALL_EVENTS}/0/7")
    assert letter.reason == "key_is_not_buyer_id: call events are keyed by buyer_id"
    assert letter.field is None
    assert base64.b64decode(letter.original_b64) == raw
