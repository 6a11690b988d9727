from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_scoring import make_lead

from router import quality
from router.records import PublisherQuality, PublisherSignal
from router.scoring import score

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
        quality.signal_key(base.model_copy(update={"buyer_id": "c"})),
        quality.signal_key(base.model_copy(update={"type": "returned"})),
    }
    assert len(keys) == 3


def test_a_record_is_published_when_its_score_effect_changes_not_on_every_signal() -> None:
    published = []
    current = None
    for index in range(200):
        signal = PublisherSignal(publisher_id="pub", lead_id=f"l{index}", buyer_id="b", type="sold")
        _, to_publish = quality.absorb(signal, current, seen=False)
        current = quality.record(current or quality.empty("pub"), signal)
        if to_publish is not None:
            published.append(to_publish.sold)
    assert published == [1, 50, 100, 150, 200]

    returned = PublisherSignal(publisher_id="pub", lead_id="l0", buyer_id="b", type="returned")
    _, to_publish = quality.absorb(returned, current, seen=False)
    assert to_publish is None, "1 return in 200 sales does not move the score"
    many = current.model_copy(update={"returned": 36})
    _, to_publish = quality.absorb(returned, many, seen=False)
    assert to_publish is not None and to_publish.returned == 37, "5 -> 6 points off: published"


def test_a_signal_already_counted_writes_and_publishes_nothing() -> None:
    signal = PublisherSignal(publisher_id="pub", lead_id="l", buyer_id="b", type="sold")
    assert quality.absorb(signal, quality.empty("pub"), seen=True) == ([], None)
