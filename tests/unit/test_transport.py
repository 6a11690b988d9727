"""The consumer holds stream partitions between an assignment and Faust's seek to committed.

Faust resumes stream partitions before it seeks them (tables/recovery.py); records fetched in
between made it drop re-fetched records and commit past events it never processed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode.utils.locks import Event

from router import catalog
from router.app import create_app
from router.offset_holes import HoleGuard
from router.settings import Settings
from router.transport import _ConsumerThread, read_behind_again, record_seeks, starts_of_fetch

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


def fake_aiokafka_consumer(positions: dict[TopicPartition, int]):  # type: ignore[no-untyped-def]
    states = {
        tp: SimpleNamespace(position=offset, has_valid_position=True)
        for tp, offset in positions.items()
    }
    assignment = SimpleNamespace(tps=set(states), state_value=states.get)
    sought: dict[TopicPartition, int] = {}

    def move_position(tp: TopicPartition, offset: int) -> None:  # aiokafka's seek, in short
        states[tp].position = offset

    consumer = SimpleNamespace(
        _subscription=SimpleNamespace(
            subscription=SimpleNamespace(assignment=assignment), seek=move_position
        ),
        seek=sought.__setitem__,  # the guard's own seeks, recorded for the test
    )
    return consumer, sought


def fetch_thread(monkeypatch, tmp_path, base_fetch, consumer=None, **settings):  # type: ignore[no-untyped-def]
    """A consumer thread with only its fetch path, over `base_fetch` as Faust's own fetch."""
    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "_fetch_records", base_fetch)
    config = Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path, **settings)
    app, _ = create_app(config, [])
    thread = object.__new__(_ConsumerThread)
    thread._holes = HoleGuard(app.transport.contiguous_topics)
    if consumer is not None:
        thread._sought = record_seeks(consumer)
    return thread


async def test_a_fetch_that_skips_offsets_of_an_internal_topic_is_read_again(  # type: ignore[no-untyped-def]
    monkeypatch, tmp_path
) -> None:
    screen = TopicPartition(catalog.SCREEN, 3)
    intake = TopicPartition(catalog.INTAKE["form"], 0)
    # The embedded broker handed out a later producer's batch before an earlier one was stored.
    fetched = {
        screen: [SimpleNamespace(offset=o) for o in (500, 501, 531, 532)],
        intake: [SimpleNamespace(offset=o) for o in (7, 9)],
    }

    async def base_fetch(self, consumer, active, timeout=None, max_records=None):  # type: ignore[no-untyped-def]
        return fetched

    thread = fetch_thread(monkeypatch, tmp_path, base_fetch)
    consumer, sought = fake_aiokafka_consumer({screen: 500, intake: 7})

    records = await thread._fetch_records(consumer, {screen, intake})

    assert [r.offset for r in records[screen]] == [500, 501]
    assert [r.offset for r in records[intake]] == [7], "no transactions upstream by default"
    assert sought == {screen: 502, intake: 8}, "the skipped offsets must be fetched again"


async def test_intake_written_with_transactions_is_left_to_kafka(  # type: ignore[no-untyped-def]
    monkeypatch, tmp_path
) -> None:
    intake = TopicPartition(catalog.INTAKE["form"], 0)

    async def base_fetch(self, consumer, active, timeout=None, max_records=None):  # type: ignore[no-untyped-def]
        return {intake: [SimpleNamespace(offset=o) for o in (7, 9)]}  # 8: a commit marker

    thread = fetch_thread(monkeypatch, tmp_path, base_fetch, intake_transactional=True)
    consumer, sought = fake_aiokafka_consumer({intake: 5})

    records = await thread._fetch_records(consumer, {intake})

    assert [r.offset for r in records[intake]] == [7, 9]
    assert sought == {}


