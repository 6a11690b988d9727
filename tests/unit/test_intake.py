from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router import catalog, codec
from router.codec import Unreadable
from router.contract import CHANNELS, Channel
from router.intake import intake_key, process, unreadable
from router.normalize import fingerprint
from router.records import (
    DeadLetter,
    Decision,
    Emit,
    IntakeRef,
    NormalizedLead,
    Offer,
    PublisherSignals,
)

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
NOW = RECEIVED_AT + timedelta(milliseconds=40)


def ref(offset: int = 7, channel: Channel = "form") -> IntakeRef:
    return IntakeRef(topic=f"intent.{channel}", partition=2, offset=offset)


def event(**overrides: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": "evt-1",
        "occurred_at": "2024-05-01T12:00:00Z",
        "vertical": "solar",
        "source": {"publisher_id": "pub-1"},
        "contact": {
            "first_name": "Jane",
            "email": "Jane.Doe@Example.COM",
            "phone": "(415) 555-2671",
            "postal_code": "10001",
            "state": "NY",
        },
    }
    ev.update(overrides)
    return ev


def run(raw: bytes, channel: Channel = "form", offset: int = 7) -> list[Emit]:
    return process(raw, channel, ref(offset, channel), RECEIVED_AT, NOW)


def assert_rejected(
    raw: bytes, emits: list[Emit], intake: IntakeRef
) -> tuple[DeadLetter, Decision]:
    assert [e.topic for e in emits] == [catalog.REJECTED, catalog.DECISIONS]
    dead, decision = emits[0].value, emits[1].value
    assert isinstance(dead, DeadLetter)
    assert isinstance(decision, Decision)
    assert base64.b64decode(dead.original_b64, validate=True) == raw
    assert (dead.topic, dead.partition, dead.offset) == (
        intake.topic,
        intake.partition,
        intake.offset,
    )
    assert dead.rejected_at == NOW
    assert decision.outcome == "rejected"
    assert decision.event_id == dead.event_id
    assert decision.intake == intake
    assert len(decision.reasons) == 1
    key = intake_key(intake, dead.event_id)
    assert emits[0].key == emits[1].key == key
    return dead, decision


def test_valid_payload_goes_to_screen_keyed_by_fingerprint() -> None:
    emits = run(orjson.dumps(event()))
    assert len(emits) == 1
    (emit,) = emits
    assert emit.topic == catalog.SCREEN
    lead = emit.value
    assert isinstance(lead, NormalizedLead)
    assert emit.key == lead.fingerprint
    assert emit.key == fingerprint("+14155552671", "jane.doe@example.com", "evt-1", "solar")
    assert lead.event_id == "evt-1"
    assert lead.intake == ref()
    assert lead.received_at == RECEIVED_AT


def test_malformed_bytes_become_dead_letter_and_decision() -> None:
    raw = b"\xff{"
    emits = run(raw, offset=31)
    dead, decision = assert_rejected(raw, emits, ref(31))
    assert dead.event_id is None and dead.field is None
    assert dead.reason.startswith("invalid_json")
    assert decision.reasons == ["invalid_json"]
    assert emits[0].key == "intent.form/2/31"
    assert decision.channel == "form"
    assert decision.timings.received_at == RECEIVED_AT
    assert decision.timings.decided_at == NOW
    assert decision.timings.pipeline_ms == pytest.approx(40.0)


def test_rejection_names_the_field_and_keys_by_event_id() -> None:
    contact = {**event()["contact"], "phone": "(123) 456-7890"}
    raw = orjson.dumps(event(event_id="evt-bad-phone", contact=contact))
    dead, decision = assert_rejected(raw, run(raw), ref())
    assert decision.reasons == ["invalid_phone:contact.phone"]
    assert dead.field == "contact.phone"
    assert dead.event_id == decision.event_id == "evt-bad-phone"
    assert dead.reason.startswith("invalid_phone: ")


def test_missing_field_rejection() -> None:
    ev = event(event_id="evt-no-source")
    del ev["source"]
    raw = orjson.dumps(ev)
    emits = run(raw)
    _, decision = assert_rejected(raw, emits, ref())
    assert decision.reasons == ["missing_field:source"]
    assert emits[0].key == "evt-no-source"


