"""Faust's Kafka transport with two consumer settings Faust does not expose.

- Faust hard-codes the consumer's fetch.max.wait.ms to 1500. Kafka answers a fetch as soon as
  data arrives, so the value rarely matters there; a broker that holds every fetch for its full
  wait (the embedded one does) adds that much latency to every hop.
  `ROUTER_FETCH_MAX_WAIT_MS` sets it (default 100).
- Faust restores tables by reading changelogs up to their end offsets. A broker that reports
  the start of the last batch as the end (the embedded one does) makes recovery stop short, so
  a replayed offer would miss its own sale. `ROUTER_VERIFY_END_OFFSETS` reads past the
  reported end to find the true one; off by default (Kafka reports it correctly).

It also fixes an ordering bug that loses events on any broker: after a rebalance Faust resumes
the stream partitions *before* seeking them to their committed offsets. Records fetched in
between move Faust's read offset ahead; the seek then rewinds, Faust drops the re-fetched
records as already read and books the jump as a gap it treats as acked. An event still in
flight there was committed past without being processed. The consumer below holds stream
partitions until the seek is done. Faust also seeks from its fetcher whenever it finds the flow
stopped (during table recovery, before the stream partitions are resumed); that seek does not
count, or it would release the hold before the one that matters.

And a guard for brokers that skip offsets: in a topic Kafka never leaves a hole in (the
router's own, and intake written without transactions), a fetch whose records jump over
offsets is cut at the jump and read again (`router/offset_holes.py`), instead of Faust booking
the jump as processed. The jump is measured from where the last fetch's records ended, or the
offset of a seek made since (a rebalance seeks to the committed offsets, often while a fetch
waits), and from Faust's own read offset (records its fetch loop dropped leave it behind).
The jumps Faust still books are logged and counted (`_add_gap`).

And one more of the same family: Faust's stream skips messages fetched under an earlier
consumer generation (before a rebalance) without processing them, but still *acks* them. Such
an ack can land after the new assignment has set the committed offset, and make Faust commit
past a record the new generation has not processed yet. Acks of earlier generations are
ignored here: the record is fetched again under the new generation and acked then.

It names the stream partitions it is not consuming and why (`not_consumed`), puts them back
(`fetch_again`, `read_again`) and says what each layer knows of one (`fetch_state`), for the
watch in `router/stalls.py`.

Last, a speed-up: Faust's fetch loop races each record's callback against the flow's suspension
with four tasks; the consumer below runs the callback's first step at once and races only a
callback that suspends (`router/eager.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence, Set
from typing import Any, cast

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode.services import WaitResults

from router import eager
from router.offset_holes import HoleGuard
from router.stalls import NO_PROGRESS, NotFetched

log = logging.getLogger(__name__)

Record = tuple[bytes | None, bytes | None]  # key, value
Batch = tuple[asyncio.Future[Any], int]  # a batch's delivery, and its record count


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    _holes: HoleGuard | None = None
    _behind: HoleGuard | None = None  # its own patience, for `read_behind_again`
    _sought: dict[Any, int] | None = None
    # Per guarded partition, the offset after the last record handed on, for one assignment.
    _handed_on: dict[Any, int] | None = None
    _handed_on_for: Any = None

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts its fetcher, which happens later.
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        self._holes = HoleGuard(transport.contiguous_topics)
        self._behind = HoleGuard(transport.contiguous_topics)
        self._sought = record_seeks(consumer)
        return consumer

    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Mapping[Any, list[Any]]:
        guard = self._holes
        if guard is None:
            return await super()._fetch_records(
                consumer, active_partitions, timeout=timeout, max_records=max_records
            )
        sought = self._sought if self._sought is not None else {}
        assignment = current_assignment(consumer)
        if self._handed_on is None or assignment is not self._handed_on_for:
            self._handed_on, self._handed_on_for = {}, assignment
        handed_on = self._handed_on
        # Where each partition's records must start: where the last fetch's records ended,
        # else the position before this fetch. Not the position alone: aiokafka moves it to the
        # end a batch's header claims, so a batch with fewer records than offsets would leave
        # a hole between two fetches that no single fetch shows.
        starts = {
            tp: handed_on.get(tp, position)
            for tp, position in consumer_positions(consumer, guard.topics).items()
        }
        fetched = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        # A seek since the last fetch (a rebalance seeks back to the committed offsets, often
        # while a fetch waits) sets where the records start instead.
        same_assignment = current_assignment(consumer) is assignment
        starts = starts_of_fetch(starts, sought, same_assignment=same_assignment)
        sought.clear()
        if not fetched:
            return fetched
        kept = read_holes_again(consumer, guard, fetched, starts)
        if self._behind is not None:
            kept = read_behind_again(consumer, self._behind, kept, self.consumer._read_offset)
        if same_assignment:
            handed_on.update(
                (tp, records[-1].offset + 1)
                for tp, records in kept.items()
                if records and getattr(tp, "topic", None) in guard.topics
            )
        return kept

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(partitions)
        transport = cast(Transport, self.transport)
        if not transport.verify_end_offsets:
            return reported
        return await true_end_offsets(transport.bootstrap_servers, reported)


def record_seeks(consumer: aiokafka.AIOKafkaConsumer) -> dict[Any, int]:
    """A dict that each seek of `consumer` writes its partition's new offset into.

    Every seek (`seek`, `seek_to_committed`) ends in the subscription's `seek`; the fetch path
    clears the dict after each fetch, so it holds the seeks made since the last one ended.
    """
    sought: dict[Any, int] = {}
    subscription = consumer._subscription
    seek = subscription.seek

    def seek_and_record(tp: Any, offset: int) -> None:
        seek(tp, offset)
        sought[tp] = offset

    subscription.seek = seek_and_record
    return sought


def current_assignment(consumer: aiokafka.AIOKafkaConsumer) -> Any:
    subscription = consumer._subscription.subscription
    return subscription.assignment if subscription is not None else None


def consumer_positions(
    consumer: aiokafka.AIOKafkaConsumer, topics: Set[str]
) -> dict[Any, int | None]:
    """The consumer's next offset for each assigned partition of `topics` (None: not known)."""
    assignment = current_assignment(consumer)
    if assignment is None:
        return {}
    positions: dict[Any, int | None] = {}
    for tp in assignment.tps:
        if tp.topic in topics:
            state = assignment.state_value(tp)
            positions[tp] = state.position if state.has_valid_position else None
    return positions