async def test_a_hole_between_two_fetches_is_read_again(  # type: ignore[no-untyped-def]
    monkeypatch, tmp_path
) -> None:
    intake = TopicPartition(catalog.INTAKE["call"], 2)
    consumer, sought = fake_aiokafka_consumer({intake: 600})
    fetches = iter([[600, 601, 609], [1074, 1075]])

    async def base_fetch(self, consumer, active, timeout=None, max_records=None):  # type: ignore[no-untyped-def]
        offsets = next(fetches)
        # aiokafka moves the position to the end a batch's header claims, past its records.
        consumer._subscription.subscription.assignment.state_value(intake).position = 1074
        return {intake: [SimpleNamespace(offset=o) for o in offsets]}

    thread = fetch_thread(monkeypatch, tmp_path, base_fetch, consumer)

    first = await thread._fetch_records(consumer, {intake})
    assert [r.offset for r in first[intake]] == [600, 601], "602..608 missing inside the fetch"
    assert sought == {intake: 602}
    sought.clear()
    thread._sought.clear()  # the fake's seek does not go through the subscription

    second = await thread._fetch_records(consumer, {intake})
    assert intake not in second, "the last fetch ended at 602; 1074 is past a hole"
    assert sought == {intake: 602}


async def test_a_hole_at_an_offset_sought_while_the_fetch_waited_is_read_again(  # type: ignore[no-untyped-def]
    monkeypatch, tmp_path
) -> None:
    screen = TopicPartition(catalog.SCREEN, 3)
    consumer, sought = fake_aiokafka_consumer({screen: 500})

    async def base_fetch(self, consumer, active, timeout=None, max_records=None):  # type: ignore[no-untyped-def]
        # A rebalance seeks back to the committed offset while the fetch waits; the broker
        # then skips the first two records there.
        consumer._subscription.seek(screen, 400)
        return {screen: [SimpleNamespace(offset=o) for o in (402, 403)]}

    thread = fetch_thread(monkeypatch, tmp_path, base_fetch, consumer)

    records = await thread._fetch_records(consumer, {screen})

    assert screen not in records, "checked against the position before the wait, 402 passed"
    assert sought == {screen: 400}


def test_records_past_the_one_after_fausts_read_offset_are_read_again() -> None:
    screen, offers = TopicPartition(catalog.SCREEN, 1), TopicPartition(catalog.OFFERS, 1)
    intake = TopicPartition(catalog.INTAKE["click"], 3)
    guard = HoleGuard(frozenset({catalog.SCREEN, catalog.OFFERS}))
    consumer, sought = fake_aiokafka_consumer({screen: 438, offers: 50, intake: 438})
    fetched = {
        screen: [SimpleNamespace(offset=o) for o in (438, 439)],  # Faust read up to 323
        offers: [SimpleNamespace(offset=o) for o in (41, 42)],  # Faust read 40
        intake: [SimpleNamespace(offset=o) for o in (438, 439)],  # not guarded here
    }
    read_offsets = {TP(screen.topic, 1): 323, TP(offers.topic, 1): 40, TP(intake.topic, 3): 323}

    kept = read_behind_again(consumer, guard, fetched, read_offsets)

    assert set(kept) == {offers, intake}
    assert sought == {screen: 323}, "back to the read offset: at worst one event read twice"


def test_records_starting_at_a_sought_read_offset_pass() -> None:
    screen = TopicPartition(catalog.SCREEN, 1)
    guard = HoleGuard(frozenset({catalog.SCREEN}))
    consumer, sought = fake_aiokafka_consumer({screen: 323})
    fetched = {screen: [SimpleNamespace(offset=o) for o in (323, 324)]}  # after a seek to 323

    assert read_behind_again(consumer, guard, fetched, {TP(screen.topic, 1): 323}) == fetched
    assert read_behind_again(consumer, guard, fetched, {TP(screen.topic, 1): None}) == fetched
    assert sought == {}


