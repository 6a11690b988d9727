"""What the screen's dedup state and the publishers' seen marks may forget, and when.

Both tables gain a key per lead: a dedup state per consumer fingerprint, a seen mark per sale,
return and conversion. Left alone they grow without bound. Each worker sweeps the keys of the
partitions it owns, a slice after each batch, and deletes the ones no replay or repeat can
need any more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from router import accounting
from router.buyers import Buyer
from router.quality import SEEN_PREFIX

# Keys judged per batch: small enough that a sweep never holds a batch up for long.
SLICE = 2_000


def dedup_expired(state: Any, now: datetime, window: timedelta, keep: timedelta) -> bool:
    """A consumer's dedup state can go once its newest admitted event is more than the dedup
    window and `keep` before now.

    Only admitted events within the window of a new one decide its verdict, so forgetting
    older ones changes nothing for events less than `keep` old; `keep` must outlast the
    deepest replay (events re-read after a crash are judged again against this state).
    """
    if not isinstance(state, dict) or not state:
        return False
    try:
        newest = max(datetime.fromisoformat(at) for at in state.values())
    except (TypeError, ValueError):
        return False  # not ours to judge: leave it
    return newest < now - window - keep


def seen_expired(key: Any, value: Any, now: datetime, keep: timedelta) -> bool:
    """A seen mark can go `keep` after its signal was counted. The publishers' stats, and
    marks written before they carried a time (`True`), are never listed."""
    if not isinstance(key, str) or not key.startswith(SEEN_PREFIX) or not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value) < now - keep
    except ValueError:
        return False


def seen_keep(buyers: Iterable[Buyer], floor: timedelta) -> timedelta:
    """How long seen marks are kept: at least `floor`, and past any repeat of their signal.

    A repeated conversion is signalled again for as long as the buyer's ledger holds the lead,
    and a credited return keeps the entry for another retention period: up to twice the
    buyer's retention after the first signal.
    """
    return max([floor, *(2 * accounting.retention(buyer) for buyer in buyers)])


def expired_by_partition(
    items: Iterable[tuple[Any, Any]],
    partition_of: Callable[[Any], int],
    owned: set[int],
    expired: Callable[[Any, Any], bool],
) -> dict[int, list[Any]]:
    """The expired keys among `items`, per partition, left out those of partitions this
    worker does not own (a standby copy, or data of a partition since moved on): their
    owner decides for them."""
    found: dict[int, list[Any]] = {}
    for key, value in items:
        if value is None or not expired(key, value):
            continue
        partition = partition_of(key)
        if partition in owned:
            found.setdefault(partition, []).append(key)
    return found


class Sweep:
    """Walks a table's keys a slice at a time; a pass starts at most once per `every`.

    A pass takes a snapshot of the keys when it starts; a key written since is looked at in
    the next pass.
    """

    def __init__(self, every: timedelta, slice_size: int = SLICE) -> None:
        self.every = every
        self.slice_size = slice_size
        self._pending: list[Any] = []
        self._next_pass: datetime | None = None

    def next_slice(self, keys: Callable[[], Iterable[Any]], now: datetime) -> list[Any]:
        """The next keys to judge: empty between passes."""
        if not self._pending:
            if self._next_pass is not None and now < self._next_pass:
                return []
            self._pending = list(keys())
            self._next_pass = now + self.every
        taken = self._pending[-self.slice_size :]
        del self._pending[-self.slice_size :]
        return taken