def starts_of_fetch(
    before: Mapping[Any, int | None], sought: Mapping[Any, int], same_assignment: bool
) -> dict[Any, int | None]:
    """Where each partition's fetched records start: the last offset sought since the last
    fetch, else where they were expected before this one. A new assignment meanwhile started
    each partition afresh from its committed offset, which the fetch path does not know
    (None)."""
    starts: dict[Any, int | None] = {
        tp: position if same_assignment else None for tp, position in before.items()
    }
    starts.update(sought)
    return starts


def read_holes_again(
    consumer: aiokafka.AIOKafkaConsumer,
    guard: HoleGuard,
    fetched: Mapping[Any, list[Any]],
    positions: Mapping[Any, int | None],
) -> dict[Any, list[Any]]:
    """The fetched records up to each guarded partition's first hole; the consumer is sought
    back to the hole, so its next fetch reads it again."""
    kept, seeks = guard.trim(fetched, positions)
    for tp, offset in seeks.items():
        consumer.seek(tp, offset)
    return kept


def read_behind_again(
    consumer: aiokafka.AIOKafkaConsumer,
    guard: HoleGuard,
    fetched: Mapping[Any, list[Any]],
    read_offsets: Mapping[TP, int | None],
) -> dict[Any, list[Any]]:
    """The fetched records, less each guarded partition's whose records start past the one
    after Faust's read offset; those are sought back to the read offset.

    Faust books such a jump as processed. It happens when records were handed to Faust's
    fetch loop and dropped there (a partition left the active set while its records were on
    the way) with no seek after it; docs/reliability.md section 12 saw a worker start hundreds
    of offsets past its seek to the committed ones. The read offset is the last record Faust
    read, or right after a seek the committed offset itself: reading from it again may repeat
    one event, which every stage handles as a replay.
    """
    kept = dict(fetched)
    for tp, records in fetched.items():
        if not records or getattr(tp, "topic", None) not in guard.topics:
            continue
        read = read_offsets.get(TP(tp.topic, tp.partition))
        first = records[0].offset
        if read is None or first <= read + 1:
            guard.settled(tp)
            continue
        if guard.read_again(tp, read + 1, first):
            del kept[tp]
            consumer.seek(tp, read)
    return kept


async def true_end_offsets(
    bootstrap_servers: str,
    reported: Mapping[TP, int],
    timeout_s: float = 10.0,
    strict: bool = False,
) -> dict[TP, int]:
    """Read from just before each reported end to where the partition really ends.

    With `strict`, raise TimeoutError if the partitions were still growing at the deadline.
    """
    ends = dict(reported)
    unknown = {tp for tp, end in ends.items() if end >= 0}
    if not unknown:
        return ends
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([aiokafka.TopicPartition(tp.topic, tp.partition) for tp in unknown])
        for tp in unknown:
            consumer.seek(aiokafka.TopicPartition(tp.topic, tp.partition), max(0, ends[tp] - 1))
        deadline = time.monotonic() + timeout_s
        quiet_polls = 0
        while quiet_polls < 2 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            quiet_polls = 0 if batch else quiet_polls + 1
            for atp, records in batch.items():
                tp = TP(atp.topic, atp.partition)
                if records:
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
        if strict and quiet_polls < 2:
            raise TimeoutError("partitions kept growing while their ends were read")
        return ends
    finally:
        await consumer.stop()


