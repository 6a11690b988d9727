"""Lead score from 0 to 100 with reason codes. Pure and deterministic: recency is measured
from the event's own time to the broker's receive time, both carried on the lead."""

from __future__ import annotations

from router import quality
from router.records import NormalizedLead, PublisherQuality, Score

CHANNEL_POINTS = {"call": 35, "form": 25, "trial": 20, "click": 10}
COMPLETENESS_FIELDS = ("first_name", "last_name", "email", "phone", "postal_code", "address")
COMPLETENESS_MAX = 20
LINE_TYPE_POINTS = {"mobile": 12, "fixed_line_or_mobile": 10, "fixed_line": 8, "voip": 4}
EMAIL_POINTS = 5
CONSENT_POINTS = 8
CERTIFICATE_POINTS = 5
# (max age in seconds, points): a lead worked within a minute converts far better.
RECENCY_STEPS = ((60, 15), (3600, 10), (86_400, 5))
PENALTIES = {"zip_state_mismatch": 10, "unknown_postal_code": 5}


def score(lead: NormalizedLead, publisher: PublisherQuality | None = None) -> Score:
    """0-100 with the reason for every point; `publisher` is the source's track record."""
    reasons: list[str] = []
    total = 0

    def add(code: str, points: int) -> None:
        nonlocal total
        if points:
            total += points
            reasons.append(f"{code}{points:+d}")

    add(f"channel:{lead.channel}", CHANNEL_POINTS[lead.channel])

    contact = lead.contact
    present = sum(1 for name in COMPLETENESS_FIELDS if getattr(contact, name))
    add(f"complete:{present}/{len(COMPLETENESS_FIELDS)}", COMPLETENESS_MAX * present // 6)

    if contact.phone:
        add(
            f"phone:{contact.phone_line_type or 'unknown'}",
            LINE_TYPE_POINTS.get(contact.phone_line_type or "", 2),
        )
    if contact.email:
        add("email:valid", EMAIL_POINTS)

    if lead.consent is not None:
        add("consent", CONSENT_POINTS)
        if lead.consent.certificate_id:
            add("consent:certificate", CERTIFICATE_POINTS)

    age_s = (lead.received_at - lead.occurred_at).total_seconds()
    for max_age, points in RECENCY_STEPS:
        if age_s <= max_age:
            add(f"recency:<={max_age}s", points)
            break

    for flag in lead.quality_flags:
        add(f"flag:{flag}", -PENALTIES.get(flag, 0))

    for code, points in quality.adjustments(publisher):
        add(code, points)

    return Score(value=max(0, min(100, total)), reasons=reasons)
