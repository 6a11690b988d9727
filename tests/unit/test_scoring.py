from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from router.contract import CHANNELS, Channel
from router.records import IntakeRef, LeadConsent, NormalizedContact, NormalizedLead
from router.scoring import score

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SIGNED_SUFFIX = re.compile(r"([+-][0-9]+)$")
LINE_TYPES = [None, "mobile", "fixed_line_or_mobile", "fixed_line", "voip", "toll_free", "unknown"]
FLAGS = ["zip_state_mismatch", "unknown_postal_code", "something_new"]
CONTACT_FIELDS = ("first_name", "last_name", "email", "phone", "postal_code", "address")


def make_lead(
    *,
    channel: Channel = "form",
    age: timedelta = timedelta(seconds=5),
    contact: dict[str, Any] | None = None,
    consent: LeadConsent | None = None,
    flags: list[str] | None = None,
    offset: int = 0,
) -> NormalizedLead:
    return NormalizedLead(
        lead_id=f"lead-{offset}",
        event_id=f"evt-{offset}",
        channel=channel,
        vertical="solar",
        occurred_at=RECEIVED_AT - age,
        received_at=RECEIVED_AT,
        fingerprint=f"fp-{offset}",
        source={"publisher_id": "pub-1"},
        contact=NormalizedContact(
            **(
                contact
                if contact is not None
                else {"email": "jane@example.com", "phone": "+14155552671"}
            )
        ),
        consent=consent,
        quality_flags=flags or [],
        intake=IntakeRef(topic="intent.form", partition=0, offset=offset),
    )


def points(reasons: list[str]) -> int:
    total = 0
    for reason in reasons:
        found = SIGNED_SUFFIX.search(reason)
        assert found is not None, f"reason {reason!r} has no signed points suffix"
        total += int(found.group(1))
    return total


@st.composite
def leads(draw: st.DrawFn) -> NormalizedLead:
    contact: dict[str, Any] = {
        name: draw(st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=8)))
        for name in CONTACT_FIELDS
    }
    contact["phone_line_type"] = draw(st.sampled_from(LINE_TYPES))
    consent = draw(
        st.one_of(
            st.none(),
            st.builds(
                LeadConsent,
                certificate_id=st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=8)),
                sellers=st.lists(st.sampled_from(["*", "acme"]), max_size=2),
            ),
        )
    )
    return make_lead(
        channel=draw(st.sampled_from(CHANNELS)),
        age=timedelta(seconds=draw(st.integers(-(10**8), 10**9))),
        contact=contact,
        consent=consent,
        flags=draw(st.lists(st.sampled_from(FLAGS), max_size=4)),
    )


@settings(max_examples=200, deadline=None)
@given(leads())
def test_score_is_bounded_and_reasons_add_up(lead: NormalizedLead) -> None:
    result = score(lead)
    assert 0 <= result.value <= 100
    total = points(result.reasons)
    assert result.value == max(0, min(100, total))
    if 0 <= total <= 100:
        assert result.value == total
    assert score(lead) == result


def test_reasons_sum_to_value_on_a_known_lead() -> None:
    lead = make_lead(
        channel="call",
        contact={"first_name": "Jane", "phone": "+14155552671", "phone_line_type": "mobile"},
        flags=["unknown_postal_code"],
    )
    result = score(lead)
    # 35 call + 6 (2 of 6 fields) + 12 mobile + 15 fresh - 5 unknown ZIP
    assert result.value == 63
    assert points(result.reasons) == 63
    assert "channel:call+35" in result.reasons
    assert "flag:unknown_postal_code-5" in result.reasons


def test_best_lead_scores_exactly_100_and_worst_is_clamped_to_0() -> None:
    best = make_lead(
        channel="call",
        contact={name: "x" for name in CONTACT_FIELDS} | {"phone_line_type": "mobile"},
        consent=LeadConsent(certificate_id="cert-1"),
    )
    assert score(best).value == 100 == points(score(best).reasons)

    worst = make_lead(
        channel="click",
        age=timedelta(days=30),
        contact={},
        flags=["zip_state_mismatch", "unknown_postal_code"],
    )
    assert points(score(worst).reasons) == -5
    assert score(worst).value == 0


def test_call_outranks_identical_click() -> None:
    assert score(make_lead(channel="call")).value > score(make_lead(channel="click")).value


def test_consent_adds_points() -> None:
    without = score(make_lead()).value
    with_consent = score(make_lead(consent=LeadConsent(text="I agree"))).value
    with_certificate = score(make_lead(consent=LeadConsent(certificate_id="cert-1"))).value
    assert without < with_consent < with_certificate


@pytest.mark.parametrize(
    "older", [timedelta(minutes=5), timedelta(hours=2), timedelta(days=2), timedelta(days=400)]
)
def test_older_lead_scores_lower(older: timedelta) -> None:
    fresh = score(make_lead(age=timedelta(seconds=10))).value
    assert score(make_lead(age=older)).value < fresh


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**7), st.integers(0, 10**7))
def test_score_never_rises_with_age(a: int, b: int) -> None:
    young, old = sorted((a, b))
    assert (
        score(make_lead(age=timedelta(seconds=young))).value
        >= score(make_lead(age=timedelta(seconds=old))).value
    )


def test_zip_state_mismatch_lowers_score() -> None:
    clean = score(make_lead()).value
    flagged = score(make_lead(flags=["zip_state_mismatch"]))
    assert flagged.value < clean
    assert "flag:zip_state_mismatch-10" in flagged.reasons


def test_score_is_deterministic() -> None:
    lead = make_lead(channel="trial", consent=LeadConsent(certificate_id="c"), flags=["x"])
    assert score(lead) == score(replace(lead)) == score(lead)
