from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from router import codec
from router.buyers import DEFAULT_POLICY, Buyer, Rule, VerticalPolicy
from router.contract import CHANNELS, Channel
from router.filters import lead_value, rejection_reason, rule_passes
from router.records import IntakeRef, LeadConsent, NormalizedContact, NormalizedLead

NOW = datetime(2026, 6, 3, 15, 0, tzinfo=UTC)  # a Wednesday, 11:00 in New York
MISSING = object()


def make_lead(
    *,
    vertical: str = "solar",
    channel: Channel = "form",
    state: str | None = "NY",
    postal_code: str | None = "10001",
    line_type: str | None = "mobile",
    age_s: float = 5,
    consent: LeadConsent | None = None,
    attributes: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    channel_details: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> NormalizedLead:
    return NormalizedLead(
        lead_id="lead-1",
        event_id="evt-1",
        channel=channel,
        vertical=vertical,
        occurred_at=NOW - timedelta(seconds=age_s),
        received_at=NOW - timedelta(seconds=1),
        fingerprint="fp-1",
        source=source if source is not None else {"publisher_id": "pub-1"},
        contact=NormalizedContact(
            email="jane@example.com",
            phone="+12125550100",
            phone_line_type=line_type,
            state=state,
            postal_code=postal_code,
        ),
        consent=consent,
        attributes=attributes if attributes is not None else {},
        channel_details=channel_details if channel_details is not None else {},
        extra=extra if extra is not None else {},
        intake=IntakeRef(topic=f"intent.{channel}", partition=0, offset=0),
    )


def make_buyer(buyer_id: str = "acme", **fields: Any) -> Buyer:
    return Buyer(
        id=buyer_id,
        name=fields.pop("name", buyer_id.title()),
        verticals=fields.pop("verticals", ["solar"]),
        price=fields.pop("price", 10.0),
        **fields,
    )


def reason(
    buyer: Buyer,
    lead: NormalizedLead,
    score: int = 50,
    policy: VerticalPolicy = DEFAULT_POLICY,
    now: datetime = NOW,
) -> str | None:
    return rejection_reason(buyer, lead, score, policy, now)


def rule(field: str, op: str, value: Any = None) -> Rule:
    return Rule.model_validate({"field": field, "op": op, "value": value})


# --- every check on its own -------------------------------------------------------------------

# Each check: buyer settings and lead settings that pass it, and ones that fail it, chosen so a
# knob only ever trips its own check. The full "pass" set is a strict buyer that still accepts.
CHECKS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("paused", {"status": "active"}, {"status": "paused"}),
    ("filtered:vertical", {"verticals": ["solar", "auto"]}, {"verticals": ["mortgage"]}),
    ("filtered:channel", {"channels": ["form", "click"]}, {"channels": ["call", "trial"]}),
    ("filtered:state", {"states": ["NY", "NJ"]}, {"states": ["CA"]}),
    ("filtered:postal_code", {"postal_codes": ["100", "90210"]}, {"postal_codes": ["9", "101"]}),
    ("filtered:min_score", {"min_score": 50}, {"min_score": 51}),
    ("filtered:line_type", {"line_types": ["mobile", "voip"]}, {"line_types": ["fixed_line"]}),
    ("filtered:lead_age", {"max_lead_age_s": 5}, {"max_lead_age_s": 4}),
    (
        "filtered:attributes.credit_score",
        {"rules": [rule("attributes.credit_score", "gte", 700)]},
        {"rules": [rule("attributes.credit_score", "gte", 701)]},
    ),
    (
        "closed",
        {"schedule": {"hours": {"wed": ["09:00-17:00"]}}},
        {"schedule": {"hours": {"wed": ["12:00-17:00"]}}},
    ),
    ("consent", {"requires_consent": True}, {"requires_consent": True, "id": "other"}),
    ("consent:email", {"contact_by": ["call", "sms"]}, {"contact_by": ["sms", "email"]}),
]
CODES = [code for code, _, _ in CHECKS]


def strict_lead() -> NormalizedLead:
    return make_lead(
        age_s=5,
        attributes={"credit_score": 700},
        consent=LeadConsent(
            sellers=["acme"], captured_at=NOW - timedelta(days=1), channels=["call", "sms"]
        ),
    )


