"""A payload as large as Kafka's default message limit still becomes a dead letter, and so
does an unreadable record on one of the router's own stage topics."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from conftest import read, wait_for
from test_pipeline import write_buyers

from router import catalog, codec
from router.loadgen import produce
from router.records import DeadLetter, Decision

pytestmark = pytest.mark.integration

# Just under Kafka's default 1 MB record limit: its dead letter (base64 + metadata) is larger.
HUGE = b'{"event_id": "huge-1", "junk": "' + b"x" * 900_000 + b'"'  # truncated JSON


async def send(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    """Each (topic, key, value) in order, each acknowledged before the next."""
    largest = max(len(value) for _, _, value in records)
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 * largest + 1024)
    await client.start()
    try:
        for topic, key, value in records:
            await client.send_and_wait(topic, value, key=key)
    finally:
        await client.stop()


def test_a_huge_malformed_payload_is_a_dead_letter_with_its_exact_bytes(
    workers, tmp_path: Path
) -> None:
    buyers_file, _ = write_buyers(tmp_path)
    group = workers(buyers_file)
    group.start()
    asyncio.run(send(group.broker.bootstrap_servers, [(catalog.INTAKE["form"], b"huge-1", HUGE)]))

    def dead_lettered() -> tuple[bool, object]:
        dead = [codec.decode(DeadLetter, r.value) for r in read(group.broker, catalog.REJECTED)]
        return bool(dead), dead

    (letter,) = wait_for(dead_lettered, timeout=90)  # type: ignore[misc]
    assert base64.b64decode(letter.original_b64) == HUGE
    assert letter.reason.startswith("invalid_json")
    (decision,) = [codec.decode(Decision, r.value) for r in read(group.broker, catalog.DECISIONS)]
    assert decision.outcome == "rejected" and decision.event_id is None
    assert all(p.poll() is None for p in group.processes), "no worker may crash"


# Records on the router's own stage topics that no version of it wrote: a corrupted record, or
# one from an incompatible version. Keyed as the router keys them, so each reaches its agent.
UNREADABLE = {
    catalog.SCREEN: (b"fp-1", b'{"lead_id": "cut short'),
    catalog.OFFERS: (b"b1", b'{"lead": 7}'),
    catalog.PUBLISHER_SIGNALS: (b"pub-1", b"\xff\xfe not json"),
}


def test_an_unreadable_record_on_a_stage_topic_is_a_dead_letter_and_the_agent_goes_on(
    workers, tmp_path: Path
) -> None:
    buyers_file, _ = write_buyers(tmp_path)
    group = workers(buyers_file)
    group.start()
    bootstrap = group.broker.bootstrap_servers
    asyncio.run(send(bootstrap, [(t, k, v) for t, (k, v) in UNREADABLE.items()]))
    # Valid leads after them: each stage's agent must still be running to decide these.
    report = asyncio.run(produce(bootstrap, 40, rate=0, seed=5, keep_events=True))
    valid = {e.event_id for e in report.events if e.kind == "valid"}

    def settled() -> tuple[bool, object]:
        dead = [codec.decode(DeadLetter, r.value) for r in read(group.broker, catalog.REJECTED)]
        from_stages = {d.topic: d for d in dead if d.topic in UNREADABLE}
        decided = {
            codec.decode(Decision, r.value).event_id for r in read(group.broker, catalog.DECISIONS)
        }
        return len(from_stages) == len(UNREADABLE) and valid <= decided, from_stages

    from_stages = wait_for(settled, timeout=120)
    assert isinstance(from_stages, dict)
    for topic, (_, value) in UNREADABLE.items():
        letter = from_stages[topic]
        assert base64.b64decode(letter.original_b64) == value
        assert letter.reason.startswith("invalid_event: ")
    assert all(p.poll() is None for p in group.processes), "no worker may crash"
    assert "Crashed" not in group.logs(tail_chars=10**8)
