from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import phonenumbers
import pytest
from email_validator import validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router import codec
from router.contract import CHANNELS, Channel
from router.normalize import (
    LEAD_ID_NAMESPACE,
    MAX_DEPTH,
    REJECTION_REASONS,
    _too_deep,
    fingerprint,
    normalize,
)
from router.records import IntakeRef, NormalizedLead, Rejection

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)

# Every number and address below is checked against the libraries in test_examples_are_real.
US_PHONE = "(415) 555-2671"
US_PHONE_E164 = "+14155552671"
OTHER_US_PHONE = "(212) 736-5000"
OTHER_US_PHONE_E164 = "+12127365000"
UK_MOBILE = "+44 7911 123456"
TOLL_FREE = "(800) 555-0199"
INVALID_PHONES = ["(123) 456-7890", "555-0100", "not a phone", "+1 999 555 0100"]


def ref(channel: Channel = "form") -> IntakeRef:
    return IntakeRef(topic=f"intent.{channel}", partition=3, offset=42)


def base_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "evt-1",
        "occurred_at": "2024-05-01T12:00:00Z",
        "vertical": "solar",
        "source": {"publisher_id": "pub-1", "campaign_id": "c-9"},
        "contact": {
            "first_name": "Jane",
            "last_name": "Doe",
            "email": "Jane.Doe@Example.COM",
            "phone": US_PHONE,
            "postal_code": "10001",
            "state": "ny",
        },
        "consent": {
            "text": "I agree",
            "captured_at": "2024-05-01T11:59:00Z",
            "sellers": ["acme"],
            "channels": ["call", "sms"],
        },
        "attributes": {"roof": "south", "bill": 180},
    }
    event.update(overrides)
    return event


def channel_event(channel: Channel, **overrides: Any) -> dict[str, Any]:
    event = base_event()
    if channel == "call":
        event["call"] = {"call_id": "call-1", "caller_phone": OTHER_US_PHONE}
    elif channel == "click":
        event["click"] = {"ad_id": "ad-1", "keyword": "solar panels"}
    elif channel == "trial":
        event["trial"] = {"product": "crm", "plan": "pro"}
    event.update(overrides)
    return event


def run(event: Any, channel: Channel = "form") -> NormalizedLead | Rejection:
    return normalize(orjson.dumps(event), channel, ref(channel), RECEIVED_AT)


def lead(event: Any, channel: Channel = "form") -> NormalizedLead:
    result = run(event, channel)
    assert isinstance(result, NormalizedLead), result
    return result


def rejected(event: Any, channel: Channel = "form") -> Rejection:
    result = run(event, channel)
    assert isinstance(result, Rejection), result
    return result


def with_contact(channel: Channel = "form", **contact: Any) -> dict[str, Any]:
    event = channel_event(channel)
    event["contact"] = {**event["contact"], **contact}
    event["contact"] = {k: v for k, v in event["contact"].items() if v is not ...}
    return event


def test_examples_are_real() -> None:
    for text, e164 in [(US_PHONE, US_PHONE_E164), (OTHER_US_PHONE, OTHER_US_PHONE_E164)]:
        number = phonenumbers.parse(text, "US")
        assert phonenumbers.is_valid_number(number)
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == e164
    for text in INVALID_PHONES:
        try:
            number = phonenumbers.parse(text, "US")
        except phonenumbers.NumberParseException:
            continue
        assert not phonenumbers.is_valid_number(number)
    assert validate_email("Jane.Doe@Example.COM", check_deliverability=False)


# --- valid events ---------------------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_valid_event_of_each_channel(channel: Channel) -> None:
    result = lead(channel_event(channel), channel)

    assert result.event_id == "evt-1"
    assert result.channel == channel
    assert result.vertical == "solar"
    assert result.occurred_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert result.received_at == RECEIVED_AT
    assert result.intake == ref(channel)
    assert result.lead_id == str(uuid.uuid5(LEAD_ID_NAMESPACE, "evt-1"))
    assert result.quality_flags == []

    contact = result.contact
    assert contact.phone == US_PHONE_E164
    assert contact.phone_line_type == "fixed_line_or_mobile"
    assert contact.email == "jane.doe@example.com"
    assert (contact.postal_code, contact.state, contact.city, contact.timezone) == (
        "10001",
        "NY",
        "New York",
        "America/New_York",
    )
    assert (contact.first_name, contact.last_name) == ("Jane", "Doe")

    assert result.consent is not None
    assert result.consent.sellers == ["acme"]
    assert result.consent.channels == ["call", "sms"]
    assert result.attributes == {"roof": "south", "bill": 180}
    assert result.fingerprint == fingerprint(US_PHONE_E164, None, "evt-1", "solar")