def buyer_failing(failing: set[str]) -> Buyer:
    fields: dict[str, Any] = {}
    for code, passing, failing_fields in CHECKS:
        fields.update(failing_fields if code in failing else passing)
    return make_buyer(fields.pop("id", "acme"), **fields)


def test_a_strict_buyer_accepts_a_lead_that_meets_everything() -> None:
    assert reason(buyer_failing(set()), strict_lead()) is None
    # And the laxest buyer takes a lead with almost nothing on it.
    bare = make_lead(state=None, postal_code=None, line_type=None, age_s=10**6)
    assert reason(make_buyer(), bare, score=0) is None


@pytest.mark.parametrize("code", CODES)
def test_each_check_returns_its_code(code: str) -> None:
    assert reason(buyer_failing({code}), strict_lead()) == code


@settings(max_examples=300, deadline=None)
@given(st.sets(st.sampled_from(CODES), min_size=1))
def test_the_first_failing_check_wins(failing: set[str]) -> None:
    first = next(code for code in CODES if code in failing)
    assert reason(buyer_failing(failing), strict_lead()) == first


def test_no_conversion_when_the_buyer_has_no_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("converted")

    monkeypatch.setattr(codec, "to_builtins", boom)
    assert reason(buyer_failing(set()), strict_lead()) is None
    assert reason(buyer_failing({"closed"}), strict_lead()) == "closed"


# --- the simple filters -------------------------------------------------------------------------


def test_state_and_postal_code_need_the_lead_to_have_them() -> None:
    assert reason(make_buyer(states=["NY"]), make_lead(state=None)) == "filtered:state"
    buyer = make_buyer(postal_codes=["100"])
    assert reason(buyer, make_lead(postal_code=None)) == "filtered:postal_code"
    assert reason(buyer, make_lead(postal_code="")) == "filtered:postal_code"
    assert reason(buyer, make_lead(postal_code="10099")) is None
    assert reason(buyer, make_lead(postal_code="11000")) == "filtered:postal_code"


def test_min_score_boundary() -> None:
    buyer = make_buyer(min_score=70)
    assert reason(buyer, make_lead(), score=69) == "filtered:min_score"
    assert reason(buyer, make_lead(), score=70) is None


@pytest.mark.parametrize(
    ("line_types", "lead_type", "accepted"),
    [
        ([], None, True),
        ([], "voip", True),
        (["mobile"], "mobile", True),
        (["mobile", "voip"], "voip", True),
        (["mobile"], "fixed_line", False),
        (["mobile"], None, False),
    ],
)
def test_line_types(line_types: list[str], lead_type: str | None, accepted: bool) -> None:
    got = reason(make_buyer(line_types=line_types), make_lead(line_type=lead_type))
    assert got == (None if accepted else "filtered:line_type")


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**6), st.integers(-(10**6), 2 * 10**6))
def test_lead_age(max_age: int, age_ms: int) -> None:
    lead = make_lead(age_s=age_ms / 1000)
    got = reason(make_buyer(max_lead_age_s=max_age), lead)
    assert got == ("filtered:lead_age" if age_ms > max_age * 1000 else None)
    assert reason(make_buyer(), lead) is None


def test_lead_age_is_exclusive_of_the_limit_and_tolerates_naive_times() -> None:
    buyer = make_buyer(max_lead_age_s=60)
    assert reason(buyer, make_lead(age_s=60)) is None
    assert reason(buyer, make_lead(age_s=60.000001)) == "filtered:lead_age"
    naive = replace(
        make_lead(age_s=120), occurred_at=(NOW - timedelta(seconds=120)).replace(tzinfo=None)
    )
    assert reason(buyer, naive) == "filtered:lead_age"


# --- schedule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("after_hours", [False, True])
def test_closed_buyer_takes_only_non_calls_and_only_if_it_accepts_after_hours(
    channel: Channel, after_hours: bool
) -> None:
    # Open 09:00-10:00 New York; NOW is 11:00 there.
    closed = make_buyer(
        schedule={"hours": {"wed": ["09:00-10:00"]}}, accept_after_hours=after_hours
    )
    expected = "closed" if channel == "call" or not after_hours else None
    assert reason(closed, make_lead(channel=channel)) == expected
    opened = make_buyer(
        schedule={"hours": {"wed": ["09:00-12:00"]}}, accept_after_hours=after_hours
    )
    assert reason(opened, make_lead(channel=channel)) is None


