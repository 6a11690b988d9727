"""What the dedup state and the seen marks may forget, and the sweep that walks them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_filters import make_buyer

from router import dedup, quality, retention
from router.records import PublisherSignal

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 8, 12, tzinfo=UTC)
WINDOW = timedelta(days=1)
KEEP = timedelta(days=7)


def admitted(*ages: timedelta) -> dedup.DedupState:
    return {f"e{n}": (NOW - age).isoformat() for n, age in enumerate(ages)}


def test_dedup_state_goes_once_its_newest_event_is_past_the_window_and_the_retention() -> None:
    limit = WINDOW + KEEP
    second = timedelta(seconds=1)
    assert retention.dedup_expired(admitted(limit + second), NOW, WINDOW, KEEP)
    assert not retention.dedup_expired(admitted(limit - second), NOW, WINDOW, KEEP)
    assert not retention.dedup_expired(admitted(limit * 3, limit - second), NOW, WINDOW, KEEP)


@pytest.mark.parametrize("state", [{}, None, True, {"e": "not a time"}, {"e": 7}, "x"])
def test_dedup_state_it_cannot_read_is_kept(state: object) -> None:
    assert not retention.dedup_expired(state, NOW, WINDOW, KEEP)


ages = st.integers(0, 40 * 24).map(lambda hours: timedelta(hours=hours))


@given(history=st.lists(ages, max_size=12), arrival=st.integers(0, 7 * 24))
def test_forgetting_expired_state_changes_no_verdict_on_events_younger_than_the_retention(
    history: list[timedelta], arrival: int
) -> None:
    # The state the screen would hold after these events, oldest first.
    state: dedup.DedupState = {}
    for n, age in enumerate(sorted(history, reverse=True)):
        _, state = dedup.check(f"e{n}", NOW - age, state, WINDOW)
    if not retention.dedup_expired(state, NOW, WINDOW, KEEP):
        return
    # Any event up to KEEP old, a replayed one included, is judged as with no state at all.
    at = NOW - timedelta(hours=arrival)
    for event_id in [*state, "new"]:
        assert (
            dedup.check(event_id, at, state, WINDOW)[0] == dedup.check(event_id, at, {}, WINDOW)[0]
        )


def signal(lead: str = "l1", publisher: str = "pub") -> PublisherSignal:
    return PublisherSignal(publisher_id=publisher, lead_id=lead, buyer_id="b", type="sold")


def test_a_seen_mark_goes_after_the_retention_and_nothing_else_does() -> None:
    key = quality.seen_key(signal())
    old, recent = (NOW - KEEP - timedelta(seconds=1)).isoformat(), (NOW - KEEP).isoformat()
    assert retention.seen_expired(key, old, NOW, KEEP)
    assert not retention.seen_expired(key, recent, NOW, KEEP)
    assert not retention.seen_expired(key, True, NOW, KEEP), "a mark without a time stays"
    assert not retention.seen_expired(key, "garbage", NOW, KEEP)
    stats = {"publisher_id": "pub", "sold": 1, "returned": 0, "converted": 0}
    assert not retention.seen_expired(quality.stats_key("pub"), stats, NOW, KEEP)
    assert not retention.seen_expired(quality.stats_key("pub"), old, NOW, KEEP)


def test_seen_marks_outlive_every_buyers_ledger_twice_over() -> None:
    floor = timedelta(days=1)
    assert retention.seen_keep([], floor) == floor
    short, long = make_buyer("a", return_window_h=1), make_buyer("b", return_window_h=240)
    # Ledger entries stay at least 72 h; a credited return keeps one a retention longer.
    assert retention.seen_keep([short], floor) == timedelta(hours=144)
    assert retention.seen_keep([short, long], floor) == timedelta(hours=480)
    assert retention.seen_keep([short, long], timedelta(days=30)) == timedelta(days=30)


def test_only_expired_keys_of_owned_partitions_are_listed() -> None:
    items = [("a1", 1), ("b1", 1), ("a2", 0), ("c1", 1), ("gone", None), ("a3", 1)]
    found = retention.expired_by_partition(
        items,
        partition_of=lambda key: {"a": 0, "b": 1, "c": 2, "g": 0}[key[0]],
        owned={0, 2},
        expired=lambda _key, value: value == 1,
    )
    assert found == {0: ["a1", "a3"], 2: ["c1"]}


def test_a_sweep_walks_every_key_once_per_pass_a_slice_at_a_time() -> None:
    table = {f"k{n}": n for n in range(5)}
    sweep = retention.Sweep(timedelta(hours=1), slice_size=2)
    seen: list[str] = []
    for _ in range(3):
        taken = sweep.next_slice(table.keys, NOW)
        assert 0 < len(taken) <= 2
        seen.extend(taken)
    assert sorted(seen) == sorted(table)
    table["late"] = 9
    assert sweep.next_slice(table.keys, NOW + timedelta(minutes=59)) == [], "between passes"
    later = NOW + timedelta(hours=1)
    second_pass = [key for _ in range(3) for key in sweep.next_slice(table.keys, later)]
    assert sorted(second_pass) == sorted(table), "a key written since is in the next pass"


def test_a_sweeps_first_pass_starts_at_once() -> None:
    assert retention.Sweep(timedelta(days=1)).next_slice(lambda: ["k"], NOW) == ["k"]
