"""Embedded-broker fixtures and a real `router worker` subprocess harness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from router import catalog, embedded, readback
from router.admin import ensure_topics
from router.config_file import load_buyers
from router.embedded import EmbeddedBroker
from router.workers import WorkerProcesses

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker for tests that only need topics, not a clean slate."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with embedded.running(log) as running:
        yield running


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own: pipeline tests assert over whole topics."""
    with embedded.running(tmp_path / "tansu.log") as running:
        yield running


class Workers(WorkerProcesses):
    """Worker subprocesses tuned for tests: a short session timeout, so a killed worker's
    partitions move on within seconds."""

    def __init__(
        self, broker: EmbeddedBroker, buyers_file: Path, log_dir: Path, partitions: int = 2
    ) -> None:
        super().__init__(
            broker.bootstrap_servers,
            buyers_file,
            log_dir,
            app_id="router-test",
            partitions=partitions,
            env={"ROUTER_SESSION_TIMEOUT_S": "6", "ROUTER_REBALANCE_TIMEOUT_S": "10"},
        )
        self.broker = broker

    def stop_all(self) -> None:
        self.stop()


@pytest.fixture
def workers(
    fresh_broker: EmbeddedBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[Path], Workers]]:
    made: list[Workers] = []

    def make(buyers_file: Path, partitions: int = 2) -> Workers:
        created = Workers(fresh_broker, buyers_file, tmp_path, partitions)
        # As `router topics create` does before any traffic in a deployment: a producer that
        # wins the race against the worker's own creation gets broker-default partitions.
        specs = catalog.catalog(created.app_id, (b.id for b in load_buyers(buyers_file)))
        asyncio.run(ensure_topics(fresh_broker.bootstrap_servers, specs, created.partitions, 1))
        made.append(created)
        return created

    yield make
    for created in made:
        created.stop_all()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(created.logs())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def read(broker: EmbeddedBroker, *topics: str) -> list[ConsumerRecord]:
    return asyncio.run(readback.read_all(broker.bootstrap_servers, topics))


def wait_for(
    probe: Callable[[], tuple[bool, object]], timeout: float, interval: float = 1.0
) -> object:
    """Poll `probe` until it reports done, or fail with its last observation."""
    deadline = time.monotonic() + timeout
    while True:
        done, seen = probe()
        if done:
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"not done within {timeout}s; last seen: {seen}")
        time.sleep(interval)
