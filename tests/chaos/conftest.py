"""Chaos harness: the integration `Workers` harness, a steady load, and ONE invariant checker.

Every scenario ends with `audit(...)`, which reads every output topic back (an auditor's view,
independent of the router's own state and counters) and returns a summary whose `violations`
must be empty:

- conservation: every intake record has exactly one distinct decision key, and all decision
  records sharing a key tell the same story (outcome, buyers, lead_id, price);
- caps: no buyer exceeds a cap in any buyer-local window, recounted from the buyer topics with
  `accounting.windows` over distinct lead ids;
- exclusivity: no exclusive lead reaches two buyers;
- re-deliveries: every copy on a buyer topic is the same (lead_id, buyer_id, price, sold_at) and
  matches the lead's decision; every sale on the decisions topic was delivered;
- lag: the router's consumer group commits up to the end of every intake/screen/offers
  partition within a bounded time (reported as `recovery_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from router import accounting, catalog
from router.buyers import Buyer
from router.config_file import load_buyers, parse_config
from router.embedded import EmbeddedBroker
from router.loadgen import producer
from router.synthetic import DEFAULT_MIX, Mix, generate

# -- the integration harness, reused -----------------------------------------------------------
# Loaded under its own module name: every conftest.py is "conftest" to pytest, so a plain
# `import conftest` here would find this very module.
_HARNESS_PATH = Path(__file__).resolve().parent.parent / "integration" / "conftest.py"
_spec = importlib.util.spec_from_file_location("integration_harness", _HARNESS_PATH)
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
sys.modules["integration_harness"] = harness
_spec.loader.exec_module(harness)

Workers = harness.Workers
wait_for = harness.wait_for
fresh_broker = harness.fresh_broker
workers = harness.workers
pytest_runtest_makereport = harness.pytest_runtest_makereport

# pytest imports every conftest.py as the module "conftest", each replacing the previous one,
# and test modules import helpers with `from conftest import ...`. So that any order of paths on
# the command line works, the chaos tests import this module as `chaos_conftest`, and it also
# offers every public name of the integration conftest (see the end of this file).
sys.modules["chaos_conftest"] = sys.modules[__name__]

# Topics and workers both take it from the harness (`workers(path, partitions=PARTITIONS)`):
# before the router refused mismatched topics, the topics had 2 while the workers said 4.
PARTITIONS = 4
WORKER_ENV = {
    "ROUTER_SESSION_TIMEOUT_S": "6",
    "ROUTER_REBALANCE_TIMEOUT_S": "10",
}
LAG_DEADLINE_S = 120.0
# Faust's log lines that mark where a worker is in its life (JSON logs, "msg" field).
MARK_ASSIGNED = "Executing _on_partitions_assigned"
MARK_RECOVERY = "[^---Recovery]: Highwater for active changelog partitions"
MARK_READY = "[^---Recovery]: Worker ready"
MARK_REJOIN = "(Re-)joining group"
MARK_REVOKE = "Revoking previously assigned partitions"

# Caps that really bind during a run (so the cap invariant has something to hold back), and
# capped buyers ranked first, so offers keep hopping down the ranking across partitions.
BUYERS_YAML = """
verticals:
  education: {max_buyers: 2}
