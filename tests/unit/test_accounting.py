from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import accounting
from router.accounting import Windows
from router.buyers import Buyer, Caps

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NY = "America/New_York"
LA = "America/Los_Angeles"
TOKYO = "Asia/Tokyo"


def buyer(
    timezone: str = NY,
    buyer_id: str = "acme",
    return_window_h: int = 72,
    max_return_rate: float = 1.0,
    **caps: Any,
) -> Buyer:
    return Buyer(
        id=buyer_id,
        name=buyer_id.title(),
        verticals=["solar"],
        price=25.0,
        caps=Caps(**caps),
        timezone=timezone,
        return_window_h=return_window_h,
        max_return_rate=max_return_rate,
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def roundtrip(value: Any) -> Any:
    # The cap table's changelog is JSON: what a recovered worker reads back.
    return json.loads(json.dumps(value))


class Agent:
    """The offer agent's bookkeeping against a dict standing in for the cap table: read the
    keys `keys_for` names, call the pure function, assign what changed in the documented
    order (offer: counts, slots, ledger; return: ledger, counts)."""

    def __init__(self, now: datetime = NOW) -> None:
        self.table: dict[str, Any] = {}
        self.writes: list[str] = []
        self.now = now

    def _write(self, key: str, value: Any) -> None:
        self.table[key] = roundtrip(value)
        self.writes.append(key)

    def offer(
        self,
        b: Buyer,
        lead: str,
        at: datetime,
        channel: str = "form",
        price: float | None = None,
    ) -> accounting.CapCheck:
        price = b.price if price is None else price
        keys = accounting.keys_for(b.id, accounting.windows(b.timezone, at), lead)
        counts = {key: self.table.get(key) for key in keys.counts}
        entry = self.table.get(keys.ledger)
        slots = self.table.get(keys.slots)
        before = copy.deepcopy((counts, entry, slots))
        result = accounting.check(b, lead, channel, price, at, counts, entry, slots, self.now)
        assert (counts, entry, slots) == before, "check mutated its inputs"
        assert set(result.counts) <= set(keys.counts)
        for key, value in result.counts.items():
            self._write(key, value)
        if result.slots is not slots:
            self._write(keys.slots, result.slots)
        if result.entry is not entry:
            self._write(keys.ledger, result.entry)
        return result

    def ret(
        self, b: Buyer, lead: str, returned_at: datetime | None = None
    ) -> accounting.ReturnResult:
        key = accounting.ledger_key(b.id, lead)
        entry = self.table.get(key)
        counts: dict[str, Any] = {}
        if entry is not None:
            wins = accounting.windows_of(entry)
            counts = {k: self.table.get(k) for k in accounting.counts_keys(b.id, wins)}
        before = copy.deepcopy((entry, counts))
        result = accounting.credit_return(
            b, entry, counts, self.now, self.now if returned_at is None else returned_at
        )
        assert (entry, counts) == before, "credit_return mutated its inputs"
        assert set(result.counts) <= set(counts)
        if result.entry is not entry:
            self._write(key, result.entry)
        for k, value in result.counts.items():
            self._write(k, value)
        return result

    def end_call(self, b: Buyer, lead: str) -> None:
        key = accounting.slots_key(b.id)
        slots = self.table.get(key)
        before = copy.deepcopy(slots)
        new = accounting.release_call(slots, lead)
        assert slots == before
        if new is not slots:
            self._write(key, new)

    def counts(self, b: Buyer, kind: str, window_id: str) -> Any:
        return self.table.get(accounting.counts_key(b.id, kind, window_id))


# --- windows in the buyer's zone ---------------------------------------------------------


def test_windows_ids() -> None:
    assert accounting.windows(NY, utc("2026-06-01T14:30:00Z")) == Windows(
        hour="2026-06-01T10-0400", day="2026-06-01", week="2026-W23", month="2026-06"
    )
    with pytest.raises(ValueError):
        accounting.windows(NY, datetime(2026, 6, 1, 14, 30))


def test_dst_fall_back_repeated_hour_is_two_windows_on_the_same_day() -> None:
    edt = accounting.windows(NY, utc("2026-11-01T05:30:00Z"))  # 01:30 EDT
    est = accounting.windows(NY, utc("2026-11-01T06:30:00Z"))  # 01:30 EST
    assert edt.hour == "2026-11-01T01-0400"
    assert est.hour == "2026-11-01T01-0500"
    assert (edt.day, edt.week, edt.month) == (est.day, est.week, est.month)
    assert edt.day == "2026-11-01"

    agent = Agent()
    b = buyer(hourly=1, daily=5)
    assert agent.offer(b, "a", utc("2026-11-01T05:10:00Z")).reason == "sold"
    assert agent.offer(b, "b", utc("2026-11-01T05:50:00Z")).reason == "capped:hourly"
    # Same wall-clock 01:xx, but the EST hour is a fresh window.
    assert agent.offer(b, "c", utc("2026-11-01T06:10:00Z")).reason == "sold"
    assert agent.offer(b, "d", utc("2026-11-01T06:40:00Z")).reason == "capped:hourly"
    assert agent.counts(b, "hour", "2026-11-01T01-0400")["sold"] == 1
    assert agent.counts(b, "hour", "2026-11-01T01-0500")["sold"] == 1
    assert agent.counts(b, "day", "2026-11-01")["sold"] == 2


def test_dst_spring_forward_skips_the_two_oclock_hour() -> None:
    assert accounting.windows(NY, utc("2026-03-08T06:59:00Z")).hour == "2026-03-08T01-0500"
    assert accounting.windows(NY, utc("2026-03-08T07:00:00Z")).hour == "2026-03-08T03-0400"


@pytest.mark.parametrize(
    ("sunday", "monday", "weeks"),
    [
        # 23:59 EDT Sunday is already Monday in UTC; the week is the buyer's.
        ("2026-06-08T03:59:00Z", "2026-06-08T04:00:00Z", ("2026-W23", "2026-W24")),
        # Across an ISO year end: 2027-01-03 belongs to ISO week 53 of 2026.
        ("2027-01-04T04:59:00Z", "2027-01-04T05:00:00Z", ("2026-W53", "2027-W01")),
    ],
)
def test_iso_week_boundary_is_local_monday_midnight(
    sunday: str, monday: str, weeks: tuple[str, str]
) -> None:
    sun = accounting.windows(NY, utc(sunday))
    mon = accounting.windows(NY, utc(monday))
    assert sun.hour.endswith("T23-0400") or sun.hour.endswith("T23-0500")
    assert mon.hour.endswith("T00-0400") or mon.hour.endswith("T00-0500")
    assert (sun.week, mon.week) == weeks

    agent = Agent()
    b = buyer(weekly=1)
    assert agent.offer(b, "sun", utc(sunday)).reason == "sold"
    assert agent.offer(b, "sun-2", utc(sunday) - timedelta(days=6)).reason == "capped:weekly"
    assert agent.offer(b, "mon", utc(monday)).reason == "sold"
    assert agent.offer(b, "mon-2", utc(monday) + timedelta(days=6)).reason == "capped:weekly"


def test_tokyo_and_los_angeles_roll_over_at_their_own_midnight() -> None:
    tokyo, la = buyer(TOKYO, daily=1), buyer(LA, "west", daily=1)
    agent = Agent()
    # 14:30Z is 23:30 in Tokyo (June 1) and 07:30 in Los Angeles (June 1).
    assert agent.offer(tokyo, "t1", utc("2026-06-01T14:30:00Z")).reason == "sold"
    assert agent.offer(la, "l1", utc("2026-06-01T14:30:00Z")).reason == "sold"
    # 15:00Z: Tokyo's midnight, a new day there; still the morning of June 1 in LA.
    assert agent.offer(tokyo, "t2", utc("2026-06-01T15:00:00Z")).reason == "sold"
    assert agent.offer(la, "l2", utc("2026-06-01T15:00:00Z")).reason == "capped:daily"
    # UTC midnight resets neither: Tokyo is at 09:00 June 2, LA at 17:00 June 1.
    assert agent.offer(tokyo, "t3", utc("2026-06-02T00:00:00Z")).reason == "capped:daily"
    assert agent.offer(la, "l3", utc("2026-06-02T00:00:00Z")).reason == "capped:daily"
    # LA's own midnight (07:00Z) is its new day.
    assert agent.offer(la, "l4", utc("2026-06-02T06:59:00Z")).reason == "capped:daily"
    assert agent.offer(la, "l5", utc("2026-06-02T07:00:00Z")).reason == "sold"
    assert accounting.windows(TOKYO, utc("2026-06-01T15:00:00Z")).day == "2026-06-02"
    assert accounting.windows(LA, utc("2026-06-02T06:59:00Z")).day == "2026-06-01"


def test_month_is_the_buyers_month() -> None:
    # 03:30Z on Nov 1 is 23:30 EDT on Oct 31.
    assert accounting.windows(NY, utc("2026-11-01T03:30:00Z")).month == "2026-10"
    assert accounting.windows("UTC", utc("2026-11-01T03:30:00Z")).month == "2026-11"


# --- keys --------------------------------------------------------------------------------


def test_keys() -> None:
    wins = accounting.windows(NY, utc("2026-06-01T14:30:00Z"))
    keys = accounting.keys_for("acme", wins, "lead-1")
    assert keys.counts == (
        "acme|hour|2026-06-01T10-0400",
        "acme|day|2026-06-01",
        "acme|week|2026-W23",
        "acme|month|2026-06",
    )
    assert keys.ledger == "acme|lead|lead-1"
    assert keys.slots == "acme|calls"


# --- caps, budgets and their order -------------------------------------------------------


@pytest.mark.parametrize("cap", ["hourly", "daily", "weekly", "monthly"])
def test_each_count_cap_declines_the_sale_over_it(cap: str) -> None:
    agent = Agent()
    b = buyer(**{cap: 2})
    at = utc("2026-06-03T14:00:00Z")
    reasons = [agent.offer(b, f"l{i}", at + timedelta(minutes=i)).reason for i in range(4)]
    assert reasons == ["sold", "sold", f"capped:{cap}", f"capped:{cap}"]


def test_first_exceeded_cap_is_reported_in_order() -> None:
    at = utc("2026-06-03T14:00:00Z")
    # Each limit lets exactly one 25.0 sale through.
    full = {"hourly": 1, "daily": 1, "weekly": 1, "monthly": 1, "daily_budget": 25.0}
    expected = ["capped:hourly", "capped:daily", "capped:weekly", "capped:monthly", "budget"]
    for skip in range(5):
        limits = dict(list(full.items())[skip:])
        agent = Agent()
        b = buyer(**limits)
        assert agent.offer(b, "first", at).reason == "sold"
        assert agent.offer(b, "next", at).reason == expected[skip], limits


def test_weekly_and_monthly_caps_span_days_and_reset_in_the_next_window() -> None:
    agent = Agent()
    b = buyer(weekly=2)
    # Mon 2026-06-01 .. Sun 06-07 is one ISO week.
    assert agent.offer(b, "a", utc("2026-06-01T14:00:00Z")).reason == "sold"
    assert agent.offer(b, "b", utc("2026-06-03T14:00:00Z")).reason == "sold"
    assert agent.offer(b, "c", utc("2026-06-07T14:00:00Z")).reason == "capped:weekly"
    assert agent.offer(b, "d", utc("2026-06-08T14:00:00Z")).reason == "sold"

    agent = Agent()
    b = buyer(monthly=2)
    assert agent.offer(b, "a", utc("2026-06-01T14:00:00Z")).reason == "sold"
    assert agent.offer(b, "b", utc("2026-06-15T14:00:00Z")).reason == "sold"
    assert agent.offer(b, "c", utc("2026-07-01T03:59:00Z")).reason == "capped:monthly"  # 23:59
    assert agent.offer(b, "d", utc("2026-07-01T04:00:00Z")).reason == "sold"  # July 00:00


def test_daily_and_monthly_budgets() -> None:
    agent = Agent()
    b = buyer(daily_budget=50.0)
    at = utc("2026-06-01T14:00:00Z")
    assert agent.offer(b, "a", at, price=20.0).reason == "sold"
    assert agent.offer(b, "b", at, price=20.0).reason == "sold"
    assert agent.offer(b, "c", at, price=20.0).reason == "budget"
    assert agent.offer(b, "d", at, price=10.0).reason == "sold"  # exactly the budget
    assert agent.offer(b, "e", at, price=0.01).reason == "budget"
    assert agent.counts(b, "day", "2026-06-01")["spend"] == 50.0
    assert agent.offer(b, "f", at + timedelta(days=1), price=20.0).reason == "sold"

    agent = Agent()
    b = buyer(monthly_budget=100.0)
    for day in range(1, 5):
        assert agent.offer(b, f"m{day}", utc(f"2026-06-0{day}T14:00:00Z"), price=25.0).sold_at
    assert agent.offer(b, "over", utc("2026-06-20T14:00:00Z"), price=25.0).reason == "budget"
    assert agent.offer(b, "july", utc("2026-07-02T14:00:00Z"), price=25.0).reason == "sold"


def test_spend_does_not_drift_with_fractional_prices() -> None:
    agent = Agent()
    b = buyer(daily_budget=0.3)
    at = utc("2026-06-01T14:00:00Z")
    # 0.1 + 0.1 + 0.1 is 0.30000000000000004 in floats; it must still fit a 0.3 budget.
    assert [agent.offer(b, f"l{i}", at, price=0.1).reason for i in range(4)] == [
        "sold",
        "sold",
        "sold",
        "budget",
    ]
    assert agent.counts(b, "day", "2026-06-01")["spend"] == 0.3


def test_zero_caps_decline_and_none_is_unlimited() -> None:
    at = utc("2026-06-01T14:00:00Z")
    assert Agent().offer(buyer(monthly=0), "a", at).reason == "capped:monthly"
    assert Agent().offer(buyer(daily_budget=0.0), "a", at).reason == "budget"
    agent = Agent()
    unlimited = buyer()
    assert all(agent.offer(unlimited, f"l{i}", at).reason == "sold" for i in range(50))
    assert agent.counts(unlimited, "month", "2026-06")["sold"] == 50


def test_a_sale_counts_in_every_window_and_a_decline_only_writes_its_ledger_entry() -> None:
    agent = Agent()
    b = buyer(daily=1)
    at = utc("2026-06-01T14:00:00Z")
    sale = agent.offer(b, "a", at, price=12.5)
    keys = accounting.keys_for("acme", accounting.windows(NY, at), "a")
    assert sale.counts == {key: {"sold": 1, "spend": 12.5, "returned": 0} for key in keys.counts}
    assert sale.slots is None
    assert sale.entry == {
        "reason": "sold",
        "windows": {
            "hour": "2026-06-01T10-0400",
            "day": "2026-06-01",
            "week": "2026-W23",
            "month": "2026-06",
        },
        "price": 12.5,
        "decided_at": NOW.isoformat(),
        "sold_at": NOW.isoformat(),
        "returned": False,
        "credited_at": None,
    }
    decline = agent.offer(b, "b", at)
    assert decline.counts == {}
    assert decline.sold_at is None
    assert decline.entry["reason"] == "capped:daily"
    assert agent.writes == [*keys.counts, "acme|lead|a", "acme|lead|b"]
    assert all(len(json.dumps(v)) < 300 for v in agent.table.values())


# --- call slots --------------------------------------------------------------------------


def test_concurrent_calls_expire_and_release() -> None:
    agent = Agent()
    b = buyer(concurrent_calls=2, call_slot_ttl_s=600)
    at = utc("2026-06-01T14:00:00Z")
    assert agent.offer(b, "c1", at, channel="call").reason == "sold"
    assert agent.table["acme|calls"] == {"c1": (NOW + timedelta(seconds=600)).isoformat()}
    agent.now += timedelta(minutes=5)
    assert agent.offer(b, "c2", at, channel="call").reason == "sold"
    assert agent.offer(b, "c3", at, channel="call").reason == "slots_full"
    assert agent.offer(b, "f1", at, channel="form").reason == "sold"  # slots are for calls

    agent.end_call(b, "c2")
    assert set(agent.table["acme|calls"]) == {"c1"}
    writes = len(agent.writes)
    agent.end_call(b, "c2")  # call.ended replayed: nothing to do
    agent.end_call(b, "never-sold")
    assert len(agent.writes) == writes
    assert agent.offer(b, "c4", at, channel="call").reason == "sold"
    assert agent.offer(b, "c5", at, channel="call").reason == "slots_full"

    # c1 expires 10 minutes after its sale even without call.ended.
    agent.now = NOW + timedelta(seconds=600)
    result = agent.offer(b, "c6", at, channel="call")
    assert result.reason == "sold"
    assert set(agent.table["acme|calls"]) == {"c4", "c6"}


def test_expired_slots_are_dropped_even_when_declined() -> None:
    b = buyer(concurrent_calls=2)
    at = utc("2026-06-01T14:00:00Z")
    live = (NOW + timedelta(minutes=1)).isoformat()
    gone = NOW.isoformat()  # expires exactly now: not live
    slots = {"x": gone, "y": live, "z": live, "w": (NOW - timedelta(hours=1)).isoformat()}
    result = accounting.check(b, "new", "call", 25.0, at, {}, None, slots, NOW)
    assert result.reason == "slots_full"
    assert result.slots == {"y": live, "z": live}
    assert len(slots) == 4

    fresh = {"y": live}
    unchanged = accounting.check(b, "new", "call", 25.0, at, {}, None, fresh, NOW)
    assert unchanged.reason == "sold"
    assert unchanged.slots is not fresh
    assert fresh == {"y": live}
    declined = accounting.check(
        buyer(hourly=0, concurrent_calls=2), "n", "call", 1, at, {}, None, fresh, NOW
    )
    assert declined.reason == "capped:hourly"
    assert declined.slots is fresh


def test_own_slot_left_by_a_lost_decision_is_not_another_call() -> None:
    # A crash after the slot write but before the ledger entry: the offer is decided again.
    b = buyer(concurrent_calls=1)
    at = utc("2026-06-01T14:00:00Z")
    slots = {"a": (NOW + timedelta(minutes=30)).isoformat()}
    result = accounting.check(b, "a", "call", 25.0, at, {}, None, slots, NOW)
    assert result.reason == "sold"
    assert accounting.check(b, "b", "call", 25.0, at, {}, None, slots, NOW).reason == "slots_full"


def test_calls_without_a_concurrency_cap_keep_no_slots() -> None:
    b = buyer()
    at = utc("2026-06-01T14:00:00Z")
    result = accounting.check(b, "a", "call", 25.0, at, {}, None, None, NOW)
    assert result.reason == "sold"
    assert result.slots is None
    assert accounting.release_call(None, "a") is None


# --- replay ------------------------------------------------------------------------------


def test_replayed_sale_returns_the_recorded_answer_and_changes_nothing() -> None:
    agent = Agent()
    b = buyer(hourly=1, concurrent_calls=1)
    at = utc("2026-06-01T14:00:00Z")
    first = agent.offer(b, "a", at, channel="call")
    table = copy.deepcopy(agent.table)
    agent.now += timedelta(hours=5)
    # Config changed while the offer was in flight: the answer does not.
    again = agent.offer(buyer(hourly=0, concurrent_calls=0), "a", at, channel="call")
    assert again.replayed is True
    assert (again.reason, again.sold_at) == ("sold", first.sold_at)
    assert again.counts == {}
    assert again.entry is agent.table["acme|lead|a"]
    assert agent.table == table


def test_replayed_decline_stays_declined_when_capacity_frees() -> None:
    agent = Agent()
    b = buyer(hourly=1)
    at = utc("2026-06-01T14:00:00Z")
    agent.offer(b, "a", at)
    assert agent.offer(b, "b", at).reason == "capped:hourly"
    assert agent.ret(b, "a").reason == "credited"
    again = agent.offer(b, "b", at)
    assert (again.reason, again.replayed, again.sold_at) == ("capped:hourly", True, None)
    # A lead never seen before gets the freed slot.
    assert agent.offer(b, "c", at).reason == "sold"


# --- returns -----------------------------------------------------------------------------


def test_return_credits_the_windows_it_was_sold_in_not_the_current_ones() -> None:
    agent = Agent(now=utc("2026-11-01T03:40:00Z"))
    b = buyer(hourly=1, monthly=1, return_window_h=48)
    sold_at = utc("2026-11-01T03:30:00Z")  # 23:30 EDT Saturday Oct 31
    assert agent.offer(b, "a", sold_at).reason == "sold"
    # A day later (another hour, day and month), a November sale, then the return.
    agent.now = utc("2026-11-01T20:00:00Z")
    assert agent.offer(b, "nov", agent.now).reason == "sold"
    november = {k: v for k, v in agent.table.items() if "2026-11" in k and "|lead|" not in k}
    result = agent.ret(b, "a")
    assert result.reason == "credited"
    assert set(result.counts) == {
        "acme|hour|2026-10-31T23-0400",
        "acme|day|2026-10-31",
        "acme|week|2026-W44",
        "acme|month|2026-10",
    }
    assert result.counts["acme|month|2026-10"] == {"sold": 0, "spend": 0.0, "returned": 1}
    # The week holds both sales; only the returned one is credited.
    assert result.counts["acme|week|2026-W44"] == {"sold": 1, "spend": 25.0, "returned": 1}
    assert {k: v for k, v in agent.table.items() if k in november} == november
    assert agent.table["acme|lead|a"]["returned"] is True
    assert agent.table["acme|lead|a"]["credited_at"] == agent.now.isoformat()
    # The October hour and month have room again.
    assert agent.offer(b, "late-lead", utc("2026-11-01T03:45:00Z")).reason == "sold"


def test_return_window_is_inclusive_and_judged_by_the_returns_time() -> None:
    agent = Agent()
    b = buyer(return_window_h=24)
    at = utc("2026-06-01T14:00:00Z")
    agent.offer(b, "a", at)
    agent.offer(b, "b", at)
    agent.now = NOW + timedelta(days=30)  # processed late, requested in time
    assert agent.ret(b, "a", returned_at=NOW + timedelta(hours=24)).reason == "credited"
    late = agent.ret(b, "b", returned_at=NOW + timedelta(hours=24, seconds=1))
    assert late.reason == "late"
    assert late.counts == {}
    assert agent.table["acme|lead|b"]["returned"] is False
    assert agent.counts(b, "day", "2026-06-01")["sold"] == 1


def test_return_rate_is_per_month_of_sale() -> None:
    agent = Agent()
    b = buyer(max_return_rate=0.5)
    for i in range(4):
        agent.offer(b, f"jun{i}", utc("2026-06-10T14:00:00Z"))
    agent.offer(b, "jul", utc("2026-07-10T14:00:00Z"))
    # July: 1 of 1 sold would be returned (1.0 > 0.5), however good June is.
    assert agent.ret(b, "jul").reason == "over_limit"
    assert agent.table["acme|lead|jul"]["returned"] is False
    assert agent.ret(b, "jun0").reason == "credited"  # 1/4
    assert agent.ret(b, "jun1").reason == "credited"  # 2/4
    refused = agent.ret(b, "jun2")  # 3/4
    assert (refused.reason, refused.counts) == ("over_limit", {})
    assert agent.counts(b, "month", "2026-06") == {"sold": 2, "spend": 50.0, "returned": 2}


def test_second_return_is_a_duplicate_and_changes_nothing() -> None:
    agent = Agent()
    b = buyer()
    agent.offer(b, "a", utc("2026-06-01T14:00:00Z"))
    assert agent.ret(b, "a").reason == "credited"
    table = copy.deepcopy(agent.table)
    entry = agent.table["acme|lead|a"]
    again = accounting.credit_return(b, entry, {}, NOW, NOW)
    assert (again.reason, again.entry, again.counts) == ("duplicate", entry, {})
    assert again.entry is entry
    assert agent.ret(b, "a").reason == "duplicate"
    assert agent.table == table


def test_return_replayed_after_a_crash_between_entry_and_counts_is_not_credited_twice() -> None:
    b = buyer()
    at = utc("2026-06-01T14:00:00Z")
    sale = accounting.check(b, "a", "form", 25.0, at, {}, None, None, NOW)
    first = accounting.credit_return(b, sale.entry, sale.counts, NOW, NOW)
    assert first.reason == "credited"
    # The entry was written, the counts were not: the replay must not credit.
    replay = accounting.credit_return(b, first.entry, sale.counts, NOW, NOW)
    assert (replay.reason, replay.counts) == ("duplicate", {})


def test_unknown_leads_and_declines_cannot_be_returned() -> None:
    agent = Agent()
    b = buyer(daily=0)
    assert agent.ret(b, "nobody").reason == "unknown_lead"
    agent.offer(b, "declined", utc("2026-06-01T14:00:00Z"))
    result = agent.ret(b, "declined")
    assert (result.reason, result.counts) == ("unknown_lead", {})
    assert agent.table["acme|lead|declined"]["returned"] is False


def test_pruned_windows_are_not_credited_into_negative_counts() -> None:
    b = buyer()
    at = utc("2026-06-01T14:00:00Z")
    sale = accounting.check(b, "a", "form", 25.0, at, {}, None, None, NOW)
    hour_key = accounting.counts_key("acme", "hour", "2026-06-01T10-0400")
    counts = {k: v for k, v in sale.counts.items() if k != hour_key}
    result = accounting.credit_return(b, sale.entry, counts, NOW, NOW)
    assert result.reason == "credited"
    assert set(result.counts) == set(counts)
    assert all(v["sold"] == 0 and v["spend"] == 0.0 for v in result.counts.values())


# --- pruning -----------------------------------------------------------------------------


def _ledger(decided: datetime, credited: datetime | None = None) -> dict[str, Any]:
    return {
        "reason": "sold",
        "windows": {},
        "price": 1.0,
        "decided_at": decided.isoformat(),
        "sold_at": decided.isoformat(),
        "returned": credited is not None,
        "credited_at": credited.isoformat() if credited else None,
    }


def test_expired_keys() -> None:
    now = utc("2026-06-10T16:00:00Z")  # 12:00 EDT; retention 72 h, cutoff 06-07 12:00 EDT
    b = buyer(return_window_h=24)
    assert accounting.retention(b) == timedelta(hours=72)
    zero = {"sold": 0, "spend": 0.0, "returned": 0}
    kept = {
        "acme|hour|2026-06-07T11-0400": zero,  # ends at the cutoff exactly
        "acme|day|2026-06-07": zero,
        "acme|week|2026-W23": zero,  # ends Mon 06-08 00:00
        "acme|month|2026-06": zero,
        "acme|month|2026-05": zero,  # the previous month always stays
        "acme|lead|recent": _ledger(now - timedelta(hours=72)),
        "acme|lead|credited": _ledger(now - timedelta(days=9), now - timedelta(hours=1)),
        "acme|calls": {"x": now.isoformat()},
        "acme|lead|garbage": "not an entry",
        "acme|hour|not-a-window": zero,
        "acme|fortnight|2026-06": zero,
    }
    expired = {
        "acme|hour|2026-06-07T10-0400": zero,
        "acme|day|2026-06-06": zero,
        "acme|week|2026-W22": zero,
        "acme|month|2026-04": zero,
        "acme|month|2025-12": zero,
        "acme|lead|old": _ledger(now - timedelta(hours=72, seconds=1)),
    }
    others = {
        key.replace("acme|", f"{other}|"): v
        for other in ("acme-2", "acm", "xacme")
        for key, v in expired.items()
    }
    table = {**kept, **expired, **others}
    before = copy.deepcopy(table)
    assert sorted(accounting.expired_keys(table, b, now)) == sorted(expired)
    assert table == before
    # A longer return window keeps the ledger (and windows) longer.
    slow = buyer(return_window_h=24 * 30)
    assert sorted(accounting.expired_keys(table, slow, now)) == [
        "acme|month|2025-12",
        "acme|month|2026-04",  # ended 40 days ago
    ]


def test_previous_month_survives_a_january() -> None:
    now = utc("2027-01-20T17:00:00Z")
    table = {"acme|month|2026-12": {}, "acme|month|2026-11": {}, "acme|month|2027-01": {}}
    assert accounting.expired_keys(table, buyer(), now) == ["acme|month|2026-11"]


def test_agent_with_pruning_stays_bounded_and_keeps_what_returns_need() -> None:
    agent = Agent(now=utc("2026-06-01T12:00:00Z"))
    b = buyer(hourly=5, return_window_h=48)
    for step in range(24 * 60):  # 60 days, one sale an hour
        agent.offer(b, f"l{step}", agent.now)
        if step % 24 == 0:
            for key in accounting.expired_keys(agent.table, b, agent.now):
                del agent.table[key]
        agent.now += timedelta(hours=1)
    kinds = Counter(key.split("|")[1] for key in agent.table)
    # 72 h retention plus up to a day between prunes.
    assert kinds["lead"] <= 24 * 4 + 1
    assert kinds["hour"] <= 24 * 4 + 1
    assert kinds["day"] <= 5
    assert kinds["month"] <= 3
    recent = f"l{24 * 60 - 40}"
    assert agent.ret(b, recent).reason == "credited"


# --- usage -------------------------------------------------------------------------------


def test_usage_of_the_current_windows() -> None:
    agent = Agent()
    b = buyer(hourly=3, weekly=10, monthly_budget=500.0, concurrent_calls=2, call_slot_ttl_s=60)
    agent.offer(b, "old", NOW - timedelta(days=2), price=5.0)
    agent.offer(b, "a", NOW, price=10.0)
    agent.offer(b, "b", NOW, channel="call", price=20.0)
    agent.now = NOW + timedelta(seconds=30)
    agent.offer(b, "c", NOW, channel="call", price=20.0)
    now = NOW + timedelta(seconds=70)  # b's slot has expired, c's has not
    keys = accounting.counts_keys("acme", accounting.windows(NY, now))
    counts = {key: agent.table.get(key) for key in keys}
    out = accounting.usage(b, counts, agent.table["acme|calls"], now)
    assert out == {
        "hourly": {"window": "2026-12-01T07-0500", "used": 3, "limit": 3},
        "weekly": {"window": "2026-W49", "used": 3, "limit": 10},
        "daily_budget": {"window": "2026-12-01", "used": 50.0, "limit": None},
        "monthly_budget": {"window": "2026-12", "used": 50.0, "limit": 500.0},
        "concurrent_calls": {"window": None, "used": 1, "limit": 2},
    }
    empty = accounting.usage(buyer(daily=4), {}, None, now)
    assert empty["daily"] == {"window": "2026-12-01", "used": 0, "limit": 4}
    assert set(empty) == {"daily", "daily_budget", "monthly_budget"}


# --- properties --------------------------------------------------------------------------

ZONES = [NY, LA, TOKYO, "UTC", "Asia/Kolkata", "Australia/Lord_Howe"]
START = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # spans DST in NY, ISO weeks and months

instants = st.builds(
    lambda minutes: START + timedelta(minutes=minutes),
    st.integers(min_value=0, max_value=400 * 24 * 60),
)


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), at=instants)
def test_windows_contain_the_instant_and_hours_never_share_an_id(zone: str, at: datetime) -> None:
    wins = accounting.windows(zone, at)
    hour_start = datetime.strptime(wins.hour, "%Y-%m-%dT%H%z")
    assert hour_start <= at < hour_start + timedelta(hours=1)
    # Two instants an hour apart are never in one hour window, DST or not.
    assert accounting.windows(zone, at + timedelta(hours=1)).hour != wins.hour
    local = at.astimezone(accounting._zone(zone)).date()
    assert wins.day == local.isoformat()
    assert wins.month == local.isoformat()[:7]
    monday = date.fromisocalendar(int(wins.week[:4]), int(wins.week[6:]), 1)
    assert monday <= local < monday + timedelta(days=7)
    for kind, span in (("hour", 2), ("day", 26), ("week", 7 * 24 + 2), ("month", 32 * 24)):
        end = accounting.window_end(kind, getattr(wins, kind), zone)
        assert at < end <= at + timedelta(hours=span)
        assert getattr(accounting.windows(zone, end), kind) != getattr(wins, kind)


