"""`router bench` baselines: what plain aiokafka does on the same broker with the same payloads.

- raw pipe: consume -> parse -> produce, one output per input: the best case for one hop;
- topology limit: three plain consume/produce stages wired in the router's dataflow shape
  (intake -> screen -> offers -> buyer + decision, with changelog writes), no business logic.

Both produce their backlog first, then start the clock at the first consumed record.
Every loop is bounded by a deadline (monotonic time) and raises `BenchTimeout` past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from router import catalog
from router.admin import ensure_topics
from router.catalog import TopicSpec
from router.loadgen import producer as make_producer
from router.synthetic import SyntheticEvent

TOPOLOGY_BUYERS = 50
TOPOLOGY_HOPS = 3
# Records written per lead by stages 1 and 2 (screen; dedup changelog + offer).
TOPOLOGY_FIXED_WRITES = 3
BACKLOG_AWAIT_EVERY = 5000
STOP_TIMEOUT_S = 10.0

Send = tuple[str, bytes | None, bytes]


class BenchTimeout(RuntimeError):
    pass


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def check_deadline(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise BenchTimeout(f"{what}: deadline passed")


class Spreader:
    """Spreads a fractional number of writes per item: `take()` returns whole counts whose
    running sum stays within 1 of `items * per_item` (per_item >= 1 means every item gets 1)."""

    def __init__(self, per_item: float) -> None:
        if per_item < 0:
            raise ValueError("per_item must be >= 0")
        self.per_item = per_item
        self._items = 0
        self._given = 0

    def take(self) -> int:
        self._items += 1
        due = math.floor(self._items * self.per_item + 1e-9)  # no drift from adding floats
        whole, self._given = due - self._given, due
        return whole


def fingerprint(value: bytes) -> bytes:
    return hashlib.sha256(value).hexdigest().encode()


def buyer_of(key: bytes, buyers: int = TOPOLOGY_BUYERS) -> str:
    return f"b{int(key[:8], 16) % buyers:02d}"


async def _create(bootstrap: str, names: Iterable[str], partitions: int, deadline: float) -> None:
    specs = [TopicSpec(name, "bench", "any", "router bench scratch topic") for name in names]
    timeout = max(1.0, deadline - time.monotonic())
    await asyncio.wait_for(ensure_topics(bootstrap, specs, partitions, 1), timeout)


async def _produce_backlog(
    producer: AIOKafkaProducer, sends: Iterable[Send], deadline: float, what: str
) -> int:
    futures: list[asyncio.Future[object]] = []
    count = 0
    for topic, key, value in sends:
        futures.append(await producer.send(topic, value, key=key))
        count += 1
        if len(futures) >= BACKLOG_AWAIT_EVERY:
            await _acked(futures, deadline, what)
    await _acked(futures, deadline, what)
    return count


async def _acked(futures: list[asyncio.Future[object]], deadline: float, what: str) -> int:
    """Wait for every send in `futures` to be acknowledged; empties the list."""
    if not futures:
        return 0
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise BenchTimeout(f"{what}: deadline passed waiting for acks")
    try:
        await asyncio.wait_for(asyncio.gather(*futures), remaining)
    except TimeoutError as exc:
        raise BenchTimeout(f"{what}: deadline passed waiting for acks") from exc
    done = len(futures)
    futures.clear()
    return done


async def _stop(*clients: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), STOP_TIMEOUT_S)


def _consumer(bootstrap: str, group: str, *topics: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


# -- (a) raw pipe -----------------------------------------------------------------------------


def _reencode(value: bytes | None) -> bytes:
    """Parse and serialize again: the least a JSON pipe does. Unparseable input passes as is."""
    if value is None:
        return b"null"
    try:
        return orjson.dumps(orjson.loads(value))
    except (ValueError, TypeError):
        return value


@dataclass
class RawPipeResult:
    messages: int
    seconds: float

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


async def raw_pipe(
    bootstrap: str,
    events: Sequence[SyntheticEvent],
    partitions: int,
    prefix: str,
    deadline: float,
) -> RawPipeResult:
    source, sink = f"{prefix}-raw-in", f"{prefix}-raw-out"
    await _create(bootstrap, (source, sink), partitions, deadline)
    producer = make_producer(bootstrap)
    await producer.start()
    consumer = _consumer(bootstrap, f"{prefix}-raw", source)
    try:
        total = await _produce_backlog(
            producer, ((source, e.key, e.payload) for e in events), deadline, "raw pipe backlog"
        )
        progress(f"raw pipe: backlog of {total} produced; piping")
        await consumer.start()
        pending: list[asyncio.Future[object]] = []
        acked = 0
        first: float | None = None
        while acked < total:
            check_deadline(deadline, f"raw pipe ({acked}/{total} piped)")
            batch = await consumer.getmany(timeout_ms=200)
            if not batch:
                continue
            if first is None:
                first = time.monotonic()
            for records in batch.values():
                for record in records:
                    pending.append(
                        await producer.send(sink, _reencode(record.value), key=record.key)
                    )
            acked += await _acked(pending, deadline, "raw pipe")
            await consumer.commit()
        assert first is not None
        return RawPipeResult(acked, time.monotonic() - first)
    finally:
        await _stop(consumer, producer)


# -- (b) topology limit -----------------------------------------------------------------------


@dataclass
class TopologyResult:
    leads: int
    seconds: float
    stage3_writes: float
    messages_written: int
    cpu_seconds: float
    """This process's CPU over the same interval: what the dataflow's Kafka I/O costs."""

    @property
    def leads_per_s(self) -> float:
        return self.leads / self.seconds if self.seconds > 0 else 0.0

    @property
    def messages_written_per_lead(self) -> float:
        return self.messages_written / self.leads if self.leads else 0.0

    @property
    def cpu_s_per_1k_leads(self) -> float:
        return self.cpu_seconds / self.leads * 1000.0 if self.leads else 0.0


class _Names:
    """The topology's scratch topics, all under one run prefix."""

    def __init__(self, prefix: str) -> None:
        base = f"{prefix}-topo"
        self.base = base
        self.intake = [f"{base}-{topic}" for topic in catalog.INTAKE.values()]
        self.screen = f"{base}-screen"
        self.offers = f"{base}-offers"
        self.decisions = f"{base}-decisions"
        self.dedup_changelog = f"{base}-dedup-changelog"
        self.caps_changelog = f"{base}-caps-changelog"

    def buyer(self, buyer_id: str) -> str:
        return f"{self.base}-buyer.{buyer_id}"

    def all(self) -> list[str]:
        fixed = [
            self.screen,
            self.offers,
            self.decisions,
            self.dedup_changelog,
            self.caps_changelog,
        ]
        return [*self.intake, *fixed, *(self.buyer(f"b{n:02d}") for n in range(TOPOLOGY_BUYERS))]


