"""Compacted topics read as in-memory tables: the control plane's read side.

`TopicView` keeps the latest value of every key of one topic, across all its partitions, in
memory: a global table that every worker holds whole, read without a consumer group.
`MarketConfig` decodes the `buyers.config` view into a `BuyersConfig`. `scan` and
`read_latest` read a topic once, up to its end, for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from router.buyers import Buyer, BuyersConfig, VerticalPolicy
from router.partitioning import key_partition

if TYPE_CHECKING:
    from faust.types import TP

log = logging.getLogger(__name__)

# `buyers.config` holds two kinds of key: a buyer's id, and one key per vertical policy.
# Buyer ids cannot contain ':', so the two never collide.
VERTICAL_PREFIX = "vertical:"

OnChange = Callable[[str, bytes | None], None]
T = TypeVar("T")


def policy_key(vertical: str) -> str:
    return f"{VERTICAL_PREFIX}{vertical}"


def _consumer(bootstrap_servers: str, fetch_max_wait_ms: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, or [] while it does not exist.

    The consumer's client tracks no topic before assignment, so this refreshes the metadata
    of all topics: asking for this one by name could make a broker with auto-creation
    create it with its defaults (not compacted). `topics()` would not do: it leaves the
    metadata that `partitions_for_topic` answers from as it was when the consumer started.
    """
    await consumer._client.force_metadata_update()
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def _end_offsets(
    consumer: AIOKafkaConsumer,
    bootstrap_servers: str,
    partitions: list[TopicPartition],
    verify: bool,
) -> dict[TopicPartition, int]:
    reported = await consumer.end_offsets(partitions)
    if not verify:
        return dict(reported)
    # Faust is heavy to import; only brokers that under-report end offsets need this.
    from faust.types import TP

    from router.transport import true_end_offsets

    as_tp: dict[TP, int] = {TP(tp.topic, tp.partition): end for tp, end in reported.items()}
    true = await true_end_offsets(bootstrap_servers, as_tp)
    return {TopicPartition(tp.topic, tp.partition): end for tp, end in true.items()}


def _key(record: ConsumerRecord) -> str | None:
    try:
        return record.key.decode("utf-8") if record.key is not None else None
    except UnicodeDecodeError:
        return None


async def _reached(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> bool:
    # The position, not the last record's offset: compaction and control records leave gaps.
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


class TopicView:
    """The latest value per key of one topic, kept current by a background reader.

    Every partition is assigned and read from the beginning; a tombstone (null value)
    deletes its key. Values stay raw bytes: decoding is the caller's job, so a bad record can
    never stop the reader. Records without a UTF-8 key cannot be table entries; they are
    skipped, logged and counted in `skipped`.

    A topic that does not exist yet is waited for. Partitions added later are not picked
    up. A view is started once; a stopped view is not started again.

    `version` grows by one on every change applied, so callers can cache what they decode;
    `on_change(key, value)` is called after each one (value None: deleted).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        on_change: OnChange | None = None,
        fetch_max_wait_ms: int = 100,
        verify_end_offsets: bool = False,
        retry_s: float = 1.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.on_change = on_change
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.verify_end_offsets = verify_end_offsets
        self.retry_s = retry_s
        self.skipped = 0
        self._data: dict[str, bytes] = {}
        self._version = 0
        self._caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def version(self) -> int:
        return self._version

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def items(self) -> list[tuple[str, bytes]]:
        """A copy: the reader may change the table while the caller iterates."""
        return list(self._data.items())

    def snapshot(self) -> dict[str, bytes]:
        return dict(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    async def start(self) -> None:
        """Connect and start reading in the background. Raises if the broker is unreachable."""
        if self._task is not None:
            return
        self._consumer = _consumer(self.bootstrap_servers, self.fetch_max_wait_ms)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(self._consumer), name=f"view:{self.topic}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def wait_caught_up(self, timeout: float) -> bool:
        """True once every partition was read up to the end offsets seen at start."""
        try:
            await asyncio.wait_for(self._caught_up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        ends = await self._retrying("start", lambda: self._assign(consumer))
        while True:
            if not self._caught_up.is_set() and await self._retrying(
                "position", lambda: _reached(consumer, ends)
            ):
                log.info("topic view caught up", extra={"topic": self.topic, "keys": len(self)})
                self._caught_up.set()
            batch = await self._retrying("fetch", lambda: consumer.getmany(timeout_ms=500))
            for records in batch.values():
                for record in records:
                    self._apply(record)

    async def _assign(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        warned = False
        while not (partitions := await _partitions(consumer, self.topic)):
            if not warned:
                log.warning("topic view waits for its topic to exist", extra={"topic": self.topic})
                warned = True
            await asyncio.sleep(self.retry_s)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return await _end_offsets(
            consumer, self.bootstrap_servers, partitions, self.verify_end_offsets
        )

    async def _retrying(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run `step` until it succeeds: the view must outlive broker trouble, not die of it."""
        while True:
            try:
                return await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "topic view retries",
                    extra={"topic": self.topic, "step": what, "error": repr(exc)},
                )
                await asyncio.sleep(self.retry_s)

    def _apply(self, record: ConsumerRecord) -> None:
        key = _key(record)
        if key is None:
            self.skipped += 1
            log.warning(
                "topic view skips a record without a UTF-8 key",
                extra={"topic": self.topic, "partition": record.partition, "offset": record.offset},
            )
            return
        value: bytes | None = record.value
        if value is None:
            if self._data.pop(key, None) is None:
                return
        elif self._data.get(key) == value:
            return
        else:
            self._data[key] = value
        self._version += 1
        if self.on_change is not None:
            try:
                self.on_change(key, value)
            except Exception:
                log.exception("topic view on_change failed", extra={"topic": self.topic})


