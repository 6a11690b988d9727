from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from router import catalog, metrics
from router.bench import (
    KEYS,
    Phase,
    buyer_catalog,
    buyers_yaml,
    cpu_ticks,
    decision_latency_ms,
    fastest,
    latency_summary,
    messages_written,
    ordered,
    paced_leads,
    per_1k_leads,
    per_lead,
    percentile,
    phase_timeout_s,
    ratio,
    router_written_topics,
    stage3_writes_for,
    stage_seconds,
    vm_hwm_mb,
)
from router.bench_topology import Spreader, TopologyResult, buyer_of, fingerprint
from router.config_file import load_buyers

pytestmark = pytest.mark.unit


# -- the 50-buyer catalog ----------------------------------------------------------------------


def test_buyer_catalog_is_a_valid_buyers_file(tmp_path: Path) -> None:
    path = tmp_path / "buyers.yaml"
    path.write_text(buyers_yaml(buyer_catalog(50, seed=3)))
    buyers = load_buyers(path)
    assert len(buyers) == 50
    assert len({b.id for b in buyers}) == 50


def test_buyer_catalog_is_varied() -> None:
    buyers = buyer_catalog(50)
    verticals = Counter(v for b in buyers for v in b["verticals"])
    assert set(verticals) == {"auto_insurance", "mortgage", "education", "home_services", "saas"}
    assert all(count == 10 for count in verticals.values())
    assert len({tuple(b["channels"]) for b in buyers}) > 5
    assert any("states" in b for b in buyers) and any("states" not in b for b in buyers)
    assert len({b["price"] for b in buyers}) > 40
    assert len({b["priority"] for b in buyers}) > 20
    assert len({b["timezone"] for b in buyers}) > 1
    assert all("trial" in b["channels"] for b in buyers if b["verticals"] == ["saas"])


def test_buyer_catalog_caps_mostly_generous_a_few_small() -> None:
    buyers = buyer_catalog(50)
    small = [b for b in buyers if b.get("caps", {}).get("daily", 10**9) <= 100]
    assert 3 <= len(small) <= 10
    generous = [b for b in buyers if b.get("caps", {}).get("daily", 10**9) >= 1_000_000]
    assert len(generous) + len(small) == 50


def test_buyer_catalog_is_deterministic_per_seed() -> None:
    assert buyer_catalog(50, seed=1) == buyer_catalog(50, seed=1)
    assert buyer_catalog(50, seed=1) != buyer_catalog(50, seed=2)


# -- messages written per lead -----------------------------------------------------------------


def test_router_written_topics_are_what_the_router_itself_writes() -> None:
    topics = router_written_topics("app", ["a", "b"])
    assert len(topics) == len(set(topics))
    assert {
        catalog.SCREEN,
        catalog.OFFERS,
        catalog.DECISIONS,
        catalog.REJECTED,
        catalog.UNSOLD,
        catalog.FEEDBACK_RESULTS,
        catalog.PUBLISHER_SIGNALS,
        catalog.PUBLISHER_QUALITY,  # a control topic, but the publishers agent writes it
        "app-dedup-changelog",
        "app-caps-changelog",
        "app-publishers-changelog",
        "buyer.a",
        "buyer.b",
    } == set(topics)
    # Written by others: intake producers, buyers (feedback), telephony (call events), and
    # operators (buyer config, suppressions).
    others = {
        *catalog.INTAKE.values(),
        catalog.FEEDBACK,
        catalog.CALL_EVENTS,
        catalog.BUYERS_CONFIG,
        catalog.SUPPRESSION,
    }
    assert not set(topics) & others


def test_messages_written_sums_end_offset_deltas() -> None:
    before = {("t", 0): 10, ("t", 1): 0}
    after = {("t", 0): 15, ("t", 1): 7, ("u", 0): 3}
    assert messages_written(before, after) == 5 + 7 + 3
    assert per_lead(15, 3) == 5.0
    assert per_lead(15, 0) == 0.0


def test_stage3_writes_make_the_topology_write_what_the_router_writes() -> None:
    assert stage3_writes_for(5.877) == pytest.approx(2.877)
    assert stage3_writes_for(6.0) == 3.0
    assert stage3_writes_for(2.5) == 1.0  # never fewer than the decision itself


@pytest.mark.parametrize("per_item", [1.0, 1.25, 2.877, 3.0])
def test_spreader_spreads_fractional_writes(per_item: float) -> None:
    spread = Spreader(per_item)
    takes = [spread.take() for _ in range(1000)]
    assert min(takes) >= 1
    assert abs(sum(takes) - per_item * 1000) < 1


def test_topology_keys_are_stable_hashes() -> None:
    key = fingerprint(b'{"a": 1}')
    assert key == fingerprint(b'{"a": 1}') and len(key) == 64
    assert buyer_of(key) == buyer_of(key)
    assert {buyer_of(fingerprint(str(i).encode())) for i in range(2000)} == {
        f"b{n:02d}" for n in range(50)
    }