def test_closed_date_closes_the_buyer() -> None:
    buyer = make_buyer(schedule={"closed_dates": [date(2026, 6, 3)]})
    assert reason(buyer, make_lead()) == "closed"
    assert reason(buyer, make_lead(), now=NOW + timedelta(days=1)) is None


def test_schedule_is_judged_at_now_not_when_the_lead_happened() -> None:
    buyer = make_buyer(schedule={"hours": {"wed": ["10:00-11:00"]}})
    # The lead happened at 10:30 local, but it is 11:00 now.
    assert reason(buyer, make_lead(age_s=1800)) == "closed"
    assert reason(buyer, make_lead(age_s=1800), now=NOW - timedelta(minutes=1)) is None


# --- consent ----------------------------------------------------------------------------------


def test_consent_sellers() -> None:
    buyer = make_buyer("acme", requires_consent=True)
    assert reason(buyer, make_lead(consent=None)) == "consent"
    assert reason(buyer, make_lead(consent=LeadConsent(sellers=[]))) == "consent"
    assert reason(buyer, make_lead(consent=LeadConsent(sellers=["other"]))) == "consent"
    assert reason(buyer, make_lead(consent=LeadConsent(sellers=["other", "acme"]))) is None
    assert reason(buyer, make_lead(consent=LeadConsent(sellers=["*"]))) is None
    assert reason(make_buyer("acme"), make_lead(consent=None)) is None


def test_consent_age_under_the_vertical_policy() -> None:
    buyer = make_buyer("acme", requires_consent=True)
    policy = VerticalPolicy(consent_max_age_days=30)

    def consent_at(captured_at: datetime | None) -> NormalizedLead:
        return make_lead(consent=LeadConsent(sellers=["acme"], captured_at=captured_at))

    assert reason(buyer, consent_at(None), policy=policy) == "consent"
    assert reason(buyer, consent_at(NOW - timedelta(days=30)), policy=policy) is None
    late = NOW - timedelta(days=30, microseconds=1)
    assert reason(buyer, consent_at(late), policy=policy) == "consent"
    assert reason(buyer, consent_at(NOW + timedelta(hours=1)), policy=policy) is None
    # Without an age limit, old or undated consent is fine.
    assert reason(buyer, consent_at(None)) is None
    assert reason(buyer, consent_at(NOW - timedelta(days=3650))) is None
    # The limit only matters to buyers that require consent.
    assert reason(make_buyer("acme"), make_lead(), policy=policy) is None


# --- rules ------------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(-1000, 1000, allow_nan=False)
    | st.sampled_from(["", "a", "b", "700", "abc", "B"])
    | st.text(max_size=4)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
ORDERABLE = (
    st.integers(-1000, 1000)
    | st.floats(-1000, 1000, allow_nan=False)
    | st.sampled_from(["", "a", "b", "700", "abc", "B"])
)


def is_number(value: Any) -> bool:
    return type(value) in (int, float)


def reference(op: str, expected: Any, value: Any) -> bool:
    """The documented rule semantics, written out plainly."""
    if op == "exists":
        present = value is not MISSING and value is not None
        return present if expected in (True, None) else not present
    if value is MISSING or value is None:
        return False
    if op == "eq":
        return bool(value == expected)
    if op == "ne":
        return bool(value != expected)
    if op == "in":
        return any(value == item for item in expected)
    if op == "not_in":
        return all(value != item for item in expected)
    comparable = (is_number(value) and is_number(expected)) or (
        isinstance(value, str) and isinstance(expected, str)
    )
    if not comparable:
        return False
    return {
        "gt": value > expected,
        "gte": value >= expected,
        "lt": value < expected,
        "lte": value <= expected,
    }[op]


