"""The consumer holds stream partitions between an assignment and Faust's seek to committed.

Faust resumes stream partitions before it seeks them (tables/recovery.py); records fetched in
between made it drop re-fetched records and commit past events it never processed.
"""

from __future__ import annotations

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

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


async def test_resumes_pass_straight_through_once_sought(consumer) -> None:  # type: ignore[no-untyped-def]
    consumer, _ = consumer
    await consumer.on_partitions_assigned({STREAM}, 1)
    await consumer.perform_seek()
    consumer.pause_partitions({STREAM})

    consumer.resume_partitions({STREAM})
    assert STREAM in consumer._get_active_partitions()


async def test_a_new_assignment_holds_again(consumer) -> None:  # type: ignore[no-untyped-def]
    consumer, _ = consumer
    await consumer.on_partitions_assigned({STREAM}, 1)
    await consumer.perform_seek()
    consumer.pause_partitions({STREAM})

    await consumer.on_partitions_assigned({STREAM}, 2)
    consumer.resume_partitions({STREAM})
    assert STREAM not in consumer._get_active_partitions()
