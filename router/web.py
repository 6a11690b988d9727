"""The worker's HTTP surface: /metrics, /healthz (alive), /ready (serving), and the market:
/buyers/ (each buyer's live cap usage, spend and state) and /market/ (what this worker has
read from the control plane)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import faust
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from router import accounting, catalog
from router.buyers import Buyer
from router.live import LiveMarket
from router.market import MarketSource
from router.partitioning import key_partition
from router.topology import Topology


def offers_partition(buyer_id: str, partitions: int) -> int:
    """Where Kafka's default partitioner puts a buyer's offers, and so its caps."""
    return key_partition(buyer_id.encode(), partitions)


def buyer_status(
    buyer: Buyer, lookup: Callable[[str], Any], owned_here: bool, now: datetime
) -> dict[str, Any]:
    keys = accounting.counts_keys(buyer.id, accounting.windows(buyer.timezone, now))
    usage = accounting.usage(
        buyer, {k: lookup(k) for k in keys}, lookup(accounting.slots_key(buyer.id)), now
    )
    return {
        "id": buyer.id,
        "name": buyer.name,
        "status": buyer.status,
        # Caps live on the worker that holds the buyer's partition; others know only config.
        "owned_here": owned_here,
        "usage": usage if owned_here else None,
    }


def is_ready(app: faust.App) -> tuple[bool, str]:
    if app.rebalancing:
        return False, "rebalancing"
    if not app.consumer.assignment():
        return False, "no partitions assigned"
    if not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
        return False, "table recovery in progress"
    return True, "ok"


def register(
    app: faust.App,
    registry: CollectorRegistry,
    market: MarketSource,
    topology: Topology,
    clock: Callable[[], datetime],
) -> None:
    def statuses(only: str | None) -> list[dict[str, Any]]:
        assigned = app.consumer.assignment() if app.consumer else set()
        partitions = app.conf.topic_partitions
        now = clock()
        return [
            buyer_status(
                buyer,
                topology.caps.get,
                TP(catalog.OFFERS, offers_partition(buyer.id, partitions)) in assigned,
                now,
            )
            for buyer in market.current().config.buyers
            if only is None or buyer.id == only
        ]

    @app.page("/buyers/")
    async def buyers_view(self: Any, request: Any) -> Any:
        return self.json({"buyers": statuses(None)})

    @app.page("/buyers/{buyer_id}/")
    async def buyer_view(self: Any, request: Any, buyer_id: str) -> Any:
        found = statuses(buyer_id)
        if not found:
            return self.json({"error": f"unknown buyer {buyer_id!r}"}, status=404)
        return self.json(found[0])

    @app.page("/market/")
    async def market_view(self: Any, request: Any) -> Any:
        current = market.current()
        versions: Mapping[str, int] = market.versions if isinstance(market, LiveMarket) else {}
        return self.json(
            {
                "buyers": {
                    b.id: {"status": b.status, "price": b.price} for b in current.config.buyers
                },
                "verticals": sorted(current.config.verticals),
                "versions": dict(versions),
            }
        )

    @app.page("/metrics")
    async def metrics_view(self: Any, request: Any) -> Any:
        # aiohttp wants the charset separately from the media type.
        media_type = CONTENT_TYPE_LATEST.split(";", 1)[0]
        return self.bytes(generate_latest(registry), content_type=media_type)

    @app.page("/healthz")
    async def healthz(self: Any, request: Any) -> Any:
        return self.json({"status": "alive"})

    @app.page("/ready")
    async def ready(self: Any, request: Any) -> Any:
        ok, why = is_ready(app)
        return self.json({"ready": ok, "status": why}, status=200 if ok else 503)
