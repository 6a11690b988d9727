from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace
from test_scoring import make_lead

from router import catalog, codec, quality
from router.records import Emit, PublisherQuality, PublisherSignal, PublisherSignals
from router.scoring import score

NOW = datetime(2026, 3, 8, 12, tzinfo=UTC)

pytestmark = pytest.mark.unit


def stats(sold: int, returned: int = 0, converted: int = 0) -> PublisherQuality:
    return PublisherQuality(publisher_id="pub", sold=sold, returned=returned, converted=converted)


def test_a_publisher_whose_leads_come_back_scores_lower() -> None:
    lead = make_lead()
    clean = score(lead, stats(sold=100))
    returned_often = score(lead, stats(sold=100, returned=40))

    assert returned_often.value == clean.value - 12
    assert "publisher:returns-12" in returned_often.reasons


def test_conversions_raise_the_score() -> None:
    lead = make_lead()
    assert score(lead, stats(sold=50, converted=25)).value == score(lead).value + 5


def test_too_few_sales_say_nothing() -> None:
    lead = make_lead()
    assert score(lead, stats(sold=quality.MIN_SOLD - 1, returned=quality.MIN_SOLD - 1)) == score(
        lead
    )


@given(st.lists(st.sampled_from(["sold", "returned", "converted"]), max_size=50))
def test_record_counts_each_signal_once(types: list[str]) -> None:
    current = quality.empty("pub")
    for index, kind in enumerate(types):
        signal = PublisherSignal(
            publisher_id="pub",
            lead_id=f"l{index}",
            buyer_id="b",
            type=kind,  # type: ignore[arg-type]
        )
        current = quality.record(current, signal)
    assert (current.sold, current.returned, current.converted) == (
        types.count("sold"),
        types.count("returned"),
        types.count("converted"),
    )


@given(
    sold=st.integers(0, 10_000), returned=st.integers(0, 10_000), converted=st.integers(0, 10_000)
)
def test_adjustments_stay_bounded(sold: int, returned: int, converted: int) -> None:
    points = dict(quality.adjustments(stats(sold, returned, converted)))
    assert -quality.RETURN_PENALTY_MAX <= points.get("publisher:returns", 0) <= 0
    assert 0 <= points.get("publisher:conversions", 0) <= quality.CONVERSION_BONUS_MAX


def test_signal_key_separates_buyers_and_types() -> None:
    base = PublisherSignal(publisher_id="p", lead_id="l", buyer_id="b", type="sold")
    keys = {
        quality.signal_key(base),
        quality.signal_key(replace(base, buyer_id="c")),
        quality.signal_key(replace(base, type="returned")),
    }
    assert len(keys) == 3


def test_a_record_is_published_when_its_score_effect_changes_not_on_every_signal() -> None:
    published = []
    current = None
    for index in range(200):
        signal = PublisherSignal(publisher_id="pub", lead_id=f"l{index}", buyer_id="b", type="sold")
        _, to_publish = quality.absorb([signal], current, seen=set(), now=NOW)
        current = quality.record(current or quality.empty("pub"), signal)
        if to_publish is not None:
            published.append(to_publish.sold)
    assert published == [1, 50, 100, 150, 200]

    returned = PublisherSignal(publisher_id="pub", lead_id="l0", buyer_id="b", type="returned")
    _, to_publish = quality.absorb([returned], current, seen=set(), now=NOW)
    assert to_publish is None, "1 return in 200 sales does not move the score"
    many = replace(current, returned=36)
    _, to_publish = quality.absorb([returned], many, seen=set(), now=NOW)
    assert to_publish is not None and to_publish.returned == 37, "5 -> 6 points off: published"


def test_a_signal_already_counted_writes_and_publishes_nothing() -> None:
    signal = PublisherSignal(publisher_id="pub", lead_id="l", buyer_id="b", type="sold")
    assert quality.absorb([signal], quality.empty("pub"), {quality.seen_key(signal)}, NOW) == (
        [],
        None,
    )
    assert quality.absorb([], None, set(), NOW) == ([], None)


