"""The composition root: the one place that wires broker, clock and configuration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import faust

from router import agents, normalize
from router.agents import Clock
from router.buyers import Buyer
from router.settings import Settings
from router.topology import Topology, declare


def utc_now() -> datetime:
    return datetime.now(UTC)


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server]


def create_app(
    settings: Settings, buyers: Sequence[Buyer], clock: Clock = utc_now
) -> tuple[faust.App, Topology]:
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings.bootstrap_servers),
        store="memory://",
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_commit_interval=settings.commit_interval_s,
        producer_linger_ms=settings.producer_linger_ms,
        stream_recovery_delay=0.5,
        web_enabled=settings.web_enabled,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
    )
    normalize.warm_up()
    topology = declare(app, settings)
    agents.register(
        topology,
        agents.Deps(
            buyers={buyer.id: buyer for buyer in buyers},
            dedup_window=timedelta(seconds=settings.dedup_window_s),
            clock=clock,
        ),
    )
    return app, topology
