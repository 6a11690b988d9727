"""Consumers who opted out: keys on `consumers.suppression` are the SHA-256 of the E.164 phone
or of the lower-cased email, so the topic never holds the contact details themselves."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from router.records import NormalizedLead


def key(value: str) -> str:
    """The suppression key of an already normalized phone (E.164) or lower-cased email."""
    return hashlib.sha256(value.encode()).hexdigest()


def lead_keys(lead: NormalizedLead) -> list[str]:
    contact = lead.contact
    return [
        key(value) for value in (contact.phone, contact.email and contact.email.lower()) if value
    ]


def is_suppressed(lead: NormalizedLead, suppressed: Callable[[str], bool]) -> bool:
    return any(suppressed(k) for k in lead_keys(lead))