buyers:
  - id: auto-small
    name: Small auto buyer
    verticals: [auto_insurance]
    channels: [form, call, click]
    price: 50
    caps: {daily: 25}
    timezone: America/Los_Angeles
  - id: auto-east
    name: East coast auto
    verticals: [auto_insurance]
    states: [NY, NJ, PA, FL, GA, MA, VA, NC]
    price: 30
    caps: {hourly: 40}
  - id: auto-any
    name: Any auto
    verticals: [auto_insurance]
    price: 10
    caps: {hourly: 2000, daily: 4000}
    timezone: Pacific/Honolulu
  - id: mortgage-consent
    name: Mortgage, consent required
    verticals: [mortgage]
    requires_consent: true
    price: 80
    caps: {daily: 300}
    timezone: America/Chicago
  - id: edu-picky
    name: Education, good leads only
    verticals: [education]
    min_score: 40
    price: 15
    caps: {hourly: 60}
    timezone: Asia/Kolkata
  - id: edu-shared
    name: Education, shares leads
    verticals: [education]
    price: 8
    caps: {weekly: 900, daily_budget: 4000}
  - id: home-any
    name: Home services
    verticals: [home_services]
    price: 12
    caps: {daily: 1500}
  - id: saas-trials
    name: SaaS trials
    verticals: [saas]
    channels: [trial]
    price: 9
"""


MARKET = parse_config(BUYERS_YAML)


@pytest.fixture
def buyers_file(tmp_path: Path) -> tuple[Path, dict[str, Buyer]]:
    path = tmp_path / "buyers.yaml"
    path.write_text(BUYERS_YAML)
    return path, {b.id: b for b in load_buyers(path)}


# -- worker helpers ----------------------------------------------------------------------------


def log_path(group: Any, process: Any) -> Path:
    """The harness names logs by start order: worker-<index>.log."""
    return Path(group.log_dir) / f"worker-{group.processes.index(process)}.log"


def log_text(group: Any, process: Any) -> str:
    path = log_path(group, process)
    return path.read_text(errors="replace") if path.exists() else ""


def wait_log(
    group: Any, process: Any, markers: str | tuple[str, ...], timeout: float, after: int = 0
) -> tuple[bool, float]:
    """Wait until one of `markers` appears in the process's log past byte `after`.

    Returns (seen, seconds waited); never fails the test (callers report what they saw)."""
    wanted = (markers,) if isinstance(markers, str) else markers
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        text = log_past(group, process, after)
        if any(marker.encode() in text for marker in wanted):
            return True, time.monotonic() - started
        if process.poll() is not None:
            break
        time.sleep(0.05)
    return False, time.monotonic() - started


def log_past(group: Any, process: Any, after: int) -> bytes:
    """The process's log past byte `after` (nothing before the log exists)."""
    path = log_path(group, process)
    if not path.exists():
        return b""
    with path.open("rb") as handle:
        handle.seek(after)
        return handle.read()


def logged_since(group: Any, process: Any, marker: str, after: int) -> bool:
    return marker.encode() in log_past(group, process, after)


def marker_at(group: Any, process: Any, markers: tuple[str, ...], after: int) -> int | None:
    """The byte offset of the first of `markers` in the process's log past byte `after`."""
    text = log_past(group, process, after)
    found = [at for at in (text.find(marker.encode()) for marker in markers) if at >= 0]
    return after + min(found) if found else None


def log_size(group: Any, process: Any) -> int:
    path = log_path(group, process)
    return path.stat().st_size if path.exists() else 0


def wait_ready(group: Any, process: Any, timeout: float = 90.0) -> float:
    seen, waited = wait_log(group, process, MARK_READY, timeout)
    if not seen:
        pytest.fail(f"worker not ready within {timeout}s:\n{log_text(group, process)[-3000:]}")
    return waited


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the process's peak resident set size so far, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def agent_failures(text: str) -> list[str]:
    """Log lines that show an agent crashed or a traceback was printed."""
    return [line[:300] for line in text.splitlines() if "Crashed" in line or "Traceback" in line]


# -- steady load in a background thread --------------------------------------------------------


