"""Count caps in the buyer's own time zone, with replay-safe accounting.

One table entry per buyer and local day holds the lead ids accepted (with their local hour)
and declined. A replayed offer finds its lead id and gets the same answer again, so a cap
is never double-counted and a lead is never re-decided differently.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import TypedDict
from zoneinfo import ZoneInfo

from router.buyers import Buyer


class Acceptance(TypedDict):
    hour: str
    sold_at: str


class CapState(TypedDict):
    accepted: dict[str, Acceptance]
    declined: dict[str, str]


def empty_state() -> CapState:
    return {"accepted": {}, "declined": {}}


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_windows(buyer: Buyer, occurred_at: datetime) -> tuple[str, str]:
    """The buyer-local (day, hour) windows an event falls in.

    The hour carries the UTC offset so the repeated hour at a DST fall-back is two windows.
    """
    local = occurred_at.astimezone(_zone(buyer.timezone))
    return local.strftime("%Y-%m-%d"), local.strftime("%Y-%m-%dT%H%z")


def table_key(buyer_id: str, day: str) -> str:
    return f"{buyer_id}|{day}"


class CapCheck(TypedDict):
    reason: str  # "sold", "capped:hourly" or "capped:daily"
    replayed: bool
    sold_at: str | None
    state: CapState


def check(
    buyer: Buyer, lead_id: str, occurred_at: datetime, state: CapState, now: datetime
) -> CapCheck:
    """Accept or decline one lead against the buyer's caps; returns a new state."""
    _, hour = local_windows(buyer, occurred_at)
    if (done := state["accepted"].get(lead_id)) is not None:
        return {"reason": "sold", "replayed": True, "sold_at": done["sold_at"], "state": state}
    if (reason := state["declined"].get(lead_id)) is not None:
        return {"reason": reason, "replayed": True, "sold_at": None, "state": state}

    accepted = state["accepted"]
    caps = buyer.caps
    reason = "sold"
    if caps.daily is not None and len(accepted) >= caps.daily:
        reason = "capped:daily"
    elif caps.hourly is not None and (
        sum(1 for a in accepted.values() if a["hour"] == hour) >= caps.hourly
    ):
        reason = "capped:hourly"

    if reason == "sold":
        sold_at = now.isoformat()
        new_accepted = {**accepted, lead_id: Acceptance(hour=hour, sold_at=sold_at)}
        return {
            "reason": reason,
            "replayed": False,
            "sold_at": sold_at,
            "state": {"accepted": new_accepted, "declined": state["declined"]},
        }
    return {
        "reason": reason,
        "replayed": False,
        "sold_at": None,
        "state": {"accepted": accepted, "declined": {**state["declined"], lead_id: reason}},
    }


def local_hour(buyer: Buyer, now: datetime) -> int:
    return now.astimezone(_zone(buyer.timezone)).hour