def test_channel_details() -> None:
    assert lead(channel_event("form"), "form").channel_details == {}
    assert lead(channel_event("call"), "call").channel_details == {
        "call_id": "call-1",
        "caller_phone": OTHER_US_PHONE,
        "dialed_number": None,
    }
    assert lead(channel_event("click"), "click").channel_details == {
        "ad_id": "ad-1",
        "keyword": "solar panels",
        "url": None,
    }
    assert lead(channel_event("trial"), "trial").channel_details == {
        "product": "crm",
        "plan": "pro",
    }
    bare_click = channel_event("click")
    del bare_click["click"]
    assert lead(bare_click, "click").channel_details == {
        "ad_id": None,
        "keyword": None,
        "url": None,
    }


def test_call_falls_back_to_caller_phone() -> None:
    event = with_contact("call", phone=...)
    result = lead(event, "call")
    assert result.contact.phone == OTHER_US_PHONE_E164
    assert result.fingerprint == fingerprint(OTHER_US_PHONE_E164, None, "evt-1", "solar")


def test_line_types() -> None:
    assert lead(with_contact(phone=UK_MOBILE)).contact.phone_line_type == "mobile"
    assert lead(with_contact(phone=TOLL_FREE)).contact.phone_line_type == "toll_free"
    assert lead(with_contact(phone=UK_MOBILE)).contact.phone == "+447911123456"


def test_email_only_form() -> None:
    result = lead(with_contact(phone=...))
    assert result.contact.phone is None
    assert result.contact.phone_line_type is None
    assert result.fingerprint == fingerprint(None, "jane.doe@example.com", "evt-1", "solar")


def test_anonymous_click() -> None:
    event = channel_event("click", contact={})
    result = lead(event, "click")
    assert result.contact.phone is None and result.contact.email is None
    assert result.fingerprint == fingerprint(None, None, "evt-1", "solar")
    other = lead({**event, "event_id": "evt-2"}, "click")
    assert other.fingerprint != result.fingerprint


def test_zip_plus_four_and_other_zip() -> None:
    result = lead(with_contact(postal_code="90210-1234", state="CA"))
    contact = result.contact
    assert (contact.postal_code, contact.state, contact.city, contact.timezone) == (
        "90210-1234",
        "CA",
        "Beverly Hills",
        "America/Los_Angeles",
    )
    assert result.quality_flags == []


def test_no_zip_keeps_stated_state_and_city() -> None:
    result = lead(with_contact(postal_code=..., state=" tx ", city="Austin"))
    contact = result.contact
    assert (contact.postal_code, contact.state, contact.city, contact.timezone) == (
        None,
        "TX",
        "Austin",
        None,
    )


def test_zip_state_mismatch_is_a_flag() -> None:
    result = lead(with_contact(postal_code="10001", state="CA", city="Los Angeles"))
    assert result.quality_flags == ["zip_state_mismatch"]
    assert result.contact.state == "NY"
    assert result.contact.city == "New York"


def test_unknown_zip_is_a_flag() -> None:
    result = lead(with_contact(postal_code="00000", state="NJ", city="Nowhere"))
    assert result.quality_flags == ["unknown_postal_code"]
    assert (result.contact.state, result.contact.city, result.contact.timezone) == (
        "NJ",
        "Nowhere",
        None,
    )


def test_unknown_fields_are_kept() -> None:
    event = channel_event("call", utm={"medium": "cpc"}, schema_version=2)
    event["source"] = {**event["source"], "landing_variant": "b"}
    event["call"] = {**event["call"], "ivr_path": [1, 3]}
    event["contact"] = {**event["contact"], "nickname": "JD"}
    result = lead(event, "call")
    assert result.extra == {"utm": {"medium": "cpc"}, "schema_version": 2}
    assert result.source["landing_variant"] == "b"
    assert result.source["publisher_id"] == "pub-1"
    assert result.channel_details["ivr_path"] == [1, 3]
    assert "nickname" not in codec.to_builtins(result.contact)


