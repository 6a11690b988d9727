from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import dedup
from router.dedup import MAX_ADMITTED, DedupState, DedupVerdict

pytestmark = pytest.mark.unit

WINDOW = timedelta(hours=1)
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


class Screen:
    """The screen agent's dedup bookkeeping for one fingerprint."""

    def __init__(self, window: timedelta = WINDOW) -> None:
        self.state: DedupState = {}
        self.window = window

    def see(self, event_id: str, occurred_at: datetime) -> str | None:
        before = copy.deepcopy(self.state)
        verdict, new_state = dedup.check(event_id, occurred_at, self.state, self.window)
        assert self.state == before, "check mutated its input state"
        if verdict.duplicate_of is not None:
            assert new_state is self.state, "a duplicate must not change the state"
        self.state = new_state
        assert len(self.state) <= MAX_ADMITTED
        return verdict.duplicate_of


def test_first_event_is_admitted_and_remembered() -> None:
    verdict, state = dedup.check("a", T0, {}, WINDOW)
    assert verdict == DedupVerdict(duplicate_of=None)
    assert state == {"a": T0.isoformat()}


def test_within_window_is_duplicate_of_the_earliest_admitted() -> None:
    screen = Screen()
    assert screen.see("a", at(0)) is None
    assert screen.see("b", at(1.2)) is None
    assert screen.see("c", at(0.6)) == "a"  # within the window of both a and b
    assert screen.see("d", at(1.9)) == "b"
    assert screen.see("e", at(0.01)) == "a"
    assert set(screen.state) == {"a", "b"}


def test_outside_window_is_admitted() -> None:
    screen = Screen()
    assert screen.see("a", at(0)) is None
    assert screen.see("b", at(1)) is None  # exactly one window later: not within
    assert screen.see("c", at(5)) is None
    assert screen.see("d", at(-3)) is None


def test_out_of_order_event_times() -> None:
    screen = Screen()
    assert screen.see("late", at(2)) is None
    assert screen.see("earlier", at(1.5)) == "late"  # earlier event time, same window
    assert screen.see("much-earlier", at(0.5)) is None
    assert screen.see("between", at(1.4)) == "much-earlier"


def test_replay_of_admitted_event_is_admitted_again_after_later_events() -> None:
    screen = Screen()
    assert screen.see("a", at(0)) is None
    assert screen.see("dup", at(0.5)) == "a"
    assert screen.see("b", at(1.4)) is None
    assert screen.see("c", at(-0.9)) == "a"
    state = screen.state
    assert screen.see("a", at(0)) is None
    assert screen.state is state


# Replays after events far apart in event time were processed between two offset commits:
# the state must still remember what the replayed event was first judged against.


def test_replay_of_admitted_event_after_far_newer_events_is_admitted_again() -> None:
    screen = Screen()
    assert screen.see("a", at(0)) is None
    assert screen.see("c", at(2.5)) is None
    assert screen.see("b", at(0.6)) == "a"  # late, but a is still remembered
    # Crash before the offset commit: a is replayed and is still the original.
    assert screen.see("a", at(0)) is None


def test_replay_of_duplicate_after_far_newer_events_stays_duplicate() -> None:
    screen = Screen()
    assert screen.see("a", at(0)) is None
    assert screen.see("b", at(0.1)) == "a"
    assert screen.see("c", at(2)) is None
    # Crash before the offset commit: b is replayed and must not be sold.
    assert screen.see("b", at(0.1)) == "a"


def test_replay_of_duplicate_stays_duplicate() -> None:
    screen = Screen()
    assert screen.see("a", at(0)) is None
    assert screen.see("dup", at(0.3)) == "a"
    assert screen.see("b", at(1.5)) is None
    assert screen.see("c", at(0.9)) == "a"
    state = screen.state
    assert screen.see("dup", at(0.3)) == "a"
    assert screen.see("c", at(0.9)) == "a"
    assert screen.state is state


def test_state_is_bounded_and_keeps_the_newest() -> None:
    screen = Screen()
    for i in range(200):
        assert screen.see(f"e{i}", at(1.5 * i)) is None
    assert 1 <= len(screen.state) <= MAX_ADMITTED
    assert "e199" in screen.state
    assert "e0" not in screen.state

    bursty = Screen()
    for i in range(200):
        bursty.see(f"e{i}", at(i / 1000))
    assert bursty.state == {"e0": at(0).isoformat()}


def test_state_is_never_mutated_in_place() -> None:
    state: DedupState = {"a": at(0).isoformat()}
    frozen = copy.deepcopy(state)
    for event_id, hours in [("a", 0), ("b", 0.5), ("c", 3), ("d", -5), ("e", 1.5)]:
        verdict, new_state = dedup.check(event_id, at(hours), state, WINDOW)
        assert state == frozen
        if verdict.duplicate_of is None and new_state != state:
            assert new_state is not state
    _, both = dedup.check("e", at(1.5), state, WINDOW)
    assert both == {"a": at(0).isoformat(), "e": at(1.5).isoformat()}
    _, admitted = dedup.check("c", at(3), state, WINDOW)
    assert set(admitted) == {"a", "c"}  # kept however far apart: replays may need a
    assert state == frozen


def test_zero_window_never_flags_duplicates() -> None:
    screen = Screen(timedelta(0))
    assert screen.see("a", at(0)) is None
    assert screen.see("b", at(0)) is None


# --- property ----------------------------------------------------------------------------

MINUTE = timedelta(minutes=1)


def _run(screen: Screen, sequence: list[int], times: list[int]) -> dict[str, list[str | None]]:
    verdicts: dict[str, list[str | None]] = {}
    for i in sequence:
        verdicts.setdefault(f"e{i}", []).append(screen.see(f"e{i}", T0 + times[i] * MINUTE))
    return verdicts


events = st.integers(min_value=1, max_value=10).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(min_value=0, max_value=n - 1), min_size=1, max_size=30),
        st.just(n),
    )
)


@settings(max_examples=200, deadline=None)
@given(events=events, data=st.data())
def test_replaying_everything_against_the_final_state_gives_the_same_verdicts(
    events: tuple[list[int], int], data: st.DataObject
) -> None:
    """Event times across many windows: every verdict is reproducible on replay.

    Which admitted event a duplicate points at may change on replay (a late, earlier event
    admitted meanwhile becomes the earliest anchor), so the anchor is checked for validity.
    """
    sequence, n = events
    times = data.draw(st.lists(st.integers(min_value=0, max_value=600), min_size=n, max_size=n))
    screen = Screen()
    first = _run(screen, sequence, times)
    final_state = screen.state
    second = _run(screen, sequence, times)

    assert screen.state == final_state
    for event_id, seen in first.items():
        duplicate = seen[0] is not None
        assert all((v is not None) == duplicate for v in seen + second[event_id]), event_id
        for anchor in [v for v in seen + second[event_id] if v is not None]:
            assert anchor in final_state
            gap = (
                T0 + times[int(event_id[1:])] * MINUTE - datetime.fromisoformat(final_state[anchor])
            )
            assert abs(gap) < WINDOW
