from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from router.codec import Unreadable, decode, encode
from router.records import (
    BuyerLead,
    Decision,
    IntakeRef,
    LeadConsent,
    NormalizedContact,
    NormalizedLead,
    Timings,
    UnsoldLead,
    Verdict,
)

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2024, 5, 1, 12, 0, 5, 250000, tzinfo=UTC)
INTAKE = IntakeRef(topic="intent.form", partition=0, offset=12)


def buyer_lead() -> BuyerLead:
    return BuyerLead(
        lead_id="6b3c4c1e-0000-5000-8000-000000000001",
        event_id="evt-1",
        channel="call",
        vertical="solar",
        occurred_at=datetime(2024, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=-4))),
        received_at=RECEIVED_AT,
        fingerprint="ab" * 32,
        source={"publisher_id": "pub-1", "campaign_id": None},
        contact=NormalizedContact(
            first_name="Zoë",
            email="zoe@example.com",
            phone="+14155552671",
            phone_line_type="mobile",
            postal_code="10001",
            state="NY",
            timezone="America/New_York",
        ),
        consent=LeadConsent(text="I agree", sellers=["*"], channels=["call"], certificate_id="c-1"),
        attributes={"bill": 180, "roof": ["south", None], "ratio": 0.25, "nested": {"a": True}},
        channel_details={"call_id": "c-9", "caller_phone": "+14155552671"},
        extra={"unknown_top_level": "kept"},
        quality_flags=["zip_state_mismatch"],
        intake=INTAKE,
        buyer_id="acme",
        price=12.75,
        score=71,
        sold_at=RECEIVED_AT + timedelta(milliseconds=30),
        exclusive=True,
    )


def decision() -> Decision:
    return Decision(
        event_id="evt-1",
        lead_id="lead-1",
        outcome="sold",
        buyers=["acme"],
        price=12.75,
        reasons=["sold"],
        considered=[Verdict(buyer_id="west", reason="filtered:state")],
        score=71,
        score_reasons=["channel:call+35", "flag:zip_state_mismatch-10"],
        channel="call",
        vertical="solar",
        intake=INTAKE,
        timings=Timings(
            occurred_at=RECEIVED_AT - timedelta(seconds=3),
            received_at=RECEIVED_AT,
            decided_at=RECEIVED_AT + timedelta(milliseconds=30),
            pipeline_ms=30.0,
        ),
    )


def test_decision_round_trip() -> None:
    record = decision()
    data = encode(record)
    assert isinstance(data, bytes)
    assert orjson.loads(data)["outcome"] == "sold"
    assert decode(Decision, data) == record


def test_rejected_decision_without_event_id_round_trip() -> None:
    record = replace(decision(), event_id=None, outcome="rejected")
    back = decode(Decision, encode(record))
    assert back == record and back.event_id is None


def test_buyer_lead_round_trip() -> None:
    record = buyer_lead()
    back = decode(BuyerLead, encode(record))
    assert back == record
    assert back.occurred_at.utcoffset() == timedelta(hours=-4)
    assert back.consent is not None and back.consent.sellers == ["*"]


def test_decode_refuses_the_wrong_shape() -> None:
    with pytest.raises(ValueError):
        decode(Decision, encode(buyer_lead()))


def with_field(record: Any, path: list[str | int], value: Any) -> bytes:
    data = orjson.loads(encode(record))
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (
            with_field(decision(), ["considered", 0, "reason"], 7),
            "considered.0.reason",
            "Expected `str`",
        ),
        (
            with_field(decision(), ["timings", "decided_at"], "soon"),
            "timings.decided_at",
            "Invalid RFC3339",
        ),
        (with_field(decision(), ["intake", "extra"], 1), "intake.extra", "unknown field `extra`"),
        (orjson.dumps({"event_id": "e"}), "outcome", "missing required field `outcome`"),
        (b"[]", None, "Expected `object`, got `array`"),
        (b'{"event_id": ', None, "not valid JSON"),
    ],
)
def test_an_unreadable_record_names_its_field(raw: bytes, field: str | None, message: str) -> None:
    with pytest.raises(Unreadable) as caught:
        decode(Decision, raw)
    assert caught.value.field == field
    assert message in caught.value.message


VERDICTS = st.lists(
    st.builds(Verdict, buyer_id=st.text(max_size=20), reason=st.text(max_size=40)), max_size=8
)


@settings(max_examples=200, deadline=None)
@given(VERDICTS)
def test_verdict_lists_round_trip(verdicts: list[Verdict]) -> None:
    for verdict in verdicts:
        assert decode(Verdict, encode(verdict)) == verdict
    carried = replace(decision(), considered=verdicts)
    assert decode(Decision, encode(carried)).considered == verdicts
    sold = buyer_lead()
    lead = NormalizedLead(
        **{name: getattr(sold, name) for name in NormalizedLead.__struct_fields__}
    )
    unsold = UnsoldLead(lead=lead, score=3, verdicts=verdicts, decided_at=RECEIVED_AT)
    assert decode(UnsoldLead, encode(unsold)).verdicts == verdicts
