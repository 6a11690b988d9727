"""Whether one buyer accepts one lead, and if not, the first reason why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from router import codec
from router.buyers import Buyer, Rule, VerticalPolicy
from router.records import NormalizedLead
from router.schedule import is_open

_SCALARS = (str, int, float, bool, type(None))


def vertical_rejection(buyer: Buyer, vertical: str) -> str | None:
    """The first checks of `rejection_reason`: those that depend on the lead's vertical alone,
    so that matching can settle them once per vertical instead of once per lead."""
    if buyer.status == "paused":
        return "paused"
    if vertical not in buyer.verticals:
        return "filtered:vertical"
    return None


def rejection_reason(
    buyer: Buyer, lead: NormalizedLead, score: int, policy: VerticalPolicy, now: datetime
) -> str | None:
    """The first check the lead fails for this buyer, as a reason code; None if it accepts.

    Runs for every buyer on every lead, so checks go cheapest and most selective first and
    nothing is built unless a check needs it.
    """
    reason = vertical_rejection(buyer, lead.vertical)
    if reason is not None:
        return reason
    if lead.channel not in buyer.channels:
        return "filtered:channel"
    contact = lead.contact
    if buyer.states and contact.state not in buyer.states:
        return "filtered:state"
    if buyer.postal_codes and not (
        contact.postal_code and contact.postal_code.startswith(tuple(buyer.postal_codes))
    ):
        return "filtered:postal_code"
    if score < buyer.min_score:
        return "filtered:min_score"
    if buyer.line_types and contact.phone_line_type not in buyer.line_types:
        return "filtered:line_type"
    if buyer.max_lead_age_s is not None and now - _aware(lead.occurred_at) > timedelta(
        seconds=buyer.max_lead_age_s
    ):
        return "filtered:lead_age"
    for rule in buyer.rules:
        if not rule_passes(rule, lead_value(lead, rule.field)):
            return "filtered:" + rule.field
    # Calls need someone to pick up; other channels can wait if the buyer says so.
    if (lead.channel == "call" or not buyer.accept_after_hours) and not is_open(buyer, now):
        return "closed"
    if (buyer.requires_consent or buyer.contact_by) and not _consented(buyer.id, lead, policy, now):
        return "consent"
    if buyer.contact_by:
        # Consent to be called is not consent to be texted (TCPA): each way the buyer reaches
        # the consumer must be named. _consented has checked that consent is there.
        allowed = lead.consent.channels if lead.consent is not None else ()
        for way in buyer.contact_by:
            if way not in allowed:
                return "consent:" + way
    return None


def lead_value(lead: NormalizedLead, path: str) -> Any:
    """The value at a dotted path, as the lead's JSON (`codec.encode`) holds it; None if the
    path does not resolve.

    Walks the record instead of converting it: a conversion per buyer per lead would dominate
    matching. Only declared fields are read, so a path cannot reach Python attributes.
    """
    value: Any = lead
    for name in path.split("."):
        if isinstance(value, dict):
            value = value.get(name)
        elif isinstance(value, msgspec.Struct):
            if name not in value.__struct_fields__:
                return None
            value = getattr(value, name)
        else:
            return None
        if value is None:
            return None
    if isinstance(value, _SCALARS):
        return value
    # Datetimes, nested models and containers: the JSON form a rule author sees in the schema.
    try:
        return codec.to_builtins(value)
    except Exception:  # never let odd lead data break matching
        return None


def rule_passes(rule: Rule, value: Any) -> bool:
    """Whether a resolved lead value satisfies the rule; a missing value only satisfies
    `exists: false`, and a type mismatch fails instead of raising."""
    op = rule.op
    if op == "exists":
        return (value is not None) is (rule.value is not False)
    if value is None:
        return False
    expected = rule.value
    try:
        if op == "eq":
            return bool(value == expected)
        if op == "ne":
            return bool(value != expected)
        if op == "in":
            return value in expected
        if op == "not_in":
            return value not in expected
        if (_is_number(value) and _is_number(expected)) or (
            isinstance(value, str) and isinstance(expected, str)
        ):
            if op == "gt":
                return bool(value > expected)
            if op == "gte":
                return bool(value >= expected)
            if op == "lt":
                return bool(value < expected)
            if op == "lte":
                return bool(value <= expected)
    except Exception:  # never let odd lead data break matching
        return False
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _aware(moment: datetime) -> datetime:
    # Normalized times are always aware; a naive one is read as UTC rather than raising.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _consented(buyer_id: str, lead: NormalizedLead, policy: VerticalPolicy, now: datetime) -> bool:
    consent = lead.consent
    if consent is None:
        return False
    sellers = consent.sellers
    if buyer_id not in sellers and "*" not in sellers:
        return False
    if policy.consent_max_age_days is None:
        return True
    captured_at = consent.captured_at
    if captured_at is None:
        return False
    return now - _aware(captured_at) <= timedelta(days=policy.consent_max_age_days)
