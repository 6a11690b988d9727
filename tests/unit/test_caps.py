from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import caps
from router.buyers import Buyer, Caps
from router.caps import CapState

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
    """The offer agent's cap bookkeeping: one state per (buyer, local day) table key."""

    def __init__(self) -> None:
        self.table: dict[str, CapState] = {}
        self.now = NOW

    def offer(self, b: Buyer, lead_id: str, occurred_at: datetime) -> caps.CapCheck:
        day, _ = caps.local_windows(b, occurred_at)
        key = caps.table_key(b.id, day)
        state = self.table.get(key) or caps.empty_state()
        before = copy.deepcopy(state)
        result = caps.check(b, lead_id, occurred_at, state, self.now)
        assert state == before, "check mutated its input state"
        self.table[key] = result["state"]
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
    assert agent.offer(b, "a", utc("2026-11-01T05:10:00Z"))["reason"] == "sold"
    assert agent.offer(b, "b", utc("2026-11-01T05:50:00Z"))["reason"] == "capped:hourly"
    # Same wall-clock 01:xx, but the second (EST) hour is a fresh window.
    assert agent.offer(b, "c", utc("2026-11-01T06:10:00Z"))["reason"] == "sold"
    assert agent.offer(b, "d", utc("2026-11-01T06:40:00Z"))["reason"] == "capped:hourly"


def test_utc_early_morning_is_previous_local_day_in_los_angeles() -> None:
    event = utc("2026-03-10T03:30:00Z")
    assert caps.local_windows(buyer(timezone=LA), event) == ("2026-03-09", "2026-03-09T20-0700")
    assert caps.local_windows(buyer(timezone="UTC"), event)[0] == "2026-03-10"
    assert caps.table_key("acme", "2026-03-09") == "acme|2026-03-09"


def test_daily_caps_reset_at_buyer_midnight_not_utc() -> None:
    agent = Agent()
    b = buyer(daily=1, timezone=LA)
    # 01:00 PDT on the 9th, then 20:30 PDT on the 9th (a different UTC date): one local day.
    assert agent.offer(b, "a", utc("2026-03-09T08:00:00Z"))["reason"] == "sold"
    assert agent.offer(b, "b", utc("2026-03-10T03:30:00Z"))["reason"] == "capped:daily"
    # 23:59 PDT is still the 9th; 00:30 PDT on the 10th is a new day.
    assert agent.offer(b, "c", utc("2026-03-10T06:59:00Z"))["reason"] == "capped:daily"
    assert agent.offer(b, "d", utc("2026-03-10T07:30:00Z"))["reason"] == "sold"
    assert set(agent.table) == {"acme|2026-03-09", "acme|2026-03-10"}


# --- caps enforced -----------------------------------------------------------------------


def test_hourly_cap() -> None:
    agent = Agent()
    b = buyer(hourly=2)
    reasons = [
        agent.offer(b, f"l{i}", utc(f"2026-06-01T14:{10 * i:02d}:00Z"))["reason"] for i in range(4)
    ]
    assert reasons == ["sold", "sold", "capped:hourly", "capped:hourly"]
    assert agent.offer(b, "next-hour", utc("2026-06-01T15:00:00Z"))["reason"] == "sold"


def test_daily_cap() -> None:
    agent = Agent()
    b = buyer(daily=3)
    reasons = [
        agent.offer(b, f"l{i}", utc(f"2026-06-01T{12 + i:02d}:00:00Z"))["reason"] for i in range(5)
    ]
    assert reasons == ["sold", "sold", "sold", "capped:daily", "capped:daily"]
    state = agent.table["acme|2026-06-01"]
    assert set(state["accepted"]) == {"l0", "l1", "l2"}
    assert state["declined"] == {"l3": "capped:daily", "l4": "capped:daily"}
    assert state["accepted"]["l0"]["hour"] == "2026-06-01T08-0400"


