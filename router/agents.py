"""Thin Faust agents: decode, call one pure stage, assign table state, send, observe.

Agents take their stream in batches straight from the queue Faust's conductor fills
(`router/batching.py`): a batch's events are acked only after the whole batch is processed, and
table writes name the event's own partition (`router/output.py`), so a batch mixing partitions
keeps each table co-partitioned.

Every agent runs with concurrency=1: Faust can commit an offset past an event still in
flight when concurrency > 1 (faust-streaming #606), which would lose it on a crash.

Tables are read from their store (`topology.store_of`), as `router/output.py` writes them, not
through `Table.get` (a sensor call per key).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from faust.types import EventT, StreamT, TableT

from router import (
    accounting,
    batching,
    codec,
    feedback,
    intake,
    observability,
    offering,
    quality,
    retention,
    salvage,
    screening,
)
from router.market import MarketSource
from router.metrics import Metrics
from router.output import Output
from router.partitioning import key_partition
from router.records import (
    CallEvent,
    Emit,
    Feedback,
    IntakeRef,
    NormalizedLead,
    Offer,
    PublisherQuality,
)
from router.topology import Topology, store_of

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Deps:
    market: MarketSource
    dedup_window: timedelta
    clock: Clock
    metrics: Metrics
    verticals: frozenset[str] = field(default_factory=frozenset)
    batch_within: timedelta = timedelta(milliseconds=10)
    batch_max_events: int = 500
    state_retention: timedelta = timedelta(days=7)
    sweep_every: timedelta = timedelta(hours=1)


def _ref(event: EventT) -> IntakeRef:
    """Where an event was read: what a dead letter names."""
    message = event.message
    return IntakeRef(topic=message.topic, partition=message.partition, offset=message.offset)


def _broker_time(timestamp: float | None, fallback: datetime) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else fallback


class _BuyerDesk:
    """One buyer-desk event at a time: its table writes go out at once, its records are
    returned for the batch's send. Offers, feedback and call events all touch one buyer's caps."""

    def __init__(
        self, topology: Topology, deps: Deps, out: Output, stage_seconds: dict[str, Any]
    ) -> None:
        self.topology = topology
        self.deps = deps
        self.out = out
        self.stage_seconds = stage_seconds
        # First offer of a buyer-local day here prunes what aged out. A local memo only;
        # pruning is idempotent, so a restart prunes again.
        self.pruned_through: dict[str, str] = {}

    async def handle(self, event: EventT) -> list[Emit]:
        started = time.perf_counter()
        message = event.message
        raw = event.value or b""
        ref = _ref(event)
        if message.topic == self.topology.offers_topic:
            try:
                offer = codec.decode(Offer, raw)
            except codec.Unreadable as error:
                return salvage.unreadable_offer(raw, ref, error, self.deps.clock())
            emits = await self._offer(offer, message.partition)
            self.stage_seconds["offer"].observe(time.perf_counter() - started)
            return emits
        try:
            if message.topic == self.topology.call_events_topic:
                emits = await self._call_event(raw, message.key, ref)
            else:
                emits = await self._feedback(raw, message.key, message.partition)
        except codec.Unreadable as error:
            emits = [intake.unreadable(raw, ref, error, self.deps.clock())]
        self.stage_seconds["feedback"].observe(time.perf_counter() - started)
        return emits

    async def _offer(self, offer: Offer, partition: int) -> list[Emit]:
        table = self.topology.caps
        now = self.deps.clock()
        buyer = self.deps.market.current().buyers.get(offering.current_buyer_id(offer))
        ledger_key = offering.ledger_key(offer)
        store = store_of(table)
        state: dict[str, Any] = {ledger_key: store.get(ledger_key)}
        if buyer is not None:
            keys = offering.state_keys(offer, buyer)
            state = {k: store.get(k) for k in (*keys.counts, keys.ledger, keys.slots)}
            today = keys.counts[1]
            if today > self.pruned_through.get(buyer.id, ""):
                stale = accounting.expired_keys(store, buyer, now)
                self.out.write(table, partition, [(k, None) for k in stale])
                self.pruned_through[buyer.id] = today
        result = offering.decide(offer, buyer, state, now)
        self.out.write(table, partition, result.writes)
        return result.emits

    async def _call_event(self, raw: bytes, key: bytes | None, ref: IntakeRef) -> list[Emit]:
        table = self.topology.caps
        call = codec.decode(CallEvent, raw)
        if not feedback.call_key_matches(call, key):
            reason = "key_is_not_buyer_id: call events are keyed by buyer_id"
            return [intake.unreadable(raw, ref, reason, self.deps.clock())]
        slots_key = accounting.slots_key(call.buyer_id)
        slots = store_of(table).get(slots_key)
        freed = feedback.call_ended(call, slots)
        if freed is not slots:
            self.out.write(table, ref.partition, [(slots_key, freed)])
        return []

    async def _feedback(self, raw: bytes, key: bytes | None, partition: int) -> list[Emit]:
        table = self.topology.caps
        said = codec.decode(Feedback, raw)
        buyer = self.deps.market.current().buyers.get(said.buyer_id)
        ledger_key = feedback.ledger_key(said.buyer_id, said.lead_id)
        store = store_of(table)
        entry = store.get(ledger_key)
        keys_needed = feedback.counts_keys(buyer, entry) if buyer else ()
        state = {ledger_key: entry, **{k: store.get(k) for k in keys_needed}}
        handled = feedback.handle(said, buyer, state, self.deps.clock(), key)
        self.out.write(table, partition, handled.writes)
        return handled.emits


def register(topology: Topology, deps: Deps) -> None:
    app = topology.app
    metrics = deps.metrics
    stage_seconds = {
        s: metrics.stage_seconds.labels(s) for s in ("intake", "screen", "offer", "feedback")
    }

    def output() -> Output:
        # One per agent: an agent's records wait only behind its own changelog writes.
        return Output(app, lambda topic, _error, lost: metrics.send_errors.labels(topic).inc(lost))

    def batches(stream: StreamT[bytes]) -> AsyncIterator[list[EventT]]:
        """The stream's events in batches, without Faust's per-event stream iteration
        (`router/batching.py`). A batch is acked when the next one is asked for, which is
        after the agent is done with the batch's last event."""
        return batching.batches(
            batching.source_of(app, stream),
            deps.batch_max_events,
            deps.batch_within.total_seconds(),
        )

    async def send_batch(out: Output, emitted: list[Emit]) -> None:
        """A batch's records in one go, in the order its events made them.

        Inside a batch an agent yields to the event loop only when the producer's buffer is
        full, so records sent one event at a time would rarely leave sooner. One send per batch
        waits for the batch's changelog records once instead of once per event
        (`router/output.py`), and the buyer desk's publisher signals travel as one record per
        publisher (`quality.bundle`).
        """
        await out.send(emitted)
        observability.observe(metrics, emitted, deps.clock())

    def partition_by(stream_key: Callable[[str], str]) -> Callable[[str], int]:
        """A table key's partition: that of the stream records it is kept for."""
        partitions = topology.partitions
        return lambda key: key_partition(stream_key(key).encode(), partitions)

    async def sweep_slice(
        out: Output,
        table: TableT,
        sweep: retention.Sweep,
        stream_topic: str,
        partition_of: Callable[[str], int],
        judge: Callable[[datetime], Callable[[Any, Any], bool]],
    ) -> None:
        """Delete the expired keys among the sweep's next slice of the table, on the
        partitions this worker owns (router/retention.py). `judge(now)` tells, for a key and
        its value, whether it expired."""
        store = store_of(table)
        now = deps.clock()
        keys = sweep.next_slice(store.keys, now)
        if not keys:
            return
        expired = judge(now)
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == stream_topic}
        found = retention.expired_by_partition(
            ((key, store.get(key)) for key in keys), partition_of, owned, expired
        )
        for partition, stale in found.items():
            out.write(table, partition, [(key, None) for key in stale])
            metrics.table_keys_expired.labels(table.name).inc(len(stale))
        if found:
            await out.send([])

    @app.agent(topology.intake, name="intake", concurrency=1)
    async def intake_agent(stream: StreamT[bytes]) -> None:
        out = output()
        async for events in batches(stream):
            emitted: list[Emit] = []
            per_label: Counter[tuple[str, str]] = Counter()
            for event in events:
                started = time.perf_counter()
                message = event.message
                now = deps.clock()
                channel = topology.channel_of[message.topic]
                ref = _ref(event)
                emits = intake.process(
                    event.value or b"",
                    channel,
                    ref,
                    received_at=_broker_time(message.timestamp, now),
                    now=now,
                )
                lead = emits[0].value if len(emits) == 1 else None
                vertical = lead.vertical if isinstance(lead, NormalizedLead) else None
                per_label[(channel, observability.vertical_label(vertical, deps.verticals))] += 1
                stage_seconds["intake"].observe(time.perf_counter() - started)
                emitted.extend(emits)
            for labels, count in per_label.items():
                metrics.intake_events.labels(*labels).inc(count)
            await send_batch(out, emitted)

    @app.agent(topology.screen, name="screen", concurrency=1)
    async def screen_agent(stream: StreamT[bytes]) -> None:
        await deps.market.ready()
        out = output()
        sweep = retention.Sweep(deps.sweep_every)
        fingerprint_partition = partition_by(lambda fingerprint: fingerprint)

        def dedup_judge(now: datetime) -> Callable[[Any, Any], bool]:
            window, keep = deps.dedup_window, deps.state_retention
            return lambda _key, state: retention.dedup_expired(state, now, window, keep)

        async for events in batches(stream):
            emitted: list[Emit] = []
            for event in events:
                started = time.perf_counter()
                now = deps.clock()
                raw = event.value or b""
                try:
                    lead = codec.decode(NormalizedLead, raw)
                except codec.Unreadable as error:
                    emitted.extend(salvage.unreadable_lead(raw, _ref(event), error, now))
                    continue
                state = store_of(topology.dedup).get(lead.fingerprint) or {}
                new_state, emits = screening.screen(
                    lead, state, deps.market.current(), deps.dedup_window, now
                )
                if new_state is not state:
                    # The store changes at once, so the batch's next event sees this lead.
                    out.write(
                        topology.dedup, event.message.partition, [(lead.fingerprint, new_state)]
                    )
                stage_seconds["screen"].observe(time.perf_counter() - started)
                emitted.extend(emits)
            await send_batch(out, emitted)
            await sweep_slice(
                out,
                topology.dedup,
                sweep,
                topology.screen.get_topic_name(),
                fingerprint_partition,
                dedup_judge,
            )

    @app.agent(topology.buyer_desk, name="buyer-desk", concurrency=1)
    async def buyer_desk_agent(stream: StreamT[bytes]) -> None:
        """Offers, feedback and call events: everything that touches one buyer's caps."""
        await deps.market.ready()
        out = output()
        desk = _BuyerDesk(topology, deps, out, stage_seconds)
        async for events in batches(stream):
            emitted: list[Emit] = []
            for event in events:
                emitted.extend(await desk.handle(event))
            await send_batch(out, quality.bundle(emitted))

    @app.agent(topology.publisher_signals, name="publishers", concurrency=1)
    async def publisher_agent(stream: StreamT[bytes]) -> None:
        table = topology.publishers
        out = output()
        sweep = retention.Sweep(deps.sweep_every)
        publisher_partition = partition_by(quality.publisher_of)

        def seen_judge(now: datetime) -> Callable[[Any, Any], bool]:
            keep = retention.seen_keep(deps.market.current().buyers.values(), deps.state_retention)
            return lambda key, value: retention.seen_expired(key, value, now, keep)

        async for events in batches(stream):
            emitted: list[Emit] = []
            for event in events:
                raw = event.value or b""
                try:
                    bundle = quality.read_signals(raw)
                except codec.Unreadable as error:
                    emitted.append(intake.unreadable(raw, _ref(event), error, deps.clock()))
                    continue
                store = store_of(table)
                stored = store.get(quality.stats_key(bundle.publisher_id))
                stats = codec.convert(PublisherQuality, stored) if stored else None
                seen = {k for k in map(quality.seen_key, bundle.signals) if store.get(k)}
                writes, updated = quality.absorb(bundle.signals, stats, seen, deps.clock())
                out.write(table, event.message.partition, writes)
                if updated is not None:
                    emitted.append(Emit(topology.quality_topic, updated.publisher_id, updated))
            await out.send(emitted)
            await sweep_slice(
                out,
                table,
                sweep,
                topology.publisher_signals.get_topic_name(),
                publisher_partition,
                seen_judge,
            )
