from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import phonenumbers
import pytest
import zipcodes
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError

from router.contract import CHANNELS, INTAKE_MODELS
from router.synthetic import (
    BUYER_IDS,
    CHANNEL_WEIGHTS,
    DEFAULT_MIX,
    KINDS,
    LEAD_VERTICALS,
    STATE_MISMATCH,
    Mix,
    SyntheticEvent,
    generate,
)

pytestmark = pytest.mark.unit

BASE = datetime(2026, 11, 23, 15, 4, 5, 123000, tzinfo=UTC)
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
ZIP = re.compile(r"^\d{5}$")


@pytest.fixture(scope="module")
def events() -> list[SyntheticEvent]:
    return list(generate(2000, seed=7, base_time=BASE))


@pytest.fixture(scope="module")
def zips() -> dict[str, dict[str, Any]]:
    return {z["zip_code"]: z for z in zipcodes.list_all()}


def _phone_ok(text: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(text, "US"))
    except phonenumbers.NumberParseException:
        return False


def _email_ok(text: str) -> bool:
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _e164(text: str) -> str:
    return phonenumbers.format_number(
        phonenumbers.parse(text, "US"), phonenumbers.PhoneNumberFormat.E164
    )


def _fingerprint(ev: dict[str, Any]) -> tuple[str, str] | None:
    """What the router dedups on: normalized phone, else email, plus vertical."""
    contact = ev.get("contact") or {}
    if contact.get("phone"):
        return _e164(contact["phone"]), ev["vertical"]
    if contact.get("email"):
        return contact["email"].lower(), ev["vertical"]
    return None


def _model_fails(e: SyntheticEvent) -> bool:
    try:
        INTAKE_MODELS[e.channel].model_validate(orjson.loads(e.payload))
    except ValidationError:
        return True
    return False


def _contact_defective(ev: dict[str, Any]) -> bool:
    contact = ev.get("contact") or {}
    phones = [contact.get("phone"), (ev.get("call") or {}).get("caller_phone")]
    if any(p is not None and not _phone_ok(p) for p in phones):
        return True
    if contact.get("email") is not None and not _email_ok(contact["email"]):
        return True
    return contact.get("postal_code") is not None and not ZIP.match(contact["postal_code"])


def test_same_seed_gives_identical_events() -> None:
    first = list(generate(500, seed=42, base_time=BASE))
    second = list(generate(500, seed=42, base_time=BASE))
    assert first == second
    assert [e.payload for e in first] == [e.payload for e in second]


def test_different_seed_gives_different_events() -> None:
    a = [e.payload for e in generate(200, seed=1, base_time=BASE)]
    b = [e.payload for e in generate(200, seed=2, base_time=BASE)]
    assert a != b
    assert not set(a) & set(b)


