"""Opt-outs: a lead's suppression keys are those `router suppress` writes for its contact."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson
import pytest

from router import suppression
from router.control import suppression_key
from router.normalize import normalize
from router.records import IntakeRef, NormalizedContact, NormalizedLead

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
PHONE_E164 = "+14155552671"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lead(phone: str | None = PHONE_E164, email: str | None = None) -> NormalizedLead:
    return NormalizedLead(
        lead_id="lead-1",
        event_id="evt-1",
        channel="form",
        vertical="solar",
        occurred_at=RECEIVED_AT,
        received_at=RECEIVED_AT,
        fingerprint="fp",
        source={},
        contact=NormalizedContact(phone=phone, email=email),
        intake=IntakeRef(topic="intent.form", partition=0, offset=1),
    )


def test_keys_are_the_sha256_of_the_phone_and_the_lower_cased_email() -> None:
    keys = suppression.lead_keys(lead(email="Jo.Doe@Example.COM"))
    assert keys == [sha256(PHONE_E164), sha256("jo.doe@example.com")]
    assert all(PHONE_E164 not in k and "example" not in k for k in keys)


@pytest.mark.parametrize(
    ("phone", "email", "expected"),
    [
        (PHONE_E164, None, [sha256(PHONE_E164)]),
        (None, "jo@example.com", [sha256("jo@example.com")]),
        (None, None, []),
        ("", "", []),
    ],
)
def test_only_the_contact_details_a_lead_has_give_keys(
    phone: str | None, email: str | None, expected: list[str]
) -> None:
    assert suppression.lead_keys(lead(phone, email)) == expected


def test_a_lead_is_suppressed_by_its_phone_or_its_email() -> None:
    both = lead(email="jo@example.com")
    assert not suppression.is_suppressed(both, lambda key: False)
    assert suppression.is_suppressed(both, {sha256(PHONE_E164)}.__contains__)
    assert suppression.is_suppressed(both, {sha256("jo@example.com")}.__contains__)
    assert not suppression.is_suppressed(lead(None, None), lambda key: True)


def test_an_intake_lead_matches_what_an_operator_suppresses() -> None:
    """The keys of a lead as intake normalizes it equal those `router suppress` publishes for
    the same person written another way: otherwise an opt-out would never match."""
    raw = orjson.dumps(
        {
            "event_id": "evt-1",
            "occurred_at": "2024-05-01T12:00:00Z",
            "vertical": "solar",
            "source": {"publisher_id": "pub-1"},
            "contact": {"phone": "(415) 555-2671", "email": "Jane.Doe@Example.COM"},
        }
    )
    normalized = normalize(
        raw, "form", IntakeRef(topic="intent.form", partition=0, offset=0), RECEIVED_AT
    )
    assert isinstance(normalized, NormalizedLead), normalized
    assert suppression.lead_keys(normalized) == [
        suppression_key("phone", "+1 415-555-2671"),
        suppression_key("email", " JANE.doe@example.com"),
    ]
