"""The consumer holds stream partitions between an assignment and Faust's seek to committed.

Faust resumes stream partitions before it seeks them (tables/recovery.py); records fetched in
between made it drop re-fetched records and commit past events it never processed.
"""

from __future__ import annotations

import asyncio

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from router import catalog
from router.app import create_app
from router.settings import Settings

pytestmark = pytest.mark.unit

STREAM = TP(catalog.SCREEN, 0)


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch, tmp_path):  # type: ignore[no-untyped-def]
    async def no_broker(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        return None

    # The base methods talk to the broker; only the holding logic around them is under test.
    monkeypatch.setattr(faust_aiokafka.Consumer, "perform_seek", no_broker)
    monkeypatch.setattr(faust_aiokafka.Consumer, "on_partitions_assigned", no_broker)
    settings = Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path)
    app, _ = create_app(settings, [])
    consumer = app.consumer
    monkeypatch.setattr(consumer, "assignment", lambda: set())
    return consumer, TP(catalog.changelog_topic(settings.app_id, catalog.CAPS_TABLE), 0)


async def test_stream_partitions_wait_for_the_seek_after_an_assignment(consumer) -> None:  # type: ignore[no-untyped-def]
    consumer, changelog = consumer
    await consumer.on_partitions_assigned({STREAM, changelog}, 1)

    consumer.resume_partitions({STREAM, changelog})
    active = consumer._get_active_partitions()
    assert changelog in active, "table recovery must still read its changelog"
    assert STREAM not in active, "stream records must not flow before the seek"

    await consumer.perform_seek()
    assert STREAM in consumer._get_active_partitions()


async def test_a_seek_before_any_stream_resume_keeps_the_hold(consumer) -> None:  # type: ignore[no-untyped-def]
    consumer, changelog = consumer
    await consumer.on_partitions_assigned({STREAM, changelog}, 1)
    # Faust's fetcher seeks when it finds the flow stopped, e.g. during table recovery, before
    # recovery resumes the stream partitions and seeks them itself.
    await consumer.perform_seek()

    consumer.resume_partitions({STREAM})
    assert STREAM not in consumer._get_active_partitions()
    await consumer.perform_seek()
    assert STREAM in consumer._get_active_partitions()


async def test_resumes_pass_straight_through_once_sought(consumer) -> None:  # type: ignore[no-untyped-def]
    consumer, _ = consumer
    await consumer.on_partitions_assigned({STREAM}, 1)
    consumer.resume_partitions({STREAM})
    await consumer.perform_seek()
    consumer.pause_partitions({STREAM})

    consumer.resume_partitions({STREAM})
    assert STREAM in consumer._get_active_partitions()


async def test_a_new_assignment_holds_again(consumer) -> None:  # type: ignore[no-untyped-def]
    consumer, _ = consumer
    await consumer.on_partitions_assigned({STREAM}, 1)
    consumer.resume_partitions({STREAM})
    await consumer.perform_seek()
    consumer.pause_partitions({STREAM})

    await consumer.on_partitions_assigned({STREAM}, 2)
    consumer.resume_partitions({STREAM})
    assert STREAM not in consumer._get_active_partitions()


def record(offset: int, generation_id: int) -> Message:
    return Message(
        STREAM.topic, STREAM.partition, offset, 0.0, 0, None, None, b"{}", None,
        tp=STREAM, generation_id=generation_id,
    )  # fmt: skip


def test_an_ack_from_an_earlier_generation_does_not_count(consumer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    consumer, _ = consumer
    # Agents register their topics as acking when they start; none start in a unit test.
    monkeypatch.setattr(consumer.app.topics, "acks_enabled_for", lambda topic: True)
    consumer.app.consumer_generation_id = 3
    # Skipped unprocessed by Faust's stream after a rebalance, yet acked: must not be committed.
    assert consumer.ack(record(7, generation_id=2)) is False
    assert 7 not in consumer._acked[STREAM]

    assert consumer.ack(record(7, generation_id=3)) is True
    assert consumer._acked[STREAM] == [7]


async def test_the_producer_flushes_only_after_its_waits(consumer) -> None:  # type: ignore[no-untyped-def]
    producer = consumer[0].app.producer
    records_out = asyncio.Event()
    producer.before_flush(records_out.wait)
    flushed = asyncio.ensure_future(producer.flush())
    for _ in range(10):
        await asyncio.sleep(0)  # loop turns, not time: the flush is blocked on the event
    assert not flushed.done()
    records_out.set()
    await asyncio.wait_for(flushed, timeout=5)
