"""The market stages read: buyers by id, and by default nobody suppressed and no track records."""

from __future__ import annotations

import pytest

from router import market
from router.buyers import Buyer, BuyersConfig, VerticalPolicy
from router.records import PublisherQuality

pytestmark = pytest.mark.unit

ACME = Buyer(id="acme", name="Acme", verticals=["solar"], price=10)
GLOBEX = Buyer(id="globex", name="Globex", verticals=["solar"], price=20)


def test_buyers_are_looked_up_by_id() -> None:
    the_market = market.of([ACME, GLOBEX])
    assert dict(the_market.buyers) == {"acme": ACME, "globex": GLOBEX}
    assert the_market.config == BuyersConfig(buyers=[ACME, GLOBEX])


def test_by_default_nobody_is_suppressed_and_no_publisher_has_a_record() -> None:
    the_market = market.of([ACME])
    assert not the_market.suppressed("any key")
    assert the_market.publisher("pub-1") is None


def test_lookups_can_be_given() -> None:
    record = PublisherQuality(publisher_id="pub-1", sold=30, returned=3, converted=1)
    the_market = market.of(
        [ACME],
        suppressed={"k1"}.__contains__,
        publisher={"pub-1": record}.get,
    )
    assert the_market.suppressed("k1") and not the_market.suppressed("k2")
    assert the_market.publisher("pub-1") == record and the_market.publisher("pub-2") is None


async def test_a_static_market_is_always_ready_and_never_changes() -> None:
    config = BuyersConfig(verticals={"solar": VerticalPolicy(max_buyers=2)}, buyers=[ACME])
    the_market = market.Market(config)
    source = market.StaticMarket(the_market)
    await source.ready()
    assert source.current() is the_market and source.current() is the_market
    assert source.current().config.policy("solar").max_buyers == 2