def test_records_still_past_the_read_offset_after_the_patience_pass() -> None:
    screen = TopicPartition(catalog.SCREEN, 1)
    now = [0.0]
    guard = HoleGuard(frozenset({catalog.SCREEN}), patience_s=5, clock=lambda: now[0])
    consumer, sought = fake_aiokafka_consumer({screen: 438})
    fetched = {screen: [SimpleNamespace(offset=438)]}
    read_offsets = {TP(screen.topic, 1): 323}

    assert read_behind_again(consumer, guard, fetched, read_offsets) == {}
    assert sought == {screen: 323}
    now[0] = 6.0  # the broker's final word: move on rather than stall the partition
    assert read_behind_again(consumer, guard, fetched, read_offsets) == fetched


def test_a_fetch_starts_where_it_was_sought_while_it_waited() -> None:
    screen, offers = TopicPartition(catalog.SCREEN, 0), TopicPartition(catalog.OFFERS, 0)
    before = {screen: 500, offers: 70}

    assert starts_of_fetch(before, {}, same_assignment=True) == before
    assert starts_of_fetch(before, {screen: 400}, same_assignment=True) == {
        screen: 400,
        offers: 70,
    }
    # A new assignment meanwhile: its partitions started from committed offsets not known here.
    assert starts_of_fetch(before, {screen: 400}, same_assignment=False) == {
        screen: 400,
        offers: None,
    }


def test_record_seeks_keeps_the_seek_and_notes_it() -> None:
    screen = TopicPartition(catalog.SCREEN, 0)
    consumer, _ = fake_aiokafka_consumer({screen: 500})
    noted = record_seeks(consumer)

    consumer._subscription.seek(screen, 420)

    assert noted == {screen: 420}
    assert consumer._subscription.subscription.assignment.state_value(screen).position == 420


OTHER = TP(catalog.OFFERS, 0)


async def test_a_partition_resumed_during_a_seek_waits_for_the_next_seek(  # type: ignore[no-untyped-def]
    consumer, monkeypatch
) -> None:
    consumer, _ = consumer
    await consumer.on_partitions_assigned({STREAM, OTHER}, 1)
    consumer.resume_partitions({STREAM})

    async def seek_while_another_resume_comes(self) -> None:  # type: ignore[no-untyped-def]
        consumer.resume_partitions({OTHER})

    monkeypatch.setattr(faust_aiokafka.Consumer, "perform_seek", seek_while_another_resume_comes)
    await consumer.perform_seek()
    assert STREAM in consumer._get_active_partitions()
    assert OTHER not in consumer._get_active_partitions(), "this seek ran before its resume"

    await consumer.perform_seek()
    assert OTHER in consumer._get_active_partitions(), "held partitions must not be dropped"


async def test_a_seek_overtaken_by_a_new_assignment_leaves_the_new_hold(  # type: ignore[no-untyped-def]
    consumer, monkeypatch
) -> None:
    consumer, _ = consumer
    await consumer.on_partitions_assigned({STREAM}, 1)
    consumer.resume_partitions({STREAM})

    async def seek_during_a_rebalance(self) -> None:  # type: ignore[no-untyped-def]
        await consumer.on_partitions_assigned({STREAM}, 2)
        consumer.resume_partitions({STREAM})

    monkeypatch.setattr(faust_aiokafka.Consumer, "perform_seek", seek_during_a_rebalance)
    await consumer.perform_seek()
    assert STREAM not in consumer._get_active_partitions(), "generation 2 is not sought yet"
    assert consumer._held_until_seek == {STREAM}


