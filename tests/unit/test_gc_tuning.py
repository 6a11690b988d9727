from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from router import gc_tuning, metrics

pytestmark = pytest.mark.unit


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """These tests change process-wide state; put CPython's back for the rest of the run."""
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.callbacks[:] = callbacks


def pauses() -> tuple[CollectorRegistry, metrics.Metrics]:
    registry = CollectorRegistry()
    return registry, metrics.create(registry)


def count(registry: CollectorRegistry, generation: str) -> float:
    value = registry.get_sample_value("router_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def test_tune_freezes_the_start_up_heap_and_raises_the_young_threshold(
    collector_restored: None,
) -> None:
    survivor = [object() for _ in range(100)]  # alive at start-up, so frozen
    _, middle, old = gc.get_threshold()
    gc_tuning.tune(25_000)
    assert gc.get_threshold() == (25_000, middle, old)
    assert gc.get_freeze_count() >= len(survivor)
    # Frozen objects are in no generation: no collection walks them again.
    assert not any(item is survivor for g in range(3) for item in gc.get_objects(g))


def test_threshold_zero_leaves_the_collector_as_cpython_set_it(collector_restored: None) -> None:
    before = gc.get_threshold()
    gc_tuning.tune(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_every_collection_is_observed_by_generation_until_watching_stops(
    collector_restored: None,
) -> None:
    registry, router_metrics = pauses()
    stop = gc_tuning.watch_pauses(router_metrics.gc_pause_seconds)
    gc.collect(0)
    gc.collect(2)
    assert count(registry, "0") >= 1
    assert count(registry, "2") >= 1
    full_pauses = count(registry, "2")
    stop()
    gc.collect(2)
    assert count(registry, "2") == full_pauses
    stop()  # a second stop is harmless
