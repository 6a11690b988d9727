"""The composition root: the one place that wires broker, clock, metrics and configuration."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Any, cast

import faust
from faust.tables.manager import TableManager
from faust.types import TP
from prometheus_client import CollectorRegistry

from router import agents, catalog, gc_tuning, metrics, normalize, observability, web
from router.agents import Clock
from router.buyers import Buyer, BuyersConfig
from router.live import LiveMarket
from router.market import MarketSource
from router.observability import GroupProgress
from router.settings import Settings
from router.stalls import NO_PROGRESS, StallWatch, records_wait
from router.topology import Topology, declare
from router.transport import Consumer, Transport

SAMPLE_INTERVAL_S = 5.0
log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server]


async def fetch_stalled_partitions(
    app: faust.App,
    stalls: StallWatch[Any],
    router_metrics: metrics.Metrics,
    progress: Mapping[Any, GroupProgress] | None = None,
) -> None:
    """Log and fetch again the stream partitions the worker stopped consuming
    (`router/stalls.py`); `progress` (the lag sample's offsets) tells where records wait.

    Never raises: it runs in a Faust timer, where an exception would crash the worker, and its
    seek talks to the broker, which may be briefly unreachable.
    """
    try:
        await _fetch_stalled_partitions(app, stalls, router_metrics, progress or {})
    except Exception as exc:
        log.warning("stalled-partition check failed", extra={"error": repr(exc)})


async def _fetch_stalled_partitions(
    app: faust.App,
    stalls: StallWatch[Any],
    router_metrics: metrics.Metrics,
    progress: Mapping[Any, GroupProgress],
) -> None:
    consumer = cast(Consumer, app.consumer)
    recovered = cast(TableManager, app.tables).recovery.completed.is_set()
    if app.rebalancing or app.in_recovery or not recovered:
        stalls.forget()  # partitions are paused on purpose until recovery ends
        return
    # The committed offset of each partition whose records wait on the broker.
    waiting = {
        TP(tp.topic, tp.partition): offsets.committed
        for tp, offsets in progress.items()
        if records_wait(offsets.committed, offsets.end)
    }
    stalled = stalls.observe(consumer.not_consumed(set(waiting)), time.monotonic())
    if not stalled:
        return
    for tp, state in stalled.items():
        log.warning(
            "stream partition not consumed; fetching it again",
            extra={
                "topic": tp.topic,
                "partition": tp.partition,
                "reason": state.reason,
                "read_offset": state.read_offset,
                "after_s": stalls.after_s,
                "state": consumer.fetch_state(tp),
            },
        )
        router_metrics.partitions_refetched.labels(state.reason).inc()
    no_progress = {tp for tp, state in stalled.items() if state.reason == NO_PROGRESS}
    await consumer.read_again({tp: waiting[tp] for tp in no_progress})
    await consumer.fetch_again(set(stalled) - no_progress)
    stalls.forget()


def create_app(
    settings: Settings,
    buyers: Sequence[Buyer] | BuyersConfig,
    clock: Clock = utc_now,
    registry: CollectorRegistry | None = None,
    market_source: MarketSource | None = None,
) -> tuple[faust.App, Topology]:
    """The worker's app. `buyers` seeds the market; by default the live control-plane topics
    take over from it (`market_source` replaces that, e.g. with a StaticMarket in tests)."""
    registry = registry if registry is not None else CollectorRegistry()
    seed = buyers if isinstance(buyers, BuyersConfig) else BuyersConfig(buyers=list(buyers))
    if market_source is None:
        market_source = LiveMarket(
            settings.bootstrap_servers, seed, verify_end_offsets=settings.verify_end_offsets
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings.bootstrap_servers),
        store="memory://",
        datadir=str(settings.data_dir / settings.app_id),
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_commit_interval=settings.commit_interval_s,
        producer_linger_ms=settings.producer_linger_ms,
        producer_max_request_size=catalog.DEAD_LETTER_MAX_BYTES,
        stream_recovery_delay=0.5,
        table_standby_replicas=settings.standby_replicas,
        web_enabled=settings.web_enabled,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
    )
    specs = catalog.catalog(settings.app_id, (b.id for b in seed.buyers))
    app.transport = Transport(
        app.conf.broker_consumer,
        app,
        bootstrap_servers=settings.bootstrap_servers,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        verify_end_offsets=settings.verify_end_offsets,
        contiguous_topics=frozenset(
            spec.name
            for spec in specs
            if spec.role == "internal"
            or (spec.role == "intake" and not settings.intake_transactional)
        ),
    )
    normalize.warm_up()
    topology = declare(app, settings)
    router_metrics = metrics.create(registry)
    agents.register(
        topology,
        agents.Deps(
            market=market_source,
            dedup_window=timedelta(seconds=settings.dedup_window_s),
            state_retention=timedelta(seconds=settings.state_retention_s),
            sweep_every=timedelta(seconds=settings.sweep_interval_s),
            clock=clock,
            metrics=router_metrics,
            verticals=frozenset(v for buyer in seed.buyers for v in buyer.verticals),
            batch_within=timedelta(milliseconds=settings.batch_within_ms),
            batch_max_events=settings.batch_max_events,
        ),
    )

    # Process-wide, so only in a worker process (`router worker` sends this), never in tests
    # that build an app in-process.
    @app.on_worker_init.connect
    def tune_collector(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        gc_tuning.watch_pauses(router_metrics.gc_pause_seconds)
        gc_tuning.tune(settings.gc_young_threshold)

    def count_skipped(topic: str, offsets: int) -> None:
        router_metrics.offsets_skipped.labels(topic).inc(offsets)

    cast(Consumer, app.consumer).on_offsets_skipped = count_skipped

    worker_id = f"{socket.gethostname()}:{settings.web_port}"
    router_metrics.build_info.labels(version("lead-router"), worker_id).set(1)
    observability.initialize_series(
        router_metrics,
        seed.buyers,
        (spec.name for spec in specs),
    )
    app.sensors.add(observability.RouterSensor(router_metrics))
    lag = observability.LagMonitor(
        router_metrics,
        settings.bootstrap_servers,
        settings.app_id,
        topics={
            *catalog.INTAKE.values(),
            catalog.SCREEN,
            catalog.OFFERS,
            catalog.FEEDBACK,
            catalog.CALL_EVENTS,
            catalog.PUBLISHER_SIGNALS,
        },
    )

    stalls: StallWatch[Any] = StallWatch()

    @app.timer(SAMPLE_INTERVAL_S)
    async def sample() -> None:
        now = clock()
        buyers = market_source.current().config.buyers
        observability.publish_local_hours(router_metrics, buyers, now)
        observability.publish_cap_usage(router_metrics, buyers, topology.caps.get, now)
        progress: Mapping[Any, GroupProgress] = {}
        try:
            progress = await lag.sample(app.consumer.assignment())
        except Exception as exc:
            # An exception escaping a Faust timer crashes the whole worker; a metric must
            # never take the router down while the broker is briefly unreachable.
            log.warning("lag sample failed", extra={"error": repr(exc)})
            await lag.reset()
        await fetch_stalled_partitions(app, stalls, router_metrics, progress)

    observability.publish_local_hours(router_metrics, seed.buyers, clock())
    web.register(app, registry, market_source, topology, clock)
    if isinstance(market_source, LiveMarket):
        live = market_source

        @app.on_before_shutdown.connect
        async def stop_market(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            await live.stop()

    return app, topology