def test_non_object_json_keyed_by_coordinates() -> None:
    raw = b'["evt-1"]'
    emits = run(raw, offset=3)
    _, decision = assert_rejected(raw, emits, ref(3))
    assert decision.reasons == ["not_an_object"]
    assert emits[0].key == "intent.form/2/3"


def test_intake_key() -> None:
    assert intake_key(ref(9), "evt-9") == "evt-9"
    assert intake_key(ref(9), None) == "intent.form/2/9"


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.one_of(st.just("evt-1"), st.text(max_size=210)),
    "occurred_at": st.sampled_from(
        ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00", "0001-01-01T00:00:00+01:00", "nope"]
    ),
    "vertical": st.sampled_from(["solar", "Solar", "", "auto_insurance"]),
    "contact": st.fixed_dictionaries(
        {},
        optional={
            "email": st.sampled_from(["a@example.com", "not-an-email", "", " "]),
            "phone": st.sampled_from(["(415) 555-2671", "(123) 456-7890", "+44 7911 123456"]),
            "postal_code": st.sampled_from(["10001", "99999", "1234", "90210-1234"]),
            "state": st.sampled_from(["NY", "ca", "", "ZZ"]),
        },
    ),
    "call": st.fixed_dictionaries(
        {"call_id": st.just("c-1"), "caller_phone": st.sampled_from(["(212) 736-5000", "x"])}
    ),
    "trial": st.fixed_dictionaries({"product": st.sampled_from(["crm", ""])}),
}


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "event"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "json":
        return orjson.dumps(draw(JSON_VALUES))
    ev = event()
    for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), unique=True, max_size=4)):
        ev[name] = draw(FIELD_VALUES[name])
    for name in draw(st.lists(st.sampled_from(sorted(ev)), unique=True, max_size=2)):
        if draw(st.booleans()):
            del ev[name]
        else:
            ev[name] = draw(JSON_VALUES)
    return orjson.dumps(ev)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads(), st.sampled_from(CHANNELS), st.integers(0, 2**40))
def test_every_event_gets_exactly_one_outcome(raw: bytes, channel: Channel, offset: int) -> None:
    intake = ref(offset, channel)
    emits = process(raw, channel, intake, RECEIVED_AT, NOW)
    if len(emits) == 1:
        (emit,) = emits
        assert emit.topic == catalog.SCREEN
        lead = emit.value
        assert isinstance(lead, NormalizedLead)
        assert emit.key == lead.fingerprint
        assert lead.intake == intake and lead.channel == channel
    else:
        dead, _ = assert_rejected(raw, emits, intake)
        assert emits[0].key == (dead.event_id or f"{intake.topic}/{intake.partition}/{offset}")
    # Whatever came out can be written to its topic and read back unchanged.
    for emit in emits:
        value = emit.value
        assert codec.decode(type(value), codec.encode(value)) == value


@pytest.mark.parametrize(
    ("topic", "raw", "model", "field"),
    [
        (catalog.SCREEN, b'{"lead_id": "cut short', NormalizedLead, None),
        (catalog.OFFERS, b'{"lead": 7}', Offer, "lead"),
        (
            catalog.PUBLISHER_SIGNALS,
            b'{"publisher_id": "p", "signals": "x"}',
            PublisherSignals,
            "signals",
        ),
    ],
)
def test_an_unreadable_stage_record_is_a_dead_letter_naming_where_it_was_read(
    topic: str, raw: bytes, model: type[Any], field: str | None
) -> None:
    with pytest.raises(Unreadable) as caught:
        codec.decode(model, raw)
    where = IntakeRef(topic=topic, partition=1, offset=99)
    emit = unreadable(raw, where, caught.value, NOW)

    assert (emit.topic, emit.key) == (catalog.REJECTED, f"{topic}/1/99")
    letter = emit.value
    assert isinstance(letter, DeadLetter)
    assert base64.b64decode(letter.original_b64) == raw
    assert (letter.topic, letter.partition, letter.offset) == (topic, 1, 99)
    assert letter.reason.startswith("invalid_event: ")
    assert letter.field == field
