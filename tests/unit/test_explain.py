from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from router import codec
from router.explain import parse_decision, reason_text, render
from router.records import Decision, IntakeRef, Sale, Timings, Verdict

pytestmark = pytest.mark.unit


def decision(**fields: Any) -> Decision:
    base: dict[str, Any] = {
        "event_id": "evt-1",
        "lead_id": "lead-1",
        "outcome": "sold",
        "channel": "form",
        "vertical": "auto_insurance",
        "intake": IntakeRef(topic="intent.form", partition=0, offset=7),
        "timings": Timings(decided_at=datetime(2024, 5, 1, tzinfo=UTC)),
    }
    return Decision(**{**base, **fields})


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("filtered:state", "did not match its state filter"),
        ("filtered:attributes.credit", "did not match its attributes.credit filter"),
        ("closed", "was closed"),
        ("capped:daily", "had reached its daily cap"),
        ("budget", "had spent its budget"),
        ("consent", "is not named in the consumer's consent"),
        ("consent:sms", "may not contact the consumer by sms"),
        ("outbid", "was ranked below the buyer that got it"),
        ("slots_full", "had no free call slot"),
        ("sold", "bought it"),
        ("paused", "is paused"),
        ("unknown_buyer", "unknown_buyer"),
    ],
)
def test_verdict_codes_read_as_words(code: str, words: str) -> None:
    assert reason_text(code) == words


def test_a_sale_tells_outcome_buyer_price_and_every_buyer_considered() -> None:
    text = render(
        decision(
            buyers=["acme"],
            price=42.5,
            score=72,
            considered=[
                Verdict(buyer_id="acme", reason="sold"),
                Verdict(buyer_id="lonestar", reason="filtered:state"),
                Verdict(buyer_id="coastal", reason="capped:hourly"),
                Verdict(buyer_id="odd", reason="something_new"),
            ],
        )
    )
    assert text.splitlines() == [
        "Event evt-1 (lead lead-1): sold to acme for $42.50.",
        "Channel form, vertical auto_insurance, score 72.",
        "Buyers considered:",
        "  - acme bought it.",
        "  - lonestar did not match its state filter.",
        "  - coastal had reached its hourly cap.",
        "  - odd something_new.",
    ]


def test_an_unsold_lead_gives_its_reasons() -> None:
    text = render(
        decision(
            outcome="unsold",
            reasons=["all_candidates_declined"],
            considered=[Verdict(buyer_id="acme", reason="budget")],
        )
    )
    assert text.splitlines()[0] == "Event evt-1 (lead lead-1): not sold."
    assert "Why: all_candidates_declined." in text
    assert "  - acme had spent its budget." in text


def test_a_rejection_without_a_lead() -> None:
    text = render(decision(outcome="rejected", lead_id=None, vertical=None, reasons=["bad_phone"]))
    assert text.splitlines() == [
        "Event evt-1: rejected.",
        "Channel form.",
        "Why: bad_phone.",
    ]


def test_a_sale_to_several_buyers_names_them_all() -> None:
    text = render(decision(buyers=["a", "b", "c"], price=30.0))
    assert (
        text.splitlines()[0] == "Event evt-1 (lead lead-1): sold to a, b and c for $30.00 in all."
    )


def test_parsing_ignores_fields_a_newer_writer_added() -> None:
    raw = orjson.dumps({**codec.to_builtins(decision()), "added_later": 1})
    assert parse_decision(raw) == decision()


def test_parsing_refuses_what_is_not_a_decision() -> None:
    with pytest.raises(ValueError):
        parse_decision(b"[1]")


@pytest.mark.skipif(
    "sales" not in Decision.__struct_fields__, reason="records without per-buyer sales"
)
def test_each_buyer_that_bought_gets_its_own_price() -> None:
    sales = [Sale(buyer_id="a", price=20.0), Sale(buyer_id="b", price=12.5)]
    text = render(
        decision(
            buyers=["a", "b"],
            price=32.5,
            sales=sales,
            considered=[Verdict(buyer_id="a", reason="sold"), Verdict(buyer_id="b", reason="sold")],
        )
    )
    assert "  - a bought it for $20.00." in text
    assert "  - b bought it for $12.50." in text