class Consumer(faust_aiokafka.Consumer):
    # Set from an assignment until the seek to committed offsets; stream partitions Faust
    # resumes meanwhile wait in `_held_until_seek`. `_assignments` tells a seek that a new
    # assignment began while it ran.
    _seek_pending: bool = False
    _held_until_seek: frozenset[TP] = frozenset()
    _assignments: int = 0

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_assigned(self, assigned: Set[TP], generation_id: int = 0) -> None:
        self._seek_pending = True
        self._held_until_seek = frozenset()
        self._assignments += 1
        await super().on_partitions_assigned(assigned, generation_id)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        tpset = set(tps)
        if self._seek_pending:
            changelogs = self.app.tables.changelog_topics
            streams = {tp for tp in tpset if tp.topic not in changelogs}
            self._held_until_seek |= streams
            tpset -= streams
        super().resume_partitions(tpset)

    def ack(self, message: Message) -> bool:
        if message.generation_id != self.app.consumer_generation_id:
            return False
        return cast(bool, super().ack(message))

    # The composition root counts skipped offsets, markers left out, in a metric.
    on_offsets_skipped: Callable[[str, int], None] | None = None

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Faust books the offsets a fetch jumped over as processed, and commits past them. On
        # Kafka only a transaction's commit marker (one offset, in a topic others write) or
        # compaction leaves such a jump; any other one is records this worker never processed.
        skipped = offset_to - offset_from
        if skipped > 0:
            contiguous = cast("Transport", self.transport).contiguous_topics
            marker = skipped == 1 and tp.topic not in contiguous
            log.log(
                logging.DEBUG if marker else logging.WARNING,
                "offsets skipped by the fetch; committed past without being processed",
                extra={
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "first": offset_from,
                    "last": offset_to - 1,
                    "skipped": skipped,
                },
            )
            if self.on_offsets_skipped is not None and not marker:
                self.on_offsets_skipped(tp.topic, skipped)
        await super()._add_gap(tp, offset_from, offset_to)

    async def perform_seek(self) -> None:
        # Faust's fetcher also seeks when it finds the flow stopped, e.g. during table
        # recovery, before recovery resumes the stream partitions and seeks them itself. Only
        # a seek that starts after stream partitions were asked to resume releases them.
        held = self._held_until_seek
        assignments = self._assignments
        await super().perform_seek()
        if not held or assignments != self._assignments:
            # Nothing to release, or a new assignment began meanwhile: its own seek releases.
            return
        # Partitions resumed while this seek ran were not sought by it: they wait for the
        # seek Faust makes after resuming them.
        self._held_until_seek -= held
        self._seek_pending = bool(self._held_until_seek)
        super().resume_partitions(held)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """Faust's fetch loop calls this once per fetched record, with the conductor's
        callback and the flow's suspension (`wait_first(callback(message),
        suspend_flow.wait())`). The callback's first step runs at once; when it finishes
        there (it nearly always does), no task is made. One that suspends races the
        suspension from where it stopped, as Faust's does from the start. Other calls, and any
        once the consumer stops, go to Faust's own."""
        if (
            timeout is not None
            or len(coros) != 2
            or not asyncio.iscoroutine(coros[0])
            or self._stopped.is_set()
            or self._crashed.is_set()
        ):
            return await super().wait_first(*coros, timeout=timeout)
        callback, suspended = coros
        try:
            outcome = eager.run_first_step(callback)
        except BaseException:
            _close(suspended)
            raise
        if isinstance(outcome, eager.Finished):
            _close(suspended)
            return WaitResults([callback], [outcome.value], False)
        return await super().wait_first(outcome, suspended)

    def not_consumed(self, waiting: Set[TP] = frozenset()) -> dict[TP, NotFetched]:
        """Assigned stream partitions Faust is not fetching now, and why; and those it fetches
        among `waiting` (partitions whose records wait on the broker), as `no_progress`. Whether
        the latter are stuck, only their read offset over time can tell (`router/stalls.py`)."""
        active = self._get_active_partitions()
        changelogs = self.app.tables.changelog_topics
        left_out: dict[TP, NotFetched] = {}
        for tp in self.assignment():
            if tp.topic in changelogs:
                continue
            if tp in active:
                if tp in waiting:
                    left_out[tp] = NotFetched(NO_PROGRESS, self._read_offset.get(tp))
                continue
            if tp in self._held_until_seek:
                reason = "held_until_seek"
            elif tp in self._paused_partitions:
                reason = "paused"
            elif tp in self._buffered_partitions:
                reason = "buffer_full"
            else:
                reason = "unknown"
            left_out[tp] = NotFetched(reason, self._read_offset.get(tp))
        return left_out

    async def fetch_again(self, tps: Set[TP]) -> None:
        """Put stalled partitions back into the fetch."""
        if tps & self._held_until_seek:
            # The hold ends as designed, after a seek to the committed offsets.
            await self.perform_seek()
        rest = set(tps) - self._held_until_seek
        self._buffered_partitions.difference_update(rest)
        # Through the hold: while a seek is pending, a resumed partition waits for it.
        self.resume_partitions(rest)

    async def read_again(self, offsets: Mapping[TP, int]) -> None:
        """Seek partitions that make no progress back to these (committed) offsets:
        the seek sets Faust's read offset and the fetcher's position, and drops records the
        fetcher holds for them. Records read twice are harmless: every stage is idempotent."""
        for tp, offset in offsets.items():
            await self.seek(tp, offset)

    def fetch_state(self, tp: TP) -> dict[str, Any]:
        """What Faust and aiokafka know of a partition, for the log of a stall: which layer
        lost track of it is what docs/reliability.md sections 9 and 11 could not tell."""
        state: dict[str, Any] = {
            "active": tp in self._get_active_partitions(),
            "paused": tp in self._paused_partitions,
            "buffer_full": tp in self._buffered_partitions,
            "held_until_seek": tp in self._held_until_seek,
            "read_offset": self._read_offset.get(tp),
            "committed_offset": self._committed_offset.get(tp),
            "unacked": sum(1 for message in list(self._unacked_messages) if message.tp == tp),
        }
        consumer = getattr(self._thread, "_consumer", None)
        assignment = current_assignment(consumer) if consumer is not None else None
        atp = aiokafka.TopicPartition(tp.topic, tp.partition)
        if consumer is None or assignment is None or atp not in assignment.tps:
            state["fetcher"] = "not assigned"
            return state
        tp_state = assignment.state_value(atp)
        fetcher = consumer._fetcher
        state["fetcher"] = {
            "status": tp_state._status.name,
            "position": tp_state._position,
            "paused": tp_state.paused,
            "highwater": tp_state.highwater,
            "records_waiting": atp in fetcher._records,
            "fetches_in_flight": len(fetcher._in_flight),
        }
        return state


