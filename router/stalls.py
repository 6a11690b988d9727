"""Stream partitions a worker holds but has stopped consuming.

Faust fetches only its "active" partitions. A partition leaves that set while table recovery
pauses it, while our consumer holds it until the seek (`router/transport.py`), and while its
stream buffer is full (Faust's `on_buffer_full`, undone when the buffer drains). Outside a
rebalance each of those ends within seconds. docs/reliability.md section 9 saw a partition
left out for minutes, with no error, while records waited on it. The watch finds such a
partition by its read offset standing still while it is left out; the worker logs it with the
reason and fetches it again.

Section 11 saw the same on partitions Faust *was* fetching: records waited on the broker and
none was read for minutes. So a fetched partition whose records wait past the group's
committed offset (`records_wait`) is a candidate too (`no_progress`). When its read offset
stands still as long, it is sought back to the committed offset, which resets Faust's read
offset and aiokafka's position alike; it also unsticks a partition read but never committed.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

STALL_AFTER_S = 60.0

P = TypeVar("P", bound=Hashable)


class NotFetched(NamedTuple):
    reason: str
    read_offset: int | None


NO_PROGRESS = "no_progress"  # fetched by Faust, yet its waiting records are not consumed


def records_wait(committed: int, end: int) -> bool:
    """Whether a partition holds records the group has not consumed.

    More than one offset behind the end, not just one: on Kafka a transaction's commit marker
    takes an offset that no consumer ever reads, so a partition fed by a transactional
    producer ends one past its last record even when everything was consumed.
    """
    return end - committed > 1


@dataclass
class _Seen:
    since: float
    read_offset: int | None


@dataclass
class StallWatch(Generic[P]):
    """Remembers since when each partition has been left out without moving."""

    after_s: float = STALL_AFTER_S
    _seen: dict[P, _Seen] = field(default_factory=dict)

    def observe(self, left_out: Mapping[P, NotFetched], now: float) -> dict[P, NotFetched]:
        """The partitions left out, at the same read offset, for at least `after_s` seconds.

        A partition fetched again, or read further, starts over: under a backlog a partition's
        buffer fills and drains all the time, and that is not a stall.
        """
        seen: dict[P, _Seen] = {}
        for tp, state in left_out.items():
            before = self._seen.get(tp)
            if before is not None and before.read_offset == state.read_offset:
                seen[tp] = before
            else:
                seen[tp] = _Seen(since=now, read_offset=state.read_offset)
        self._seen = seen
        return {tp: state for tp, state in left_out.items() if now - seen[tp].since >= self.after_s}

    def forget(self) -> None:
        """Start over, e.g. while a rebalance pauses partitions on purpose."""
        self._seen = {}
