"""A payload as large as Kafka's default message limit still becomes a dead letter."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from conftest import read, wait_for
from test_pipeline import write_buyers

from router import catalog, codec
from router.records import DeadLetter, Decision

pytestmark = pytest.mark.integration

# Just under Kafka's default 1 MB record limit: its dead letter (base64 + metadata) is larger.
HUGE = b'{"event_id": "huge-1", "junk": "' + b"x" * 900_000 + b'"'  # truncated JSON


async def send(bootstrap: str, payload: bytes) -> None:
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 * len(payload))
    await client.start()
    try:
        await client.send_and_wait(catalog.INTAKE["form"], payload, key=b"huge-1")
    finally:
        await client.stop()


def test_a_huge_malformed_payload_is_a_dead_letter_with_its_exact_bytes(
    workers, tmp_path: Path
) -> None:
    buyers_file, _ = write_buyers(tmp_path)
    group = workers(buyers_file)
    group.start()
    asyncio.run(send(group.broker.bootstrap_servers, HUGE))

    def dead_lettered() -> tuple[bool, object]:
        dead = [codec.decode(DeadLetter, r.value) for r in read(group.broker, catalog.REJECTED)]
        return bool(dead), dead

    (letter,) = wait_for(dead_lettered, timeout=90)  # type: ignore[misc]
    assert base64.b64decode(letter.original_b64) == HUGE
    assert letter.reason.startswith("invalid_json")
    (decision,) = [codec.decode(Decision, r.value) for r in read(group.broker, catalog.DECISIONS)]
    assert decision.outcome == "rejected" and decision.event_id is None
    assert all(p.poll() is None for p in group.processes), "no worker may crash"