def _close(waitable: Any) -> None:
    """Close a coroutine that will not be awaited (Python warns about it otherwise)."""
    if asyncio.iscoroutine(waitable):
        waitable.close()


class _Producer(faust_aiokafka.Producer):
    """Flushes only after every agent's waiting records are handed over (`router/output.py`):
    Faust flushes before it commits offsets, and an event's offset must not be committed
    while its records still wait for their changelog acks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._before_flush: list[Callable[[], Awaitable[None]]] = []

    def before_flush(self, wait: Callable[[], Awaitable[None]]) -> None:
        self._before_flush.append(wait)

    async def flush(self) -> None:
        for wait in self._before_flush:
            await wait()
        await super().flush()

    async def send_many(
        self, topic: str, records: Sequence[Record], partition: int | None = None
    ) -> list[Batch]:
        """Hand records to the producer as whole batches, in order per partition.

        `send` costs per record: two metadata look-ups, a future, and one more resolved when
        its batch is acknowledged, about a fifth of a worker's time (docs/performance.md).
        A batch has one future. Records without a `partition` go where the producer's
        partitioner puts their key. Returns each batch's delivery and its record count.
        """
        producer = self._ensure_producer()
        groups: Mapping[int, Sequence[Record]]
        if partition is not None:
            groups = {partition: records}
        else:
            every = sorted(await producer.partitions_for(topic))
            partitioner = self.partitioner  # set in __post_init__ when not configured
            assert partitioner is not None
            by_partition: dict[int, list[Record]] = {}
            for record in records:
                chosen = partitioner(record[0], every, every)
                by_partition.setdefault(chosen, []).append(record)
            groups = by_partition
        batches: list[Batch] = []
        for chosen, group in groups.items():
            batch, count = producer.create_batch(), 0
            for key, value in group:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    # Full: queue it, and start the next with this record.
                    delivery = await producer.send_batch(batch, topic, partition=chosen)
                    batches.append((delivery, count))
                    batch, count = producer.create_batch(), 0
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"a record for {topic} is larger than a whole batch")
                count += 1
            if count:
                batches.append((await producer.send_batch(batch, topic, partition=chosen), count))
        return batches


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = _Producer

    def __init__(
        self,
        *args: Any,
        bootstrap_servers: str,
        fetch_max_wait_ms: int,
        verify_end_offsets: bool,
        contiguous_topics: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.bootstrap_servers = bootstrap_servers
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.verify_end_offsets = verify_end_offsets
        # Topics only the router writes: never compacted, never transactional, so a skipped
        # offset there is the broker's fault (`router/offset_holes.py`).
        self.contiguous_topics = contiguous_topics