@dataclass
class Load:
    """Synthetic traffic at `rate` events/s (changeable while running) until stopped.

    Events come in small chunks generated with "now" as their capture time, so occurred_at
    stays close to the wall clock however the rate changes. Send outcomes are counted from the
    delivery futures: the audit counts what actually landed on the intake topics.
    """

    bootstrap_servers: str
    rate: float
    seed: int
    mix: Mix = DEFAULT_MIX
    max_seconds: float = 900.0
    sent: int = 0
    acked: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _crash: BaseException | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._main, name="chaos-load", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 90.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "load thread did not stop"
        if self._crash is not None:
            raise AssertionError(f"load generator crashed: {self._crash!r}")

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by stop()
            self._crash = exc

    def _done(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self.failed += 1
            self.errors["cancelled"] += 1
        elif (exc := future.exception()) is not None:
            self.failed += 1
            self.errors[type(exc).__name__] += 1
        else:
            self.acked += 1

    async def _run(self) -> None:
        client = producer(self.bootstrap_servers)
        await client.start()
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        chunk = 0
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                size = max(1, int(self.rate / 10))
                events = generate(
                    size,
                    self.seed * 1_000_003 + chunk,
                    base_time=datetime.now(UTC),
                    mix=self.mix,
                )
                chunk += 1
                for event in events:
                    if self._stop.is_set():
                        break
                    next_at += 1.0 / self.rate
                    ahead = next_at - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                    elif ahead < -1.0:
                        next_at = time.monotonic()  # fell behind (broker away): no catch-up storm
                    try:
                        future = await asyncio.wait_for(
                            client.send(event.topic, event.payload, key=event.key), 30
                        )
                    except Exception as exc:  # the broker was unreachable for too long
                        self.failed += 1
                        self.errors[type(exc).__name__] += 1
                        continue
                    self.sent += 1
                    future.add_done_callback(self._done)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.flush(), 60)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.stop(), 30)


# -- reading back ------------------------------------------------------------------------------


