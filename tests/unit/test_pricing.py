from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.buyers import Buyer, Pricing, ScoreBand, VerticalPolicy
from router.contract import CHANNELS, Channel
from router.pricing import below_floor, price_for
from router.records import IntakeRef, NormalizedContact, NormalizedLead

AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def make_lead(*, state: str | None = "NY", channel: Channel = "form") -> NormalizedLead:
    return NormalizedLead(
        lead_id="lead-1",
        event_id="evt-1",
        channel=channel,
        vertical="solar",
        occurred_at=AT,
        received_at=AT,
        fingerprint="fp-1",
        source={"publisher_id": "pub-1"},
        contact=NormalizedContact(email="jane@example.com", state=state),
        intake=IntakeRef(topic=f"intent.{channel}", partition=0, offset=0),
    )


def make_buyer(price: float = 10.0, **pricing: Any) -> Buyer:
    return Buyer(
        id="acme", name="Acme", verticals=["solar"], price=price, pricing=Pricing(**pricing)
    )


def test_base_price_alone() -> None:
    assert price_for(make_buyer(12.5), make_lead(), 50) == 12.5


def test_state_adjustment_by_lead_state() -> None:
    buyer = make_buyer(states={"NY": 3.0, "CA": -2.0})
    assert price_for(buyer, make_lead(state="NY"), 50) == 13.0
    assert price_for(buyer, make_lead(state="CA"), 50) == 8.0
    assert price_for(buyer, make_lead(state="TX"), 50) == 10.0
    assert price_for(buyer, make_lead(state=None), 50) == 10.0


@pytest.mark.parametrize("channel", CHANNELS)
def test_channel_adjustment_applies_only_to_its_channel(channel: Channel) -> None:
    buyer = make_buyer(channels={"call": 15.0, "click": -4.0})
    expected = {"call": 25.0, "click": 6.0}.get(channel, 10.0)
    assert price_for(buyer, make_lead(channel=channel), 50) == expected


def test_score_bands_are_inclusive_and_every_matching_band_adds() -> None:
    buyer = make_buyer(
        score_bands=[
            ScoreBand(min=0, max=39, adjust=-3.0),
            ScoreBand(min=40, max=100, adjust=1.0),
            ScoreBand(min=70, adjust=2.0),
            ScoreBand(min=90, max=90, adjust=0.5),
        ]
    )
    lead = make_lead()
    assert price_for(buyer, lead, 0) == 7.0
    assert price_for(buyer, lead, 39) == 7.0
    assert price_for(buyer, lead, 40) == 11.0
    assert price_for(buyer, lead, 69) == 11.0
    assert price_for(buyer, lead, 70) == 13.0
    assert price_for(buyer, lead, 90) == 13.5
    assert price_for(buyer, lead, 100) == 13.0


def test_all_adjustment_kinds_add_up() -> None:
    buyer = make_buyer(
        20.0,
        states={"NY": 2.25},
        channels={"call": 10.0},
        score_bands=[ScoreBand(min=50, adjust=1.5), ScoreBand(min=0, max=60, adjust=-0.75)],
    )
    assert price_for(buyer, make_lead(channel="call"), 55) == 33.0


@pytest.mark.parametrize(
    ("base", "adjust", "expected"),
    [
        # The float 1.005 is 1.00499999…; round(1.005, 2) gives 1.0. Half-up on the decimal
        # the config said gives 1.01.
        (1.005, 0.0, 1.01),
        (10.005, 0.0, 10.01),
        # Exact binary halves: Python's round() would go to even (10.12, 0.12).
        (10.0, 0.125, 10.13),
        (0.1, 0.025, 0.13),
        # 0.1 + 0.2 is 0.30000000000000004 in floats; in decimal it is 0.3.
        (0.1, 0.2, 0.3),
        (10.0, -0.004, 10.0),
        (10.0, -0.005, 10.0),
        (10.0, -0.006, 9.99),
        (19.994, 0.0, 19.99),
    ],
)
def test_rounds_half_up_to_cents_on_decimal_values(
    base: float, adjust: float, expected: float
) -> None:
    buyer = make_buyer(base, states={"NY": adjust})
    assert price_for(buyer, make_lead(), 50) == expected


def test_never_below_zero_and_never_negative_zero() -> None:
    buyer = make_buyer(5.0, states={"NY": -10.0})
    price = price_for(buyer, make_lead(), 50)
    assert price == 0.0
    assert str(price) == "0.0"
    # A total that rounds to zero from below must not come back as -0.0 either.
    tiny = make_buyer(5.0, states={"NY": -5.004})
    assert str(price_for(tiny, make_lead(), 50)) == "0.0"


@given(
    base=st.integers(1, 100_000).map(lambda c: c / 100),
    adjusts=st.lists(st.integers(-100_000, 100_000).map(lambda c: c / 1000), max_size=4),
    score=st.integers(0, 100),
)
def test_price_is_whole_cents_and_non_negative(
    base: float, adjusts: list[float], score: int
) -> None:
    bands = [ScoreBand(min=0, adjust=a) for a in adjusts]
    price = price_for(make_buyer(base, score_bands=bands), make_lead(), score)
    assert price >= 0
    assert round(price * 100) == pytest.approx(price * 100, abs=1e-6)


def test_below_floor_is_strict() -> None:
    policy = VerticalPolicy(floor_price=10.0)
    assert below_floor(9.99, policy)
    assert not below_floor(10.0, policy)
    assert not below_floor(10.01, policy)


def test_default_floor_lets_a_zero_price_through() -> None:
    assert not below_floor(0.0, VerticalPolicy())