@st.composite
def rules_and_values(draw: st.DrawFn) -> tuple[str, Any, Any]:
    op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists"]))
    expected: Any
    if op in ("eq", "ne"):
        expected = draw(JSON_VALUES.filter(lambda v: v is not None))
    elif op in ("in", "not_in"):
        expected = draw(st.lists(JSON_VALUES, max_size=4))
    elif op == "exists":
        expected = draw(st.sampled_from([True, False, None]))
    else:
        expected = draw(ORDERABLE)
    # Lead values often equal or sit next to the rule's own value, to hit edges.
    near: list[Any] = [expected]
    if is_number(expected):
        near += [expected + 1, expected - 1, str(expected), float(expected)]
    if isinstance(expected, list) and expected:
        near += expected
    value = draw(st.sampled_from(near) | JSON_VALUES | st.just(MISSING))
    return op, expected, value


@settings(max_examples=1500, deadline=None)
@given(rules_and_values())
def test_each_rule_op_matches_the_reference(case: tuple[str, Any, Any]) -> None:
    op, expected, value = case
    attributes = {} if value is MISSING else {"x": value}
    lead = make_lead(attributes=attributes)
    checked = rule("attributes.x", op, expected)
    want = reference(op, expected, value)
    assert rule_passes(checked, lead_value(lead, "attributes.x")) is want
    got = reason(make_buyer(rules=[checked]), lead)
    assert got == (None if want else "filtered:attributes.x")


@pytest.mark.parametrize(
    ("op", "expected", "value", "passes"),
    [
        ("gt", 700, 701, True),
        ("gt", 700, 700, False),
        ("gte", 700, 700, True),
        ("lt", 700, 699.5, True),
        ("lte", 700, 700.0, True),
        ("lte", 700, 700.01, False),
        ("gt", 700, "800", False),  # string vs number: mismatch fails, never raises
        ("lt", "m", 1, False),
        ("gt", 0, True, False),  # bool is not a number
        ("gte", "b", "b", True),
        ("lt", "b", "a", True),
        ("eq", "x", "x", True),
        ("eq", "x", "y", False),
        ("ne", "x", "y", True),
        ("ne", "x", None, False),  # missing fails every op but exists
        ("eq", 1, None, False),
        ("in", ["a", "b"], "b", True),
        ("in", ["a", "b"], "c", False),
        ("not_in", ["a", "b"], "c", True),
        ("not_in", ["a", "b"], "a", False),
        ("not_in", ["a", "b"], None, False),
        ("in", [1, 2], {"a": 1}, False),
        ("exists", None, 0, True),
        ("exists", True, "", True),
        ("exists", True, None, False),
        ("exists", False, None, True),
        ("exists", False, 0, False),
    ],
)
def test_rule_examples(op: str, expected: Any, value: Any, passes: bool) -> None:
    lead = make_lead(attributes={"x": value})
    assert reason(make_buyer(rules=[rule("attributes.x", op, expected)]), lead) == (
        None if passes else "filtered:attributes.x"
    )


def test_rules_apply_in_order_and_name_the_failing_field() -> None:
    rules = [
        rule("contact.state", "in", ["NY", "NJ"]),
        rule("attributes.credit_score", "gte", 650),
        rule("source.publisher_id", "not_in", ["pub-bad"]),
    ]
    buyer = make_buyer(rules=rules)
    good = make_lead(attributes={"credit_score": 700})
    assert reason(buyer, good) is None
    assert reason(buyer, make_lead(attributes={"credit_score": 600})) == (
        "filtered:attributes.credit_score"
    )
    both = make_lead(state="CA", attributes={"credit_score": 600})
    assert reason(buyer, both) == "filtered:contact.state"
    bad_source = make_lead(attributes={"credit_score": 700}, source={"publisher_id": "pub-bad"})
    assert reason(buyer, bad_source) == "filtered:source.publisher_id"
    # Rules come after every fixed filter.
    strict = make_buyer(rules=rules, min_score=90)
    assert reason(strict, make_lead(state="CA"), score=10) == "filtered:min_score"


def lead_with_everything() -> NormalizedLead:
    return make_lead(
        channel="call",
        consent=LeadConsent(
            sellers=["acme"],
            captured_at=NOW - timedelta(days=2),
            certificate_id="cert-1",
            channels=["call"],
            extra={"vendor": {"name": "jornaya"}},
        ),
        attributes={
            "credit_score": 700,
            "homeowner": True,
            "loan": {"amount": 250000.5, "term": {"years": 30}},
            "tags": ["a", "b"],
            "nothing": None,
        },
        source={"publisher_id": "pub-1", "sub_id": "s-9", "custom": {"k": 1}},
        channel_details={"call_id": "c-1", "caller_phone": "+12125550100"},
        extra={"utm": {"campaign": "spring"}, "flag": False},
    )


