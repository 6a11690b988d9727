"""Thin Faust agents: decode, call one pure stage, assign table state, send, observe.

Agents take their stream in batches (`take_events`): Faust acks a batch's events only after
the whole batch is processed, and table writes name the event's own partition
(`router/output.py`), so a batch mixing partitions keeps each table co-partitioned.

Every agent runs with concurrency=1: Faust can commit an offset past an event still in
flight when concurrency > 1 (faust-streaming #606), which would lose it on a crash.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from faust.types import EventT, StreamT
from pydantic import ValidationError

from router import accounting, codec, feedback, intake, observability, offering, quality, screening
from router.market import MarketSource
from router.metrics import Metrics
from router.output import Output
from router.records import (
    CallEvent,
    Emit,
    Feedback,
    IntakeRef,
    NormalizedLead,
    Offer,
    PublisherQuality,
    PublisherSignal,
)
from router.topology import Topology

Clock = Callable[[], datetime]

BATCH_MAX_EVENTS = 500


@dataclass(frozen=True)
class Deps:
    market: MarketSource
    dedup_window: timedelta
    clock: Clock
    metrics: Metrics
    verticals: frozenset[str] = field(default_factory=frozenset)
    batch_within: timedelta = timedelta(milliseconds=10)


def current_events(events: Iterable[EventT], generation_id: int) -> list[EventT]:
    """The batch's events still owned by this worker's consumer generation.

    Faust skips a record fetched under an earlier generation when it dequeues it; a batch can
    hold records buffered before a rebalance completed, so the same check is made again when
    the batch is processed. Their acks are ignored (`router/transport.py`), so whoever holds
    the partition now reads them again.
    """
    return [event for event in events if event.message.generation_id == generation_id]


def _broker_time(timestamp: float | None, fallback: datetime) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else fallback


def register(topology: Topology, deps: Deps) -> None:
    app = topology.app
    metrics = deps.metrics
    stage_seconds = {
        s: metrics.stage_seconds.labels(s) for s in ("intake", "screen", "offer", "feedback")
    }

    def output() -> Output:
        # One per agent: an agent's records wait only behind its own changelog writes.
        return Output(app, lambda topic, _error: metrics.send_errors.labels(topic).inc())

    async def batched(stream: StreamT[bytes]) -> AsyncIterator[EventT]:
        """The stream's events, taken from Faust in batches.

        Faust's per-event stream iteration costs more than most of our stages; taking a batch
        skips part of it (docs/performance.md). Faust acks a batch when the next one is asked
        for, which is after the agent is done with the batch's last event.
        """
        take_events = stream.take_events  # type: ignore[attr-defined]  # not in StreamT
        async for events in take_events(BATCH_MAX_EVENTS, deps.batch_within.total_seconds()):
            for event in current_events(events, app.consumer_generation_id):
                yield event

    @app.agent(topology.intake, name="intake", concurrency=1)
    async def intake_agent(stream: StreamT[bytes]) -> None:
        out = output()
        async for event in batched(stream):
            started = time.perf_counter()
            message = event.message
            now = deps.clock()
            channel = topology.channel_of[message.topic]
            ref = IntakeRef(topic=message.topic, partition=message.partition, offset=message.offset)
            emits = intake.process(
                event.value or b"",
                channel,
                ref,
                received_at=_broker_time(message.timestamp, now),
                now=now,
            )
            lead = emits[0].value if len(emits) == 1 else None
            vertical = lead.vertical if isinstance(lead, NormalizedLead) else None
            metrics.intake_events.labels(
                channel, observability.vertical_label(vertical, deps.verticals)
            ).inc()
            stage_seconds["intake"].observe(time.perf_counter() - started)
            await out.send(emits)
            observability.observe(metrics, emits, now)

    @app.agent(topology.screen, name="screen", concurrency=1)
    async def screen_agent(stream: StreamT[bytes]) -> None:
        await deps.market.ready()
        out = output()
        async for event in batched(stream):
            started = time.perf_counter()
            now = deps.clock()
            lead = codec.decode(NormalizedLead, event.value)
            state = topology.dedup.get(lead.fingerprint) or {}
            new_state, emits = screening.screen(
                lead, state, deps.market.current(), deps.dedup_window, now
            )
            if new_state is not state:
                await out.write(
                    topology.dedup, event.message.partition, [(lead.fingerprint, new_state)]
                )
            stage_seconds["screen"].observe(time.perf_counter() - started)
            await out.send(emits)
            observability.observe(metrics, emits, now)

    @app.agent(topology.buyer_desk, name="buyer-desk", concurrency=1)
    async def buyer_desk_agent(stream: StreamT[bytes]) -> None:
        """Offers, feedback and call events: everything that touches one buyer's caps."""
        await deps.market.ready()
        table = topology.caps
        pruned_through: dict[str, str] = {}
        out = output()
        async for event in batched(stream):
            started = time.perf_counter()
            now = deps.clock()
            message = event.message
            raw = event.value or b""
            buyers = deps.market.current().buyers
            emits: list[Emit]
            if message.topic == topology.offers_topic:
                offer = codec.decode(Offer, raw)
                buyer = buyers.get(offering.current_buyer_id(offer))
                ledger_key = offering.ledger_key(offer)
                state: dict[str, Any] = {ledger_key: table.get(ledger_key)}
                if buyer is not None:
                    keys = offering.state_keys(offer, buyer)
                    state = {k: table.get(k) for k in (*keys.counts, keys.ledger, keys.slots)}
                    today = keys.counts[1]
                    if today > pruned_through.get(buyer.id, ""):
                        # First offer of a new buyer-local day here: prune what aged out.
                        # A local memo only; pruning is idempotent, so a restart prunes again.
                        stale = accounting.expired_keys(table, buyer, now)
                        await out.write(table, message.partition, [(k, None) for k in stale])
                        pruned_through[buyer.id] = today
                result = offering.decide(offer, buyer, state, now)
                await out.write(table, message.partition, result.writes)
                emits = result.emits
                stage_seconds["offer"].observe(time.perf_counter() - started)
            else:
                ref = IntakeRef(
                    topic=message.topic, partition=message.partition, offset=message.offset
                )
                try:
                    if message.topic == topology.call_events_topic:
                        call = codec.decode(CallEvent, raw)
                        emits = []
                        if not feedback.call_key_matches(call, message.key):
                            reason = "key_is_not_buyer_id: call events are keyed by buyer_id"
                            emits = [feedback.dead_letter(raw, ref, reason, now)]
                        else:
                            key = accounting.slots_key(call.buyer_id)
                            slots = table.get(key)
                            freed = feedback.call_ended(call, slots)
                            if freed is not slots:
                                await out.write(table, message.partition, [(key, freed)])
                    else:
                        said = codec.decode(Feedback, raw)
                        buyer = buyers.get(said.buyer_id)
                        ledger_key = feedback.ledger_key(said.buyer_id, said.lead_id)
                        entry = table.get(ledger_key)
                        keys_needed = feedback.counts_keys(buyer, entry) if buyer else ()
                        state = {ledger_key: entry, **{k: table.get(k) for k in keys_needed}}
                        handled = feedback.handle(said, buyer, state, now, message.key)
                        await out.write(table, message.partition, handled.writes)
                        emits = handled.emits
                except ValidationError as error:
                    emits = [feedback.dead_letter(raw, ref, error, now)]
                stage_seconds["feedback"].observe(time.perf_counter() - started)
            await out.send(emits)
            observability.observe(metrics, emits, now)

    @app.agent(topology.publisher_signals, name="publishers", concurrency=1)
    async def publisher_agent(stream: StreamT[bytes]) -> None:
        table = topology.publishers
        out = output()
        async for event in batched(stream):
            signal = codec.decode(PublisherSignal, event.value)
            stored = table.get(quality.stats_key(signal.publisher_id))
            stats = PublisherQuality.model_validate(stored) if stored else None
            seen = bool(table.get(quality.seen_key(signal)))
            writes, updated = quality.absorb(signal, stats, seen)
            await out.write(table, event.message.partition, writes)
            if updated is not None:
                await out.send([Emit(topology.quality_topic, signal.publisher_id, updated)])
