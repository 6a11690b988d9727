"""A stage's results onto Kafka: records to their topics, table writes to the table and its
changelog, handed straight to the producer in whole batches.

Why not `Topic.send` and `table[key] = value`: each of those runs Faust's per-message
machinery (future wrappers, a send buffer, sensors), measured at about 100 µs a message on
the development machine, where the producer's own send costs about 35 µs; a lead writes
about ten messages (docs/performance.md). Even the producer's own `send` costs per record (a
future each, metadata look-ups), so a stage's records and changelog records go at the end of
its batch of events, as whole Kafka batches (`transport._Producer.send_many`).

A table write goes to the table's store and to its changelog on the partition of the event
that caused it. That is the partition Faust itself would use (tables are co-partitioned with
their streams, `tests/unit/test_faust_guards.py`), named explicitly so that it does not
depend on which event Faust believes is current. Recovery is Faust's own: it replays the
changelog into the store.

Records go out only after the broker has every changelog record written before them. Handing
the changelog record to the producer first is not enough: one produce request can carry a
buyer topic's new batch while the changelog partition still has older batches queued, and a
worker killed in between leaves a sale delivered to its buyer but missing from the table, so
the replay decides the offer again (docs/reliability.md, section 6). The wait happens off the
agent's path, in a releaser task, so an agent never stalls on the broker; the transport's
producer waits for the releasers before every flush, and Faust flushes before it commits
offsets, so an offset is committed only after its event's records are with the producer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Protocol, cast

import orjson
from faust.types import AppT, TableT

from router import codec
from router.records import Emit
from router.topology import store_of
from router.transport import Record

log = logging.getLogger(__name__)

OnSendError = Callable[[str, BaseException, int], None]  # topic, error, records lost
Delivery = asyncio.Future[Any]


class SendsMany(Protocol):
    """The transport's producer (`router/transport.py`): records in whole batches."""

    async def send_many(
        self, topic: str, records: Sequence[Record], partition: int | None = None
    ) -> list[tuple[Delivery, int]]: ...


# Records that may wait for their changelog acks before the agent itself waits.
MAX_WAITING_RECORDS = 5000


def changelog_key(key: str) -> bytes:
    """A table key as Faust's "json" key serializer writes it (a JSON string)."""
    return orjson.dumps(key)


def changelog_value(value: Any) -> bytes | None:
    """A table value as Faust's "json" value serializer reads it back; None deletes."""
    return None if value is None else orjson.dumps(value)


