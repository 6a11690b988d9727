"""`router bench`: the router's throughput, latency and cost against two baselines.

One run, on the embedded broker (or `--broker`):

1. the router: a 50-buyer catalog, W `router worker` processes, a backlog of N leads drained
   (throughput, messages written per lead, CPU, peak RSS, saturated latency), then a paced feed
   at `--rate` on the same workers (end-to-end latency);
2. the topology limit and 3. the raw pipe (`router/bench_topology.py`), on the same payloads.

Progress goes to stderr; stdout gets exactly one JSON line. Every wait has a deadline: a run
that cannot finish exits non-zero with an "error" in that JSON instead of hanging.

The helpers at the top are pure (no I/O) and unit-tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import shutil
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from faust.types import TP as FaustTP

from router import catalog
from router.bench_topology import (
    TOPOLOGY_FIXED_WRITES,
    TOPOLOGY_HOPS,
    BenchTimeout,
    TopologyResult,
    progress,
    raw_pipe,
    topology_limit,
)
from router.buyers import US_STATES
from router.contract import CHANNELS
from router.transport import true_end_offsets
from router.workers import WorkerProcesses

# -- pure helpers ------------------------------------------------------------------------------

BENCH_VERTICALS = ("auto_insurance", "mortgage", "education", "home_services", "saas")
_SHORT = {
    "auto_insurance": "auto",
    "mortgage": "mtg",
    "education": "edu",
    "home_services": "home",
    "saas": "saas",
}
_PRICES = {
    "auto_insurance": (15.0, 60.0),
    "mortgage": (30.0, 110.0),
    "education": (8.0, 40.0),
    "home_services": (10.0, 45.0),
    "saas": (5.0, 25.0),
}
_STATES = sorted(US_STATES - {"PR", "VI", "GU", "AS", "MP"})  # the 50 states and DC
_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Phoenix",
)
SMALL_CAP_EVERY = 9  # buyers 0, 9, 18, ...: small caps, so cap handling and re-offers engage
PACED_SECONDS = 10.0
STARTUP_ALLOWANCE_S = 90.0
SLOWEST_PLAUSIBLE_LEADS_PER_S = 50.0
TOPOLOGY_RUNS = 2  # the topology limit is the best of this many runs


def buyer_catalog(count: int = 50, seed: int = 0) -> list[dict[str, Any]]:
    """A varied, deterministic buyers file content: every vertical, channel mixes, state
    lists, ZIP prefixes, prices, priorities, consent; caps mostly generous, a few small."""
    rng = random.Random(seed)
    buyers: list[dict[str, Any]] = []
    for i in range(count):
        vertical = BENCH_VERTICALS[i % len(BENCH_VERTICALS)]
        channels = sorted(rng.sample(CHANNELS, rng.randint(2, 4)), key=CHANNELS.index)
        if vertical == "saas" and "trial" not in channels:
            channels.append("trial")
        buyer: dict[str, Any] = {
            "id": f"{_SHORT[vertical]}-{i:02d}",
            "name": f"Bench {vertical.replace('_', ' ').title()} Buyer {i:02d}",
            "verticals": [vertical],
            "channels": channels,
            "min_score": rng.choice((0, 0, 20, 40, 60)),
            "price": round(rng.uniform(*_PRICES[vertical]), 2),
            "priority": rng.randint(1, 200),
            "timezone": rng.choice(_ZONES),
        }
        where = rng.random()
        if where < 0.5:
            buyer["states"] = sorted(rng.sample(_STATES, rng.randint(3, 20)))
        elif where < 0.6:
            buyer["postal_codes"] = sorted({str(rng.randint(0, 9)) for _ in range(3)})
        if i % SMALL_CAP_EVERY == 0:
            buyer["caps"] = {"hourly": rng.randint(2, 5), "daily": rng.randint(10, 30)}
        elif rng.random() < 0.5:
            buyer["caps"] = {"daily": 1_000_000}
        elif rng.random() < 0.5:
            buyer["caps"] = {"hourly": 100_000, "daily": 1_000_000}
        if rng.random() < 0.1:
            buyer["requires_consent"] = True
        buyers.append(buyer)
    return buyers


def buyers_yaml(buyers: Sequence[Mapping[str, Any]]) -> str:
    return yaml.safe_dump({"buyers": [dict(b) for b in buyers]}, sort_keys=False)


def router_written_topics(app_id: str, buyer_ids: Iterable[str]) -> list[str]:
    """Every topic the router writes: not intake, feedback or the operators' control topics."""
    return [
        s.name
        for s in catalog.catalog(app_id, buyer_ids)
        if s.role in ("internal", "output", "changelog") or s.name == catalog.PUBLISHER_QUALITY
    ]