# --- determinism ----------------------------------------------------------------------------


def test_deterministic() -> None:
    raw = orjson.dumps(channel_event("form"))
    first = normalize(raw, "form", ref(), RECEIVED_AT)
    second = normalize(raw, "form", ref(), RECEIVED_AT)
    assert isinstance(first, NormalizedLead) and isinstance(second, NormalizedLead)
    assert first == second
    assert first.lead_id == second.lead_id
    assert first.fingerprint == second.fingerprint


def test_fingerprint_is_per_person_and_vertical() -> None:
    a = lead(base_event(event_id="evt-a"))
    b = lead(with_contact(phone="+1 415-555-2671", email="someone.else@example.org"))
    assert a.lead_id != b.lead_id
    assert a.fingerprint == b.fingerprint
    c = lead(base_event(event_id="evt-c", vertical="roofing"))
    assert c.fingerprint != a.fingerprint


def test_fingerprint_function() -> None:
    assert fingerprint("+14155552671", "a@b.co", "e1", "solar") == fingerprint(
        "+14155552671", None, "e2", "solar"
    )
    assert fingerprint(None, "a@b.co", "e1", "solar") == fingerprint(None, "a@b.co", "e2", "solar")
    assert fingerprint(None, None, "e1", "solar") != fingerprint(None, None, "e2", "solar")
    assert len(fingerprint(None, None, "e1", "solar")) == 64


# --- rejections -----------------------------------------------------------------------------


def drop(event: dict[str, Any], *path: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


@pytest.mark.parametrize(
    ("channel", "event", "reason", "field"),
    [
        ("form", drop(base_event(), "event_id"), "missing_field", "event_id"),
        ("form", drop(base_event(), "source"), "missing_field", "source"),
        (
            "form",
            drop(base_event(), "source", "publisher_id"),
            "missing_field",
            "source.publisher_id",
        ),
        # Not an int: pydantic's lax mode reads an int as a Unix timestamp.
        ("form", base_event(occurred_at=[2024, 5, 1]), "invalid_field", "occurred_at"),
        ("form", base_event(occurred_at="yesterday"), "invalid_field", "occurred_at"),
        ("form", base_event(occurred_at="2024-05-01T12:00:00"), "invalid_field", "occurred_at"),
        ("form", base_event(vertical="Solar Panels"), "invalid_field", "vertical"),
        ("form", base_event(event_id=""), "invalid_field", "event_id"),
        ("form", base_event(contact="nope"), "invalid_field", "contact"),
        ("form", base_event(contact={"phone": 4155552671}), "invalid_field", "contact.phone"),
        ("form", base_event(attributes=[1]), "invalid_field", "attributes"),
        (
            "form",
            base_event(consent={"sellers": ["acme", ""]}),
            "invalid_field",
            "consent.sellers.1",
        ),
        (
            "form",
            base_event(consent={"channels": ["fax"]}),
            "invalid_field",
            "consent.channels.0",
        ),
        ("form", base_event(contact={"first_name": "Jane"}), "invalid_event", None),
        ("form", base_event(contact={"phone": "", "email": ""}), "invalid_event", None),
        ("trial", channel_event("trial", contact={"phone": US_PHONE}), "invalid_event", None),
        ("trial", drop(channel_event("trial"), "trial"), "missing_field", "trial"),
        ("call", drop(channel_event("call"), "call"), "missing_field", "call"),
        ("call", drop(channel_event("call"), "call", "call_id"), "missing_field", "call.call_id"),
        (
            "call",
            channel_event("call", call={"call_id": "c"}),
            "missing_field",
            "call.caller_phone",
        ),
        ("click", channel_event("click", click=[]), "invalid_field", "click"),
    ],
)
def test_contract_rejections(
    channel: Channel, event: dict[str, Any], reason: str, field: str | None
) -> None:
    result = rejected(event, channel)
    assert (result.reason, result.field) == (reason, field)
    assert result.message
    assert len(result.message) <= 200
    expected_id = event.get("event_id") or None
    assert result.event_id == (expected_id if isinstance(expected_id, str) else None)


def test_model_level_message() -> None:
    assert "contact.phone or contact.email" in rejected(base_event(contact={})).message
    trial = rejected(channel_event("trial", contact={"phone": US_PHONE}), "trial")
    assert "contact.email" in trial.message


@pytest.mark.parametrize("phone", [*INVALID_PHONES, "   ", "+1", "x" * 4000])
def test_invalid_phone(phone: str) -> None:
    result = rejected(with_contact(phone=phone))
    assert (result.reason, result.field, result.event_id) == (
        "invalid_phone",
        "contact.phone",
        "evt-1",
    )


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        lambda prefix, digits: prefix + digits,
        st.sampled_from(["", "1", "+1", "+44", "+52"]),
        st.text("0123456789", min_size=7, max_size=12),
    )
)
def test_a_phone_is_accepted_exactly_when_phonenumbers_calls_it_valid(phone: str) -> None:
    try:
        valid = phonenumbers.is_valid_number(phonenumbers.parse(phone, "US"))
    except phonenumbers.NumberParseException:
        valid = False
    result = run(with_contact(phone=phone))
    assert isinstance(result, NormalizedLead) == valid, result