def test_prefix_is_stable_across_counts() -> None:
    assert (
        list(generate(50, seed=3, base_time=BASE))
        == list(generate(200, seed=3, base_time=BASE))[:50]
    )


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(1, base_time=BASE.replace(tzinfo=None))
    with pytest.raises(ValueError, match="count"):
        generate(-1, base_time=BASE)
    with pytest.raises(ValueError, match="sum to 1"):
        Mix(valid=0.5, invalid=0.1, duplicate=0.1, malformed=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        Mix(valid=1.1, invalid=-0.1, duplicate=0.0, malformed=0.0)


def test_zero_count_yields_nothing() -> None:
    assert list(generate(0, base_time=BASE)) == []


def test_topic_and_key_follow_channel_and_event_id(events: list[SyntheticEvent]) -> None:
    for e in events:
        assert e.channel in CHANNELS
        assert e.topic == f"intent.{e.channel}"
        assert e.key == (e.event_id.encode() if e.event_id else None)
        assert e.kind in KINDS


def test_event_ids_are_unique(events: list[SyntheticEvent]) -> None:
    ids = [e.event_id for e in events if e.event_id]
    assert len(ids) == len(set(ids))


def test_valid_and_duplicate_events_meet_the_contract(
    events: list[SyntheticEvent], zips: dict[str, dict[str, Any]]
) -> None:
    mismatches = 0
    for e in events:
        if e.kind not in ("valid", "duplicate"):
            continue
        ev = orjson.loads(e.payload)
        INTAKE_MODELS[e.channel].model_validate(ev)
        assert e.event_id == ev["event_id"]
        contact = ev.get("contact") or {}
        if "phone" in contact:
            assert _phone_ok(contact["phone"]), contact["phone"]
        if "call" in ev:
            assert _phone_ok(ev["call"]["caller_phone"])
        if "email" in contact:
            assert _email_ok(contact["email"]), contact["email"]
        if "postal_code" in contact:
            real = zips[contact["postal_code"]]
            assert real["active"]
            assert contact["city"] == real["city"]
            if e.note == STATE_MISMATCH:
                mismatches += 1
                assert contact["state"] != real["state"]
            else:
                assert contact["state"] == real["state"]
        else:
            assert e.note is None
    assert mismatches > 0


def test_timestamps_are_rfc3339_before_base_time(events: list[SyntheticEvent]) -> None:
    for e in events:
        if e.kind not in ("valid", "duplicate"):
            continue
        ev = orjson.loads(e.payload)
        assert RFC3339.match(ev["occurred_at"]), ev["occurred_at"]
        occurred = datetime.fromisoformat(ev["occurred_at"])
        assert BASE - timedelta(hours=1) < occurred <= BASE
        if ev.get("consent"):
            assert datetime.fromisoformat(ev["consent"]["captured_at"]) <= occurred


def test_invalid_events_break_the_contract_or_the_contact(events: list[SyntheticEvent]) -> None:
    invalid = [e for e in events if e.kind == "invalid"]
    assert invalid
    for e in invalid:
        ev = orjson.loads(e.payload)
        assert isinstance(ev, dict)
        assert _model_fails(e) or _contact_defective(ev), (e.note, ev)


def test_every_defect_is_detectable() -> None:
    only_invalid = Mix(valid=0.0, invalid=1.0, duplicate=0.0, malformed=0.0)
    invalid = list(generate(1000, seed=5, base_time=BASE, mix=only_invalid))
    assert {e.kind for e in invalid} == {"invalid"}
    notes = Counter(e.note for e in invalid)
    assert set(notes) >= {
        "invalid_phone",
        "invalid_email",
        "bad_zip",
        "missing_event_id",
        "bad_occurred_at",
        "unreachable_form",
        "trial_without_email",
        "call_without_call",
    }
    for e in invalid:
        assert _model_fails(e) or _contact_defective(orjson.loads(e.payload)), e.note
    for e in invalid:
        if e.note == "missing_event_id":
            assert e.event_id is None and e.key is None


def _not_a_json_object(payload: bytes) -> bool:
    try:
        return not isinstance(orjson.loads(payload), dict)
    except orjson.JSONDecodeError:
        return True


def test_malformed_events_are_not_json_objects(events: list[SyntheticEvent]) -> None:
    malformed = [e for e in events if e.kind == "malformed"]
    assert malformed
    for e in malformed:
        assert _not_a_json_object(e.payload), e.note


def test_every_malformed_variant_occurs() -> None:
    only_malformed = Mix(valid=0.0, invalid=0.0, duplicate=0.0, malformed=1.0)
    malformed = list(generate(300, seed=9, base_time=BASE, mix=only_malformed))
    assert all(_not_a_json_object(e.payload) for e in malformed)
    by_note = {e.note: e for e in malformed}
    assert set(by_note) == {
        "random_bytes",
        "truncated_json",
        "invalid_utf8",
        "json_array",
        "deep_nesting",
        "huge_string",
        "not_an_object",
    }
    assert len(by_note["huge_string"].payload) >= 100_000
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(by_note["invalid_utf8"].payload)


def test_duplicates_repeat_an_earlier_valid_consumer(events: list[SyntheticEvent]) -> None:
    seen_fingerprints: set[tuple[str, str]] = set()
    seen_ids: set[str] = set()
    duplicates = 0
    for e in events:
        if e.kind == "valid":
            fp = _fingerprint(orjson.loads(e.payload))
            if fp:
                seen_fingerprints.add(fp)
            assert e.event_id
            seen_ids.add(e.event_id)
        elif e.kind == "duplicate":
            duplicates += 1
            fp = _fingerprint(orjson.loads(e.payload))
            assert fp in seen_fingerprints
            assert e.duplicate_of in seen_ids
            assert e.event_id not in seen_ids
    assert duplicates > 0


def test_mix_matches_configured_fractions(events: list[SyntheticEvent]) -> None:
    kinds = Counter(e.kind for e in events)
    for kind, want in zip(KINDS, DEFAULT_MIX.weights(), strict=True):
        assert abs(kinds[kind] / len(events) - want) < 0.03, (kind, kinds)
    channels = Counter(e.channel for e in events)
    assert set(channels) == set(CHANNELS)
    for channel, want in CHANNEL_WEIGHTS:
        assert abs(channels[channel] / len(events) - want) < 0.05, (channel, channels)


def test_custom_mix_is_respected() -> None:
    mix = Mix(valid=0.5, invalid=0.0, duplicate=0.5, malformed=0.0)
    kinds = Counter(e.kind for e in generate(1000, seed=11, base_time=BASE, mix=mix))
    assert set(kinds) == {"valid", "duplicate"}
    assert abs(kinds["valid"] / 1000 - 0.5) < 0.06


def test_valid_traffic_looks_realistic(events: list[SyntheticEvent]) -> None:
    valid = [(e, orjson.loads(e.payload)) for e in events if e.kind == "valid"]
    clicks = [ev for e, ev in valid if e.channel == "click"]
    anonymous = [ev for ev in clicks if not ev.get("contact")]
    assert 0.3 < len(anonymous) / len(clicks) < 0.5

    consentable = [ev for e, ev in valid if e.channel != "click"]
    with_consent = [ev for ev in consentable if ev.get("consent")]
    assert 0.6 < len(with_consent) / len(consentable) < 0.8
    for ev in with_consent:
        sellers = ev["consent"]["sellers"]
        assert sellers == ["*"] or set(sellers) <= set(BUYER_IDS)
        assert ev["consent"]["certificate_id"]
    assert any(ev["consent"]["sellers"] != ["*"] for ev in with_consent)

    for e, ev in valid:
        assert ev["source"]["publisher_id"].startswith("pub-")
        if e.channel == "trial":
            assert ev["vertical"] == "saas"
            assert "company_size" in ev["attributes"]
        else:
            assert ev["vertical"] in LEAD_VERTICALS
        if ev["vertical"] == "auto_insurance":
            assert "vehicle_year" in ev["attributes"]
        elif ev["vertical"] == "mortgage":
            assert ev["attributes"]["loan_amount"] < ev["attributes"]["property_value"]

    phones = [ev["contact"]["phone"] for _, ev in valid if "phone" in (ev.get("contact") or {})]
    assert any(p.startswith("+1") for p in phones)
    assert any("." in p for p in phones)
    assert any(p.startswith("(") for p in phones)


def test_unknown_fields_are_kept_by_the_contract(events: list[SyntheticEvent]) -> None:
    extras = [e for e in events if e.kind == "valid" and b'"utm":' in e.payload]
    assert extras
    for e in extras:
        model = INTAKE_MODELS[e.channel].model_validate(orjson.loads(e.payload))
        assert model.model_extra is not None
        assert "utm" in model.model_extra


def test_paced_traffic_is_captured_just_before_it_is_produced() -> None:
    paced = list(generate(400, seed=9, base_time=BASE, rate=10.0))
    fresh = 0
    for i, e in enumerate(paced):
        if e.kind != "valid":
            continue
        produced_at = BASE + timedelta(seconds=i / 10.0)
        occurred = datetime.fromisoformat(orjson.loads(e.payload)["occurred_at"])
        assert occurred <= produced_at
        fresh += produced_at - occurred <= timedelta(seconds=1)
    assert fresh > 0.8 * sum(e.kind == "valid" for e in paced)