def messages_written(before: Mapping[Any, int], after: Mapping[Any, int]) -> int:
    """Records appended between two end-offset snapshots (keys: topic-partitions)."""
    return sum(end - before.get(tp, 0) for tp, end in after.items())


def per_lead(messages: int, leads: int) -> float:
    return messages / leads if leads > 0 else 0.0


def stage3_writes_for(messages_per_lead: float) -> float:
    """Writes per lead in the topology's stage 3 so its total matches the router's
    (stages 1 and 2 write TOPOLOGY_FIXED_WRITES); at least 1, the decision."""
    return max(1.0, round(messages_per_lead - TOPOLOGY_FIXED_WRITES, 3))


def stage_seconds(exposition: str) -> dict[str, float]:
    """Seconds each stage spent in its events (`router_stage_seconds_sum` by stage), read
    from one worker's /metrics text: the router's own logic, without Faust, Kafka I/O or
    encoding the records it sends."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "router_stage_seconds_sum":
                stage = sample.labels["stage"]
                found[stage] = found.get(stage, 0.0) + sample.value
    return found


def per_1k_leads(seconds: Mapping[str, float], leads: int) -> dict[str, float]:
    return {name: round(s / leads * 1000.0, 3) for name, s in sorted(seconds.items()) if leads}


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(values_ms: Iterable[float]) -> dict[str, float | None]:
    ordered = sorted(values_ms)
    if not ordered:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(percentile(ordered, 50), 1),
        "p99": round(percentile(ordered, 99), 1),
        "max": round(ordered[-1], 1),
    }


def decision_latency_ms(record_timestamp_ms: int, decision: Mapping[str, Any]) -> float | None:
    """Decision record timestamp minus the intake record's timestamp (`timings.received_at`)."""
    received = (decision.get("timings") or {}).get("received_at")
    if not received:
        return None
    received_ms = datetime.fromisoformat(received).timestamp() * 1000.0
    return record_timestamp_ms - received_ms


def cpu_ticks(stat: str) -> int:
    """utime + stime from a /proc/<pid>/stat line (fields 14 and 15; comm may hold spaces)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def vm_hwm_mb(status: str) -> float:
    """Peak resident set size from /proc/<pid>/status, in MiB."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise ValueError("no VmHWM line")


def paced_leads(leads: int, rate: float) -> int:
    return max(1, min(leads, int(rate * PACED_SECONDS)))


def phase_timeout_s(leads: int) -> float:
    """How long one phase may take before the bench gives up: generous, but finite."""
    return STARTUP_ALLOWANCE_S + leads / SLOWEST_PLAUSIBLE_LEADS_PER_S


def fastest(runs: Sequence[TopologyResult]) -> TopologyResult:
    """The limit is the best the dataflow did: one run of a few seconds moved by ~10 % between
    runs back to back on one broker (docs/performance.md, row 39)."""
    if not runs:
        raise ValueError("at least one topology run")
    return max(runs, key=lambda run: run.leads_per_s)


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator > 0 else None


@dataclass
class Phase:
    """Distinct decisions of one feed, told apart by intake coordinates: a decision belongs
    to the phase if its intake offset lies in [start, end) of its intake partition."""

    start: Mapping[tuple[str, int], int]
    end: Mapping[tuple[str, int], int]
    keys: set[bytes] = field(default_factory=set)
    latencies_ms: list[float] = field(default_factory=list)
    first_ts: int | None = None
    last_ts: int | None = None

    def owns(self, decision: Mapping[str, Any]) -> bool:
        intake = decision.get("intake") or {}
        tp = (str(intake.get("topic")), int(intake.get("partition", -1)))
        offset = int(intake.get("offset", -1))
        return self.start.get(tp, 0) <= offset < self.end.get(tp, 0)

    def add(self, key: bytes, timestamp_ms: int, decision: Mapping[str, Any]) -> bool:
        """Count a decision; False for an at-least-once re-delivery already counted."""
        if key in self.keys:
            return False
        self.keys.add(key)
        latency = decision_latency_ms(timestamp_ms, decision)
        if latency is not None:
            self.latencies_ms.append(latency)
        self.first_ts = timestamp_ms if self.first_ts is None else min(self.first_ts, timestamp_ms)
        self.last_ts = timestamp_ms if self.last_ts is None else max(self.last_ts, timestamp_ms)
        return True

    @property
    def decided(self) -> int:
        return len(self.keys)

    def leads_per_s(self) -> float:
        if self.first_ts is None or self.last_ts is None or self.last_ts <= self.first_ts:
            return 0.0
        return (self.decided - 1) / ((self.last_ts - self.first_ts) / 1000.0)