def decode_market(entries: Iterable[tuple[str, bytes]]) -> tuple[BuyersConfig, dict[str, str]]:
    """`buyers.config` entries as a BuyersConfig, and {key: why} for each entry left out."""
    buyers: list[Buyer] = []
    verticals: dict[str, VerticalPolicy] = {}
    invalid: dict[str, str] = {}
    for key, value in entries:
        try:
            if key.startswith(VERTICAL_PREFIX):
                verticals[key.removeprefix(VERTICAL_PREFIX)] = VerticalPolicy.model_validate_json(
                    value
                )
                continue
            buyer = Buyer.model_validate_json(value)
        except ValidationError as exc:
            invalid[key] = f"{exc.error_count()} validation error(s): {exc.errors()[0]['msg']}"
            continue
        if buyer.id != key:
            invalid[key] = f"buyer id {buyer.id!r} differs from its key"
            continue
        buyers.append(buyer)
    buyers.sort(key=lambda b: b.id)
    return BuyersConfig(verticals=verticals, buyers=buyers), invalid


class MarketConfig:
    """The `buyers.config` view decoded into a BuyersConfig, decoded again only after a change.

    Entries that do not decode are left out with a warning (once per change of the view),
    never raised; `invalid` names them and `skipped` counts them.
    """

    def __init__(self, view: TopicView) -> None:
        self.view = view
        self._version = -1
        self._config = BuyersConfig(buyers=[])
        self._invalid: dict[str, str] = {}

    @property
    def config(self) -> BuyersConfig:
        if self.view.version != self._version:
            version = self.view.version
            self._config, self._invalid = decode_market(self.view.items())
            self._version = version
            for key, why in sorted(self._invalid.items()):
                log.warning(
                    "buyers.config entry skipped",
                    extra={"topic": self.view.topic, "key": key, "error": why},
                )
        return self._config

    @property
    def invalid(self) -> Mapping[str, str]:
        self.config  # noqa: B018 - decodes first if the view changed
        return dict(self._invalid)

    @property
    def skipped(self) -> int:
        return len(self.invalid)


async def scan(
    bootstrap_servers: str,
    topic: str,
    *,
    partition_for_key: bytes | None = None,
    verify_end_offsets: bool = False,
    timeout_s: float = 60.0,
    fetch_max_wait_ms: int = 100,
) -> AsyncIterator[list[ConsumerRecord]]:
    """Batches of a topic's records from the beginning up to its end offsets at call time.

    With `partition_for_key`, only the partition Kafka's default partitioner (murmur2, as
    Faust and aiokafka producers use) puts that key on. A missing topic yields nothing.
    """
    consumer = _consumer(bootstrap_servers, fetch_max_wait_ms)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        if not partitions:
            return
        if partition_for_key is not None:
            index = key_partition(partition_for_key, len(partitions))
            partitions = [partitions[index]]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await _end_offsets(consumer, bootstrap_servers, partitions, verify_end_offsets)
        deadline = time.monotonic() + timeout_s
        while not await _reached(consumer, ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end within {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=200)
            records = [record for part in batch.values() for record in part]
            if records:
                yield records
    finally:
        await consumer.stop()


async def read_latest(
    bootstrap_servers: str,
    topic: str,
    *,
    verify_end_offsets: bool = False,
    timeout_s: float = 60.0,
) -> dict[str, bytes]:
    """The latest value per key, as a TopicView would hold it once caught up."""
    table: dict[str, bytes] = {}
    async for records in scan(
        bootstrap_servers, topic, verify_end_offsets=verify_end_offsets, timeout_s=timeout_s
    ):
        for record in records:
            key = _key(record)
            if key is None:
                continue
            if record.value is None:
                table.pop(key, None)
            else:
                table[key] = record.value
    return table