async def test_partitions_left_out_of_the_fetch_are_named_with_their_reason(  # type: ignore[no-untyped-def]
    consumer, monkeypatch
) -> None:
    consumer, changelog = consumer
    buffered, lost = TP(catalog.SCREEN, 1), TP(catalog.SCREEN, 2)
    assigned = {STREAM, OTHER, buffered, lost, changelog}
    monkeypatch.setattr(consumer, "assignment", lambda: assigned)
    await consumer.on_partitions_assigned(assigned, 1)
    consumer.pause_partitions(assigned)
    consumer.resume_partitions({STREAM, buffered, lost})  # held until the seek
    consumer._read_offset[STREAM] = 41
    assert consumer.not_consumed()[STREAM] == ("held_until_seek", 41)
    assert consumer.not_consumed()[OTHER].reason == "paused"
    assert changelog not in consumer.not_consumed(), "changelogs are recovery's business"

    await consumer.perform_seek()
    consumer.on_buffer_full(buffered)
    consumer._get_active_partitions().discard(lost)
    assert consumer.not_consumed() == {
        OTHER: ("paused", None),
        buffered: ("buffer_full", None),
        lost: ("unknown", None),
    }


async def test_a_fetched_partition_is_named_only_while_records_wait_on_it(  # type: ignore[no-untyped-def]
    consumer, monkeypatch
) -> None:
    consumer, changelog = consumer
    monkeypatch.setattr(consumer, "assignment", lambda: {STREAM, OTHER, changelog})
    consumer._set_active_tps({STREAM, OTHER, changelog})
    consumer._read_offset[STREAM] = 21

    assert consumer.not_consumed() == {}
    assert consumer.not_consumed({STREAM, changelog}) == {STREAM: ("no_progress", 21)}


async def test_a_partition_read_again_is_sought_to_the_given_offset(  # type: ignore[no-untyped-def]
    consumer, monkeypatch
) -> None:
    consumer, _ = consumer
    sought = []

    async def seek(tp, offset) -> None:  # type: ignore[no-untyped-def]
        sought.append((tp, offset))

    monkeypatch.setattr(consumer, "_seek", seek)
    consumer._read_offset[STREAM] = 40

    await consumer.read_again({STREAM: 22})
    assert sought == [(STREAM, 22)]
    assert consumer._read_offset[STREAM] == 22, "Faust reads from the sought offset on"


async def test_the_fetch_state_of_a_partition_shows_both_layers(  # type: ignore[no-untyped-def]
    consumer, monkeypatch
) -> None:
    consumer, _ = consumer
    consumer._set_active_tps({STREAM})
    consumer._read_offset[STREAM] = 7
    state = consumer.fetch_state(STREAM)
    assert state["active"] is True and state["read_offset"] == 7
    assert state["fetcher"] == "not assigned", "no aiokafka consumer in this test"

    aio = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
    atp = TopicPartition(STREAM.topic, STREAM.partition)
    aio._subscription.assign_from_user([atp])
    aio._subscription.seek(atp, 22)
    monkeypatch.setattr(consumer._thread, "_consumer", aio, raising=False)
    fetcher = SimpleNamespace(_records={atp: object()}, _in_flight=set())
    monkeypatch.setattr(aio, "_fetcher", fetcher, raising=False)
    assert consumer.fetch_state(STREAM)["fetcher"] == {
        "status": "CONSUMING",
        "position": 22,
        "paused": False,
        "highwater": None,
        "records_waiting": True,
        "fetches_in_flight": 0,
    }


async def test_offsets_faust_books_as_a_gap_are_logged_and_counted(  # type: ignore[no-untyped-def]
    consumer, monkeypatch, caplog
) -> None:
    consumer, _ = consumer
    counted: list[tuple[str, int]] = []
    monkeypatch.setattr(consumer, "on_offsets_skipped", lambda topic, n: counted.append((topic, n)))
    intake, feedback = TP(catalog.INTAKE["call"], 2), TP(catalog.FEEDBACK, 0)

    with caplog.at_level(logging.DEBUG, logger="router.transport"):
        await consumer._add_gap(intake, 95, 140)
        await consumer._add_gap(intake, 300, 301)  # no transactions upstream: a lost record
        await consumer._add_gap(feedback, 200, 201)  # one offset others wrote: a marker, on Kafka

    assert counted == [(intake.topic, 45), (intake.topic, 1)], "markers are not counted"
    levels = [(r.levelno, r.first, r.last) for r in caplog.records if hasattr(r, "skipped")]
    assert levels == [
        (logging.WARNING, 95, 139),
        (logging.WARNING, 300, 300),
        (logging.DEBUG, 200, 200),
    ]
    assert consumer._gap[intake], "Faust still books the gap"