# -- I/O ---------------------------------------------------------------------------------------

TP = tuple[str, int]
END_SCAN_TIMEOUT_S = 30.0


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _cpu_s(pids: Iterable[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(cpu_ticks(_read(f"/proc/{pid}/stat")) for pid in pids) / ticks


def _scrape_stage_seconds(web_ports: Iterable[int]) -> dict[str, float]:
    total: dict[str, float] = {}
    for port in web_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            for stage, seconds in stage_seconds(answer.read().decode()).items():
                total[stage] = total.get(stage, 0.0) + seconds
    return total


def _peak_rss_mb(pids: Iterable[int]) -> float:
    return max(vm_hwm_mb(_read(f"/proc/{pid}/status")) for pid in pids)


async def _end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[TP, int]:
    """Offset after the last record of every partition of `topics`.

    ListOffsets is not enough: the embedded broker (Tansu) answers "latest" with the base offset
    of the partition's last record batch, so the end is found by reading that last batch (on
    Kafka there is nothing past the reported end, and this reads nothing).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        await consumer.topics()
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not tps:
            return {}
        reported = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    try:
        ends = await true_end_offsets(
            bootstrap,
            {FaustTP(tp.topic, tp.partition): end for tp, end in reported.items()},
            timeout_s=END_SCAN_TIMEOUT_S,
            strict=True,
        )
    except TimeoutError as exc:
        raise BenchTimeout("finding end offsets: the topics kept growing") from exc
    return {(tp.topic, tp.partition): end for tp, end in ends.items()}


async def _settled_end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TP, int]:
    """End offsets once writes caused by the last lead (changelogs included) have landed."""
    last = await _end_offsets(bootstrap, topics)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = await _end_offsets(bootstrap, topics)
        if now == last:
            break
        last = now
    return last


async def _commit_group_at(bootstrap: str, group: str, offsets: Mapping[TP, int]) -> None:
    """On a reused broker: start the router's fresh group at today's end of its input topics,
    so it does not replay earlier runs' leads."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = {TopicPartition(t, p): offset for (t, p), offset in offsets.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()


class DecisionReader:
    """Reads `leads.decisions` incrementally from given offsets, without a consumer group."""

    def __init__(self, bootstrap: str, start: Mapping[TP, int]) -> None:
        from aiokafka import AIOKafkaConsumer

        self.start_offsets = start
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def start(self) -> None:
        from aiokafka import TopicPartition

        await self.consumer.start()
        tps = {TopicPartition(t, p): o for (t, p), o in self.start_offsets.items()}
        self.consumer.assign(list(tps))
        for tp, offset in tps.items():
            self.consumer.seek(tp, offset)

    async def poll(self, phases: Sequence[Phase]) -> int:
        """Route newly read decisions to the phase owning them; returns how many were new."""
        batch = await self.consumer.getmany(timeout_ms=200)
        new = 0
        for records in batch.values():
            for record in records:
                decision = orjson.loads(record.value or b"{}")
                for phase in phases:
                    if phase.owns(decision):
                        new += phase.add(record.key or b"", record.timestamp, decision)
                        break
        return new

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.consumer.stop(), 10)


@dataclass
class Options:
    leads: int
    partitions: int
    workers: int
    rate: float
    seed: int = 0
    timeout_s: float | None = None
    stage3_writes: float | None = None
    topology_runs: int = TOPOLOGY_RUNS

    @property
    def phase_timeout(self) -> float:
        return self.timeout_s if self.timeout_s is not None else phase_timeout_s(self.leads)


async def _drain(
    reader: DecisionReader,
    phases: Sequence[Phase],
    phase: Phase,
    target: int,
    workers: WorkerProcesses,
    deadline: float,
    what: str,
    on_first: Any = None,
) -> None:
    """Read decisions until `phase` has `target` distinct ones; fail past the deadline."""
    last_report = time.monotonic()
    while phase.decided < target:
        workers.check_alive()
        if time.monotonic() > deadline:
            raise BenchTimeout(f"{what}: {phase.decided}/{target} decided by the deadline")
        before = phase.decided
        await reader.poll(phases)
        if before == 0 and phase.decided and on_first is not None:
            on_first()
        if time.monotonic() - last_report > 5.0:
            progress(f"{what}: {phase.decided}/{target} decided")
            last_report = time.monotonic()


async def _router(
    opts: Options, bootstrap: str, app_id: str, workdir: Path, result: dict[str, Any]
) -> None:
    from router.admin import ensure_topics
    from router.config_file import load_buyers
    from router.loadgen import produce

    buyers_file = workdir / "buyers.yaml"
    buyers_file.write_text(buyers_yaml(buyer_catalog(50, opts.seed)))
    buyer_ids = [b.id for b in load_buyers(buyers_file)]
    specs = catalog.catalog(app_id, buyer_ids)
    await ensure_topics(bootstrap, specs, opts.partitions, 1)
    intake = list(catalog.INTAKE.values())
    written = router_written_topics(app_id, buyer_ids)
    before = await _end_offsets(bootstrap, [*intake, *written])
    inputs = {
        tp: o for tp, o in before.items() if tp[0] in {*intake, catalog.SCREEN, catalog.OFFERS}
    }
    if any(inputs.values()):
        await _commit_group_at(bootstrap, app_id, inputs)

    progress(f"router: producing a backlog of {opts.leads} leads")
    report = await produce(bootstrap, opts.leads, rate=0, seed=opts.seed)
    if report.produced != opts.leads:
        raise RuntimeError(f"produced {report.produced} of {opts.leads} leads")
    backlog_end = await _end_offsets(bootstrap, intake)
    backlog = Phase(start=before, end=backlog_end)
    paced_count = paced_leads(opts.leads, opts.rate)

    decisions_start = {tp: o for tp, o in before.items() if tp[0] == catalog.DECISIONS}
    reader = DecisionReader(bootstrap, decisions_start)
    await reader.start()
    workers = WorkerProcesses(
        bootstrap,
        buyers_file,
        workdir,
        app_id=app_id,
        partitions=opts.partitions,
        env={"ROUTER_LOG_LEVEL": "warning"},
    )
    try:
        progress(f"router: starting {opts.workers} worker(s), app id {app_id}")
        for _ in range(opts.workers):
            workers.start()
        cpu_at_first: list[tuple[float, int]] = []

        def first_decision() -> None:
            cpu_at_first.append((_cpu_s([p.pid for p in workers.processes]), backlog.decided))

        await _drain(
            reader,
            [backlog],
            backlog,
            opts.leads,
            workers,
            time.monotonic() + opts.phase_timeout,
            "router backlog",
            first_decision,
        )
        cpu_end = _cpu_s([p.pid for p in workers.processes])
        cpu_start, decided_at_start = cpu_at_first[0]
        window = opts.leads - decided_at_start
        if window < max(1, opts.leads // 10):  # drained within one poll: whole life instead
            cpu_start, window = 0.0, opts.leads
        # Every backlog lead is decided, so every stage is done with it; the paced run is next.
        stages = await asyncio.to_thread(_scrape_stage_seconds, workers.web_ports)
        after = await _settled_end_offsets(bootstrap, written)
        router_msgs = messages_written({tp: before.get(tp, 0) for tp in after}, after)
        result.update(
            decided=backlog.decided,
            conserved=backlog.decided == opts.leads,
            pipeline_leads_per_s=round(backlog.leads_per_s(), 1),
            messages_written_per_lead=round(per_lead(router_msgs, opts.leads), 3),
            cpu_s_per_1k_leads=round((cpu_end - cpu_start) / window * 1000.0, 3),
            stage_s_per_1k_leads=per_1k_leads(stages, opts.leads),
            latency_saturated_ms=latency_summary(backlog.latencies_ms),
        )
        progress(
            f"router: backlog drained at {result['pipeline_leads_per_s']} leads/s; "
            f"pacing {paced_count} leads at {opts.rate:g}/s"
        )

        paced = Phase(start=backlog_end, end={tp: 1 << 62 for tp in backlog_end})
        feed = asyncio.create_task(
            produce(bootstrap, paced_count, rate=opts.rate, seed=opts.seed + 1)
        )
        try:
            await _drain(
                reader,
                [backlog, paced],
                paced,
                paced_count,
                workers,
                time.monotonic() + paced_count / max(opts.rate, 1e-3) + opts.phase_timeout,
                "router paced",
            )
            await feed
        finally:
            if not feed.done():
                feed.cancel()
                with contextlib.suppress(BaseException):
                    await feed
        result.update(
            paced_rate=opts.rate,
            paced_leads=paced_count,
            paced_decided=paced.decided,
            latency_ms=latency_summary(paced.latencies_ms),
            peak_rss_mb=round(_peak_rss_mb([p.pid for p in workers.processes]), 1),
        )
    finally:
        await reader.stop()
        workers.stop()


async def _bench(opts: Options, bootstrap: str, workdir: Path, result: dict[str, Any]) -> None:
    from router.synthetic import generate

    run_id = uuid.uuid4().hex[:8]
    await _router(opts, bootstrap, f"bench-{run_id}", workdir, result)

    events = list(generate(opts.leads, opts.seed, base_time=datetime.now(UTC)))
    writes = opts.stage3_writes
    if writes is None:
        writes = stage3_writes_for(result["messages_written_per_lead"])
    progress(f"topology: {TOPOLOGY_FIXED_WRITES} + {writes:g} writes per lead")
    runs = [
        await topology_limit(
            bootstrap,
            events,
            opts.partitions,
            f"bench-{run_id}-{n}",
            writes,
            time.monotonic() + opts.phase_timeout,
        )
        for n in range(opts.topology_runs)
    ]
    topology = fastest(runs)
    result.update(
        topology_limit_leads_per_s=round(topology.leads_per_s, 1),
        topology_limit_runs_leads_per_s=[round(r.leads_per_s, 1) for r in runs],
        topology_stage3_writes=writes,
        topology_messages_written_per_lead=round(topology.messages_written_per_lead, 3),
        topology_cpu_s_per_1k_leads=round(topology.cpu_s_per_1k_leads, 3),
    )
    progress(f"topology: {result['topology_limit_leads_per_s']} leads/s")

    raw = await raw_pipe(
        bootstrap, events, opts.partitions, f"bench-{run_id}", time.monotonic() + opts.phase_timeout
    )
    result["raw_pipe_msgs_per_s"] = round(raw.msgs_per_s, 1)
    progress(f"raw pipe: {result['raw_pipe_msgs_per_s']} msgs/s")
    result["ratio_vs_topology"] = ratio(
        result["pipeline_leads_per_s"], result["topology_limit_leads_per_s"]
    )
    result["ratio_vs_raw_pipe"] = ratio(
        result["pipeline_leads_per_s"], result["raw_pipe_msgs_per_s"]
    )


KEYS = (
    "leads",
    "partitions",
    "workers",
    "hops_per_lead",
    "messages_written_per_lead",
    "pipeline_leads_per_s",
    "topology_limit_leads_per_s",
    "raw_pipe_msgs_per_s",
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
)


def ordered(result: Mapping[str, Any]) -> dict[str, Any]:
    """The report's keys first, in the documented order, then extras."""
    head = {k: result[k] for k in KEYS if k in result}
    return {**head, **{k: v for k, v in result.items() if k not in head}}


def run(opts: Options, bootstrap_servers: str | None = None) -> int:
    """Run the bench, print one JSON line on stdout; 0 when every lead got its decision."""
    from router import embedded

    if opts.leads < 1 or opts.partitions < 1 or opts.workers < 1 or opts.rate <= 0:
        raise ValueError("leads, partitions, workers must be >= 1 and rate > 0")
    result: dict[str, Any] = {
        "leads": opts.leads,
        "partitions": opts.partitions,
        "workers": opts.workers,
        "hops_per_lead": TOPOLOGY_HOPS,
    }
    workdir = Path(tempfile.mkdtemp(prefix="router-bench-"))
    started = time.monotonic()
    code = 0
    try:
        with contextlib.ExitStack() as stack:
            if bootstrap_servers is None:
                broker = stack.enter_context(embedded.running(workdir / "broker.log"))
                bootstrap_servers = broker.bootstrap_servers
            progress(f"broker {bootstrap_servers}; work dir {workdir}")
            asyncio.run(_bench(opts, bootstrap_servers, workdir, result))
        if not result.get("conserved") or result.get("paced_decided") != result.get("paced_leads"):
            code = 1
    except (Exception, KeyboardInterrupt) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}".strip()
        result["workdir"] = str(workdir)
        code = 1
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    if code == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    print(orjson.dumps(ordered(result)).decode(), flush=True)
    return code
