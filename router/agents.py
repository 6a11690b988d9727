"""Thin Faust agents: decode, call one pure stage, assign table state, send, observe.

Every agent runs with concurrency=1: Faust can commit an offset past an event still in
flight when concurrency > 1 (faust-streaming #606), which would lose it on a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from faust.types import StreamT

from router import caps, codec, intake, observability, offering, screening
from router.buyers import Buyer
from router.metrics import Metrics
from router.records import Emit, IntakeRef, NormalizedLead, Offer
from router.topology import Topology

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Deps:
    buyers: Mapping[str, Buyer]
    dedup_window: timedelta
    clock: Clock
    metrics: Metrics
    verticals: frozenset[str] = field(default_factory=frozenset)


def _broker_time(timestamp: float | None, fallback: datetime) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else fallback


def register(topology: Topology, deps: Deps) -> None:
    app = topology.app
    metrics = deps.metrics
    stage_seconds = {s: metrics.stage_seconds.labels(s) for s in ("intake", "screen", "offer")}

    async def send_all(emits: Iterable[Emit]) -> None:
        for emit in emits:
            await topology.output(emit.topic).send(
                key=emit.key.encode() if emit.key is not None else None,
                value=codec.encode(emit.value),
            )

    @app.agent(topology.intake, name="intake", concurrency=1)
    async def intake_agent(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
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
            await send_all(emits)
            observability.observe(metrics, emits, now)

    @app.agent(topology.screen, name="screen", concurrency=1)
    async def screen_agent(stream: StreamT[bytes]) -> None:
        async for value in stream:
            started = time.perf_counter()
            now = deps.clock()
            lead = codec.decode(NormalizedLead, value)
            state = topology.dedup.get(lead.fingerprint) or {}
            new_state, emits = screening.screen(
                lead, state, deps.buyers.values(), deps.dedup_window, now
            )
            if new_state is not state:
                topology.dedup[lead.fingerprint] = new_state
            stage_seconds["screen"].observe(time.perf_counter() - started)
            await send_all(emits)
            observability.observe(metrics, emits, now)

    @app.agent(topology.offers, name="offers", concurrency=1)
    async def offer_agent(stream: StreamT[bytes]) -> None:
        table = topology.caps
        pruned_through: dict[str, str] = {}
        async for value in stream:
            started = time.perf_counter()
            now = deps.clock()
            offer = codec.decode(Offer, value)
            buyer = deps.buyers.get(offering.current_buyer_id(offer))
            keys = offering.cap_keys(offer, buyer) if buyer else None
            counts = table.get(keys.counts) if keys else None
            entry = table.get(keys.ledger) if keys else None
            result = offering.decide(offer, buyer, counts, entry, now)
            if keys and buyer:
                if keys.day > pruned_through.get(buyer.id, ""):
                    # First offer of a new buyer-local day here: prune what aged out. Local
                    # memo only; pruning is idempotent, so a restart just prunes again.
                    for stale in caps.expired_keys(list(table.keys()), buyer.id, keys.day):
                        del table[stale]
                    pruned_through[buyer.id] = keys.day
                # Counts before the ledger entry: both go to the same changelog partition, in
                # order, so a ledger entry that survived a crash implies its count did too.
                if result.counts is not counts:
                    table[keys.counts] = result.counts
                if result.entry is not entry:
                    table[keys.ledger] = result.entry
            emits = result.emits
            stage_seconds["offer"].observe(time.perf_counter() - started)
            await send_all(emits)
            observability.observe(metrics, emits, now)
