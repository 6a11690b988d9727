from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from faust.types import TP
from prometheus_client import CollectorRegistry

from router import agents, catalog, metrics
from router.app import create_app, fetch_stalled_partitions
from router.observability import GroupProgress
from router.settings import Settings
from router.stalls import StallWatch

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("given", "expected"), [({}, 0), ({"standby_replicas": 1}, 1)])
def test_standby_replicas_reach_faust(tmp_path: Path, given: dict[str, int], expected: int) -> None:
    # Standby replicas read every changelog record a second time; none unless asked for.
    settings = Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path, **given)
    app, _ = create_app(settings, [])
    assert app.conf.table_standby_replicas == expected


async def test_a_stalled_stream_partition_is_logged_counted_and_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path)
    app, _ = create_app(settings, [])
    stalled = TP(catalog.INTAKE["call"], 1)
    monkeypatch.setattr(app.consumer, "assignment", lambda: {stalled})
    app.consumer._set_active_tps(set())  # left out, for no reason Faust knows of
    app.tables.recovery.completed.set()
    watch: StallWatch[TP] = StallWatch(after_s=0)
    router_metrics = metrics.create(CollectorRegistry())

    app.rebalancing = True
    await fetch_stalled_partitions(app, watch, router_metrics)
    assert stalled not in app.consumer._get_active_partitions(), "a rebalance pauses on purpose"

    app.rebalancing = False
    with caplog.at_level(logging.WARNING, logger="router.app"):
        await fetch_stalled_partitions(app, watch, router_metrics)
    assert stalled in app.consumer._get_active_partitions()
    assert router_metrics.partitions_refetched.labels("unknown")._value.get() == 1
    assert any(getattr(r, "topic", None) == stalled.topic for r in caplog.records)


async def test_a_fetched_partition_making_no_progress_is_sought_to_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path)
    app, _ = create_app(settings, [])
    stuck, idle = TP(catalog.INTAKE["click"], 1), TP(catalog.INTAKE["form"], 0)
    monkeypatch.setattr(app.consumer, "assignment", lambda: {stuck, idle})
    app.consumer._set_active_tps({stuck, idle})  # both fetched, as far as Faust knows
    app.consumer._read_offset.update({stuck: 30, idle: 10})
    app.tables.recovery.completed.set()
    sought: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        sought.append((tp, offset))

    monkeypatch.setattr(app.consumer, "_seek", seek)
    router_metrics = metrics.create(CollectorRegistry())
    progress = {
        TopicPartition(stuck.topic, stuck.partition): GroupProgress(committed=22, end=180),
        TopicPartition(idle.topic, idle.partition): GroupProgress(committed=11, end=12),
    }
    with caplog.at_level(logging.WARNING, logger="router.app"):
        await fetch_stalled_partitions(app, StallWatch(after_s=0), router_metrics, progress)

    assert sought == [(stuck, 22)], "only the partition whose records wait, to its commit"
    assert router_metrics.partitions_refetched.labels("no_progress")._value.get() == 1
    (logged,) = [r for r in caplog.records if getattr(r, "topic", None) == stuck.topic]
    assert logged.state["active"] is True and logged.state["read_offset"] == 30


async def test_offsets_skipped_by_a_fetch_reach_the_metric(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    app, _ = create_app(
        Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path), [], registry=registry
    )
    await app.consumer._add_gap(TP(catalog.SCREEN, 1), 10, 13)
    labels = {"topic": catalog.SCREEN}
    assert registry.get_sample_value("router_offsets_skipped_total", labels) == 3


def test_batch_settings_reach_the_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[agents.Deps] = []
    monkeypatch.setattr(agents, "register", lambda topology, deps: seen.append(deps))
    settings = Settings(
        bootstrap_servers="127.0.0.1:1", data_dir=tmp_path, batch_max_events=7, batch_within_ms=3
    )
    create_app(settings, [])
    (deps,) = seen
    assert deps.batch_max_events == 7
    assert deps.batch_within.total_seconds() == 0.003


async def test_a_failing_stall_check_does_not_escape_the_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path)
    app, _ = create_app(settings, [])
    stalled = TP(catalog.INTAKE["call"], 1)
    monkeypatch.setattr(app.consumer, "assignment", lambda: {stalled})
    app.consumer._set_active_tps(set())
    app.tables.recovery.completed.set()

    async def broker_unreachable(tps: object) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(app.consumer, "fetch_again", broker_unreachable)
    # A Faust timer that raises crashes the worker.
    await fetch_stalled_partitions(app, StallWatch(after_s=0), metrics.create(CollectorRegistry()))
