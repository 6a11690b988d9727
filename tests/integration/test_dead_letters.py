"""A payload as large as Kafka's default message limit still becomes a dead letter, and so
does an unreadable record on one of the router's own stage topics."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from conftest import read, wait_for
from test_pipeline import write_buyers

from router import catalog, codec
from router.intake import process
from router.loadgen import produce
from router.records import DeadLetter, Decision, IntakeRef
from router.salvage import REASON

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


def newer_screen_record() -> bytes:
    """A screen record as a later version could write it: a field this version refuses."""
    event = {
        "event_id": "evt-newer",
        "occurred_at": "2024-05-01T12:00:00Z",
        "vertical": "solar",
        "source": {"publisher_id": "pub-1"},
        "contact": {"email": "jane@example.com"},
    }
    at = datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    where = IntakeRef(topic=catalog.INTAKE["form"], partition=0, offset=3)
    lead = process(orjson.dumps(event), "form", where, at, at)[0].value
    return orjson.dumps({**orjson.loads(codec.encode(lead)), "added_later": 1})


def test_an_unreadable_record_on_a_stage_topic_is_a_dead_letter_and_the_agent_goes_on(
    workers, tmp_path: Path
) -> None:
    buyers_file, _ = write_buyers(tmp_path)
    group = workers(buyers_file)
    group.start()
    bootstrap = group.broker.bootstrap_servers
    records = [(t, k, v) for t, (k, v) in UNREADABLE.items()]
    asyncio.run(send(bootstrap, [*records, (catalog.SCREEN, b"fp-2", newer_screen_record())]))
    # Valid leads after them: each stage's agent must still be running to decide these.
    report = asyncio.run(produce(bootstrap, 40, rate=0, seed=5, keep_events=True))
    valid = {e.event_id for e in report.events if e.kind == "valid"}

    def settled() -> tuple[bool, object]:
        dead = [codec.decode(DeadLetter, r.value) for r in read(group.broker, catalog.REJECTED)]
        from_stages = {d.topic: d for d in dead if d.topic in UNREADABLE and d.event_id is None}
        decisions = [codec.decode(Decision, r.value) for r in read(group.broker, catalog.DECISIONS)]
        decided = {d.event_id: d for d in decisions}
        missing = (valid | {"evt-newer"}) - set(decided)
        if len(from_stages) < len(UNREADABLE) or missing:
            return False, {"letters_from": sorted(from_stages), "undecided": sorted(missing)}
        return True, (from_stages, decided)

    from_stages, decided = wait_for(settled, timeout=120)  # type: ignore[misc]
    # The newer version's record still names its intake event: that event gets its decision.
    newer = decided["evt-newer"]
    assert (newer.outcome, newer.reasons) == ("rejected", [REASON])
    assert newer.intake == IntakeRef(topic=catalog.INTAKE["form"], partition=0, offset=3)
    for topic, (_, value) in UNREADABLE.items():
        letter = from_stages[topic]
        assert base64.b64decode(letter.original_b64) == value
        assert letter.reason.startswith("invalid_event: ")
    assert all(p.poll() is None for p in group.processes), "no worker may crash"
    assert "Crashed" not in group.logs(tail_chars=10**8)
