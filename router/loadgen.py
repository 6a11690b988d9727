"""Producing synthetic capture traffic to the intake topics at a paced rate."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from router.synthetic import SyntheticEvent, generate


class ProduceError(RuntimeError):
    pass


@dataclass
class ProduceReport:
    produced: int = 0
    seconds: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    events: list[SyntheticEvent] = field(default_factory=list)


def producer(bootstrap_servers: str) -> AIOKafkaProducer:
    # No idempotence: plain at-least-once producers work on every Kafka-protocol broker.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, linger_ms=5, enable_idempotence=False
    )


async def produce(
    bootstrap_servers: str,
    count: int,
    rate: float | None = None,
    seed: int = 0,
    base_time: datetime | None = None,
    keep_events: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> ProduceReport:
    """Produce `count` events; `rate` in events/s (None or 0 means as fast as possible).

    `stop` is polled before each event: a caller can end a long feed early.
    """
    report = ProduceReport()
    events = generate(count, seed, base_time=base_time or datetime.now(UTC), rate=rate)
    client = producer(bootstrap_servers)
    await client.start()
    started = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    try:
        for i, event in enumerate(events):
            if stop():
                break
            if rate:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            pending.append(await client.send(event.topic, event.payload, key=event.key))
            report.produced += 1
            report.by_kind[event.kind] += 1
            report.by_channel[event.channel] += 1
            if keep_events:
                report.events.append(event)
        await client.flush()
        # `produced` means acknowledged: a send that failed after its retries is an error here,
        # not a silently missing event that a caller would later blame on the router.
        failed = [f.exception() for f in pending if f.exception() is not None]
        if failed:
            raise ProduceError(f"{len(failed)} of {len(pending)} sends failed: {failed[0]!r}")
    finally:
        await client.stop()
    report.seconds = time.monotonic() - started
    return report
