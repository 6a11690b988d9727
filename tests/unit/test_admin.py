from __future__ import annotations

import pytest

from router import catalog
from router.admin import partition_mismatches

pytestmark = pytest.mark.unit

SPECS = catalog.catalog("lead-router", ["b1"])


def test_only_topics_partitioned_like_the_tables_must_match() -> None:
    counts = {s.name: 4 for s in SPECS}
    counts.update({catalog.INTAKE["form"]: 12, catalog.DECISIONS: 1, "buyer.b1": 2})
    # Intake is repartitioned by the first hop, outputs feed nobody's table.
    assert partition_mismatches(SPECS, counts, 4) == []


@pytest.mark.parametrize(
    "name",
    [
        catalog.SCREEN,
        catalog.OFFERS,
        catalog.FEEDBACK,
        catalog.CALL_EVENTS,
        catalog.PUBLISHER_SIGNALS,
        catalog.changelog_topic("lead-router", catalog.CAPS_TABLE),
    ],
)
def test_a_topic_read_next_to_a_table_with_another_count_is_named(name: str) -> None:
    counts = {s.name: 4 for s in SPECS} | {name: 8}
    (problem,) = partition_mismatches(SPECS, counts, 4)
    assert problem.startswith(f"topic {name!r} has 8 partitions; the router needs 4")


def test_topics_that_do_not_exist_yet_are_not_problems() -> None:
    assert partition_mismatches(SPECS, {}, 4) == []