# -- latency -----------------------------------------------------------------------------------


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_summary_is_ordered_and_rounded() -> None:
    summary = latency_summary([3.14159, 1.0, 250.0, 2.0])
    assert summary == {"p50": 2.0, "p99": 250.0, "max": 250.0}
    assert latency_summary([]) == {"p50": None, "p99": None, "max": None}


def test_decision_latency_from_record_timestamps() -> None:
    decision = {"timings": {"received_at": "2024-05-01T12:00:00.250000Z"}}
    received_ms = 1714564800250
    assert decision_latency_ms(received_ms + 42, decision) == pytest.approx(42.0)
    offset = {"timings": {"received_at": "2024-05-01T08:00:00.250+00:00"}}
    assert decision_latency_ms(received_ms - 4 * 3_600_000, offset) == pytest.approx(0.0)
    assert decision_latency_ms(1, {"timings": {}}) is None


def _decision(topic: str, partition: int, offset: int) -> dict[str, object]:
    return {
        "intake": {"topic": topic, "partition": partition, "offset": offset},
        "timings": {"received_at": "1970-01-01T00:00:01Z"},
    }


def test_phase_owns_its_intake_range_and_counts_each_decision_once() -> None:
    phase = Phase(start={("intent.form", 0): 10}, end={("intent.form", 0): 20})
    assert phase.owns(_decision("intent.form", 0, 10))
    assert not phase.owns(_decision("intent.form", 0, 9))
    assert not phase.owns(_decision("intent.form", 0, 20))
    assert not phase.owns(_decision("intent.call", 0, 12))
    assert phase.add(b"a", 1_500, _decision("intent.form", 0, 10))
    assert not phase.add(b"a", 1_900, _decision("intent.form", 0, 10))  # re-delivery
    assert phase.add(b"b", 3_500, _decision("intent.form", 0, 11))
    assert phase.decided == 2
    assert phase.latencies_ms == [500.0, 2500.0]
    assert phase.leads_per_s() == pytest.approx(0.5)


# -- process accounting ------------------------------------------------------------------------


def test_cpu_ticks_reads_utime_and_stime_even_with_odd_process_names() -> None:
    fields = ["S", *[str(n) for n in range(4, 14)], "250", "50", *["0"] * 30]
    stat = "4242 (python -m (router)) " + " ".join(fields)
    assert cpu_ticks(stat) == 300


def test_vm_hwm_in_mib() -> None:
    status = "Name:\tpython\nVmPeak:\t  999 kB\nVmHWM:\t  204800 kB\nVmRSS:\t 1 kB\n"
    assert vm_hwm_mb(status) == 200.0
    with pytest.raises(ValueError):
        vm_hwm_mb("Name:\tpython\n")


# -- run shape ---------------------------------------------------------------------------------


def test_paced_run_is_about_ten_seconds_at_most_n() -> None:
    assert paced_leads(20_000, 1000) == 10_000
    assert paced_leads(300, 100) == 300
    assert paced_leads(5, 0.01) == 1


def test_phase_timeout_grows_with_leads() -> None:
    assert 60 < phase_timeout_s(300) < phase_timeout_s(20_000) < 1000


def test_the_topology_limit_is_its_fastest_run() -> None:
    def run(seconds: float) -> TopologyResult:
        return TopologyResult(leads=1000, seconds=seconds, stage3_writes=5.0, messages_written=8000,
                              cpu_seconds=0.4)  # fmt: skip

    slow, quick, middle = run(0.5), run(0.4), run(0.45)
    assert fastest([slow, quick, middle]) is quick
    assert fastest([slow]) is slow
    with pytest.raises(ValueError):
        fastest([])


def test_ratio_and_report_order() -> None:
    assert ratio(500, 2000) == 0.25
    assert ratio(1, 0) is None
    report = ordered({"extra": 1, **{key: 0 for key in reversed(KEYS)}})
    assert list(report) == [*KEYS, "extra"]


# -- where a worker's CPU goes -----------------------------------------------------------------


def test_stage_seconds_reads_each_stages_sum_from_a_workers_metrics() -> None:
    registry = CollectorRegistry()
    created = metrics.create(registry)
    for stage, seconds in (("intake", 0.25), ("intake", 0.5), ("offer", 0.125)):
        created.stage_seconds.labels(stage).observe(seconds)
    created.end_to_end_seconds.observe(9.0)  # another histogram's sum is not a stage's

    found = stage_seconds(generate_latest(registry).decode())

    assert found == {"intake": 0.75, "offer": 0.125}


def test_stage_seconds_per_1k_leads() -> None:
    assert per_1k_leads({"screen": 0.5, "intake": 2.0}, 4000) == {"intake": 0.5, "screen": 0.125}
    assert per_1k_leads({"intake": 2.0}, 0) == {}