async def test_stalled_partitions_are_fetched_again_a_held_one_after_a_seek(  # type: ignore[no-untyped-def]
    consumer, monkeypatch
) -> None:
    consumer, _ = consumer
    buffered = TP(catalog.SCREEN, 1)
    assigned = {STREAM, buffered}
    monkeypatch.setattr(consumer, "assignment", lambda: assigned)
    await consumer.on_partitions_assigned(assigned, 1)
    consumer.resume_partitions({STREAM})
    consumer.on_buffer_full(buffered)
    seeks = []

    async def seek(self) -> None:  # type: ignore[no-untyped-def]
        seeks.append(set(consumer._get_active_partitions()))

    monkeypatch.setattr(faust_aiokafka.Consumer, "perform_seek", seek)
    await consumer.fetch_again({STREAM, buffered})

    assert seeks and STREAM not in seeks[0], "the held partition is sought before it is fetched"
    assert consumer.not_consumed() == {}
    assert not consumer._buffered_partitions


async def test_a_stalled_partition_fetched_again_before_a_pending_seek_waits_for_it(  # type: ignore[no-untyped-def]
    consumer, monkeypatch
) -> None:
    consumer, _ = consumer
    monkeypatch.setattr(consumer, "assignment", lambda: {STREAM})
    await consumer.on_partitions_assigned({STREAM}, 1)
    consumer.pause_partitions({STREAM})  # as Faust does until recovery ends

    await consumer.fetch_again({STREAM})
    assert STREAM not in consumer._get_active_partitions(), "fetched before its seek: section 4"
    assert consumer.not_consumed()[STREAM].reason == "held_until_seek"
    await consumer.perform_seek()
    assert STREAM in consumer._get_active_partitions()


async def test_a_record_callback_that_does_not_suspend_skips_the_race(  # type: ignore[no-untyped-def]
    consumer, monkeypatch
) -> None:
    consumer, _ = consumer
    raced: list[object] = []

    async def race(self, *coros, timeout=None):  # type: ignore[no-untyped-def]
        raced.append(coros)
        return await original(self, *coros, timeout=timeout)

    original = faust_aiokafka.Consumer.wait_first
    monkeypatch.setattr(faust_aiokafka.Consumer, "wait_first", race)
    delivered: list[int] = []

    async def callback(offset: int) -> None:
        delivered.append(offset)

    suspended = consumer.suspend_flow.wait()
    result = await consumer.wait_first(callback(5), suspended)
    assert delivered == [5]
    assert result.results == [None] and not result.stopped
    assert raced == [], "no tasks for a callback that finished in its first step"
    assert inspect.getcoroutinestate(suspended) == inspect.CORO_CLOSED


def on_this_loop(consumer):  # type: ignore[no-untyped-def]
    """The fixture's consumer (made outside any loop), its tasks and the events Faust's race
    waits on bound to the test's own event loop."""
    consumer.loop = asyncio.get_running_loop()
    consumer.suspend_flow, consumer._stopped, consumer._crashed = Event(), Event(), Event()
    return consumer


