"""The watch reports a partition only after it has been left out, without moving, for a while."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.stalls import NotFetched, StallWatch, records_wait

pytestmark = pytest.mark.unit

CALL = ("intent.call", 1)
FORM = ("intent.form", 1)


def test_a_partition_left_out_at_one_offset_is_reported_after_the_wait() -> None:
    watch: StallWatch[tuple[str, int]] = StallWatch(after_s=60)
    held = {CALL: NotFetched("unknown", 422)}

    assert watch.observe(held, now=0) == {}
    assert watch.observe(held, now=59) == {}
    assert watch.observe(held, now=60) == held


def test_a_partition_read_further_starts_over() -> None:
    watch: StallWatch[tuple[str, int]] = StallWatch(after_s=60)
    watch.observe({CALL: NotFetched("buffer_full", 422)}, now=0)

    # Under a backlog a partition's buffer fills and drains all the time: not a stall.
    assert watch.observe({CALL: NotFetched("buffer_full", 900)}, now=60) == {}
    assert watch.observe({CALL: NotFetched("buffer_full", 900)}, now=119) == {}
    assert CALL in watch.observe({CALL: NotFetched("buffer_full", 900)}, now=120)


def test_a_partition_fetched_in_between_starts_over() -> None:
    watch: StallWatch[tuple[str, int]] = StallWatch(after_s=60)
    watch.observe({CALL: NotFetched("paused", 5), FORM: NotFetched("paused", 9)}, now=0)
    watch.observe({FORM: NotFetched("paused", 9)}, now=30)

    stalled = watch.observe({CALL: NotFetched("paused", 5), FORM: NotFetched("paused", 9)}, now=60)
    assert set(stalled) == {FORM}


def test_forget_starts_every_partition_over() -> None:
    watch: StallWatch[tuple[str, int]] = StallWatch(after_s=60)
    watch.observe({CALL: NotFetched("paused", 5)}, now=0)
    watch.forget()
    assert watch.observe({CALL: NotFetched("paused", 5)}, now=60) == {}


LEFT_OUT = st.dictionaries(st.sampled_from([CALL, FORM]), st.integers(0, 3))


@given(st.lists(st.tuples(st.floats(0, 1000), LEFT_OUT), max_size=30))
def test_only_partitions_left_out_the_whole_wait_are_reported(samples) -> None:  # type: ignore[no-untyped-def]
    watch: StallWatch[tuple[str, int]] = StallWatch(after_s=60)
    history: list[tuple[float, dict[tuple[str, int], int]]] = []
    now = 0.0
    for step, offsets in samples:
        now += step
        history.append((now, offsets))
        stalled = watch.observe({tp: NotFetched("unknown", o) for tp, o in offsets.items()}, now)
        for tp in stalled:
            # Walk back over the run of samples that left it out at the same offset.
            start = now
            for at, seen in reversed(history):
                if seen.get(tp) != offsets[tp]:
                    break
                start = at
            assert now - start >= 60


@pytest.mark.parametrize(
    ("committed", "end", "waiting"),
    [(22, 180, True), (10, 12, True), (10, 11, False), (10, 10, False), (0, 0, False)],
)
def test_records_wait_only_beyond_a_transaction_marker(
    committed: int, end: int, waiting: bool
) -> None:
    # A transactional producer's commit marker leaves a consumed partition one short of its end.
    assert records_wait(committed, end) is waiting