def test_daily_cap_reported_when_both_caps_are_full() -> None:
    agent = Agent()
    b = buyer(hourly=1, daily=1)
    agent.offer(b, "a", utc("2026-06-01T14:00:00Z"))
    assert agent.offer(b, "b", utc("2026-06-01T14:30:00Z"))["reason"] == "capped:daily"


def test_zero_caps_decline_everything_and_none_means_unlimited() -> None:
    at = utc("2026-06-01T14:00:00Z")
    assert Agent().offer(buyer(daily=0), "a", at)["reason"] == "capped:daily"
    assert Agent().offer(buyer(hourly=0), "a", at)["reason"] == "capped:hourly"
    agent = Agent()
    unlimited = buyer()
    assert all(agent.offer(unlimited, f"l{i}", at)["reason"] == "sold" for i in range(50))


# --- replay ------------------------------------------------------------------------------


def test_replay_of_accepted_lead_is_sold_with_same_sold_at_and_unchanged_state() -> None:
    b = buyer(hourly=1, daily=1)
    at = utc("2026-06-01T14:00:00Z")
    first = caps.check(b, "a", at, caps.empty_state(), NOW)
    assert first["reason"] == "sold"
    assert first["replayed"] is False
    assert first["sold_at"] == NOW.isoformat()

    state = first["state"]
    before = copy.deepcopy(state)
    again = caps.check(b, "a", at, state, NOW + timedelta(hours=1))
    assert again["reason"] == "sold"
    assert again["replayed"] is True
    assert again["sold_at"] == first["sold_at"]
    assert again["state"] is state
    assert state == before
    assert len(state["accepted"]) == 1


def test_replay_of_declined_lead_stays_declined_even_if_capacity_frees() -> None:
    at = utc("2026-06-01T14:00:00Z")
    tight = buyer(daily=1)
    state = caps.check(tight, "a", at, caps.empty_state(), NOW)["state"]
    declined = caps.check(tight, "b", at, state, NOW)
    assert declined["reason"] == "capped:daily"
    state = declined["state"]

    # The buyer raised its caps while the offer was in flight: a replay still gets "no".
    roomy = buyer(daily=10, hourly=10)
    again = caps.check(roomy, "b", at, state, NOW + timedelta(minutes=5))
    assert again["reason"] == "capped:daily"
    assert again["replayed"] is True
    assert again["sold_at"] is None
    assert again["state"] is state
    # A lead never seen before does get the new capacity.
    assert caps.check(roomy, "c", at, state, NOW)["reason"] == "sold"


def test_states_are_never_mutated_in_place() -> None:
    b = buyer(hourly=1, daily=2)
    state = caps.empty_state()
    for i, minute in enumerate([0, 10, 20, 0, 10]):
        hour = 14 if i < 3 else 16
        before = copy.deepcopy(state)
        result = caps.check(b, f"l{i}", utc(f"2026-06-01T{hour}:{minute:02d}:00Z"), state, NOW)
        assert state == before
        if not result["replayed"]:
            assert result["state"] is not state
        state = result["state"]
    assert set(state["accepted"]) == {"l0", "l3"}
    assert state["declined"] == {
        "l1": "capped:hourly",
        "l2": "capped:hourly",
        "l4": "capped:daily",
    }


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
    for lead, minutes in events:
        lead_id = f"lead-{lead}"
        occurred_at = START + timedelta(minutes=minutes)
        day, _ = caps.local_windows(b, occurred_at)
        key = caps.table_key(b.id, day)
        result = agent.offer(b, lead_id, occurred_at)

        answer = (result["reason"], result["sold_at"])
        seen = answers.setdefault((key, lead_id), answer)
        assert answer == seen
        assert result["replayed"] == (seen is not answer)

        state = agent.table[key]
        if daily is not None:
            assert len(state["accepted"]) <= daily
        if hourly is not None:
            per_hour = Counter(a["hour"] for a in state["accepted"].values())
            assert all(n <= hourly for n in per_hour.values())
        assert all(a["hour"].startswith(day) for a in state["accepted"].values())
        assert not set(state["accepted"]) & set(state["declined"])
