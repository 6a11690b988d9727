from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import catalog, codec
from router.codec import Unreadable
from router.intake import process
from router.records import (
    Candidate,
    DeadLetter,
    Decision,
    Emit,
    IntakeRef,
    NormalizedLead,
    Offer,
    Sale,
)
from router.salvage import REASON, unreadable_lead, unreadable_offer

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
NOW = RECEIVED_AT + timedelta(milliseconds=250)
INTAKE = IntakeRef(topic="intent.form", partition=2, offset=7)
SCREEN_AT = IntakeRef(topic=catalog.SCREEN, partition=1, offset=41)
OFFER_AT = IntakeRef(topic=catalog.OFFERS, partition=3, offset=90)


def a_lead() -> NormalizedLead:
    raw = orjson.dumps(
        {
            "event_id": "evt-1",
            "occurred_at": "2024-05-01T12:00:00Z",
            "vertical": "solar",
            "source": {"publisher_id": "pub-1"},
            "contact": {"email": "jane@example.com", "postal_code": "10001", "state": "NY"},
        }
    )
    lead = process(raw, "form", INTAKE, RECEIVED_AT, RECEIVED_AT)[0].value
    assert isinstance(lead, NormalizedLead)
    return lead


def newer_version(record: dict[str, Any]) -> bytes:
    """What a newer router could write: a field this version's records refuse."""
    return orjson.dumps({**record, "added_in_a_later_version": True})


def read_error(model: type[Any], raw: bytes) -> Unreadable:
    with pytest.raises(Unreadable) as caught:
        codec.decode(model, raw)
    return caught.value


def letter_and_decision(raw: bytes, emits: list[Emit]) -> tuple[DeadLetter, Decision]:
    assert [e.topic for e in emits] == [catalog.REJECTED, catalog.DECISIONS]
    letter, decision = emits[0].value, emits[1].value
    assert isinstance(letter, DeadLetter)
    assert isinstance(decision, Decision)
    assert base64.b64decode(letter.original_b64) == raw
    assert emits[0].key == emits[1].key == decision.event_id
    assert letter.event_id == decision.event_id
    return letter, decision


def test_a_screen_record_of_a_newer_version_still_decides_its_intake_event() -> None:
    lead = a_lead()
    raw = newer_version(orjson.loads(codec.encode(lead)))
    emits = unreadable_lead(raw, SCREEN_AT, read_error(NormalizedLead, raw), NOW)

    letter, decision = letter_and_decision(raw, emits)
    # The dead letter says where the bytes were read; the decision, which intake event it was.
    assert (letter.topic, letter.partition, letter.offset) == (catalog.SCREEN, 1, 41)
    assert letter.reason.startswith("invalid_event: ")
    assert (decision.event_id, decision.lead_id) == ("evt-1", lead.lead_id)
    assert decision.outcome == "rejected"
    assert decision.reasons == [REASON]
    assert (decision.channel, decision.vertical, decision.intake) == ("form", "solar", INTAKE)
    assert decision.timings.received_at == RECEIVED_AT
    assert decision.timings.pipeline_ms == pytest.approx(250.0)
    # What it emits is what the agent sends: every record encodes.
    assert all(codec.encode(e.value) for e in emits)


def test_an_unreadable_offer_keeps_the_sales_made_before_it_on_record() -> None:
    lead = a_lead()
    offer = Offer(
        lead=lead,
        score=50,
        score_reasons=[],
        candidates=[
            Candidate(buyer_id="b1", price=12.5, priority=1),
            Candidate(buyer_id="b2", price=10.0, priority=2),
        ],
        position=1,
        max_buyers=2,
        slots_left=1,
        sales=[Sale(buyer_id="b1", price=12.5)],
    )
    raw = newer_version(orjson.loads(codec.encode(offer)))
    emits = unreadable_offer(raw, OFFER_AT, read_error(Offer, raw), NOW)

    _, decision = letter_and_decision(raw, emits)
    assert decision.outcome == "sold"
    assert decision.reasons == ["sold", REASON]
    assert (decision.buyers, decision.price) == (["b1"], 12.5)
    assert decision.sales == [Sale(buyer_id="b1", price=12.5)]


def test_an_unreadable_offer_without_sales_is_rejected() -> None:
    raw = orjson.dumps({"lead": orjson.loads(codec.encode(a_lead())), "score": "high"})
    emits = unreadable_offer(raw, OFFER_AT, read_error(Offer, raw), NOW)

    _, decision = letter_and_decision(raw, emits)
    assert (decision.outcome, decision.reasons, decision.sales) == ("rejected", [REASON], [])


@pytest.mark.parametrize(
    ("raw", "reader"),
    [
        (b'{"lead_id": "cut short', unreadable_lead),
        (b"[1, 2]", unreadable_lead),
        (b'{"lead": 7}', unreadable_offer),
        (b'{"lead": {"event_id": 42}}', unreadable_offer),
        (b'{"event_id": ""}', unreadable_lead),
    ],
)
def test_bytes_that_do_not_name_their_event_are_a_dead_letter_alone(raw: bytes, reader) -> None:
    where = OFFER_AT if reader is unreadable_offer else SCREEN_AT
    emits = reader(raw, where, read_error(Offer if where is OFFER_AT else NormalizedLead, raw), NOW)

    assert [e.topic for e in emits] == [catalog.REJECTED]
    letter = emits[0].value
    assert isinstance(letter, DeadLetter)
    assert base64.b64decode(letter.original_b64) == raw
    assert emits[0].key == f"{where.topic}/{where.partition}/{where.offset}"


def test_values_that_fail_their_own_checks_are_left_out_not_trusted() -> None:
    lead = orjson.loads(codec.encode(a_lead()))
    lead.update(
        channel="fax",
        vertical="x" * 65,
        occurred_at="yesterday",
        received_at="2024-05-01T12:00:05",  # no offset: not an instant
        intake={"topic": "intent.form"},
    )
    raw = orjson.dumps(lead)
    emits = unreadable_lead(raw, SCREEN_AT, read_error(NormalizedLead, raw), NOW)

    _, decision = letter_and_decision(raw, emits)
    assert (decision.channel, decision.vertical) == ("unknown", None)
    assert (decision.timings.occurred_at, decision.timings.received_at) == (None, None)
    assert decision.timings.pipeline_ms is None
    assert decision.intake == SCREEN_AT  # where it was read, when its intake ref is unreadable


# Every dict key and value a loosely read record could hold, including the ones salvage reads.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what JSON encoders write
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["event_id", "lead_id", "channel", "intake", "sales", "lead", "received_at", "x"]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(record=json_values, in_offer=st.booleans())
def test_any_record_becomes_a_dead_letter_and_at_most_one_decision(
    record: Any, in_offer: bool
) -> None:
    raw = orjson.dumps(record)
    reader = unreadable_offer if in_offer else unreadable_lead
    model = Offer if in_offer else NormalizedLead
    try:
        codec.decode(model, raw)
    except Unreadable as error:
        emits = reader(raw, OFFER_AT, error, NOW)
    else:  # pragma: no cover - hypothesis does not build a whole valid record
        return
    assert emits[0].topic == catalog.REJECTED
    assert [e.topic for e in emits[1:]] in ([], [catalog.DECISIONS])
    for emit in emits:
        codec.encode(emit.value)
