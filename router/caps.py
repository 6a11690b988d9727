"""Count caps in the buyer's own time zone, with replay-safe accounting.

Two kinds of small table entries, both touched only from the buyer's own partition:
- counts per buyer and local day (`buyer|day`): leads sold that day and per local hour;
- a ledger entry per offer (`buyer|day|lead_id`): what was decided for that lead.

A replayed offer finds its ledger entry and gets the same answer again, so a cap is never
double-counted and a lead is never re-decided differently. Entries stay constant-size, so a
write costs the same whether a buyer has sold 5 leads today or 50,000.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import cache
from typing import NamedTuple, TypedDict
from zoneinfo import ZoneInfo

from router.buyers import Buyer

# Ledger and counts older than this many buyer-local days are pruned: long past any replay.
RETENTION_DAYS = 3


class Counts(TypedDict):
    day: int
    hours: dict[str, int]


class LedgerEntry(TypedDict):
    reason: str  # "sold", "capped:hourly" or "capped:daily"
    hour: str
    sold_at: str | None


class CapCheck(NamedTuple):
    reason: str
    replayed: bool
    sold_at: str | None
    counts: Counts | None  # the same object when unchanged
    entry: LedgerEntry


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_windows(buyer: Buyer, occurred_at: datetime) -> tuple[str, str]:
    """The buyer-local (day, hour) windows an event falls in.

    The hour carries the UTC offset so the repeated hour at a DST fall-back is two windows.
    """
    local = occurred_at.astimezone(_zone(buyer.timezone))
    return local.strftime("%Y-%m-%d"), local.strftime("%Y-%m-%dT%H%z")


def local_hour(buyer: Buyer, now: datetime) -> int:
    return now.astimezone(_zone(buyer.timezone)).hour


def counts_key(buyer_id: str, day: str) -> str:
    return f"{buyer_id}|{day}"


def ledger_key(buyer_id: str, day: str, lead_id: str) -> str:
    return f"{buyer_id}|{day}|{lead_id}"


def sold_in(counts: Counts | None, hour: str) -> tuple[int, int]:
    """(sold that day, sold in that hour)."""
    if counts is None:
        return 0, 0
    return counts["day"], counts["hours"].get(hour, 0)


def check(
    buyer: Buyer,
    lead_id: str,
    occurred_at: datetime,
    counts: Counts | None,
    entry: LedgerEntry | None,
    now: datetime,
) -> CapCheck:
    """Accept or decline one lead against the buyer's caps. Inputs are never mutated."""
    if entry is not None:
        return CapCheck(entry["reason"], True, entry["sold_at"], counts, entry)

    _, hour = local_windows(buyer, occurred_at)
    day_sold, hour_sold = sold_in(counts, hour)
    limits = buyer.caps
    reason = "sold"
    if limits.daily is not None and day_sold >= limits.daily:
        reason = "capped:daily"
    elif limits.hourly is not None and hour_sold >= limits.hourly:
        reason = "capped:hourly"

    if reason != "sold":
        return CapCheck(
            reason, False, None, counts, LedgerEntry(reason=reason, hour=hour, sold_at=None)
        )
    sold_at = now.isoformat()
    hours = counts["hours"] if counts else {}
    new_counts = Counts(day=day_sold + 1, hours={**hours, hour: hour_sold + 1})
    return CapCheck(
        reason, False, sold_at, new_counts, LedgerEntry(reason=reason, hour=hour, sold_at=sold_at)
    )


def expired_keys(keys: Iterable[str], buyer_id: str, today: str) -> list[str]:
    """This buyer's counts and ledger keys for days more than RETENTION_DAYS before `today`."""
    cutoff = (date.fromisoformat(today) - timedelta(days=RETENTION_DAYS)).isoformat()
    prefix = f"{buyer_id}|"
    expired = []
    for key in keys:
        if isinstance(key, str) and key.startswith(prefix):
            day = key[len(prefix) :].split("|", 1)[0]
            if day < cutoff:
                expired.append(key)
    return expired
