"""The worker's HTTP surface: where a buyer's caps live, and what /buyers/ and /market/ say."""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from router import catalog, market, web
from router.buyers import Buyer, BuyersConfig, Caps, VerticalPolicy

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 09:00 in Chicago, 10:00 in New York
ACME = Buyer(
    id="acme",
    name="Acme",
    verticals=["mortgage"],
    price=40,
    caps=Caps(hourly=5, daily=20, daily_budget=500.0, concurrent_calls=2),
    timezone="America/Chicago",
)
GLOBEX = Buyer(id="globex", name="Globex", status="paused", verticals=["solar"], price=25)
TABLE: dict[str, Any] = {
    "acme|hour|2026-11-23T09-0600": {"sold": 2, "spend": 80.0, "returned": 0},
    "acme|hour|2026-11-23T08-0600": {"sold": 4, "spend": 160.0, "returned": 0},
    "acme|day|2026-11-23": {"sold": 6, "spend": 240.0, "returned": 1},
    "acme|month|2026-11": {"sold": 11, "spend": 440.0, "returned": 1},
    "acme|calls": {"l1": (NOW + timedelta(minutes=5)).isoformat()},
}


# -- offers_partition ----------------------------------------------------------------------------

buyer_ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True)


@given(buyer_ids, st.integers(1, 64))
def test_offers_partition_is_where_the_producer_puts_the_buyer_s_offers(
    buyer_id: str, partitions: int
) -> None:
    all_partitions = list(range(partitions))
    expected = DefaultPartitioner()(buyer_id.encode(), all_partitions, all_partitions)
    assert web.offers_partition(buyer_id, partitions) == expected


def test_offers_partition_spreads_buyers() -> None:
    """Not a constant: distinct buyers land on every partition of a small topic."""
    found = {web.offers_partition(f"buyer-{n}", 4) for n in range(100)}
    assert found == {0, 1, 2, 3}


# -- buyer_status --------------------------------------------------------------------------------


def test_the_owning_worker_reports_usage_of_the_buyer_s_current_windows() -> None:
    status = web.buyer_status(ACME, TABLE.get, True, NOW)
    assert {k: status[k] for k in ("id", "name", "status", "owned_here")} == {
        "id": "acme",
        "name": "Acme",
        "status": "active",
        "owned_here": True,
    }
    assert status["usage"] == {
        "hourly": {"window": "2026-11-23T09-0600", "used": 2, "limit": 5},
        "daily": {"window": "2026-11-23", "used": 6, "limit": 20},
        "daily_budget": {"window": "2026-11-23", "used": 240.0, "limit": 500.0},
        "monthly_budget": {"window": "2026-11", "used": 440.0, "limit": None},
        "concurrent_calls": {"window": None, "used": 1, "limit": 2},
    }
    # What `router buyers status` receives: it must survive JSON.
    assert json.loads(json.dumps(status)) == status


def test_another_worker_reports_the_config_but_no_usage() -> None:
    """Even with the buyer's counts at hand (a standby copy of the partition, say), a worker
    that does not own the offers partition reports no usage: it may be stale."""
    status = web.buyer_status(ACME.model_copy(update={"status": "paused"}), TABLE.get, False, NOW)
    assert status == {
        "id": "acme",
        "name": "Acme",
        "status": "paused",
        "owned_here": False,
        "usage": None,
    }


# -- the pages, on a stand-in for the Faust app ------------------------------------------------


class _FakeApp:
    """What `web.register` uses of a Faust app: `page`, `consumer`, `conf`."""

    def __init__(self, partitions: int, assigned: set[TP]) -> None:
        self.pages: dict[str, Callable[..., Any]] = {}
        self.conf = types.SimpleNamespace(topic_partitions=partitions)
        self.consumer = types.SimpleNamespace(assignment=lambda: assigned)

    def page(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            self.pages[path] = view
            return view

        return register


class _View:
    """The `self` a Faust page handler gets: `json` and `bytes` responses."""

    def json(self, value: Any, status: int = 200) -> tuple[int, Any]:
        return status, value

    def bytes(self, value: bytes, content_type: str) -> tuple[int, Any]:
        return 200, value


def _pages(partitions: int, assigned: set[TP]) -> dict[str, Callable[..., Any]]:
    config = BuyersConfig(verticals={"solar": VerticalPolicy(max_buyers=2)}, buyers=[ACME, GLOBEX])
    app = _FakeApp(partitions, assigned)
    topology = types.SimpleNamespace(caps=TABLE)
    source = market.StaticMarket(market.Market(config))
    web.register(app, CollectorRegistry(), source, topology, lambda: NOW)  # type: ignore[arg-type]
    return app.pages


async def test_buyers_page_reports_usage_only_for_buyers_whose_offers_partition_is_here() -> None:
    partitions = 8
    acme_tp = TP(catalog.OFFERS, web.offers_partition("acme", partitions))
    globex_tp = TP(catalog.OFFERS, web.offers_partition("globex", partitions))
    assert acme_tp != globex_tp, "pick a partition count that separates the two buyers"
    # The same partition number of another topic does not make the buyer's caps local.
    assigned = {acme_tp, TP(catalog.SCREEN, globex_tp.partition)}
    pages = _pages(partitions, assigned)

    status, body = await pages["/buyers/"](_View(), None)
    assert status == 200
    by_id = {entry["id"]: entry for entry in body["buyers"]}
    assert set(by_id) == {"acme", "globex"}
    assert by_id["acme"] == web.buyer_status(ACME, TABLE.get, True, NOW)
    assert by_id["globex"]["owned_here"] is False and by_id["globex"]["usage"] is None

    status, body = await pages["/buyers/{buyer_id}/"](_View(), None, buyer_id="acme")
    assert status == 200 and body == by_id["acme"]
    status, body = await pages["/buyers/{buyer_id}/"](_View(), None, buyer_id="nobody")
    assert status == 404 and "nobody" in body["error"]


async def test_market_page_shows_the_market_this_worker_routes_on() -> None:
    pages = _pages(4, set())
    status, body = await pages["/market/"](_View(), None)
    assert status == 200
    assert {b: v["status"] for b, v in body["buyers"].items()} == {
        "acme": "active",
        "globex": "paused",
    }
    assert body["verticals"] == ["solar"]
    assert body["versions"] == {}  # a static market reads no control topics
