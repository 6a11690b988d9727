"""A stage's results onto Kafka: records to their topics, table writes to the table and its
changelog, each handed straight to Faust's producer.

Why not `Topic.send` and `table[key] = value`: each of those runs Faust's per-message
machinery (future wrappers, a send buffer, sensors), measured at about 100 µs a message on
the development machine, where the producer's own send costs about 35 µs; a lead writes
about ten messages (docs/performance.md). Both paths end in the same producer, so
at-least-once holds the same way: a message is handed to the producer before its source
event is acked, and Faust flushes the producer before it commits offsets.

A table write goes to the table's store and to its changelog on the partition of the event
that caused it. That is the partition Faust itself would use (tables are co-partitioned with
their streams, `tests/unit/test_faust_guards.py`), named explicitly so that it does not
depend on which event Faust believes is current. Recovery is Faust's own: it replays the
changelog into the store.

Agents stage a batch's table writes (`stage`) and `flush` them once the batch is decided:
the store changes at once, so later events of the batch see earlier ones, but each key's
changelog gets only its last value. A buyer's window counts change with every sale, so a
batch of offers writes each count once instead of once per sale. A key is flushed at the
position of its first write in the batch, so everything written before a key in one event
(counts before the ledger entry of the same offer) still reaches the changelog before it:
a crash part-way through a flush errs the same safe way as one between single writes
(`router/accounting.py`).

Records are sent only once the broker has acknowledged the flush. Handing both to the
producer is not enough: it sends a partition's batches in order, but one request can carry a
buyer topic's batch while the changelog partition still has older batches queued, and a
worker killed in between has delivered a sale that its changelog never recorded (the
replayed offer is then decided again, at a new time; seen once in the kill loop). Waiting
once per batch costs one produce round trip per batch. A delivery that fails after the
producer's retries is logged and counted (`router_producer_send_errors_total`) like any
other, and the records are still sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from faust.types import AppT, TableT

from router import codec
from router.records import Emit

log = logging.getLogger(__name__)

OnSendError = Callable[[str, BaseException], None]


def changelog_key(key: str) -> bytes:
    """A table key as Faust's "json" key serializer writes it (a JSON string)."""
    return orjson.dumps(key)


def changelog_value(value: Any) -> bytes | None:
    """A table value as Faust's "json" value serializer reads it back; None deletes."""
    return None if value is None else orjson.dumps(value)


class Output:
    """One per agent: staged writes belong to the batch of the agent that staged them."""

    def __init__(self, app: AppT, on_send_error: OnSendError) -> None:
        self.app = app
        self.on_send_error = on_send_error
        self._changelogs: dict[str, str] = {}
        # (changelog topic, partition) -> key -> last staged value, in first-write order.
        self._staged: dict[tuple[str, int], dict[str, Any]] = {}

    async def _send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> asyncio.Future[Any]:
        delivery = await self.app.producer.send(topic, key, value, partition, None, None)
        delivery.add_done_callback(lambda done: self._delivered(topic, done))  # type: ignore[attr-defined]
        return delivery  # type: ignore[return-value]

    def _delivered(self, topic: str, done: asyncio.Future[Any]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            log.error("send failed", extra={"topic": topic, "error": repr(error)})
            self.on_send_error(topic, error)

    async def send(self, emits: Iterable[Emit]) -> None:
        for emit in emits:
            key = emit.key.encode() if emit.key is not None else None
            await self._send(emit.topic, key, codec.encode(emit.value), None)

    def _changelog(self, table: TableT) -> str:
        name = self._changelogs.get(table.name)
        if name is None:
            name = self._changelogs[table.name] = table.changelog_topic.get_topic_name()
        return name

    def stage(self, table: TableT, partition: int, writes: Iterable[tuple[str, Any]]) -> None:
        """Assign each value now (None deletes the key); its changelog record waits for flush."""
        store = table.data
        staged = self._staged.setdefault((self._changelog(table), partition), {})
        for key, value in writes:
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
            staged[key] = value

    async def flush(self) -> None:
        """Send each staged key's last value to its changelog, in first-write order, and wait
        until the broker has answered for all of them."""
        staged, self._staged = self._staged, {}
        deliveries = [
            await self._send(changelog, changelog_key(key), changelog_value(value), partition)
            for (changelog, partition), values in staged.items()
            for key, value in values.items()
        ]
        if deliveries:
            await asyncio.wait(deliveries)