async def _true_ends(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[Any, int]:
    """End offsets from Fetch high watermarks.

    The embedded broker (Tansu 0.6) answers ListOffsets(latest) with the base offset of the
    last record batch + 1, not the high watermark, so `end_offsets` under-reports whenever
    the last batch holds more than one record. A fetch reports the real high watermark.
    """
    reported = await consumer.end_offsets(tps)
    consumer.assign(tps)
    ends: dict[Any, int] = {}
    for tp in tps:
        if reported[tp] <= 0:
            ends[tp] = 0
        else:
            consumer.seek(tp, reported[tp] - 1)
    deadline = time.monotonic() + 20
    while len(ends) < len(tps) and time.monotonic() < deadline:
        await consumer.getmany(timeout_ms=300, max_records=1)
        for tp in tps:
            hw = consumer.highwater(tp)
            if tp not in ends and hw is not None:
                ends[tp] = max(hw, reported[tp])
    for tp in tps:
        ends.setdefault(tp, reported[tp])
    return ends


async def _partitions(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    await consumer.topics()
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]


async def read_topics(bootstrap_servers: str, topics: Iterable[str]) -> list[ConsumerRecord]:
    """Every record in the topics, up to their real high watermarks (see `_true_ends`)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = await _partitions(consumer, topics)
        if not tps:
            return []
        ends = await _true_ends(consumer, tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 300
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {sorted(map(str, pending))} to the end")
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, messages in batch.items():
                records.extend(messages)
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
        return records
    finally:
        await consumer.stop()


async def _group_lag(
    bootstrap_servers: str, group_id: str, topics: Iterable[str], with_totals: bool = False
) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await admin.start()
    await consumer.start()
    try:
        tps = await _partitions(consumer, topics)
        # Committed first, ends second: if the commits taken earlier already reach the ends
        # read later, every input was processed (and its outputs flushed) at that moment.
        committed = await admin.list_consumer_group_offsets(group_id, partitions=tps)
        ends = await _true_ends(consumer, tps)
        lag = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[f"{tp.topic}/{tp.partition}"] = ends[tp] - done
        if with_totals:
            lag["<committed>"] = sum(
                m.offset for m in committed.values() if m is not None and m.offset > 0
            )
            lag["<end>"] = sum(ends.values())
        return lag
    finally:
        await consumer.stop()
        await admin.close()


def group_progress(bootstrap_servers: str, group_id: str) -> tuple[int, int]:
    """(sum of committed offsets, sum of end offsets) over intake/screen/offers partitions."""
    topics = [*catalog.INTAKE.values(), catalog.SCREEN, catalog.OFFERS]
    lag = asyncio.run(_group_lag(bootstrap_servers, group_id, topics, with_totals=True))
    return lag.pop("<committed>"), lag.pop("<end>")


def wait_lag_zero(
    bootstrap_servers: str, group_id: str, since: float, deadline_s: float = LAG_DEADLINE_S
) -> tuple[float | None, dict[str, int]]:
    """Seconds from `since` (monotonic) until the group's lag is zero twice in a row."""
    topics = [*catalog.INTAKE.values(), catalog.SCREEN, catalog.OFFERS]
    deadline = time.monotonic() + deadline_s
    lag: dict[str, int] = {}
    zero_at: float | None = None
    while time.monotonic() < deadline:
        try:
            lag = asyncio.run(_group_lag(bootstrap_servers, group_id, topics))
        except Exception as exc:  # broker briefly unreachable: keep polling until the deadline
            lag = {"error": -1, type(exc).__name__: -1}
        else:
            if lag and all(v <= 0 for v in lag.values()):
                if zero_at is not None:
                    return round(zero_at - since, 1), lag
                zero_at = time.monotonic()
                continue
        zero_at = None
        time.sleep(1.0)
    return None, lag


# -- worker log findings -----------------------------------------------------------------------

CRASH_MARKERS = ("Crashed", "We experienced a crash")
REFETCH_MARKER = "stream partition not consumed"
SKIP_MARKER = "offsets skipped by the fetch"
# The hole guard's lines (`router/offset_holes.py`): a hole read again, and one given up on.
REREAD_MARKER = "offsets skipped by the broker; reading them again"
MOVED_PAST_MARKER = "offsets still missing; moving past them"


def worker_log_findings(log_dir: Path) -> dict[str, Any]:
    """What the workers' own logs say: crashes, and whether the group still completes rebalances.

    `joins_since_last_sync` counts JoinGroup rounds after the last completed SyncGroup: a
    number that keeps growing means the group is stuck and no worker consumes anything.
    `refetched` lists the partitions a worker found not consumed and put back
    (`router/stalls.py`): not a violation, but the trace of docs/reliability.md sections 9, 11.
    `skipped` lists the offsets Faust booked as a gap and committed past (`router/transport.py`):
    where an event without a decision was lost, if the worker saw it.
    `reread` lists the holes the guard read again instead (so a run with entries there and no
    lost event shows the guard at work), `moved_past` the holes it gave up on after its patience.
    """
    crashes: list[str] = []
    refetched: list[str] = []
    skipped: list[str] = []
    guarded: dict[str, list[str]] = {REREAD_MARKER: [], MOVED_PAST_MARKER: []}
    last_sync: tuple[str, str] = ("", "")
    joins: list[str] = []
    tracebacks = 0

    def index(path: Path) -> int:
        return int(path.stem.rsplit("-", 1)[-1])

    for path in sorted(log_dir.glob("worker-*.log"), key=index):
        with path.open(errors="replace") as handle:
            for raw in handle:
                if "Traceback" in raw:
                    tracebacks += 1
                markers = ("group", REFETCH_MARKER, SKIP_MARKER, *guarded, *CRASH_MARKERS)
                if not any(marker in raw for marker in markers):
                    continue
                try:
                    entry = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                message, ts = str(entry.get("msg", "")), str(entry.get("ts", ""))
                if message.startswith(REFETCH_MARKER):
                    refetched.append(
                        f"{path.stem} {ts} {entry.get('topic')}/{entry.get('partition')} "
                        f"{entry.get('reason')} at {entry.get('read_offset')}"
                    )
                elif message.startswith(SKIP_MARKER):
                    skipped.append(
                        f"{path.stem} {ts} {entry.get('topic')}/{entry.get('partition')} "
                        f"{entry.get('first')}..{entry.get('last')}"
                    )
                elif message in guarded:
                    guarded[message].append(
                        f"{path.stem} {ts} {entry.get('topic')}/{entry.get('partition')} "
                        f"[{entry.get('from')}, {entry.get('to')})"
                    )
                elif any(marker in message for marker in CRASH_MARKERS):
                    crashes.append(f"{path.stem} {ts} {message[:240]}")
                elif message.startswith("Successfully synced group") and ts > last_sync[0]:
                    last_sync = (ts, message.rsplit(" ", 1)[-1])
                elif message.startswith("Joined group"):
                    joins.append(ts)
    return {
        "crash_lines": crashes,
        "tracebacks": tracebacks,
        "last_synced_generation": last_sync[1] or None,
        "last_synced_at": last_sync[0] or None,
        "joins_since_last_sync": sum(1 for ts in joins if ts > last_sync[0]),
        "refetched": refetched,
        "skipped": skipped,
        "reread": guarded[REREAD_MARKER],
        "moved_past": guarded[MOVED_PAST_MARKER],
    }


async def _changelog_evidence(
    bootstrap_servers: str, group_id: str, lead_ids: list[str]
) -> dict[str, list[str]]:
    """Cap-table changelog records that mention each lead: was its sale ever recorded?"""
    topic = catalog.changelog_topic(group_id, catalog.CAPS_TABLE)
    found: dict[str, list[str]] = {lead_id: [] for lead_id in lead_ids}
    for record in await read_topics(bootstrap_servers, [topic]):
        key = (record.key or b"").decode(errors="replace")
        for lead_id in lead_ids:
            if lead_id in key:
                value = (record.value or b"null").decode(errors="replace")
                found[lead_id].append(f"p{record.partition}@{record.offset} {key} = {value}")
    return found


# -- the invariant checker ---------------------------------------------------------------------


@dataclass
class Audit:
    summary: dict[str, Any]
    violations: list[str]
    intake: dict[tuple[str, int, int], ConsumerRecord]
    decisions: dict[str, list[dict[str, Any]]]
    decision_key_of: dict[tuple[str, int, int], set[str]]
    dead_letters: dict[tuple[str, int, int], list[dict[str, Any]]]

    def report(self, scenario: str, **extra: Any) -> dict[str, Any]:
        line = {"scenario": scenario, **self.summary, **extra, "violations": self.violations}
        print(json.dumps(line, sort_keys=False, default=str), flush=True)
        return line


def _ref(intake: dict[str, Any]) -> tuple[str, int, int]:
    return (intake["topic"], int(intake["partition"]), int(intake["offset"]))


class _Violations:
    """Collects violations, keeping a few examples per kind so a report stays readable."""

    def __init__(self, examples: int = 5) -> None:
        self.examples = examples
        self.counts: Counter[str] = Counter()
        self.samples: dict[str, list[str]] = defaultdict(list)

    def add(self, kind: str, detail: object) -> None:
        self.counts[kind] += 1
        if len(self.samples[kind]) < self.examples:
            self.samples[kind].append(str(detail)[:400])

    def render(self) -> list[str]:
        return [
            f"{kind} x{count}: {' | '.join(self.samples[kind])}"
            for kind, count in sorted(self.counts.items())
        ]


def audit(
    broker: EmbeddedBroker | str,
    buyers: dict[str, Buyer],
    group_id: str,
    since: float,
    lag_deadline_s: float = LAG_DEADLINE_S,
    log_dir: Path | None = None,
) -> Audit:
    """Wait for the lag to drain, read every topic back and check the invariants.

    With `log_dir`, the workers' logs are scanned too: a Faust crash is a violation (the
    router must recover by itself), and the group's rebalance progress is reported."""
    bootstrap = broker if isinstance(broker, str) else broker.bootstrap_servers
    found = _Violations()
    recovery_s, lag = wait_lag_zero(bootstrap, group_id, since, lag_deadline_s)
    if recovery_s is None:
        positive = {k: v for k, v in lag.items() if v != 0}
        found.add("lag_not_zero", f"after {lag_deadline_s}s: {positive}")

    def read(*topics: str) -> list[ConsumerRecord]:
        return asyncio.run(read_topics(bootstrap, topics))

    intake = {(r.topic, r.partition, r.offset): r for r in read(*catalog.INTAKE.values())}

    # Conservation: decisions grouped by key, and by the intake record they answer.
    decisions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    decision_key_of: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    for record in read(catalog.DECISIONS):
        key = record.key.decode() if record.key is not None else "<null>"
        value = orjson.loads(record.value)
        decisions[key].append(value)
        decision_key_of[_ref(value["intake"])].add(key)
    for key, records in decisions.items():
        stories = {
            (r["outcome"], tuple(r["buyers"]), r.get("lead_id"), r.get("price")) for r in records
        }
        if len(stories) != 1:
            found.add("decisions_disagree", f"{key}: {sorted(map(str, stories))}")
    undecided = [ref for ref in intake if not decision_key_of.get(ref)]
    spans: dict[tuple[str, int], list[int]] = defaultdict(list)
    for topic, partition, offset in undecided:
        spans[(topic, partition)].append(offset)
    for (topic, partition), offsets in sorted(spans.items()):
        # Where the losses sit: one contiguous block on one partition points at offsets
        # committed past, scattered ones at lost outputs.
        found.add(
            "undecided_span",
            f"{topic}/{partition}: {len(offsets)} in {min(offsets)}..{max(offsets)}",
        )
    if undecided:
        # Where did each lost event get to? Screened (stage 1 done), offered (stage 2 done)?
        screened: Counter[str] = Counter()
        screen_at: dict[str, tuple[int, int]] = {}
        for r in read(catalog.SCREEN):
            screened_id = orjson.loads(r.value)["event_id"]
            screened[screened_id] += 1
            screen_at[screened_id] = (r.partition, r.offset)
        offered = Counter(orjson.loads(r.value)["lead"]["event_id"] for r in read(catalog.OFFERS))
        # The screen stage writes an admitted event to the dedup table before it sends
        # anything: an event in the changelog was processed there and its outputs were lost;
        # one missing from it was committed past without being processed.
        admitted = {
            event_id
            for r in read(catalog.changelog_topic(group_id, catalog.DEDUP_TABLE))
            if r.value is not None
            for event_id in orjson.loads(r.value)
        }
        for ref in undecided:
            value = intake[ref].value or b""
            try:
                event_id = orjson.loads(value).get("event_id")
            except (orjson.JSONDecodeError, AttributeError):
                event_id = None
            if not isinstance(event_id, str):  # poison payloads carry ids of any type
                event_id = None
            found.add(
                "intake_without_decision",
                f"{ref} ts={intake[ref].timestamp} event_id={event_id} bytes={len(value)} "
                f"screened={screened[event_id]} offered={offered[event_id]} "
                f"screen_record={screen_at.get(event_id)} dedup_admitted={event_id in admitted}",
            )
    for ref in intake:
        keys = decision_key_of.get(ref, set())
        if len(keys) > 1:
            found.add("intake_with_several_decision_keys", f"{ref}: {sorted(keys)}")
    for ref in set(decision_key_of) - set(intake):
        found.add("decision_for_unknown_intake_record", ref)
    # Several intake records may share a key only if they are the same event sent twice
    # (a producer retry): byte-identical payloads.
    refs_of_key: dict[str, set[tuple[str, int, int]]] = defaultdict(set)
    for ref, keys in decision_key_of.items():
        for key in keys:
            refs_of_key[key].add(ref)
    resent = 0
    for key, refs in refs_of_key.items():
        if len(refs) > 1:
            payloads = {intake[ref].value for ref in refs if ref in intake}
            if len(payloads) > 1:
                found.add("different_events_share_a_decision_key", f"{key}: {sorted(refs)}")
            resent += len(refs) - 1

    final = {key: records[0] for key, records in decisions.items()}
    outcomes = Counter(d["outcome"] for d in final.values())

    # Dead letters and unsold records close the stories their decisions tell.
    dead_letters: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    dead_keys: set[str] = set()
    for record in read(catalog.REJECTED):
        value = orjson.loads(record.value)
        dead_letters[(value["topic"], value["partition"], value["offset"])].append(value)
        dead_keys.add(record.key.decode() if record.key is not None else "<null>")
    rejected_keys = {k for k, d in final.items() if d["outcome"] == "rejected"}
    for key in rejected_keys - dead_keys:
        found.add("rejected_without_dead_letter", key)
    for key in dead_keys - rejected_keys:
        found.add("dead_letter_without_rejected_decision", key)
    unsold_leads = {orjson.loads(r.value)["lead"]["lead_id"] for r in read(catalog.UNSOLD)}
    unsold_decided = {d["lead_id"] for d in final.values() if d["outcome"] == "unsold"}
    for lead_id in unsold_decided - unsold_leads:
        found.add("unsold_decision_without_unsold_record", lead_id)
    for lead_id in unsold_leads - unsold_decided:
        found.add("unsold_record_without_unsold_decision", lead_id)

    # Buyer topics: exclusivity, identical re-deliveries, agreement with decisions, caps.
    decision_of_lead = {d["lead_id"]: d for d in final.values() if d.get("lead_id")}
    copies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    buyer_records = 0
    for buyer_id in buyers:
        for record in read(catalog.buyer_topic(buyer_id)):
            lead = orjson.loads(record.value)
            buyer_records += 1
            if lead["buyer_id"] != buyer_id or record.key != lead["lead_id"].encode():
                found.add("misaddressed_buyer_record", (buyer_id, record.key, lead["buyer_id"]))
            copies[lead["lead_id"]].append(lead)
    sold_per_buyer: dict[str, dict[str, tuple[datetime, float]]] = defaultdict(dict)
    resold: list[str] = []
    for lead_id, leads in copies.items():
        owners = {lead["buyer_id"] for lead in leads}
        if len(owners) > 1 and any(lead["exclusive"] for lead in leads):
            found.add("exclusive_lead_sold_twice", f"{lead_id}: {sorted(owners)}")
        max_buyers = MARKET.policy(leads[0]["vertical"]).max_buyers
        if len(owners) > max_buyers:
            found.add("shared_beyond_max_buyers", f"{lead_id}: {sorted(owners)} > {max_buyers}")
        substance = {(lead["buyer_id"], lead["price"], lead["sold_at"]) for lead in leads}
        if len(substance) > len(owners):
            found.add("redelivery_differs", f"{lead_id}: {sorted(map(str, substance))}")
            resold.append(lead_id)
        sold_prices = {(lead["buyer_id"], lead["price"]) for lead in leads}
        decided = decision_of_lead.get(lead_id)
        if decided is None or decided["outcome"] != "sold":
            outcome = decided["outcome"] if decided else None
            found.add("delivered_without_sold_decision", f"{lead_id}: {outcome}")
        elif {(s["buyer_id"], s["price"]) for s in decided["sales"]} != sold_prices:
            found.add(
                "delivery_disagrees_with_decision",
                f"{lead_id}: {decided['sales']} vs {sorted(sold_prices)}",
            )
        for lead in leads:
            occurred = datetime.fromisoformat(lead["occurred_at"])
            sold_per_buyer[lead["buyer_id"]][lead_id] = (occurred, lead["price"])
    for key, decided in final.items():
        if decided["outcome"] == "sold" and decided["lead_id"] not in copies:
            found.add("sold_decision_never_delivered", key)

    for buyer_id, leads_at in sold_per_buyer.items():
        buyer = buyers[buyer_id]
        per_kind: dict[str, Counter[str]] = {kind: Counter() for kind in accounting.KINDS}
        spend: dict[str, Counter[str]] = {kind: Counter() for kind in accounting.KINDS}
        for at, price in leads_at.values():
            for kind, window in accounting.windows(buyer.timezone, at)._asdict().items():
                per_kind[kind][window] += 1
                spend[kind][window] += price
        for kind, cap in accounting.COUNT_CAPS:
            limit = getattr(buyer.caps, cap)
            for window, count in per_kind[kind].items():
                if limit is not None and count > limit:
                    found.add(f"{cap}_cap_exceeded", f"{buyer_id} {window}: {count}>{limit}")
        for kind, budget in (
            ("day", buyer.caps.daily_budget),
            ("month", buyer.caps.monthly_budget),
        ):
            for window, total in spend[kind].items():
                if budget is not None and total > budget + 1e-6:
                    found.add("budget_exceeded", f"{buyer_id} {window}: {total}>{budget}")

    if resold:
        # Evidence for the report: what the cap table's changelog recorded for those leads.
        evidence = asyncio.run(_changelog_evidence(bootstrap, group_id, resold[:3]))
        for lead_id, entries in evidence.items():
            found.add("redelivery_differs_changelog", f"{lead_id}: {entries or 'no entry'}")

    findings = worker_log_findings(log_dir) if log_dir is not None else None
    if findings:
        for line in findings["crash_lines"]:
            found.add("worker_crashed", line)

    decisions_redelivered = sum(len(records) - 1 for records in decisions.values())
    # A shared lead has one record per buyer: only a second copy for the same buyer is a replay.
    buyer_redelivered = buyer_records - sum(
        len({lead["buyer_id"] for lead in leads}) for leads in copies.values()
    )
    capped = Counter(
        v["reason"]
        for d in final.values()
        for v in d.get("considered", [])
        if v["reason"].startswith("capped")
    )
    summary = {
        "leads": len(intake),
        "decision_keys": len(decisions),
        "outcomes": dict(sorted(outcomes.items())),
        "sold": len(copies),
        "capped_verdicts": dict(sorted(capped.items())),
        "duplicates_redelivered": decisions_redelivered + buyer_redelivered,
        "decisions_redelivered": decisions_redelivered,
        "buyer_records_redelivered": buyer_redelivered,
        "intake_resent_by_producer": resent,
        "recovery_s": recovery_s,
    }
    if findings:
        summary["worker_logs"] = {k: v for k, v in findings.items() if k != "crash_lines"}
    return Audit(
        summary=summary,
        violations=found.render(),
        intake=intake,
        decisions=dict(decisions),
        decision_key_of=dict(decision_key_of),
        dead_letters=dict(dead_letters),
    )


# -- small shared utilities --------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


@contextlib.contextmanager
def started_workers(group: Any, count: int, **env: str) -> Iterator[list[Any]]:
    processes = [group.start(**{**WORKER_ENV, **env}) for _ in range(count)]
    try:
        yield processes
    finally:
        group.stop_all()


def seeded(name: str) -> random.Random:
    """A Random seeded from the scenario name (and CHAOS_SEED, to explore other runs)."""
    return random.Random(f"{name}:{os.environ.get('CHAOS_SEED', '0')}")


Probe = Callable[[], tuple[bool, object]]


# Re-exported for integration test modules that run `from conftest import ...` after this
# conftest was imported (e.g. `pytest tests/integration/test_topics.py tests/chaos`).
for _name, _value in vars(harness).items():
    if not _name.startswith("_") and _name not in globals():
        globals()[_name] = _value