def sale(lead: str, publisher: str = "pub", kind: str = "sold") -> PublisherSignal:
    return PublisherSignal(publisher_id=publisher, lead_id=lead, buyer_id="b", type=kind)  # type: ignore[arg-type]


def test_a_bundle_counts_each_new_signal_once_and_marks_each_seen() -> None:
    first, again, counted_before = sale("l1"), sale("l1"), sale("l0")
    writes, published = quality.absorb(
        [first, counted_before, again, sale("l2", kind="returned")],
        stats(sold=5),
        {quality.seen_key(counted_before)},
        NOW,
    )
    assert writes == [
        (
            quality.stats_key("pub"),
            {"publisher_id": "pub", "sold": 6, "returned": 1, "converted": 0},
        ),
        (quality.seen_key(first), NOW.isoformat()),
        (quality.seen_key(sale("l2", kind="returned")), NOW.isoformat()),
    ]
    assert published is None, "5 -> 7 signals: no score effect yet, no multiple of 50 passed"


@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["sold", "returned"])), max_size=80))
def test_bundles_count_the_same_as_one_signal_at_a_time(steps: list[tuple[int, str]]) -> None:
    """However a batch is cut into bundles, replays included, the counts come out the same."""
    signals = [sale(f"l{n}", kind=kind) for n, kind in steps]
    one_by_one: dict[str, object] = {}
    bundled: dict[str, object] = {}
    for table, groups in (
        (one_by_one, [[signal] for signal in signals]),
        (bundled, [signals[i : i + 7] for i in range(0, len(signals), 7)] + [signals]),
    ):
        for group in groups:
            stored = table.get(quality.stats_key("pub"))
            current = codec.convert(PublisherQuality, stored) if stored else None
            seen = {k for k in map(quality.seen_key, group) if table.get(k)}
            writes, _ = quality.absorb(group, current, seen, NOW)
            table.update(writes)
    assert bundled == one_by_one
    distinct = {(n, kind) for n, kind in steps}
    counted = bundled.get(quality.stats_key("pub"))
    assert (counted or {}).get("sold", 0) == sum(1 for _, kind in distinct if kind == "sold")


def test_publishing_follows_the_count_across_multiples_of_the_period() -> None:
    before = stats(sold=quality.MIN_SOLD + 28)  # 48 signals counted
    after = replace(before, sold=before.sold + 5)  # 53: passed 50
    assert quality.worth_publishing(before, after)
    assert not quality.worth_publishing(after, replace(after, sold=after.sold + 5))


def test_a_batch_s_signals_travel_as_one_record_per_publisher() -> None:
    decision = Emit("leads.decisions", "lead-1", stats(sold=1))
    emits = [
        Emit(catalog.PUBLISHER_SIGNALS, "p1", sale("a", "p1")),
        decision,
        Emit(catalog.PUBLISHER_SIGNALS, "p2", sale("b", "p2")),
        Emit(catalog.PUBLISHER_SIGNALS, "p1", sale("c", "p1", "returned")),
    ]
    assert quality.bundle(emits) == [
        decision,
        Emit(
            catalog.PUBLISHER_SIGNALS,
            "p1",
            PublisherSignals(
                publisher_id="p1", signals=[sale("a", "p1"), sale("c", "p1", "returned")]
            ),
        ),
        Emit(
            catalog.PUBLISHER_SIGNALS,
            "p2",
            PublisherSignals(publisher_id="p2", signals=[sale("b", "p2")]),
        ),
    ]
    assert quality.bundle([decision]) == [decision]


def test_a_single_signal_from_before_bundles_is_read_as_a_bundle_of_one() -> None:
    single = sale("l1", "p1")
    assert quality.read_signals(codec.encode(single)) == PublisherSignals(
        publisher_id="p1", signals=[single]
    )
    bundle = PublisherSignals(publisher_id="p1", signals=[single, sale("l2", "p1")])
    assert quality.read_signals(codec.encode(bundle)) == bundle


@given(publisher=st.text(min_size=1, max_size=20))
def test_a_publishers_keys_name_it_whatever_it_holds(publisher: str) -> None:
    assert quality.publisher_of(quality.stats_key(publisher)) == publisher
    assert quality.publisher_of(quality.seen_key(sale("l1", publisher=publisher))) == publisher
