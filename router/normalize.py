"""Turn raw intake bytes into a `NormalizedLead`, or a `Rejection` saying precisely why not.

Pure: no I/O and no clock reads. `normalize` never raises, whatever the bytes.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
import phonenumbers
import zipcodes
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ValidationError

from router.contract import INTAKE_MODELS, CallEvent, Channel, Consent, Contact, IntakeEvent
from router.records import IntakeRef, LeadConsent, NormalizedContact, NormalizedLead, Rejection

# Never change: lead ids already written to topics are derived from it.
LEAD_ID_NAMESPACE = uuid.UUID("222dd708-b3f4-4f0f-82f1-7b8ed429646a")

MAX_MESSAGE = 200
MAX_EVENT_ID = 200  # the contract's limit; a longer value is not an id worth carrying along
# orjson reads 1024 levels but orjson.dumps and pydantic's serializer stop near 255, and later
# records wrap the lead a few levels deeper: a lead nested past that could be accepted here and
# then crash whichever stage first writes it out. Real leads are nowhere near this deep.
MAX_DEPTH = 64

# [0-9], not \d: \d also matches non-ASCII digits such as "١٢٣٤٥".
_ZIP = re.compile(r"[0-9]{5}(?:-[0-9]{4})?")

_LINE_TYPES: dict[int, str] = {
    value: name.lower()
    for name, value in vars(phonenumbers.PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
}


class _Place(NamedTuple):
    state: str
    city: str | None
    timezone: str | None


# Every Rejection.reason code, so metrics can expose each one at zero before it first occurs.
REJECTION_REASONS = (
    "invalid_json",
    "not_an_object",
    "too_deep",
    "missing_field",
    "invalid_field",
    "invalid_event",
    "invalid_phone",
    "invalid_email",
    "invalid_postal_code",
    "internal_error",
)


class _Reject(Exception):
    """Internal control flow: carries a Rejection out of the checks."""

    def __init__(self, reason: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.message = message


@functools.cache
def _zip_index() -> dict[str, _Place]:
    # zipcodes.matching scans all ~42k records per call; index them once, on first use.
    return {
        z["zip_code"]: _Place(z["state"], z.get("city") or None, z.get("timezone") or None)
        for z in zipcodes.list_all()
    }


def warm_up() -> None:
    """Build the ZIP index now, so the first lead does not pay for it (~0.6 s)."""
    _zip_index()


def fingerprint(phone: str | None, email: str | None, event_id: str, vertical: str) -> str:
    """The dedup key: the same person in the same vertical gives the same fingerprint.

    `phone` is E.164 and `email` normalized. Without either, the lead is anonymous and only
    equal to itself.
    """
    identity = phone or email or f"anonymous:{event_id}"
    return hashlib.sha256(f"{identity}|{vertical}".encode()).hexdigest()


def normalize(
    raw: bytes, channel: Channel, intake: IntakeRef, received_at: datetime
) -> NormalizedLead | Rejection:
    event_id: str | None = None
    try:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _rejection("invalid_json", None, f"not valid JSON: {exc}", None)
        if not isinstance(obj, dict):
            kind = type(obj).__name__
            return _rejection("not_an_object", None, f"top level is {kind}, not an object", None)

        candidate = obj.get("event_id")
        if isinstance(candidate, str) and 0 < len(candidate) <= MAX_EVENT_ID:
            event_id = candidate

        # Nesting deeper than MAX_DEPTH needs more than MAX_DEPTH brackets; counting them
        # (in C) spares almost every event the walk.
        brackets = raw.count(b"{") + raw.count(b"[")
        deep_field = _too_deep(obj) if brackets > MAX_DEPTH else None
        if deep_field is not None:
            return _rejection(
                "too_deep", deep_field, f"nested deeper than {MAX_DEPTH} levels", event_id
            )

        try:
            event = INTAKE_MODELS[channel].model_validate(obj)
        except ValidationError as exc:
            return _from_validation_error(exc, event_id)

        try:
            return _build(event, channel, intake, received_at)
        except _Reject as rej:
            return _rejection(rej.reason, rej.field, rej.message, event_id)
    # Last line of defence: one unforeseen bug must become a dead letter, not crash the stream
    # task and stall its partition. Every failure we know of is mapped precisely above.
    except Exception as exc:
        return _rejection(
            "internal_error", None, f"{type(exc).__name__} while normalizing", event_id
        )


# Event time drives dedup windows and buyer-local cap windows: a timestamp far outside the
# plausible range would silently land in a window nobody audits (or overflow tz arithmetic).
OLDEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(hours=1)


def _check_event_time(occurred_at: datetime, received_at: datetime) -> None:
    if occurred_at < OLDEST_EVENT:
        raise _Reject("invalid_field", "occurred_at", "occurred_at is before the year 2000")
    if occurred_at - received_at > MAX_CLOCK_SKEW:
        raise _Reject(
            "invalid_field",
            "occurred_at",
            "occurred_at is more than 1 h after the broker received it",
        )


def _build(
    event: IntakeEvent, channel: Channel, intake: IntakeRef, received_at: datetime
) -> NormalizedLead:
    contact = event.contact
    flags: list[str] = []
    _check_event_time(event.occurred_at, received_at)

    phone, line_type = _phone(event)
    email = _email(contact.email)
    postal_code, state, city, timezone = _place(contact, flags)

    details = getattr(event, channel) if channel != "form" else None
    channel_details = details.model_dump(mode="json") if isinstance(details, BaseModel) else {}

    return NormalizedLead(
        lead_id=str(uuid.uuid5(LEAD_ID_NAMESPACE, event.event_id)),
        event_id=event.event_id,
        channel=channel,
        vertical=event.vertical,
        occurred_at=event.occurred_at,
        received_at=received_at,
        fingerprint=fingerprint(phone, email, event.event_id, event.vertical),
        source=event.source.model_dump(mode="json"),
        contact=NormalizedContact(
            first_name=contact.first_name,
            last_name=contact.last_name,
            email=email,
            phone=phone,
            phone_line_type=line_type,
            postal_code=postal_code,
            state=state,
            city=city,
            timezone=timezone,
            address=contact.address,
            company=contact.company,
        ),
        consent=_consent(event.consent),
        attributes=event.attributes,
        channel_details=channel_details,
        extra=dict(event.model_extra or {}),
        quality_flags=flags,
        intake=intake,
    )


def _consent(consent: Consent | None) -> LeadConsent | None:
    if consent is None:
        return None
    return LeadConsent(
        text=consent.text,
        captured_at=consent.captured_at,
        certificate_id=consent.certificate_id,
        sellers=list(consent.sellers),
        channels=list(consent.channels),
        extra=dict(consent.model_extra or {}),
    )


def _phone(event: IntakeEvent) -> tuple[str | None, str | None]:
    # Only None and "" mean absent, as in the contract's own reachability checks; a blank
    # "   " was supplied and is rejected as invalid, so a form lead cannot become unreachable.
    raw, field = event.contact.phone, "contact.phone"
    if not raw and isinstance(event, CallEvent):
        raw, field = event.call.caller_phone, "call.caller_phone"
    if not raw:
        return None, None
    try:
        number = phonenumbers.parse(raw.strip(), "US")
    except phonenumbers.NumberParseException as exc:
        raise _Reject("invalid_phone", field, f"not a phone number: {exc}") from None
    # number_type is UNKNOWN exactly when is_valid_number is False (both match the number
    # against its region's patterns); asking once halves the cost of the check.
    line_type = phonenumbers.number_type(number)
    if line_type == phonenumbers.PhoneNumberType.UNKNOWN:
        raise _Reject("invalid_phone", field, "not a valid phone number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, _LINE_TYPES.get(line_type, "unknown")


def _email(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise _Reject("invalid_email", "contact.email", str(exc)) from None
    return result.normalized.lower()


def _place(
    contact: Contact, flags: list[str]
) -> tuple[str | None, str | None, str | None, str | None]:
    """(postal_code, state, city, timezone); appends quality flags."""
    stated_state = _blank_to_none(contact.state)
    state = stated_state.upper() if stated_state else None
    city = contact.city
    postal_code = _blank_to_none(contact.postal_code)
    if postal_code is None:
        return None, state, city, None
    if not _ZIP.fullmatch(postal_code):
        raise _Reject(
            "invalid_postal_code", "contact.postal_code", "expected a US ZIP: 12345 or 12345-6789"
        )
    place = _zip_index().get(postal_code[:5])
    if place is None:
        flags.append("unknown_postal_code")
        return postal_code, state, city, None
    if state is not None and state != place.state:
        flags.append("zip_state_mismatch")
    return postal_code, place.state, place.city or city, place.timezone


def _too_deep(obj: dict[str, Any]) -> str | None:
    """The top-level key under which containers nest deeper than MAX_DEPTH, if any."""
    # Iterative: a recursive walk would hit Python's own recursion limit first.
    for key, value in obj.items():
        stack: list[tuple[Any, int]] = [(value, 2)]
        while stack:
            node, depth = stack.pop()
            if isinstance(node, dict):
                children: Iterable[Any] = node.values()
            elif isinstance(node, list):
                children = node
            else:
                continue
            if depth > MAX_DEPTH:
                return key
            stack.extend((child, depth + 1) for child in children)
    return None


def _from_validation_error(exc: ValidationError, event_id: str | None) -> Rejection:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = err["loc"]
    if not loc:
        return _rejection("invalid_event", None, err["msg"], event_id)
    reason = "missing_field" if err["type"] == "missing" else "invalid_field"
    return _rejection(reason, ".".join(str(part) for part in loc), err["msg"], event_id)


def _rejection(reason: str, field: str | None, message: str, event_id: str | None) -> Rejection:
    return Rejection(
        reason=reason,
        field=None if field is None else _truncate(field),
        message=_truncate(message),
        event_id=event_id,
    )


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


__all__ = ["LEAD_ID_NAMESPACE", "REJECTION_REASONS", "fingerprint", "normalize", "warm_up"]