PATHS = [
    "lead_id",
    "channel",
    "vertical",
    "occurred_at",
    "received_at",
    "quality_flags",
    "intake",
    "intake.offset",
    "intake.topic",
    "contact",
    "contact.state",
    "contact.phone_line_type",
    "contact.postal_code",
    "contact.address",
    "contact.nope",
    "consent",
    "consent.sellers",
    "consent.captured_at",
    "consent.certificate_id",
    "consent.channels",
    "consent.extra.vendor",
    "consent.extra.vendor.name",
    "consent.vendor",
    "consent.nope",
    "attributes",
    "attributes.credit_score",
    "attributes.homeowner",
    "attributes.loan",
    "attributes.loan.amount",
    "attributes.loan.term.years",
    "attributes.loan.term.years.deeper",
    "attributes.tags",
    "attributes.tags.0",
    "attributes.nothing",
    "attributes.nothing.below",
    "attributes.credit_score.x",
    "attributes.nope",
    "source.publisher_id",
    "source.custom.k",
    "source.nope",
    "channel_details.call_id",
    "channel_details.nope",
    "extra.utm.campaign",
    "extra.flag",
    "extra.nope",
    "nope",
    "nope.deeper",
    "__struct_fields__",
    "__struct_config__",
    "__class__",
    "contact.__class__",
    "contact.__struct_fields__",
    "lead_id.upper",
]


def resolve_in_dump(dump: Any, path: str) -> Any:
    value = dump
    for name in path.split("."):
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    return value


@pytest.mark.parametrize("path", PATHS)
def test_lead_value_reads_the_json_dump(path: str) -> None:
    lead = lead_with_everything()
    assert lead_value(lead, path) == resolve_in_dump(codec.to_builtins(lead), path)
    # Same for a lead without consent or optional fields.
    bare = make_lead(state=None, line_type=None)
    assert lead_value(bare, path) == resolve_in_dump(codec.to_builtins(bare), path)


def test_lead_value_examples() -> None:
    lead = lead_with_everything()
    assert lead_value(lead, "attributes.loan.term.years") == 30
    assert lead_value(lead, "contact.state") == "NY"
    assert lead_value(lead, "consent.extra.vendor.name") == "jornaya"
    assert lead_value(lead, "extra.flag") is False
    assert lead_value(lead, "__class__") is None
    assert lead_value(lead, "__struct_fields__") is None
    assert isinstance(lead_value(lead, "occurred_at"), str)
    # A datetime reads as its JSON text, so a string rule can compare it.
    late = make_buyer(rules=[rule("occurred_at", "gte", "2026-06-04")])
    assert reason(late, lead) == "filtered:occurred_at"


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), JSON_VALUES, max_size=3),
    st.lists(st.sampled_from(["a", "b", "c", "0"]), min_size=1, max_size=4),
)
def test_lead_value_matches_the_dump_for_any_attributes(
    attributes: dict[str, Any], names: list[str]
) -> None:
    lead = make_lead(attributes=attributes)
    path = "attributes." + ".".join(names)
    assert lead_value(lead, path) == resolve_in_dump(codec.to_builtins(lead), path)


@st.composite
def valid_rules(draw: st.DrawFn) -> Rule:
    op, expected, _ = draw(rules_and_values())
    field = draw(st.sampled_from(["attributes.a", "attributes.a.b", "attributes.b", "extra.a"]))
    return rule(field, op, expected)


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b"]), JSON_VALUES, max_size=2),
    st.lists(valid_rules(), max_size=3),
)
def test_rules_never_raise_on_odd_lead_data(attributes: dict[str, Any], rules: list[Rule]) -> None:
    lead = make_lead(attributes=attributes, extra=attributes)
    got = reason(make_buyer(rules=rules), lead)
    failing = [r.field for r in rules if not rule_passes(r, lead_value(lead, r.field))]
    assert got == ("filtered:" + failing[0] if failing else None)
