"""Cap, budget, call-slot and return accounting in the buyer's own time zone. Pure functions.

State lives in the buyer-partitioned cap table as small JSON-able entries, touched only by the
offer agent (concurrency 1) on the buyer's partition:

- counts per window, `{buyer}|{kind}|{window_id}` with kind in hour/day/week/month:
  `Counts(sold, spend, returned)`, net of credited returns;
- a ledger entry per (buyer, lead), `{buyer}|lead|{lead_id}`: the recorded decision;
- the live call slots per buyer, `{buyer}|calls`: `{lead_id: expires_at_iso}`.

Events may be replayed after a crash, so every update is idempotent: an offer with a ledger
entry gets its recorded answer back, a lead already returned is a `duplicate`. Functions never
mutate their inputs; they return new values, which the agent assigns to the table.

Write order (one changelog partition, in order), so a crash between writes errs safe:
- offer: counts, then slots, then the ledger entry. A lost entry means the offer is decided
  again and its slot counted twice (wasted), never a cap exceeded.
- return: the ledger entry, then counts. A lost count credit means one slot not freed,
  never a slot freed twice.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from functools import cache, lru_cache
from typing import Any, NamedTuple, NotRequired, TypedDict
from zoneinfo import ZoneInfo

from router.buyers import Buyer

KINDS = ("hour", "day", "week", "month")
# Count caps by window kind, in the order they are checked (and reported).
COUNT_CAPS = (("hour", "hourly"), ("day", "daily"), ("week", "weekly"), ("month", "monthly"))
# Ledger entries and ended windows are kept at least this long: past any replay or return.
MIN_RETENTION = timedelta(hours=72)
# Spend is rounded to this many decimals so repeated +price/-price never drifts (0.1 * 3).
SPEND_DECIMALS = 6

SOLD = "sold"
CREDITED = "credited"

# A buyer's live call slots: lead_id -> expires_at (ISO 8601, aware).
Slots = dict[str, str]


class Windows(NamedTuple):
    """Buyer-local window ids an instant falls in."""

    hour: str  # 2026-11-01T01-0400: the offset keeps the repeated DST hour two windows
    day: str  # 2026-11-01
    week: str  # 2026-W44 (ISO year and week, Monday start)
    month: str  # 2026-11


class Counts(TypedDict):
    sold: int  # sold and not returned: what counts against the cap
    spend: float  # price of those sales
    returned: int  # sales credited back by a return


class LedgerEntry(TypedDict):
    reason: str  # "sold" or the decline reason
    windows: dict[str, str]  # kind -> window id: where it was (or would have been) counted
    price: float
    decided_at: str  # `now` at the decision; the retention clock
    sold_at: str | None  # == decided_at for a sale
    returned: bool
    credited_at: str | None  # `now` when a return was credited; restarts the retention clock
    # The lead's publisher, so feedback on the sale can be credited to its source's record.
    publisher: NotRequired[str | None]


class AccountKeys(NamedTuple):
    counts: tuple[str, str, str, str]  # hour, day, week, month
    ledger: str
    slots: str


class CapCheck(NamedTuple):
    reason: str  # "sold", "capped:hourly|daily|weekly|monthly", "budget" or "slots_full"
    replayed: bool
    sold_at: str | None
    counts: dict[str, Counts]  # only the entries that changed (empty unless a fresh sale)
    entry: LedgerEntry  # the input object on a replay
    slots: Slots | None  # the input object when unchanged


class ReturnResult(NamedTuple):
    reason: str  # "credited", "unknown_lead", "duplicate", "late" or "over_limit"
    entry: LedgerEntry | None  # the input object unless credited
    counts: dict[str, Counts]  # only the entries that changed (empty unless credited)


class UsageLine(TypedDict):
    window: str | None  # window id; None for concurrent_calls
    used: float
    limit: float | None  # None: not capped (spend is always reported)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=4096)  # one offer asks several times; a lead's instant repeats per hop
def windows(timezone: str, at: datetime) -> Windows:
    """The buyer-local hour, day, ISO week and month an aware instant falls in."""
    if at.tzinfo is None:
        raise ValueError("windows() needs an aware datetime")
    local = at.astimezone(_zone(timezone))
    year, week, _ = local.isocalendar()
    return Windows(
        hour=local.strftime("%Y-%m-%dT%H%z"),
        day=local.strftime("%Y-%m-%d"),
        week=f"{year}-W{week:02d}",
        month=local.strftime("%Y-%m"),
    )


def counts_key(buyer_id: str, kind: str, window_id: str) -> str:
    return f"{buyer_id}|{kind}|{window_id}"


def ledger_key(buyer_id: str, lead_id: str) -> str:
    return f"{buyer_id}|lead|{lead_id}"


def slots_key(buyer_id: str) -> str:
    return f"{buyer_id}|calls"


def counts_keys(buyer_id: str, wins: Windows) -> tuple[str, str, str, str]:
    """Counts keys of the hour, day, week and month windows, in that order."""
    return (
        counts_key(buyer_id, "hour", wins.hour),
        counts_key(buyer_id, "day", wins.day),
        counts_key(buyer_id, "week", wins.week),
        counts_key(buyer_id, "month", wins.month),
    )


def keys_for(buyer_id: str, wins: Windows, lead_id: str) -> AccountKeys:
    """Every table key one offer reads (and may write)."""
    return AccountKeys(
        counts_keys(buyer_id, wins), ledger_key(buyer_id, lead_id), slots_key(buyer_id)
    )


def windows_of(entry: LedgerEntry) -> Windows:
    """The windows a ledger entry was decided in: where a return must be credited."""
    return Windows(**entry["windows"])


def _zero() -> Counts:
    return Counts(sold=0, spend=0.0, returned=0)


def _spend(value: float) -> float:
    return round(float(value), SPEND_DECIMALS)


def _live(slots: Slots | None, now: datetime) -> Slots:
    return {
        lead: expires
        for lead, expires in (slots or {}).items()
        if datetime.fromisoformat(expires) > now
    }


def check(
    buyer: Buyer,
    lead_id: str,
    channel: str,
    price: float,
    occurred_at: datetime,
    counts: Mapping[str, Counts | None],
    entry: LedgerEntry | None,
    slots: Slots | None,
    now: datetime,
) -> CapCheck:
    """Sell one lead to `buyer` or decline it with the first limit it would exceed.

    `counts` maps the keys of `keys_for(...).counts` to their table values (missing or None:
    nothing sold yet). A lead with a ledger entry is a replay and gets its recorded answer.
    Windows are those of `occurred_at`; `now` only stamps and ages call slots.
    """
    if entry is not None:
        return CapCheck(entry["reason"], True, entry["sold_at"], {}, entry, slots)

    wins = windows(buyer.timezone, occurred_at)
    keys = counts_keys(buyer.id, wins)
    current = {key: counts.get(key) or _zero() for key in keys}
    by_kind = dict(zip(KINDS, keys, strict=True))
    limits = buyer.caps

    reason = SOLD
    for kind, cap in COUNT_CAPS:
        limit = getattr(limits, cap)
        if limit is not None and current[by_kind[kind]]["sold"] >= limit:
            reason = f"capped:{cap}"
            break
    if reason == SOLD:
        for kind, budget in (("day", limits.daily_budget), ("month", limits.monthly_budget)):
            if budget is not None and _spend(current[by_kind[kind]]["spend"] + price) > budget:
                reason = "budget"
                break

    new_slots = slots
    tracks_calls = channel == "call" and limits.concurrent_calls is not None
    if tracks_calls:
        live = _live(slots, now)
        if slots is not None and len(live) != len(slots):
            new_slots = live  # expired slots are dropped whatever the answer
        # A slot under this lead's own id is left from a decision lost in a crash (the slot
        # was written, the ledger entry was not): it is this call, not another one.
        others = sum(1 for lead in live if lead != lead_id)
        if reason == SOLD and others >= (limits.concurrent_calls or 0):
            reason = "slots_full"

    decided_at = now.isoformat()
    sold = reason == SOLD
    new_entry = LedgerEntry(
        reason=reason,
        windows=wins._asdict(),
        price=float(price),
        decided_at=decided_at,
        sold_at=decided_at if sold else None,
        returned=False,
        credited_at=None,
    )
    if not sold:
        return CapCheck(reason, False, None, {}, new_entry, new_slots)

    new_counts = {
        key: Counts(
            sold=value["sold"] + 1,
            spend=_spend(value["spend"] + price),
            returned=value.get("returned", 0),
        )
        for key, value in current.items()
    }
    if tracks_calls:
        expires = now + timedelta(seconds=limits.call_slot_ttl_s)
        new_slots = {**(new_slots or {}), lead_id: expires.isoformat()}
    return CapCheck(reason, False, decided_at, new_counts, new_entry, new_slots)


def credit_return(
    buyer: Buyer,
    entry: LedgerEntry | None,
    counts: Mapping[str, Counts | None],
    now: datetime,
    returned_at: datetime,
) -> ReturnResult:
    """Credit a returned lead back to the windows it was sold in, or refuse with a reason.

    `counts` maps `counts_keys(buyer.id, windows_of(entry))` to their table values.
    `returned_at` (the return's event time) is judged against `return_window_h` after
    `sold_at`; `now` stamps `credited_at`. The return rate is returned / sold (gross) in the
    month window the lead was sold in, counting this return; it must stay <= max_return_rate.
    A window whose counts were already pruned is not credited (there is no cap left to free).
    """
    if entry is None or entry["reason"] != SOLD or entry["sold_at"] is None:
        return ReturnResult("unknown_lead", entry, {})
    if entry["returned"]:
        return ReturnResult("duplicate", entry, {})
    sold_at = datetime.fromisoformat(entry["sold_at"])
    if returned_at - sold_at > timedelta(hours=buyer.return_window_h):
        return ReturnResult("late", entry, {})

    keys = counts_keys(buyer.id, windows_of(entry))
    month = counts.get(keys[-1]) or _zero()
    # `sold` is net of returns; gross sales are sold + returned, and at least this lead.
    earlier = month.get("returned", 0)
    returned = earlier + 1
    gross = max(month["sold"] + earlier, returned)
    if returned / gross > buyer.max_return_rate:
        return ReturnResult("over_limit", entry, {})

    price = entry["price"]
    new_counts: dict[str, Counts] = {}
    for key in keys:
        value = counts.get(key)
        if value is not None:
            new_counts[key] = Counts(
                sold=max(value["sold"] - 1, 0),
                spend=max(_spend(value["spend"] - price), 0.0),
                returned=value.get("returned", 0) + 1,
            )
    new_entry: LedgerEntry = {**entry, "returned": True, "credited_at": now.isoformat()}
    return ReturnResult(CREDITED, new_entry, new_counts)


def release_call(slots: Slots | None, lead_id: str) -> Slots | None:
    """Free a call's slot on call.ended. The same object back when there is nothing to free."""
    if slots is None or lead_id not in slots:
        return slots
    return {lead: expires for lead, expires in slots.items() if lead != lead_id}


def retention(buyer: Buyer) -> timedelta:
    """How long ledger entries and ended windows are kept: past any replay and any return."""
    return max(timedelta(hours=buyer.return_window_h), MIN_RETENTION)


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def window_end(kind: str, window_id: str, timezone: str) -> datetime:
    """The instant a window ends. ValueError for an unknown kind or a malformed id."""
    zone = _zone(timezone)
    if kind == "hour":
        return datetime.strptime(window_id, "%Y-%m-%dT%H%z") + timedelta(hours=1)
    if kind == "day":
        return _local_midnight(date.fromisoformat(window_id) + timedelta(days=1), zone)
    if kind == "week":
        iso_year, iso_week = window_id.split("-W")
        monday = date.fromisocalendar(int(iso_year), int(iso_week), 1)
        return _local_midnight(monday + timedelta(days=7), zone)
    if kind == "month":
        year, month = (int(part) for part in window_id.split("-"))
        last = calendar.monthrange(year, month)[1]
        return _local_midnight(date(year, month, last) + timedelta(days=1), zone)
    raise ValueError(f"unknown window kind {kind!r}")


def _previous_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def expired_keys(table: Mapping[str, Any], buyer: Buyer, now: datetime) -> list[str]:
    """This buyer's counts and ledger keys that can go (the cap table, or any mapping).

    Counts: windows that ended more than `retention(buyer)` ago; month windows are kept
    through the next month whatever that is (the current and previous month always stay).
    Ledger: entries whose decision (or credited return) is older than `retention(buyer)`.
    Call slots and keys this module cannot parse are never listed. Values of ledger entries
    are read, so pass the table, not just its keys.
    """
    keep_for = retention(buyer)
    cutoff = now - keep_for
    kept_month = _previous_month(windows(buyer.timezone, now).month)
    prefix = f"{buyer.id}|"
    expired = []
    for key in list(table.keys()):
        if not isinstance(key, str) or not key.startswith(prefix):
            continue
        kind, _, rest = key[len(prefix) :].partition("|")
        try:
            if kind == "lead":
                value = table[key]
                touched = [value["decided_at"], value.get("credited_at")]
                last = max(datetime.fromisoformat(t) for t in touched if t)
                if last < cutoff:
                    expired.append(key)
            elif kind in KINDS:
                if kind == "month" and rest >= kept_month:
                    continue
                if window_end(kind, rest, buyer.timezone) < cutoff:
                    expired.append(key)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # not ours to judge: leave it
    return expired


def usage(
    buyer: Buyer, counts: Mapping[str, Counts | None], slots: Slots | None, now: datetime
) -> dict[str, UsageLine]:
    """Live usage of the buyer's current local windows, keyed like the `Caps` fields.

    `counts` maps `counts_keys(buyer.id, windows(buyer.timezone, now))` to table values.
    Count caps and concurrent_calls appear only when configured; daily_budget and
    monthly_budget always do (the day's and month's spend, limit None when unbudgeted).
    """
    wins = windows(buyer.timezone, now)
    keys = dict(zip(KINDS, counts_keys(buyer.id, wins), strict=True))
    ids = wins._asdict()
    limits = buyer.caps

    current = {kind: counts.get(key) or _zero() for kind, key in keys.items()}

    out: dict[str, UsageLine] = {}
    for kind, cap in COUNT_CAPS:
        limit = getattr(limits, cap)
        if limit is not None:
            out[cap] = UsageLine(window=ids[kind], used=current[kind]["sold"], limit=limit)
    out["daily_budget"] = UsageLine(
        window=wins.day, used=current["day"]["spend"], limit=limits.daily_budget
    )
    out["monthly_budget"] = UsageLine(
        window=wins.month, used=current["month"]["spend"], limit=limits.monthly_budget
    )
    if limits.concurrent_calls is not None:
        out["concurrent_calls"] = UsageLine(
            window=None, used=len(_live(slots, now)), limit=limits.concurrent_calls
        )
    return out
