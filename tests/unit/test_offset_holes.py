from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.offset_holes import HoleGuard, first_hole

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Rec:
    offset: int


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


SCREEN = TP("leads.screen", 3)
INTAKE = TP("intent.form", 0)


def recs(*offsets: int) -> list[Rec]:
    return [Rec(o) for o in offsets]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock | None = None) -> HoleGuard:
    return HoleGuard(frozenset({SCREEN.topic}), patience_s=5.0, clock=clock or Clock())


def test_records_that_follow_the_position_and_each_other_have_no_hole() -> None:
    assert first_hole(recs(5, 6, 7), 5) is None
    assert first_hole([], 5) is None
    # Unknown position (nothing read yet): only jumps between records count.
    assert first_hole(recs(9, 10), None) is None


def test_a_fetch_that_starts_past_the_position_or_jumps_has_a_hole() -> None:
    assert first_hole(recs(531, 532), 505) == (505, 531)
    assert first_hole(recs(505, 506, 531), 505) == (507, 531)
    assert first_hole(recs(9, 12), None) == (10, 12)


def test_a_hole_is_cut_off_and_read_again() -> None:
    kept, seeks = guard().trim({SCREEN: recs(500, 501, 520, 521)}, {SCREEN: 500})
    assert kept == {SCREEN: recs(500, 501)}
    assert seeks == {SCREEN: 502}


def test_a_fetch_that_is_all_past_the_hole_hands_on_nothing() -> None:
    kept, seeks = guard().trim({SCREEN: recs(531, 532)}, {SCREEN: 505})
    assert kept == {}
    assert seeks == {SCREEN: 505}


def test_topics_others_write_are_not_guarded() -> None:
    # A transactional producer's commit markers leave holes in intake topics on Kafka.
    kept, seeks = guard().trim({INTAKE: recs(7, 9)}, {INTAKE: 5})
    assert kept == {INTAKE: recs(7, 9)}
    assert seeks == {}


def test_once_the_hole_is_filled_the_records_flow_again() -> None:
    g = guard()
    g.trim({SCREEN: recs(531)}, {SCREEN: 505})
    kept, seeks = g.trim({SCREEN: recs(505, 506)}, {SCREEN: 505})
    assert kept == {SCREEN: recs(505, 506)}
    assert seeks == {}


def test_a_hole_that_outlasts_the_patience_is_moved_past() -> None:
    clock = Clock()
    g = guard(clock)
    assert g.trim({SCREEN: recs(531)}, {SCREEN: 505})[1] == {SCREEN: 505}
    clock.now += 4.9
    assert g.trim({SCREEN: recs(531)}, {SCREEN: 505})[1] == {SCREEN: 505}
    clock.now += 0.2
    kept, seeks = g.trim({SCREEN: recs(531)}, {SCREEN: 505})
    assert kept == {SCREEN: recs(531)}
    assert seeks == {}
    # A later hole gets its own patience.
    assert g.trim({SCREEN: recs(600)}, {SCREEN: 590})[1] == {SCREEN: 590}


@given(
    position=st.integers(0, 50),
    steps=st.lists(st.integers(1, 4), min_size=0, max_size=30),
    start_gap=st.integers(0, 3),
)
def test_what_is_handed_on_is_contiguous_from_the_position(
    position: int, steps: list[int], start_gap: int
) -> None:
    offsets = []
    offset = position + start_gap
    for step in steps:
        offsets.append(offset)
        offset += step
    kept, seeks = guard().trim({SCREEN: recs(*offsets)}, {SCREEN: position})
    handed = [r.offset for r in kept.get(SCREEN, [])]
    assert handed == list(range(position, position + len(handed)))
    assert handed == offsets[: len(handed)]
    if len(handed) < len(offsets):
        assert seeks == {SCREEN: position + len(handed)}
    else:
        assert seeks == {}
