from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import caps
from router.buyers import Buyer, Caps

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NY = "America/New_York"
LA = "America/Los_Angeles"


def buyer(
    hourly: int | None = None,
    daily: int | None = None,
    timezone: str = NY,
    buyer_id: str = "acme",
) -> Buyer:
    return Buyer(
        id=buyer_id,
        name=buyer_id.title(),
        verticals=["solar"],
        price=25.0,
        caps=Caps(hourly=hourly, daily=daily),
        timezone=timezone,
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Agent:
    """The offer agent's cap bookkeeping, as in router/agents.py: a counts entry per
    (buyer, local day), a ledger entry per (buyer, local day, lead), counts written first,
    and a prune of aged-out keys on the first offer of a new buyer-local day."""

    def __init__(self) -> None:
        self.table: dict[str, Any] = {}
        self.writes: list[str] = []
        self.pruned_through: dict[str, str] = {}
        self.now = NOW

    def offer(self, b: Buyer, lead_id: str, occurred_at: datetime) -> caps.CapCheck:
        day, _ = caps.local_windows(b, occurred_at)
        counts_key = caps.counts_key(b.id, day)
        ledger_key = caps.ledger_key(b.id, day, lead_id)
        counts = self.table.get(counts_key)
        entry = self.table.get(ledger_key)
        before = copy.deepcopy((counts, entry))
        result = caps.check(b, lead_id, occurred_at, counts, entry, self.now)
        assert (counts, entry) == before, "check mutated its inputs"
        if day > self.pruned_through.get(b.id, ""):
            for stale in caps.expired_keys(list(self.table), b.id, day):
                del self.table[stale]
            self.pruned_through[b.id] = day
        if result.counts is not counts:
            self.table[counts_key] = result.counts
            self.writes.append(counts_key)
        if result.entry is not entry:
            self.table[ledger_key] = result.entry
            self.writes.append(ledger_key)
        self.now += timedelta(seconds=1)
        return result


# --- windows in the buyer's zone ---------------------------------------------------------


def test_spring_forward_has_no_two_oclock_hour() -> None:
    b = buyer()
    assert caps.local_windows(b, utc("2026-03-08T06:59:00Z")) == (
        "2026-03-08",
        "2026-03-08T01-0500",
    )
    assert caps.local_windows(b, utc("2026-03-08T07:00:00Z")) == (
        "2026-03-08",
        "2026-03-08T03-0400",
    )


def test_fall_back_repeated_hour_is_two_windows() -> None:
    b = buyer()
    first = caps.local_windows(b, utc("2026-11-01T05:30:00Z"))  # 01:30 EDT
    second = caps.local_windows(b, utc("2026-11-01T06:30:00Z"))  # 01:30 EST
    assert first == ("2026-11-01", "2026-11-01T01-0400")
    assert second == ("2026-11-01", "2026-11-01T01-0500")
    assert first[1] != second[1]


def test_fall_back_hourly_cap_counts_each_repeated_hour_separately() -> None:
    agent = Agent()
    b = buyer(hourly=1)
    assert agent.offer(b, "a", utc("2026-11-01T05:10:00Z")).reason == "sold"
    assert agent.offer(b, "b", utc("2026-11-01T05:50:00Z")).reason == "capped:hourly"
    # Same wall-clock 01:xx, but the second (EST) hour is a fresh window.
    assert agent.offer(b, "c", utc("2026-11-01T06:10:00Z")).reason == "sold"
    assert agent.offer(b, "d", utc("2026-11-01T06:40:00Z")).reason == "capped:hourly"
    assert agent.table["acme|2026-11-01"] == {
        "day": 2,
        "hours": {"2026-11-01T01-0400": 1, "2026-11-01T01-0500": 1},
    }


def test_utc_early_morning_is_previous_local_day_in_los_angeles() -> None:
    event = utc("2026-03-10T03:30:00Z")
    assert caps.local_windows(buyer(timezone=LA), event) == ("2026-03-09", "2026-03-09T20-0700")
    assert caps.local_windows(buyer(timezone="UTC"), event)[0] == "2026-03-10"
    assert caps.counts_key("acme", "2026-03-09") == "acme|2026-03-09"
    assert caps.ledger_key("acme", "2026-03-09", "lead-1") == "acme|2026-03-09|lead-1"


def test_daily_caps_reset_at_buyer_midnight_not_utc() -> None:
    agent = Agent()
    b = buyer(daily=1, timezone=LA)
    # 01:00 PDT on the 9th, then 20:30 PDT on the 9th (a different UTC date): one local day.
    assert agent.offer(b, "a", utc("2026-03-09T08:00:00Z")).reason == "sold"
    assert agent.offer(b, "b", utc("2026-03-10T03:30:00Z")).reason == "capped:daily"
    # 23:59 PDT is still the 9th; 00:30 PDT on the 10th is a new day.
    assert agent.offer(b, "c", utc("2026-03-10T06:59:00Z")).reason == "capped:daily"
    assert agent.offer(b, "d", utc("2026-03-10T07:30:00Z")).reason == "sold"
    assert set(agent.table) == {
        "acme|2026-03-09",
        "acme|2026-03-09|a",
        "acme|2026-03-09|b",
        "acme|2026-03-09|c",
        "acme|2026-03-10",
        "acme|2026-03-10|d",
    }
    assert agent.table["acme|2026-03-09"]["day"] == 1
    assert agent.table["acme|2026-03-10"]["day"] == 1


# --- caps enforced -----------------------------------------------------------------------


def test_hourly_cap() -> None:
    agent = Agent()
    b = buyer(hourly=2)
    reasons = [
        agent.offer(b, f"l{i}", utc(f"2026-06-01T14:{10 * i:02d}:00Z")).reason for i in range(4)
    ]
    assert reasons == ["sold", "sold", "capped:hourly", "capped:hourly"]
    assert agent.offer(b, "next-hour", utc("2026-06-01T15:00:00Z")).reason == "sold"


def test_daily_cap() -> None:
    agent = Agent()
    b = buyer(daily=3)
    reasons = [
        agent.offer(b, f"l{i}", utc(f"2026-06-01T{12 + i:02d}:00:00Z")).reason for i in range(5)
    ]
    assert reasons == ["sold", "sold", "sold", "capped:daily", "capped:daily"]
    assert agent.table["acme|2026-06-01"] == {
        "day": 3,
        "hours": {"2026-06-01T08-0400": 1, "2026-06-01T09-0400": 1, "2026-06-01T10-0400": 1},
    }
    ledger = {lead: agent.table[f"acme|2026-06-01|{lead}"] for lead in ("l0", "l1", "l2", "l3")}
    assert {lead: e["reason"] for lead, e in ledger.items()} == {
        "l0": "sold",
        "l1": "sold",
        "l2": "sold",
        "l3": "capped:daily",
    }
    assert agent.table["acme|2026-06-01|l4"]["reason"] == "capped:daily"
    assert ledger["l0"]["hour"] == "2026-06-01T08-0400"
    assert ledger["l0"]["sold_at"] is not None
    assert ledger["l3"]["sold_at"] is None


def test_daily_cap_reported_when_both_caps_are_full() -> None:
    agent = Agent()
    b = buyer(hourly=1, daily=1)
    agent.offer(b, "a", utc("2026-06-01T14:00:00Z"))
    assert agent.offer(b, "b", utc("2026-06-01T14:30:00Z")).reason == "capped:daily"


def test_zero_caps_decline_everything_and_none_means_unlimited() -> None:
    at = utc("2026-06-01T14:00:00Z")
    assert Agent().offer(buyer(daily=0), "a", at).reason == "capped:daily"
    assert Agent().offer(buyer(hourly=0), "a", at).reason == "capped:hourly"
    agent = Agent()
    unlimited = buyer()
    assert all(agent.offer(unlimited, f"l{i}", at).reason == "sold" for i in range(50))
    assert agent.table["acme|2026-06-01"]["day"] == 50


def test_counts_are_written_before_the_ledger_entry() -> None:
    agent = Agent()
    agent.offer(buyer(daily=1), "a", utc("2026-06-01T14:00:00Z"))
    agent.offer(buyer(daily=1), "b", utc("2026-06-01T14:10:00Z"))
    # A decline changes no count, so only its ledger entry is written.
    assert agent.writes == ["acme|2026-06-01", "acme|2026-06-01|a", "acme|2026-06-01|b"]


# --- replay ------------------------------------------------------------------------------


def test_replay_of_accepted_lead_is_sold_with_same_sold_at_and_unchanged_counts() -> None:
    b = buyer(hourly=1, daily=1)
    at = utc("2026-06-01T14:00:00Z")
    first = caps.check(b, "a", at, None, None, NOW)
    assert first.reason == "sold"
    assert first.replayed is False
    assert first.sold_at == NOW.isoformat()
    assert first.entry == {"reason": "sold", "hour": "2026-06-01T10-0400", "sold_at": first.sold_at}

    counts, entry = first.counts, first.entry
    assert counts == {"day": 1, "hours": {"2026-06-01T10-0400": 1}}
    before = copy.deepcopy((counts, entry))
    again = caps.check(b, "a", at, counts, entry, NOW + timedelta(hours=1))
    assert again.reason == "sold"
    assert again.replayed is True
    assert again.sold_at == first.sold_at
    assert again.counts is counts
    assert again.entry is entry
    assert (counts, entry) == before
    assert counts["day"] == 1


def test_replay_of_declined_lead_stays_declined_even_if_capacity_frees() -> None:
    at = utc("2026-06-01T14:00:00Z")
    tight = buyer(daily=1)
    counts = caps.check(tight, "a", at, None, None, NOW).counts
    declined = caps.check(tight, "b", at, counts, None, NOW)
    assert declined.reason == "capped:daily"
    assert declined.replayed is False
    assert declined.counts is counts
    entry = declined.entry
    assert entry == {"reason": "capped:daily", "hour": "2026-06-01T10-0400", "sold_at": None}

    # The buyer raised its caps while the offer was in flight: a replay still gets "no".
    roomy = buyer(daily=10, hourly=10)
    again = caps.check(roomy, "b", at, counts, entry, NOW + timedelta(minutes=5))
    assert again.reason == "capped:daily"
    assert again.replayed is True
    assert again.sold_at is None
    assert again.counts is counts
    assert again.entry is entry
    # A lead never seen before does get the new capacity.
    assert caps.check(roomy, "c", at, counts, None, NOW).reason == "sold"


def test_inputs_are_never_mutated_in_place() -> None:
    b = buyer(hourly=1, daily=2)
    counts: caps.Counts | None = None
    ledger: dict[str, caps.LedgerEntry] = {}
    steps = [("l0", 14, 0), ("l1", 14, 10), ("l2", 14, 20), ("l0", 14, 30), ("l3", 16, 0)]
    steps += [("l4", 16, 10), ("l1", 16, 20)]
    for lead, hour, minute in steps:
        entry = ledger.get(lead)
        before = copy.deepcopy((counts, entry))
        result = caps.check(b, lead, utc(f"2026-06-01T{hour}:{minute:02d}:00Z"), counts, entry, NOW)
        assert (counts, entry) == before
        if result.replayed:
            assert result.counts is counts
            assert result.entry is entry
        elif result.reason == "sold":
            assert result.counts is not counts
            if counts is not None:
                assert result.counts["hours"] is not counts["hours"]
        else:
            assert result.counts is counts
        counts = result.counts
        ledger[lead] = result.entry
    assert counts == {"day": 2, "hours": {"2026-06-01T10-0400": 1, "2026-06-01T12-0400": 1}}
    assert {lead: e["reason"] for lead, e in ledger.items()} == {
        "l0": "sold",
        "l1": "capped:hourly",
        "l2": "capped:hourly",
        "l3": "sold",
        "l4": "capped:daily",
    }


# --- constant size and retention ---------------------------------------------------------


def test_counts_stay_constant_size_however_many_sales() -> None:
    agent = Agent()
    b = buyer()
    # The New York fall-back day has 25 local hours: 04:00Z on the 1st to 05:00Z on the 2nd.
    start = utc("2026-11-01T04:00:00Z")
    for i in range(1000):
        assert agent.offer(b, f"lead-{i:04d}", start + i * timedelta(seconds=90)).sold_at
    counts = agent.table["acme|2026-11-01"]
    assert set(counts) == {"day", "hours"}
    assert counts["day"] == 1000
    assert sum(counts["hours"].values()) == 1000
    assert len(counts["hours"]) == 25
    assert all(hour.startswith("2026-11-01T") for hour in counts["hours"])
    assert len(json.dumps(counts)) < 1024
    entries = [v for k, v in agent.table.items() if k.startswith("acme|2026-11-01|")]
    assert len(entries) == 1000
    assert max(len(json.dumps(e)) for e in entries) < 200


def _keys(buyer_id: str, days: list[str]) -> list[str]:
    out = []
    for day in days:
        out += [caps.counts_key(buyer_id, day), caps.ledger_key(buyer_id, day, f"lead-{day}")]
    return out


def test_expired_keys_lists_only_this_buyers_keys_older_than_retention() -> None:
    today = date(2026, 6, 1)
    days = [(today - timedelta(days=n)).isoformat() for n in range(caps.RETENTION_DAYS + 4)]
    kept_days = days[: caps.RETENTION_DAYS + 1]  # today back to exactly RETENTION_DAYS ago
    old_days = days[caps.RETENTION_DAYS + 1 :]
    others = [
        *_keys("acme-2", days),
        *_keys("acme_2", days),
        *_keys("xacme", days),
        *_keys("acm", days),
    ]
    keys = [*others, *_keys("acme", days)]
    before = list(keys)

    expired = caps.expired_keys(iter(keys), "acme", today.isoformat())
    assert keys == before
    assert sorted(expired) == sorted(_keys("acme", old_days))
    assert len(expired) == 2 * len(old_days) == 6
    assert not set(expired) & set(_keys("acme", kept_days))
    assert all(not k.startswith("acme|") for k in others)
    assert set(caps.expired_keys(keys, "acme-2", today.isoformat())) == set(
        _keys("acme-2", old_days)
    )


def test_expired_keys_boundary_and_across_a_year_end() -> None:
    assert caps.RETENTION_DAYS == 3
    keys = [
        "acme|2025-12-29",
        "acme|2025-12-29|l",
        "acme|2025-12-30",
        "acme|2025-12-30|l",
        "acme|2026-01-02",
        "acme|2026-01-02|l",
    ]
    assert caps.expired_keys(keys, "acme", "2026-01-02") == ["acme|2025-12-29", "acme|2025-12-29|l"]
    assert caps.expired_keys(keys, "acme", "2025-12-31") == []
    assert caps.expired_keys([], "acme", "2026-01-02") == []


def test_agent_prunes_aged_out_days_on_a_new_day() -> None:
    agent = Agent()
    b = buyer()
    other = buyer(buyer_id="acme-2")
    for n in range(6):
        at = utc("2026-06-01T16:00:00Z") + timedelta(days=n)
        agent.offer(b, f"a{n}", at)
        agent.offer(other, f"o{n}", utc("2026-06-01T16:00:00Z"))
    days = {k.split("|")[1] for k in agent.table if k.startswith("acme|")}
    assert days == {"2026-06-03", "2026-06-04", "2026-06-05", "2026-06-06"}
    # The other buyer's (old) day was never pruned by acme's new days.
    assert "acme-2|2026-06-01" in agent.table
    assert agent.table["acme-2|2026-06-01"]["day"] == 6


# --- property ----------------------------------------------------------------------------

ZONES = [NY, LA, "UTC", "Asia/Kolkata", "Australia/Lord_Howe"]
START = datetime(2026, 10, 31, 0, 0, tzinfo=UTC)  # spans the New York fall-back
cap_values = st.one_of(st.none(), st.integers(min_value=0, max_value=3))


@settings(max_examples=200, deadline=None)
@given(
    hourly=cap_values,
    daily=st.one_of(st.none(), st.integers(min_value=0, max_value=5)),
    zone=st.sampled_from(ZONES),
    events=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=7),
            st.integers(min_value=0, max_value=3 * 24 * 60),
        ),
        max_size=40,
    ),
)
def test_caps_never_exceeded_and_answers_are_stable(
    hourly: int | None,
    daily: int | None,
    zone: str,
    events: list[tuple[int, int]],
) -> None:
    b = buyer(hourly=hourly, daily=daily, timezone=zone)
    agent = Agent()
    answers: dict[tuple[str, str], tuple[str, str | None]] = {}
    sold: dict[str, Counter[str]] = {}
    for lead, minutes in events:
        lead_id = f"lead-{lead}"
        occurred_at = START + timedelta(minutes=minutes)
        day, hour = caps.local_windows(b, occurred_at)
        result = agent.offer(b, lead_id, occurred_at)

        answer = (result.reason, result.sold_at)
        seen = answers.setdefault((day, lead_id), answer)
        assert answer == seen
        assert result.replayed == (seen is not answer)
        assert result.reason in ("sold", "capped:hourly", "capped:daily")
        assert (result.sold_at is not None) == (result.reason == "sold")
        if result.reason == "sold" and not result.replayed:
            sold.setdefault(day, Counter())[hour] += 1

        # Recount the sales independently of the stored counts.
        for hours in sold.values():
            assert daily is None or sum(hours.values()) <= daily
            assert hourly is None or all(n <= hourly for n in hours.values())

        counts = agent.table.get(caps.counts_key(b.id, day))
        entry = agent.table[caps.ledger_key(b.id, day, lead_id)]
        assert entry["reason"] == result.reason
        assert entry["sold_at"] == result.sold_at
        if day in sold:
            assert counts == {"day": sum(sold[day].values()), "hours": dict(sold[day])}
            assert all(h.startswith(day) for h in counts["hours"])
        else:
            assert counts is None
