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
    def __init__(self, app: AppT, on_send_error: OnSendError) -> None:
        self.app = app
        self.on_send_error = on_send_error
        self._changelogs: dict[str, str] = {}

    async def _send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> None:
        delivery = await self.app.producer.send(topic, key, value, partition, None, None)
        delivery.add_done_callback(lambda done: self._delivered(topic, done))  # type: ignore[attr-defined]

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

    async def write(self, table: TableT, partition: int, writes: Iterable[tuple[str, Any]]) -> None:
        """Assign each value (None deletes the key), in the order given, and changelog it."""
        store = table.data
        changelog = self._changelog(table)
        for key, value in writes:
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
            await self._send(changelog, changelog_key(key), changelog_value(value), partition)
