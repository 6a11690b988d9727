from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from router import metrics

pytestmark = pytest.mark.unit

FORBIDDEN_LABELS = {"lead_id", "event_id", "email", "phone", "fingerprint", "ip"}


def families() -> list:  # type: ignore[type-arg]
    registry = CollectorRegistry()
    metrics.create(registry)
    return list(registry.collect())


def test_names_carry_units_and_counters_end_in_total() -> None:
    for family in families():
        assert family.name.startswith("router_")
        if family.type == "counter":
            # prometheus_client strips _total from the family name; samples carry it.
            assert any(s.name.endswith("_total") for s in family.samples) or not family.samples
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


def test_labels_are_low_cardinality() -> None:
    registry = CollectorRegistry()
    created = metrics.create(registry)
    for metric in vars(created).values():
        assert not FORBIDDEN_LABELS & set(metric._labelnames), metric


def test_latency_buckets_span_one_millisecond_to_a_minute() -> None:
    assert metrics.LATENCY_BUCKETS[0] == 0.001
    assert metrics.LATENCY_BUCKETS[-1] == 60.0
    assert list(metrics.LATENCY_BUCKETS) == sorted(metrics.LATENCY_BUCKETS)


def test_a_fresh_registry_per_app_keeps_tests_independent() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    metrics.create(first).rebalances.inc()
    metrics.create(second)
    assert first.get_sample_value("router_rebalances_total") == 1.0
    assert second.get_sample_value("router_rebalances_total") == 0.0
