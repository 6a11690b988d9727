"""`router bench` end to end on a small run: one JSON line with every key, sane values.

Asserts shape and conservation only, never speed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

RATES = ("pipeline_leads_per_s", "topology_limit_leads_per_s", "raw_pipe_msgs_per_s")
KEYS = {
    "leads",
    "partitions",
    "workers",
    "hops_per_lead",
    "messages_written_per_lead",
    *RATES,
    "ratio_vs_topology",
    "ratio_vs_raw_pipe",
    "latency_ms",
    "latency_saturated_ms",
    "paced_rate",
    "cpu_s_per_1k_leads",
    "stage_s_per_1k_leads",
    "topology_cpu_s_per_1k_leads",
    "peak_rss_mb",
    "decided",
    "conserved",
}


def test_bench_prints_one_complete_json_line() -> None:
    command = [sys.executable, "-m", "router", "bench"]
    args = ["--leads", "300", "--partitions", "2", "--workers", "1", "--rate", "100"]
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=180, check=False
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{done.stderr[-4000:]}"
    report = json.loads(lines[-1])
    assert "error" not in report, f"{report}\nstderr:\n{done.stderr[-4000:]}"
    assert done.returncode == 0, done.stderr[-4000:]

    assert set(report) >= KEYS, KEYS - set(report)
    assert (report["leads"], report["partitions"], report["workers"]) == (300, 2, 1)
    assert report["hops_per_lead"] == 3
    assert report["conserved"] is True and report["decided"] == 300
    for key in RATES:
        assert isinstance(report[key], float | int) and report[key] > 0, key
    assert report["ratio_vs_topology"] > 0 and report["ratio_vs_raw_pipe"] > 0
    runs = report["topology_limit_runs_leads_per_s"]
    assert len(runs) == 2 and report["topology_limit_leads_per_s"] == max(runs)
    assert report["messages_written_per_lead"] > 1
    assert report["paced_rate"] == 100
    assert report["cpu_s_per_1k_leads"] > 0
    assert report["topology_cpu_s_per_1k_leads"] > 0
    stages = report["stage_s_per_1k_leads"]
    assert all(stages[s] > 0 for s in ("intake", "screen", "offer")), stages
    assert report["peak_rss_mb"] > 10
    for key in ("latency_ms", "latency_saturated_ms"):
        latency = report[key]
        assert set(latency) == {"p50", "p99", "max"}, key
        assert all(isinstance(v, float | int) for v in latency.values()), key
        assert 0 <= latency["p50"] <= latency["p99"] <= latency["max"], key
