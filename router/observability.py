"""Feeding the metrics: what each stage emitted, Faust's own events, and consumer lag."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Set
from datetime import datetime
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.sensors import Sensor

from router import accounting, schedule
from router.buyers import Buyer
from router.metrics import OTHER, Metrics
from router.normalize import REJECTION_REASONS
from router.records import BuyerLead, DeadLetter, Decision, Emit

log = logging.getLogger("router.decisions")

KNOWN_DECISIONS = (
    ("sold", "sold"),
    ("duplicate", "duplicate_of"),
    ("unsold", "no_matching_buyer"),
    ("unsold", "all_candidates_declined"),
    ("unsold", "below_floor"),
    ("suppressed", "suppressed"),
)


def reason_code(decision: Decision) -> str:
    """The low-cardinality reason label: the code before any ':' detail."""
    if decision.outcome == "sold":
        return "sold"
    return decision.reasons[0].split(":", 1)[0] if decision.reasons else "none"


def observe(metrics: Metrics, emits: Iterable[Emit], now: datetime) -> None:
    debug = log.isEnabledFor(logging.DEBUG)
    for emit in emits:
        value = emit.value
        if isinstance(value, Decision):
            metrics.decisions.labels(value.outcome, reason_code(value)).inc()
            if debug:
                log.debug(
                    "decision",
                    extra={
                        "event_id": value.event_id,
                        "lead_id": value.lead_id,
                        "outcome": value.outcome,
                        "buyers": value.buyers,
                        "reasons": value.reasons,
                        "score": value.score,
                    },
                )
        elif isinstance(value, BuyerLead):
            metrics.leads_sold.labels(value.buyer_id).inc()
            metrics.revenue.labels(value.buyer_id).inc(value.price)
            metrics.end_to_end_seconds.observe(max(0.0, (now - value.occurred_at).total_seconds()))
        elif isinstance(value, DeadLetter):
            code = value.reason.split(":", 1)[0]
            metrics.dead_letters.labels(code).inc()
            # The code and field only: the detail message may quote the payload.
            log.warning(
                "rejected",
                extra={
                    "event_id": value.event_id,
                    "topic": value.topic,
                    "partition": value.partition,
                    "offset": value.offset,
                    "reason": code,
                    "field": value.field,
                },
            )


def vertical_label(vertical: str | None, known: Set[str]) -> str:
    """Verticals come from upstream; only those some buyer buys become label values."""
    if vertical is None:
        return "unknown"
    return vertical if vertical in known else OTHER


def publish_cap_usage(
    metrics: Metrics,
    buyers: Iterable[Buyer],
    lookup: Callable[[str], Any],
    now: datetime,
) -> None:
    """Usage and limits of each buyer's current local windows, read from the cap table.

    Sampled rather than set per sale so the gauges roll over at the buyer's midnight and hour
    even with no traffic. A worker not holding a buyer's partition reads no state and exports
    0; dashboards take the max over workers.
    """
    # Rebuilt from scratch each sample, so a cap or buyer removed live leaves no stale series
    # (no await in between: a scrape never sees the gauges half-built).
    metrics.cap_used.clear()
    metrics.cap_limit.clear()
    for buyer in buyers:
        keys = accounting.counts_keys(buyer.id, accounting.windows(buyer.timezone, now))
        counts = {key: lookup(key) for key in keys}
        slots = lookup(accounting.slots_key(buyer.id))
        # Hourly and daily always, so every buyer has a series; other windows when capped.
        for window, key in (("hourly", keys[0]), ("daily", keys[1])):
            metrics.cap_used.labels(buyer.id, window).set((counts[key] or {}).get("sold", 0))
        for window, line in accounting.usage(buyer, counts, slots, now).items():
            if line["limit"] is not None:
                metrics.cap_used.labels(buyer.id, window).set(line["used"])
                metrics.cap_limit.labels(buyer.id, window).set(line["limit"])


def initialize_series(metrics: Metrics, buyers: Iterable[Buyer], topics: Iterable[str]) -> None:
    """Expose every known label set at zero, so rates and alerts have a series from the start
    (a counter that appears only on its first error cannot show its first increase)."""
    for reason in REJECTION_REASONS:
        metrics.dead_letters.labels(reason)
        metrics.decisions.labels("rejected", reason)
    for outcome, reason in KNOWN_DECISIONS:
        metrics.decisions.labels(outcome, reason)
    for topic in topics:
        metrics.send_errors.labels(topic)
        metrics.offsets_skipped.labels(topic)
    for buyer in buyers:
        metrics.leads_sold.labels(buyer.id)
        metrics.revenue.labels(buyer.id)


def publish_local_hours(metrics: Metrics, buyers: Iterable[Buyer], now: datetime) -> None:
    metrics.buyer_local_hour.clear()
    for buyer in buyers:
        metrics.buyer_local_hour.labels(buyer.id).set(schedule.local_time(buyer, now).hour)


class RouterSensor(Sensor):
    """Faust's hooks for rebalances and producer errors, onto our registry."""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    def on_rebalance_start(self, app: Any) -> dict[str, Any]:
        self.metrics.rebalances.inc()
        return {}

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        return topic

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        self.metrics.send_errors.labels(str(state)).inc()


class GroupProgress(NamedTuple):
    committed: int  # the group's committed offset (0 when it has none)
    end: int  # the partition's end offset, as the broker reports it


class LagMonitor:
    """Consumer lag from the broker's view (committed offsets of the group vs. end offsets),
    for the partitions this worker holds now. Independent of Faust's sensor, so the series
    carry on across rebalances instead of resetting."""

    def __init__(
        self, metrics: Metrics, bootstrap_servers: str, group_id: str, topics: Set[str]
    ) -> None:
        self.metrics = metrics
        # Only topics the group commits: standby changelog partitions are assigned too,
        # but nothing commits them, so "lag" there would be meaningless.
        self.topics = topics
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._exported: set[TopicPartition] = set()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
            await self._admin.start()
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers, group_id=None
            )
            await self._consumer.start()
        return self._admin, self._consumer

    async def sample(self, assigned: Set[Any]) -> dict[TopicPartition, GroupProgress]:
        """Export the gauges; returns each sampled partition's committed and end offsets."""
        tps = {TopicPartition(tp.topic, tp.partition) for tp in assigned if tp.topic in self.topics}
        self.metrics.assigned_partitions.set(len(tps))
        for gone in self._exported - tps:
            labels = (gone.topic, str(gone.partition))
            for gauge in (
                self.metrics.consumer_lag,
                self.metrics.committed_offset,
                self.metrics.end_offset,
            ):
                gauge.remove(*labels)
        self._exported = tps
        if not tps:
            return {}
        admin, consumer = await self._clients()
        committed = await admin.list_consumer_group_offsets(self.group_id, partitions=list(tps))
        ends = await consumer.end_offsets(list(tps))
        progress: dict[TopicPartition, GroupProgress] = {}
        for tp in tps:
            end = ends.get(tp, 0)
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            labels = (tp.topic, str(tp.partition))
            self.metrics.end_offset.labels(*labels).set(end)
            self.metrics.committed_offset.labels(*labels).set(done)
            self.metrics.consumer_lag.labels(*labels).set(max(0, end - done))
            progress[tp] = GroupProgress(committed=done, end=end)
        return progress

    async def reset(self) -> None:
        """Drop the clients (after an error): the next sample connects afresh."""
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        with contextlib.suppress(Exception):
            if admin is not None:
                await admin.close()
            if consumer is not None:
                await consumer.stop()
