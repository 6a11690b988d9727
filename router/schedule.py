"""When a buyer is open: its opening hours and closed dates, read on its own wall clock."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from router.buyers import WEEKDAYS, Buyer


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; buyer zones are validated when the config loads."""
    return ZoneInfo(name)


def local_time(buyer: Buyer, at: datetime) -> datetime:
    """`at` (timezone-aware) on the buyer's wall clock."""
    if at.tzinfo is None:
        # astimezone would silently read a naive time as the host's zone.
        raise ValueError("a timezone-aware datetime is required")
    return at.astimezone(zone(buyer.timezone))


@lru_cache(maxsize=4096)
def _minutes(span: str) -> tuple[int, int]:
    """'HH:MM-HH:MM' as minutes after midnight (24:00, the end of the day, is 1440)."""
    opens, closes = span.split("-")
    start = int(opens[:2]) * 60 + int(opens[3:])
    end = int(closes[:2]) * 60 + int(closes[3:])
    return start, end


def is_open(buyer: Buyer, at: datetime) -> bool:
    """Whether the buyer takes leads at `at`, judged by its local date and wall-clock time.

    Closed on any local date in `closed_dates`. No hours at all is always open; with hours,
    an unlisted weekday is closed and each range is open from its start up to (not at) its end.
    Wall-clock comparison keeps a 09:00 opening at 09:00 local on both sides of a DST change.
    """
    schedule = buyer.schedule
    hours = schedule.hours
    if not hours and not schedule.closed_dates:
        return True  # the common case: no conversion needed
    local = local_time(buyer, at)
    if schedule.closed_dates and local.date() in schedule.closed_dates:
        return False
    if not hours:
        return True
    spans = hours.get(WEEKDAYS[local.weekday()])
    if not spans:
        return False
    # Ranges are whole minutes, so truncating seconds cannot move a time across an edge.
    minute = local.hour * 60 + local.minute
    for span in spans:
        start, end = _minutes(span)
        if start <= minute < end:
            return True
    return False