class _Stage:
    """One consumer group: consume a batch, send what each record causes, await the acks,
    commit. `decisions` counts acknowledged records `handle` marks as decisions."""

    def __init__(
        self,
        name: str,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        handle: Callable[[ConsumerRecord], Iterable[tuple[Send, bool]]],
        deadline: float,
    ) -> None:
        self.name = name
        self.consumer = consumer
        self.producer = producer
        self.handle = handle
        self.deadline = deadline
        self.ready = asyncio.Event()
        self.first_consumed: float | None = None
        self.cpu_at_first_consumed = 0.0
        self.written = 0
        self.decisions = 0
        self.on_progress: Callable[[], None] = lambda: None
        self.stopping = False

    async def run(self) -> None:
        pending: list[asyncio.Future[object]] = []
        while not self.stopping:
            check_deadline(self.deadline, f"topology {self.name}")
            batch = await self.consumer.getmany(timeout_ms=100)
            if not self.ready.is_set() and self.consumer.assignment():
                self.ready.set()
            if not batch:
                continue
            if self.first_consumed is None:
                self.first_consumed = time.monotonic()
                self.cpu_at_first_consumed = time.process_time()
            decisions = 0
            for records in batch.values():
                for record in records:
                    for (topic, key, value), is_decision in self.handle(record):
                        pending.append(await self.producer.send(topic, value, key=key))
                        decisions += is_decision
            self.written += await _acked(pending, self.deadline, f"topology {self.name}")
            self.decisions += decisions
            self.on_progress()
            await self.consumer.commit()


