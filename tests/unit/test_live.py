"""LiveMarket: the market a worker routes on, kept current from the control-plane topics.

The three topic views are replaced by in-memory fakes with TopicView's reading interface
(`version` grows on every change), so no broker is needed.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from router import catalog, codec, suppression
from router.buyers import Buyer, BuyersConfig, VerticalPolicy
from router.live import LiveMarket
from router.records import PublisherQuality
from router.views import MarketConfig, TopicView, policy_key

pytestmark = pytest.mark.unit

SEED = BuyersConfig(
    verticals={"solar": VerticalPolicy(max_buyers=2)},
    buyers=[
        Buyer(id="seed-a", name="Seed A", verticals=["solar"], price=10),
        Buyer(id="seed-b", name="Seed B", verticals=["solar"], price=20),
    ],
)
ZETA = Buyer(id="zeta", name="Zeta", verticals=["solar"], price=30)
OMEGA = Buyer(id="omega", name="Omega", verticals=["mortgage"], price=50)


class FakeView:
    """TopicView's reading side over a dict; `put`/`delete` stand for records read."""

    def __init__(self, topic: str, caught_up: bool = True) -> None:
        self.topic = topic
        self.version = 0
        self.data: dict[str, bytes] = {}
        self.caught_up = caught_up
        self.started = 0
        self.stopped = 0

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = value
        self.version += 1

    def delete(self, key: str) -> None:
        del self.data[key]
        self.version += 1

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def items(self) -> list[tuple[str, bytes]]:
        return list(self.data.items())

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

    async def start(self) -> None:
        await asyncio.sleep(0)  # let a second `ready` caller in while the first starts
        self.started += 1

    async def wait_caught_up(self, timeout: float) -> bool:
        return self.caught_up

    async def stop(self) -> None:
        self.stopped += 1


class Views:
    def __init__(self, live: LiveMarket) -> None:
        self.config = FakeView(catalog.BUYERS_CONFIG)
        self.suppression = FakeView(catalog.SUPPRESSION)
        self.quality = FakeView(catalog.PUBLISHER_QUALITY)
        live.config_view = self.config  # type: ignore[assignment]
        live.suppression_view = self.suppression  # type: ignore[assignment]
        live.quality_view = self.quality  # type: ignore[assignment]
        live._config = MarketConfig(self.config)  # type: ignore[arg-type]


@pytest.fixture
def live() -> LiveMarket:
    # Construction does not connect: nothing is read until `ready`.
    return LiveMarket("127.0.0.1:1", SEED)


@pytest.fixture
def views(live: LiveMarket) -> Views:
    return Views(live)


def ids(live: LiveMarket) -> list[str]:
    return [buyer.id for buyer in live.current().config.buyers]


def stats(publisher_id: str, sold: int) -> PublisherQuality:
    return PublisherQuality(publisher_id=publisher_id, sold=sold, returned=1, converted=2)


# -- buyers.config -----------------------------------------------------------------------------


def test_the_seed_is_the_market_while_buyers_config_is_empty(
    live: LiveMarket, views: Views
) -> None:
    market = live.current()
    assert market.config == SEED
    assert set(market.buyers) == {"seed-a", "seed-b"}


def test_once_anything_is_published_the_topic_is_the_truth(live: LiveMarket, views: Views) -> None:
    views.config.put(policy_key("solar"), VerticalPolicy(max_buyers=5).model_dump_json().encode())
    config = live.current().config
    assert config.buyers == [] and config.policy("solar").max_buyers == 5


def test_buyers_config_takes_over_once_it_holds_a_buyer(live: LiveMarket, views: Views) -> None:
    assert ids(live) == ["seed-a", "seed-b"]
    views.config.put("zeta", ZETA.model_dump_json().encode())
    views.config.put(policy_key("solar"), VerticalPolicy(max_buyers=3).model_dump_json().encode())
    market = live.current()
    assert [b.id for b in market.config.buyers] == ["zeta"]
    assert market.buyers["zeta"] == ZETA
    assert market.config.policy("solar").max_buyers == 3


def test_a_change_applies_to_the_next_lead_without_a_restart(
    live: LiveMarket, views: Views
) -> None:
    views.config.put("zeta", ZETA.model_dump_json().encode())
    assert live.current().buyers["zeta"].status == "active"
    paused = ZETA.model_copy(update={"status": "paused"})
    views.config.put("zeta", paused.model_dump_json().encode())
    views.config.put("omega", OMEGA.model_dump_json().encode())
    assert live.current().buyers["zeta"].status == "paused"
    assert ids(live) == ["omega", "zeta"]


def test_an_unchanged_market_is_not_rebuilt(live: LiveMarket, views: Views) -> None:
    views.config.put("zeta", ZETA.model_dump_json().encode())
    first = live.current()
    assert live.current() is first
    views.config.put("omega", OMEGA.model_dump_json().encode())
    assert live.current() is not first


