"""Offsets a broker skipped in a partition that cannot have holes.

Kafka never leaves a hole between two records of a partition that is neither compacted nor
written by transactions: the router's internal topics, and intake unless capture services
write it with transactions (`ROUTER_INTAKE_TRANSACTIONAL`). Faust does not know
that: when the next record's offset jumps, it books the jump as a gap and commits past it as if
it had been processed. A broker that hands out the later records before the earlier ones are
readable (the embedded one does: it advances the partition's end before it stores the batch,
so a fetch can return the next producer's batch and skip the one still being stored) then
loses those records for good.

The guard cuts each fetched partition at its first hole and sends the consumer back to read
it again. A hole that is still there after `PATIENCE_S` is taken as the broker's final word
(logged as an error), so a broker that really lost records cannot stall a partition forever.
Other topics (feedback, and transactional intake) are left alone: on Kafka their holes can be
transaction markers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

PATIENCE_S = 5.0


class _Record(Protocol):
    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=_Record)
TPKey = TypeVar("TPKey")


def first_hole(records: Sequence[_Record], position: int | None) -> tuple[int, int] | None:
    """(first missing offset, offset of the record after it), or None when the records follow
    `position` (the consumer's offset before the fetch; None if unknown) and each other."""
    expected = position
    for record in records:
        if expected is not None and record.offset > expected:
            return expected, record.offset
        expected = record.offset + 1
    return None


class HoleGuard:
    def __init__(
        self,
        topics: frozenset[str],
        patience_s: float = PATIENCE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topics = topics
        self.patience_s = patience_s
        self.clock = clock
        self._waiting: dict[Any, tuple[int, float]] = {}  # tp -> (hole start, first seen)

    def trim(
        self, fetched: Mapping[TPKey, list[R]], positions: Mapping[TPKey, int | None]
    ) -> tuple[dict[TPKey, list[R]], dict[TPKey, int]]:
        """The records to hand on, each guarded partition cut at its first hole, and the
        offsets to seek those partitions back to."""
        kept: dict[TPKey, list[R]] = {}
        seeks: dict[TPKey, int] = {}
        for tp, records in fetched.items():
            if getattr(tp, "topic", None) not in self.topics:
                kept[tp] = records
                continue
            hole = first_hole(records, positions.get(tp))
            if hole is None or not self.read_again(tp, *hole):
                self._waiting.pop(tp, None)
                kept[tp] = records
                continue
            start = hole[0]
            before = [record for record in records if record.offset < start]
            if before:
                kept[tp] = before
            seeks[tp] = start
        return kept, seeks

    def settled(self, tp: Any) -> None:
        """The partition has no hole now: a later one gets its own patience."""
        self._waiting.pop(tp, None)

    def read_again(self, tp: Any, start: int, end: int) -> bool:
        """Whether to read the hole [start, end) again rather than move past it."""
        now = self.clock()
        waiting = self._waiting.get(tp)
        if waiting is None or waiting[0] != start:
            self._waiting[tp] = (start, now)
            log.warning(
                "offsets skipped by the broker; reading them again",
                extra={"topic": tp.topic, "partition": tp.partition, "from": start, "to": end},
            )
            return True
        if now - waiting[1] < self.patience_s:
            return True
        log.error(
            "offsets still missing; moving past them",
            extra={"topic": tp.topic, "partition": tp.partition, "from": start, "to": end},
        )
        return False
