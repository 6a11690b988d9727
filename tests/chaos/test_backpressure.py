"""A burst at 10x the normal rate: latency may degrade, memory must not run away, nothing lost.

One worker (it holds every partition, so the whole backlog is its own) takes a calm 100
leads/s, then 1,000 leads/s for 10 s (or as fast as the producer manages), then calm again.
Latency is the decision's `decided_at` minus the intake record's timestamp, grouped by the
phase the lead was produced in. Memory is the worker's peak RSS (VmHWM).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chaos_conftest import (
    PARTITIONS,
    WORKER_ENV,
    Load,
    audit,
    peak_rss_kib,
    percentile,
    wait_ready,
)

from router.buyers import Buyer

pytestmark = pytest.mark.slow

CALM = 100  # leads/s
BURST = 10 * CALM
CALM_S = 20.0
BURST_S = 10.0
RSS_BOUND_KIB = 1024 * 1024  # 1 GiB: generous, a leak or an unbounded buffer blows through it


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_backpressure(workers, buyers_file: tuple[Path, dict[str, Buyer]]) -> None:  # type: ignore[no-untyped-def]
    path, buyers = buyers_file
    group = workers(path, partitions=PARTITIONS)
    worker = group.start(**WORKER_ENV)
    wait_ready(group, worker)
    rss_ready = _rss_kib(worker.pid)

    samples: list[int] = []
    sampling = threading.Event()

    def sample() -> None:
        deadline = time.monotonic() + 600
        while not sampling.is_set() and time.monotonic() < deadline and worker.poll() is None:
            try:
                samples.append(_rss_kib(worker.pid))
            except OSError:
                return
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    phases: dict[str, tuple[datetime, datetime]] = {}
    load = Load(group.broker.bootstrap_servers, rate=CALM, seed=5).start()
    try:
        for name, rate, seconds in (
            ("calm_before", CALM, CALM_S),
            ("burst", BURST, BURST_S),
            ("calm_after", CALM, CALM_S),
        ):
            load.rate = rate
            sent_before = load.sent
            begin = datetime.now(UTC)
            time.sleep(seconds)
            phases[name] = (begin, datetime.now(UTC))
            if name == "burst":
                burst_rate = round((load.sent - sent_before) / seconds)
    finally:
        load.stop()
    stopped = time.monotonic()

    result = audit(group.broker, buyers, group.app_id, since=stopped, log_dir=group.log_dir)
    sampling.set()
    sampler.join(5)
    peak_kib = peak_rss_kib(worker.pid) if worker.poll() is None else max(samples, default=0)

    latency_ms: dict[str, list[float]] = {name: [] for name in phases}
    for records in result.decisions.values():
        timings = records[0]["timings"]
        if not timings.get("received_at"):
            continue
        received = datetime.fromisoformat(timings["received_at"])
        decided = datetime.fromisoformat(timings["decided_at"])
        for name, (begin, end) in phases.items():
            if begin <= received < end:
                latency_ms[name].append((decided - received).total_seconds() * 1000)
    latency: dict[str, Any] = {
        name: {
            "n": len(values),
            "p50_ms": percentile(values, 50),
            "p99_ms": percentile(values, 99),
        }
        for name, values in latency_ms.items()
    }

    result.violations += [
        *([] if worker.poll() is None else [f"worker died: exit {worker.returncode}"]),
        *(
            [f"peak RSS {peak_kib} KiB over {RSS_BOUND_KIB} KiB"]
            if peak_kib > RSS_BOUND_KIB
            else []
        ),
    ]
    line = result.report(
        "backpressure",
        burst_rate=burst_rate,
        latency=latency,
        rss_ready_mib=round(rss_ready / 1024),
        peak_rss_mib=round(peak_kib / 1024),
        load={"sent": load.sent, "acked": load.acked, "failed": load.failed},
    )
    assert burst_rate >= 5 * CALM, f"the producer only managed {burst_rate}/s"
    assert line["violations"] == []