async def test_a_blocked_record_callback_still_gives_way_to_a_suspended_flow(consumer) -> None:  # type: ignore[no-untyped-def]
    consumer = on_this_loop(consumer[0])
    buffer_has_room = asyncio.Event()
    outcome: list[str] = []

    async def callback() -> None:
        outcome.append("started")
        try:
            await buffer_has_room.wait()  # e.g. a full stream buffer during a rebalance
            outcome.append("delivered")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    waiting = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
    for _ in range(10):
        await asyncio.sleep(0)
    assert outcome == ["started"] and not waiting.done()
    consumer.suspend_flow.set()
    result = await asyncio.wait_for(waiting, timeout=5)
    assert outcome == ["started", "cancelled"]
    assert result.results == [True], "the suspension won the race"


async def test_a_blocked_record_callback_that_resumes_is_delivered(consumer) -> None:  # type: ignore[no-untyped-def]
    consumer = on_this_loop(consumer[0])
    buffer_has_room = asyncio.Event()

    async def callback() -> str:
        await buffer_has_room.wait()
        return "delivered"

    waiting = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0)
    buffer_has_room.set()
    result = await asyncio.wait_for(waiting, timeout=5)
    assert result.results == ["delivered"] and not result.stopped


class RecordingBatch:
    """aiokafka's own batch builder (its size limit decides when a batch is full), noting
    the keys it took."""

    def __init__(self, batch_size: int) -> None:
        self.builder = BatchBuilder(batch_size, 0)
        self.keys: list[bytes | None] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: None) -> object:
        taken = self.builder.append(key=key, value=value, timestamp=timestamp)
        if taken is not None:
            self.keys.append(key)
        return taken


class FakeKafkaProducer:
    def __init__(self, partitions: int, batch_size: int) -> None:
        self.partitions, self.batch_size = partitions, batch_size
        self.queued: list[tuple[str, int, list[bytes | None]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> RecordingBatch:
        return RecordingBatch(self.batch_size)

    async def send_batch(self, batch: RecordingBatch, topic: str, *, partition: int):  # type: ignore[no-untyped-def]
        self.queued.append((topic, partition, batch.keys))
        return asyncio.get_running_loop().create_future()


def batching_producer(consumer, monkeypatch, fake: FakeKafkaProducer):  # type: ignore[no-untyped-def]
    producer = consumer[0].app.producer
    monkeypatch.setattr(producer, "_ensure_producer", lambda: fake)
    return producer


async def test_records_go_in_batches_where_the_partitioner_puts_their_keys(  # type: ignore[no-untyped-def]
    consumer, monkeypatch
) -> None:
    fake = FakeKafkaProducer(partitions=4, batch_size=16_384)
    producer = batching_producer(consumer, monkeypatch, fake)
    keys = [f"lead-{n}".encode() for n in range(40)]
    batches = await producer.send_many("buyer.acme", [(key, b"{}") for key in keys])

    every = [0, 1, 2, 3]
    expected: dict[int, list[bytes | None]] = {}
    for key in keys:
        expected.setdefault(DefaultPartitioner()(key, every, every), []).append(key)
    assert {p: ks for _, p, ks in fake.queued} == expected, "in order, one batch per partition"
    assert len(fake.queued) == len(expected) > 1
    assert [count for _, count in batches] == [len(ks) for _, _, ks in fake.queued]


async def test_a_full_batch_is_queued_and_the_next_one_starts(consumer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake = FakeKafkaProducer(partitions=4, batch_size=400)
    producer = batching_producer(consumer, monkeypatch, fake)
    keys = [f"k{n}".encode() for n in range(12)]
    batches = await producer.send_many("app-caps-changelog", [(k, b"x" * 80) for k in keys], 2)

    assert len(batches) > 1
    assert {p for _, p, _ in fake.queued} == {2}
    assert [k for _, _, ks in fake.queued for k in ks] == keys, "every record once, in order"
    assert sum(count for _, count in batches) == len(keys)
    # A record larger than a whole batch still goes, alone in its own.
    await producer.send_many("leads.rejected", [(b"big", b"x" * 2_000), (b"small", b"x")], 0)
    assert [ks for _, _, ks in fake.queued[-2:]] == [[b"big"], [b"small"]]