async def _settled(delivery: Delivery) -> None:
    """Wait until the delivery is done, whatever its result. A failed one was reported by
    `Output._delivered`, and its records still go, as they did before the wait: the store
    already holds the write. Unlike awaiting the delivery itself, cancelling the waiter leaves
    the producer's future alone; lighter than `asyncio.wait` for one future."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def settle(_: Delivery) -> None:
        if not waiter.done():
            waiter.set_result(None)

    delivery.add_done_callback(settle)
    try:
        await waiter
    finally:
        delivery.remove_done_callback(settle)


class Output:
    def __init__(
        self,
        app: AppT,
        on_send_error: OnSendError,
        max_waiting_records: int = MAX_WAITING_RECORDS,
    ) -> None:
        self.app = app
        self.on_send_error = on_send_error
        self.max_waiting_records = max_waiting_records
        self._changelogs: dict[str, str] = {}
        # Changelog records written since the last send, per changelog partition.
        self._writes: dict[tuple[str, int], list[Record]] = {}
        # Changelog deliveries handed over since the last records were queued.
        self._fence: list[Delivery] = []
        # Records waiting for their fence, in the order they were sent.
        self._waiting: deque[tuple[list[Delivery], Sequence[Emit]]] = deque()
        self._waiting_records = 0
        self._queued = 0  # records queued so far (one entry per `send` call)
        self._released = 0  # of those, handed to the producer
        self._released_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._room = asyncio.Event()
        self._releaser: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._hooked = False

    def _delivered(self, topic: str, count: int, done: Delivery) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            log.error("send failed", extra={"topic": topic, "error": repr(error)})
            self.on_send_error(topic, error, count)

    async def _send_many(
        self, topic: str, records: Sequence[Record], partition: int | None
    ) -> list[Delivery]:
        producer = cast(SendsMany, self.app.producer)
        batches = await producer.send_many(topic, records, partition)
        for delivery, count in batches:
            delivery.add_done_callback(partial(self._delivered, topic, count))
        return [delivery for delivery, _ in batches]

    async def _send_records(self, emits: Iterable[Emit]) -> None:
        by_topic: dict[str, list[Record]] = {}
        for emit in emits:
            key = emit.key.encode() if emit.key is not None else None
            by_topic.setdefault(emit.topic, []).append((key, codec.encode(emit.value)))
        for topic, records in by_topic.items():
            await self._send_many(topic, records, None)

    async def _hand_over_writes(self) -> None:
        """The changelog records written since the last send, to the producer; they fence
        the records sent next."""
        writes, self._writes = self._writes, {}
        for (changelog, partition), records in writes.items():
            for delivery in await self._send_many(changelog, records, partition):
                if not delivery.done():
                    self._fence.append(delivery)

    async def send(self, emits: Sequence[Emit]) -> None:
        """Hand the table writes made since the last send to the producer, then send
        `emits` once every changelog record written before them is acknowledged. Call it
        with no records to hand over writes alone."""
        if self._failure is not None:
            raise self._failure
        await self._hand_over_writes()
        if not emits:
            return
        fence = [delivery for delivery in self._fence if not delivery.done()]
        self._fence = []
        if not fence and self._released == self._queued:
            await self._send_records(emits)
            return
        # One send at least may always wait, however many records it has.
        while self._waiting and self._waiting_records >= self.max_waiting_records:
            self._room.clear()
            await self._room.wait()
            if self._failure is not None:
                raise self._failure
        if not self._hooked:
            # The transport's producer waits for `released` before every flush.
            add_hook = getattr(self.app.producer, "before_flush", None)
            if add_hook is not None:
                add_hook(self.released)
            self._hooked = True
        self._waiting.append((fence, emits))
        self._waiting_records += len(emits)
        self._queued += 1
        if self._releaser is None:
            self._releaser = asyncio.get_running_loop().create_task(self._release())

    async def _release(self) -> None:
        try:
            while self._waiting:
                fence, emits = self._waiting[0]
                for delivery in fence:
                    if not delivery.done():
                        await _settled(delivery)
                await self._send_records(emits)
                self._waiting.popleft()
                self._waiting_records -= len(emits)
                self._released += 1
                self._room.set()
                self._wake(self._released)
        except Exception as error:
            log.exception("records could not be handed to the producer")
            self._failure = error
            self._room.set()
            for _, waiter in self._released_waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            self._released_waiters = []
        finally:
            self._releaser = None

    def _wake(self, released: int) -> None:
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, waiter in self._released_waiters:
            if target <= released:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._released_waiters = still

    async def released(self) -> None:
        """Wait until every record sent so far is with the producer."""
        if self._failure is not None:
            raise self._failure
        target = self._queued
        if self._released >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._released_waiters.append((target, waiter))
        await waiter

    def _changelog(self, table: TableT) -> str:
        name = self._changelogs.get(table.name)
        if name is None:
            name = self._changelogs[table.name] = table.changelog_topic.get_topic_name()
        return name

    def write(self, table: TableT, partition: int, writes: Iterable[tuple[str, Any]]) -> None:
        """Assign each value (None deletes the key), in the order given, and changelog it:
        the store changes at once, the changelog records go to the producer with the next
        `send`, ahead of its records."""
        store = store_of(table)
        pending = self._writes.setdefault((self._changelog(table), partition), [])
        for key, value in writes:
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
            pending.append((changelog_key(key), changelog_value(value)))
