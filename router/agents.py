"""Thin Faust agents: decode, call one pure stage, assign table state, send.

Every agent runs with concurrency=1: Faust can commit an offset past an event still in
flight when concurrency > 1 (faust-streaming #606), which would lose it on a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from faust.types import StreamT

from router import caps, codec, intake, offering, screening
from router.buyers import Buyer
from router.records import Emit, IntakeRef, NormalizedLead, Offer
from router.topology import Topology

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Deps:
    buyers: Mapping[str, Buyer]
    dedup_window: timedelta
    clock: Clock


def _broker_time(timestamp: float | None, fallback: datetime) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else fallback


def register(topology: Topology, deps: Deps) -> None:
    app = topology.app

    async def send_all(emits: Iterable[Emit]) -> None:
        for emit in emits:
            await topology.output(emit.topic).send(
                key=emit.key.encode() if emit.key is not None else None,
                value=codec.encode(emit.value),
            )

    @app.agent(topology.intake, name="intake", concurrency=1)
    async def intake_agent(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            now = deps.clock()
            ref = IntakeRef(topic=message.topic, partition=message.partition, offset=message.offset)
            emits = intake.process(
                event.value or b"",
                topology.channel_of[message.topic],
                ref,
                received_at=_broker_time(message.timestamp, now),
                now=now,
            )
            await send_all(emits)

    @app.agent(topology.screen, name="screen", concurrency=1)
    async def screen_agent(stream: StreamT[bytes]) -> None:
        async for value in stream:
            lead = codec.decode(NormalizedLead, value)
            state = topology.dedup.get(lead.fingerprint) or {}
            new_state, emits = screening.screen(
                lead, state, deps.buyers.values(), deps.dedup_window, deps.clock()
            )
            if new_state is not state:
                topology.dedup[lead.fingerprint] = new_state
            await send_all(emits)

    @app.agent(topology.offers, name="offers", concurrency=1)
    async def offer_agent(stream: StreamT[bytes]) -> None:
        async for value in stream:
            offer = codec.decode(Offer, value)
            buyer = deps.buyers.get(offering.current_buyer_id(offer))
            key = offering.cap_key(offer, buyer) if buyer else None
            state = (topology.caps.get(key) if key else None) or caps.empty_state()
            new_state, emits = offering.decide(offer, buyer, state, deps.clock())
            if key and new_state is not state:
                topology.caps[key] = new_state
            await send_all(emits)
