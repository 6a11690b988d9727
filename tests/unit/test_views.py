"""TopicView's table rules and MarketConfig's decoding, fed records without a broker."""

from __future__ import annotations

import itertools

import orjson
import pytest
from aiokafka import ConsumerRecord

from router.buyers import Buyer, VerticalPolicy
from router.views import MarketConfig, TopicView, decode_market, policy_key

pytestmark = pytest.mark.unit

_offsets = itertools.count()


def record(key: bytes | None, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=next(_offsets),
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=[],
    )


def buyer_json(buyer_id: str, **fields: object) -> bytes:
    buyer = Buyer.model_validate(
        {"id": buyer_id, "name": buyer_id, "verticals": ["solar"], "price": 10.0, **fields}
    )
    return orjson.dumps(buyer.model_dump(mode="json"))


def feed(view: TopicView, *records: ConsumerRecord[bytes, bytes]) -> None:
    for one in records:
        view._apply(one)


def test_latest_value_wins_and_a_tombstone_deletes() -> None:
    seen: list[tuple[str, bytes | None]] = []
    view = TopicView("unused:9092", "t", on_change=lambda k, v: seen.append((k, v)))
    feed(view, record(b"a", b"1"), record(b"b", b"2"), record(b"a", b"3"), record(b"b", None))
    assert view.items() == [("a", b"3")]
    assert view.get("b") is None
    assert view.version == 4
    assert seen == [("a", b"1"), ("b", b"2"), ("a", b"3"), ("b", None)]


def test_repeats_and_tombstones_of_absent_keys_change_nothing() -> None:
    view = TopicView("unused:9092", "t")
    feed(view, record(b"a", b"1"), record(b"a", b"1"), record(b"gone", None))
    assert view.version == 1


def test_records_without_a_readable_key_are_skipped_and_counted() -> None:
    view = TopicView("unused:9092", "t")
    feed(view, record(None, b"x"), record(b"\xff\xfe", b"y"), record(b"ok", b"garbage{"))
    assert view.skipped == 2
    assert view.get("ok") == b"garbage{"  # kept raw: decoding is the caller's job


def test_a_failing_callback_does_not_stop_the_view() -> None:
    def boom(key: str, value: bytes | None) -> None:
        raise RuntimeError("callback bug")

    view = TopicView("unused:9092", "t", on_change=boom)
    feed(view, record(b"a", b"1"), record(b"b", b"2"))
    assert len(view) == 2


def test_market_config_decodes_once_per_version_and_skips_bad_entries() -> None:
    view = TopicView("unused:9092", "buyers.config")
    market = MarketConfig(view)
    assert market.config.buyers == []
    feed(
        view,
        record(b"acme", buyer_json("acme")),
        record(b"beta", buyer_json("beta", status="paused")),
        record(b"broken", b"not json"),
        record(b"liar", buyer_json("someone-else")),
        record(policy_key("solar").encode(), orjson.dumps({"max_buyers": 2})),
        record(policy_key("mortgage").encode(), orjson.dumps({"max_buyers": 0})),
    )
    config = market.config
    assert [b.id for b in config.buyers] == ["acme", "beta"]
    assert config.policy("solar") == VerticalPolicy(max_buyers=2)
    assert market.skipped == 3
    assert set(market.invalid) == {"broken", "liar", "vertical:mortgage"}
    assert market.config is config  # no change, no new decode
    feed(view, record(b"broken", None))
    assert market.config is not config
    assert market.skipped == 2


def test_decode_market_of_nothing_is_an_empty_market() -> None:
    config, invalid = decode_market([])
    assert config.buyers == [] and config.verticals == {} and invalid == {}