def test_an_entry_that_does_not_decode_is_left_out(live: LiveMarket, views: Views) -> None:
    views.config.put("zeta", ZETA.model_dump_json().encode())
    views.config.put("broken", b"not json")
    views.config.put("alias", OMEGA.model_dump_json().encode())  # id differs from its key
    assert ids(live) == ["zeta"]


def test_tombstoning_every_buyer_stops_selling_and_never_revives_the_seed(
    live: LiveMarket, views: Views
) -> None:
    views.config.put("zeta", ZETA.model_dump_json().encode())
    views.config.put("omega", OMEGA.model_dump_json().encode())
    assert ids(live) == ["omega", "zeta"]
    views.config.delete("zeta")
    assert ids(live) == ["omega"]
    views.config.delete("omega")
    assert live.current().config.buyers == []


# -- consumers.suppression ---------------------------------------------------------------------


def test_suppression_lookups_read_the_view_live(live: LiveMarket, views: Views) -> None:
    phone = suppression.key("+14155552671")
    market = live.current()
    assert not market.suppressed(phone)
    views.suppression.put(phone, b'{"kind": "phone"}')
    assert market.suppressed(phone)  # the market already handed out sees it too
    assert live.current().suppressed(phone)
    assert not live.current().suppressed(suppression.key("+12125550123"))
    views.suppression.delete(phone)
    assert not live.current().suppressed(phone)


# -- publishers.quality ------------------------------------------------------------------------


def test_publisher_records_are_decoded(live: LiveMarket, views: Views) -> None:
    views.quality.put("pub-1", codec.encode(stats("pub-1", 40)))
    views.quality.put("pub-bad", b'{"publisher_id": "pub-bad"}')  # fields missing
    views.quality.put("pub-junk", b"\xff not json")
    market = live.current()
    assert market.publisher("pub-1") == stats("pub-1", 40)
    assert market.publisher("pub-bad") is None
    assert market.publisher("pub-junk") is None
    assert market.publisher("nobody") is None


def test_publisher_records_are_decoded_again_after_a_change(live: LiveMarket, views: Views) -> None:
    views.quality.put("pub-1", codec.encode(stats("pub-1", 40)))
    assert live.current().publisher("pub-1") == stats("pub-1", 40)
    # Bytes swapped behind the view's back (no new version): the decoded record is reused.
    views.quality.data["pub-1"] = codec.encode(stats("pub-1", 41))
    assert live.current().publisher("pub-1") == stats("pub-1", 40)
    # A real change (a new version) is decoded afresh, and so is an absence.
    views.quality.put("pub-1", codec.encode(stats("pub-1", 42)))
    assert live.current().publisher("pub-1") == stats("pub-1", 42)
    assert live.current().publisher("pub-2") is None
    views.quality.put("pub-2", codec.encode(stats("pub-2", 7)))
    assert live.current().publisher("pub-2") == stats("pub-2", 7)
    views.quality.delete("pub-1")
    assert live.current().publisher("pub-1") is None


def test_versions_name_each_control_topic(live: LiveMarket, views: Views) -> None:
    views.config.put("zeta", ZETA.model_dump_json().encode())
    views.quality.put("pub-1", codec.encode(stats("pub-1", 1)))
    views.quality.put("pub-1", codec.encode(stats("pub-1", 2)))
    assert live.versions == {
        catalog.BUYERS_CONFIG: 1,
        catalog.SUPPRESSION: 0,
        catalog.PUBLISHER_QUALITY: 2,
    }


# -- start and stop ----------------------------------------------------------------------------


async def test_ready_starts_each_view_once_and_warns_about_a_slow_one(
    live: LiveMarket, views: Views, caplog: pytest.LogCaptureFixture
) -> None:
    views.quality.caught_up = False
    with caplog.at_level(logging.WARNING, logger="router.live"):
        await asyncio.gather(live.ready(), live.ready())
        await live.ready()
    assert [v.started for v in (views.config, views.suppression, views.quality)] == [1, 1, 1]
    warned = [r for r in caplog.records if r.name == "router.live"]
    assert [r.__dict__.get("topic") for r in warned] == [catalog.PUBLISHER_QUALITY]
    await live.stop()
    assert [v.stopped for v in (views.config, views.suppression, views.quality)] == [1, 1, 1]


def test_the_fakes_stand_for_real_topic_views() -> None:
    """LiveMarket uses only this of a TopicView; the fakes above mirror it."""
    real = TopicView("127.0.0.1:1", catalog.BUYERS_CONFIG)
    for name in ("version", "get", "items", "__contains__", "start", "stop", "wait_caught_up"):
        assert hasattr(real, name) and hasattr(FakeView("t"), name), name
    assert real.topic == catalog.BUYERS_CONFIG and real.version == 0