def test_invalid_caller_phone() -> None:
    event = with_contact("call", phone=...)
    event["call"] = {"call_id": "c1", "caller_phone": "(123) 456-7890"}
    result = rejected(event, "call")
    assert (result.reason, result.field) == ("invalid_phone", "call.caller_phone")


def test_contact_phone_wins_over_caller_phone() -> None:
    event = with_contact("call", phone="555-0100")
    result = rejected(event, "call")
    assert (result.reason, result.field) == ("invalid_phone", "contact.phone")


@pytest.mark.parametrize(
    "email", ["jane", "jane@", "@example.com", "jane@example", "jane doe@example.com", "   "]
)
def test_invalid_email(email: str) -> None:
    result = rejected(with_contact(email=email))
    assert (result.reason, result.field, result.event_id) == (
        "invalid_email",
        "contact.email",
        "evt-1",
    )


@pytest.mark.parametrize(
    "postal_code",
    [
        "1000",
        "100011",
        "10001-12",
        "ABCDE",
        "10001 1234",
        "\u0661\u0660\u0660\u0660\u0661",
        "10001\n1",
    ],
)
def test_invalid_postal_code(postal_code: str) -> None:
    result = rejected(with_contact(postal_code=postal_code))
    assert (result.reason, result.field) == ("invalid_postal_code", "contact.postal_code")
    assert result.event_id == "evt-1"


def test_postal_code_is_stripped() -> None:
    contact = lead(with_contact(postal_code=" 10001\n")).contact
    assert (contact.postal_code, contact.state) == ("10001", "NY")


def test_blank_postal_code_and_state_are_absent() -> None:
    contact = lead(with_contact(postal_code="  ", state="")).contact
    assert (contact.postal_code, contact.state, contact.timezone) == (None, None, None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "invalid_json"),
        (b"not json", "invalid_json"),
        (b'{"event_id": "evt-1", "vertical": ', "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b'{"event_id": "\xc3\x28"}', "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, "invalid_json"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "invalid_json"),
        (b"[]", "not_an_object"),
        (b'[{"event_id": "evt-1"}]', "not_an_object"),
        (b'"evt-1"', "not_an_object"),
        (b"null", "not_an_object"),
        (b"42", "not_an_object"),
    ],
)
def test_unparseable(raw: bytes, reason: str) -> None:
    result = normalize(raw, "form", ref(), RECEIVED_AT)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field, result.event_id) == (reason, None, None)
    assert len(result.message) <= 200


def test_event_id_carried_when_readable() -> None:
    assert rejected(drop(base_event(), "vertical")).event_id == "evt-1"
    assert rejected(base_event(event_id=7, vertical="X")).event_id is None
    long_id = "e" * 10_000
    result = rejected(base_event(event_id=long_id))
    assert (result.reason, result.field, result.event_id) == ("invalid_field", "event_id", None)


def test_huge_strings() -> None:
    result = rejected(with_contact(first_name="x" * 5_000_000))
    assert (result.reason, result.field) == ("invalid_field", "contact.first_name")
    assert len(result.message) <= 200


def nested(depth: int) -> bytes:
    """An event whose attributes hold `depth` more levels of objects and lists."""
    deep = b'{"a":[' * (depth // 2) + b"1" + b"]}" * (depth // 2)
    return orjson.dumps(base_event(attributes={})).replace(
        b'"attributes":{}', b'"attributes":' + deep
    )


def test_nesting_deeper_than_can_be_written_out_is_rejected() -> None:
    # Deeper than orjson.dumps and pydantic can serialize, shallower than orjson.loads reads.
    result = normalize(nested(900), "form", ref(), RECEIVED_AT)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field, result.event_id) == ("too_deep", "attributes", "evt-1")