async def topology_limit(
    bootstrap: str,
    events: Sequence[SyntheticEvent],
    partitions: int,
    prefix: str,
    stage3_writes: float,
    deadline: float,
) -> TopologyResult:
    if stage3_writes < 1:
        raise ValueError("stage 3 writes at least the decision: stage3_writes >= 1")
    names = _Names(prefix)
    await _create(bootstrap, names.all(), partitions, deadline)
    intake_of = dict(zip(catalog.INTAKE.values(), names.intake, strict=True))
    producer = make_producer(bootstrap)
    await producer.start()
    spread = Spreader(stage3_writes)

    def screen(record: ConsumerRecord) -> Iterable[tuple[Send, bool]]:
        value = record.value or b""
        yield (names.screen, fingerprint(value), value), False

    def offer(record: ConsumerRecord) -> Iterable[tuple[Send, bool]]:
        key = record.key or b"0"
        yield (names.dedup_changelog, key, key), False
        yield (names.offers, buyer_of(key).encode(), record.value or b""), False

    def decide(record: ConsumerRecord) -> Iterable[tuple[Send, bool]]:
        buyer_id = (record.key or b"b00").decode()
        value = record.value or b""
        lead = fingerprint(value)
        for n in range(spread.take()):
            if n == 0:
                yield (names.decisions, lead, value), True
            elif n % 2:
                yield (names.caps_changelog, record.key, lead), False
            else:
                yield (names.buyer(buyer_id), lead, value), False

    stages = [
        _Stage("stage 1", _consumer(bootstrap, f"{prefix}-topo-1", *names.intake), producer,
               screen, deadline),
        _Stage("stage 2", _consumer(bootstrap, f"{prefix}-topo-2", names.screen), producer,
               offer, deadline),
        _Stage("stage 3", _consumer(bootstrap, f"{prefix}-topo-3", names.offers), producer,
               decide, deadline),
    ]  # fmt: skip
    tasks: list[asyncio.Task[None]] = []
    try:
        total = await _produce_backlog(
            producer,
            ((intake_of[e.topic], e.key, e.payload) for e in events),
            deadline,
            "topology backlog",
        )
        progress(f"topology: backlog of {total} produced; joining stages 2 and 3")
        done = asyncio.Event()
        finished_at: list[tuple[float, float]] = []

        def on_decisions() -> None:
            if stages[2].decisions >= total and not done.is_set():
                finished_at.append((time.monotonic(), time.process_time()))
                done.set()

        stages[2].on_progress = on_decisions
        for stage in stages:
            await stage.consumer.start()
        # Downstream groups join before the backlog is released, so the clock measures flow.
        tasks = [asyncio.create_task(stages[i].run()) for i in (1, 2)]
        await _wait_any([stages[1].ready.wait(), stages[2].ready.wait()], tasks, deadline, "join")
        tasks.append(asyncio.create_task(stages[0].run()))
        progress("topology: stages running")
        await _wait_any([done.wait()], tasks, deadline, f"topology ({total} leads)")
        first = stages[0].first_consumed
        assert first is not None and finished_at
        written = sum(stage.written for stage in stages)
        finished, cpu_finished = finished_at[0]
        cpu = cpu_finished - stages[0].cpu_at_first_consumed
        return TopologyResult(total, finished - first, stage3_writes, written, cpu)
    finally:
        for stage in stages:
            stage.stopping = True  # each loop ends after its current batch: no commit cut off
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _stop(*(stage.consumer for stage in stages), producer)


async def _wait_any(
    waits: Sequence[Awaitable[object]],
    workers: Sequence[asyncio.Task[None]],
    deadline: float,
    what: str,
) -> None:
    """Wait for all of `waits`; fail as soon as a worker task fails or the deadline passes."""
    goal: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*waits))
    watched: list[asyncio.Future[Any]] = [goal, *workers]
    try:
        remaining = max(0.0, deadline - time.monotonic())
        await asyncio.wait(watched, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        for task in workers:
            if task.done():
                task.result()  # raises what the stage raised
                raise RuntimeError(f"{what}: a stage stopped early")
        if not goal.done():
            raise BenchTimeout(f"{what}: deadline passed")
    finally:
        if not goal.done():
            goal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await goal