small = st.one_of(st.none(), st.integers(min_value=0, max_value=3))
offer_op = st.tuples(
    st.just("offer"),
    st.one_of(st.integers(0, 240), st.integers(0, 40 * 24 * 60)),
    st.sampled_from(["form", "call"]),
    st.integers(min_value=1, max_value=4000),  # cents
)
op = st.one_of(
    offer_op,
    offer_op,
    st.tuples(st.just("replay"), st.integers(0, 1000)),
    st.tuples(st.just("return"), st.integers(0, 1000)),
    st.tuples(st.just("end"), st.integers(0, 1000)),
    st.tuples(st.just("tick"), st.integers(1, 24 * 60)),
)


@settings(max_examples=300, deadline=None)
@given(
    hourly=small,
    daily=st.one_of(st.none(), st.integers(0, 5)),
    weekly=st.one_of(st.none(), st.integers(0, 8)),
    monthly=st.one_of(st.none(), st.integers(0, 12)),
    daily_budget=st.one_of(st.none(), st.sampled_from([0.0, 30.0, 55.55, 150.0])),
    monthly_budget=st.one_of(st.none(), st.sampled_from([80.0, 250.0, 600.0])),
    concurrent_calls=small,
    ttl=st.sampled_from([60, 3600]),
    zone=st.sampled_from(ZONES),
    rate=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    window_h=st.sampled_from([0, 2, 72]),
    ops=st.lists(op, min_size=10, max_size=60),
)
def test_random_traffic_never_exceeds_a_cap_and_replays_change_nothing(
    hourly: int | None,
    daily: int | None,
    weekly: int | None,
    monthly: int | None,
    daily_budget: float | None,
    monthly_budget: float | None,
    concurrent_calls: int | None,
    ttl: int,
    zone: str,
    rate: float,
    window_h: int,
    ops: list[tuple[Any, ...]],
) -> None:
    b = buyer(
        zone,
        return_window_h=window_h,
        max_return_rate=rate,
        hourly=hourly,
        daily=daily,
        weekly=weekly,
        monthly=monthly,
        daily_budget=daily_budget,
        monthly_budget=monthly_budget,
        concurrent_calls=concurrent_calls,
        call_slot_ttl_s=ttl,
    )
    count_caps = {"hour": hourly, "day": daily, "week": weekly, "month": monthly}
    budgets = {"day": daily_budget, "month": monthly_budget}
    agent = Agent(now=START)
    offers: list[tuple[str, datetime, str, float]] = []
    first: dict[str, tuple[str, str | None]] = {}
    sales: dict[str, tuple[Windows, float, datetime]] = {}  # independent of the table
    returned: set[str] = set()
    slot_expiry: dict[str, datetime] = {}

    def tally() -> tuple[Counter[str], Counter[str], dict[str, float]]:
        net: Counter[str] = Counter()
        back: Counter[str] = Counter()
        spend: dict[str, float] = {}
        for lead, (wins, price, _) in sales.items():
            for key in accounting.counts_keys(b.id, wins):
                spend.setdefault(key, 0.0)
                if lead in returned:
                    back[key] += 1
                else:
                    net[key] += 1
                    spend[key] += price
        return net, back, spend

    def expected_reason(wins: Windows, channel: str, price: float) -> str:
        net, _, spend = tally()
        keys = dict(zip(accounting.KINDS, accounting.counts_keys(b.id, wins), strict=True))
        for kind, cap in accounting.COUNT_CAPS:
            limit = count_caps[kind]
            if limit is not None and net[keys[kind]] >= limit:
                return f"capped:{cap}"
        for kind, budget in budgets.items():
            if budget is not None and round(spend.get(keys[kind], 0.0) + price, 6) > budget:
                return "budget"
        live = [lead for lead, exp in slot_expiry.items() if exp > agent.now]
        if channel == "call" and concurrent_calls is not None and len(live) >= concurrent_calls:
            return "slots_full"
        return "sold"

    for step in ops:
        kind = step[0]
        if kind == "offer":
            _, minutes, channel, cents = step
            lead, at, price = f"l{len(offers)}", START + timedelta(minutes=minutes), cents / 100
            wins = accounting.windows(zone, at)
            expected = expected_reason(wins, channel, price)
            result = agent.offer(b, lead, at, channel, price)
            assert (result.reason, result.replayed) == (expected, False)
            offers.append((lead, at, channel, price))
            first[lead] = (result.reason, result.sold_at)
            if result.reason == "sold":
                sales[lead] = (wins, price, agent.now)
                if channel == "call" and concurrent_calls is not None:
                    slot_expiry[lead] = agent.now + timedelta(seconds=ttl)
        elif kind == "replay" and offers:
            lead, at, channel, price = offers[step[1] % len(offers)]
            table = copy.deepcopy(agent.table)
            result = agent.offer(b, lead, at, channel, price)
            assert result.replayed
            assert (result.reason, result.sold_at) == first[lead]
            assert result.counts == {}
            assert agent.table == table
        elif kind == "return" and offers:
            lead = offers[step[1] % len(offers)][0]
            table = copy.deepcopy(agent.table)
            result = agent.ret(b, lead)
            if lead not in sales:
                want = "unknown_lead"
            elif lead in returned:
                want = "duplicate"
            elif agent.now - sales[lead][2] > timedelta(hours=window_h):
                want = "late"
            else:
                month = accounting.counts_keys(b.id, sales[lead][0])[3]
                net, back, _ = tally()
                gross = net[month] + back[month]
                want = "credited" if (back[month] + 1) / gross <= rate else "over_limit"
            assert result.reason == want
            if want == "credited":
                returned.add(lead)
                assert set(result.counts) == set(accounting.counts_keys(b.id, sales[lead][0]))
            else:
                assert result.counts == {}
                assert agent.table == table
        elif kind == "end" and offers:
            lead = offers[step[1] % len(offers)][0]
            agent.end_call(b, lead)
            agent.end_call(b, lead)
            slot_expiry.pop(lead, None)
            assert lead not in (agent.table.get("acme|calls") or {})
        elif kind == "tick":
            agent.now += timedelta(minutes=step[1])

        # Invariants, from the independent record of answers, and the table agrees.
        net, back, spend = tally()
        for key in spend:
            window_kind = key.split("|")[1]
            limit = count_caps[window_kind]
            assert limit is None or net[key] <= limit, key
            budget = budgets.get(window_kind)
            assert budget is None or spend[key] <= budget + 1e-6, key
            stored = agent.table[key]
            assert (stored["sold"], stored["returned"]) == (net[key], back[key]), key
            assert stored["spend"] == pytest.approx(spend[key], abs=1e-6), key
        if concurrent_calls is not None:
            slots = agent.table.get("acme|calls") or {}
            live = [x for x in slots.values() if datetime.fromisoformat(x) > agent.now]
            assert len(live) <= concurrent_calls


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    sold=instants,
    later=st.integers(min_value=0, max_value=80 * 24 * 60),
    extra=st.integers(min_value=0, max_value=3),
)
def test_returns_credit_exactly_the_windows_of_the_sale(
    zone: str, sold: datetime, later: int, extra: int
) -> None:
    b = buyer(zone, return_window_h=24 * 90)
    agent = Agent(now=sold)
    agent.offer(b, "a", sold)
    for i in range(extra):  # other sales in the same windows stay counted
        agent.offer(b, f"same{i}", sold)
    agent.now = sold + timedelta(minutes=later)
    agent.offer(b, "now", agent.now)  # the current windows exist too
    sold_keys = set(accounting.counts_keys(b.id, accounting.windows(zone, sold)))
    before = copy.deepcopy(agent.table)
    result = agent.ret(b, "a")
    assert result.reason == "credited"
    assert set(result.counts) == sold_keys
    for key, value in before.items():
        if key in sold_keys:
            assert agent.table[key]["sold"] == value["sold"] - 1
            assert agent.table[key]["returned"] == value["returned"] + 1
            assert agent.table[key]["spend"] == pytest.approx(value["spend"] - 25.0)
        elif key != "acme|lead|a":
            assert agent.table[key] == value, key