def test_the_depth_limit_holds_at_its_edge() -> None:
    # The walk is skipped for payloads with few brackets; right at the limit it must run.
    verdicts = {}
    for depth in range(MAX_DEPTH - 6, MAX_DEPTH + 6, 2):
        result = normalize(nested(depth), "form", ref(), RECEIVED_AT)
        verdicts[depth] = isinstance(result, Rejection) and result.reason == "too_deep"
        assert verdicts[depth] == (_too_deep(orjson.loads(nested(depth))) is not None)
    assert set(verdicts.values()) == {True, False}


def test_moderate_nesting_is_kept_and_serializable() -> None:
    result = normalize(nested(60), "form", ref(), RECEIVED_AT)
    assert isinstance(result, NormalizedLead), result
    assert orjson.loads(codec.encode(result))["attributes"]["a"][0]["a"]


# --- properties: never raises ---------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(
        ["", " ", US_PHONE, "10001", "2024-05-01T12:00:00Z", "a@b.co", "solar", "NY", "\x00"]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
channels = st.sampled_from(CHANNELS)


def assert_total(raw: bytes, channel: Channel) -> None:
    result = normalize(raw, channel, ref(channel), RECEIVED_AT)
    assert isinstance(result, NormalizedLead | Rejection)
    if isinstance(result, Rejection):
        assert result.reason != "internal_error", result
        assert result.reason in REJECTION_REASONS, result
    else:
        assert result.contact.phone is None or result.contact.phone.startswith("+")
        codec.encode(result)  # whatever is accepted can also be written out


def encode(value: Any) -> bytes:
    # json, not orjson: it also writes NaN, Infinity, huge ints and escaped lone surrogates.
    return json.dumps(value).encode()


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=512), channel=channels)
def test_never_raises_on_arbitrary_bytes(raw: bytes, channel: Channel) -> None:
    assert_total(raw, channel)


@settings(max_examples=300, deadline=None)
@given(value=json_values | st.dictionaries(st.text(max_size=12), json_values), channel=channels)
def test_never_raises_on_arbitrary_json(value: Any, channel: Channel) -> None:
    assert_total(encode(value), channel)


FIELD_PATHS: list[tuple[str, ...]] = [
    ("event_id",),
    ("occurred_at",),
    ("vertical",),
    ("source",),
    ("source", "publisher_id"),
    ("contact",),
    ("contact", "phone"),
    ("contact", "email"),
    ("contact", "postal_code"),
    ("contact", "state"),
    ("contact", "city"),
    ("consent",),
    ("consent", "captured_at"),
    ("consent", "sellers"),
    ("consent", "channels"),
    ("attributes",),
    ("call",),
    ("call", "call_id"),
    ("call", "caller_phone"),
    ("click",),
    ("click", "url"),
    ("trial",),
    ("trial", "product"),
    ("unknown_top_level",),
]


@st.composite
def mutated_events(draw: st.DrawFn) -> tuple[dict[str, Any], Channel]:
    channel = draw(channels)
    event = channel_event(channel)
    for path in draw(st.lists(st.sampled_from(FIELD_PATHS), min_size=1, max_size=3)):
        target = event
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        if draw(st.integers(0, 5)) == 0:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = draw(json_values)
    return event, channel


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated_events())
def test_never_raises_on_mutated_valid_events(case: tuple[dict[str, Any], Channel]) -> None:
    event, channel = case
    assert_total(encode(event), channel)


@pytest.mark.parametrize(
    ("occurred_at", "message"),
    [
        ("0001-01-01T00:00:00+01:00", "before the year 2000"),
        ("2024-05-01T14:00:00+00:00", "after the broker received it"),
    ],
)
def test_implausible_event_time_is_rejected(occurred_at: str, message: str) -> None:
    rejection = rejected(base_event(occurred_at=occurred_at))
    assert (rejection.reason, rejection.field) == ("invalid_field", "occurred_at")
    assert message in rejection.message


def test_small_clock_skew_is_accepted() -> None:
    assert lead(base_event(occurred_at="2024-05-01T12:30:00+00:00")).occurred_at.minute == 30
