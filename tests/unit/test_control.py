from __future__ import annotations

import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import catalog
from router.buyers import Buyer, BuyersConfig, VerticalPolicy
from router.control import (
    BUYERS_CONFIG,
    SUPPRESSION,
    Change,
    Removal,
    applied,
    desired_entries,
    plan,
    suppression_key,
)
from router.views import decode_market

pytestmark = pytest.mark.unit

IDS = ["acme", "beta", "coastal", "delta", "echo"]
VERTICALS = ["mortgage", "solar", "auto_insurance"]


def buyer(buyer_id: str, price: float = 10.0, **fields: object) -> Buyer:
    return Buyer.model_validate(
        {"id": buyer_id, "name": buyer_id.title(), "verticals": ["solar"], "price": price, **fields}
    )


buyers_st = st.builds(
    buyer,
    st.sampled_from(IDS),
    st.sampled_from([5.0, 10.0, 42.5]),
    status=st.sampled_from(["active", "paused"]),
    min_score=st.integers(0, 2),
)
policies_st = st.dictionaries(
    st.sampled_from(VERTICALS),
    st.builds(VerticalPolicy, max_buyers=st.integers(1, 3)),
    max_size=3,
)
configs_st = st.builds(
    lambda buyers, verticals: BuyersConfig(
        buyers=list({b.id: b for b in buyers}.values()), verticals=verticals
    ),
    st.lists(buyers_st, max_size=5),
    policies_st,
)
# A live table as it may really be: an earlier file's entries, in any JSON key order,
# plus tombstones and records nobody can read.
junk_st = st.sampled_from([b"", b"not json", b"[1, 2]", b'{"id": "acme"}', None])


@st.composite
def live_st(draw: st.DrawFn) -> dict[str, bytes | None]:
    earlier = draw(configs_st)
    table: dict[str, bytes | None] = {}
    for key, value in desired_entries(earlier).items():
        reordered = orjson.loads(value) if draw(st.booleans()) else None
        table[key] = orjson.dumps(reordered) if reordered is not None else value
    for key in draw(st.lists(st.sampled_from([*IDS, "vertical:solar", "zulu"]), max_size=3)):
        table[key] = draw(junk_st)
    return table


@settings(max_examples=300, deadline=None)
@given(configs_st, live_st(), st.sampled_from(["tombstone", "pause"]))
def test_applying_a_plan_yields_the_file_and_a_second_plan_is_empty(
    desired: BuyersConfig, live: dict[str, bytes | None], remove: Removal
) -> None:
    after = applied(live, plan(desired, live, remove))
    want = desired_entries(desired)
    assert {k: v for k, v in after.items() if k in want} == want
    leftovers = {k: v for k, v in after.items() if k not in want}
    if remove == "tombstone":
        assert leftovers == {}
    else:  # only buyers stay behind, and every one of them is paused
        assert all(Buyer.model_validate_json(v).status == "paused" for v in leftovers.values())
        assert not any(k.startswith("vertical:") for k in leftovers)
    assert plan(desired, after, remove) == []
    decoded, invalid = decode_market(after.items())
    assert invalid == {}
    assert {b.id for b in decoded.buyers} >= {b.id for b in desired.buyers}


def test_unchanged_entries_are_skipped_whatever_their_json_key_order() -> None:
    desired = BuyersConfig(buyers=[buyer("acme"), buyer("beta")])
    live: dict[str, bytes | None] = dict(desired_entries(desired))
    live["acme"] = orjson.dumps(buyer("acme").model_dump(mode="json"))  # insertion order
    assert plan(desired, live, "tombstone") == []


def test_changes_say_what_they_do() -> None:
    desired = BuyersConfig(
        buyers=[buyer("acme", price=12.0), buyer("beta")],
        verticals={"solar": VerticalPolicy(max_buyers=2)},
    )
    live: dict[str, bytes | None] = {
        "acme": desired_entries(BuyersConfig(buyers=[buyer("acme")]))["acme"],
        "gone": desired_entries(BuyersConfig(buyers=[buyer("gone")]))["gone"],
        "vertical:mortgage": b"{}",
    }
    actions = {c.key: c.action for c in plan(desired, live, "tombstone")}
    assert actions == {
        "acme": "update",
        "beta": "create",
        "gone": "delete",
        "vertical:mortgage": "delete",
        "vertical:solar": "create",
    }
    paused = {c.key: c for c in plan(desired, live, "pause")}
    assert paused["gone"].action == "pause"
    assert paused["gone"].value is not None
    assert orjson.loads(paused["gone"].value)["status"] == "paused"
    assert paused["vertical:mortgage"] == Change("vertical:mortgage", None, "delete")


def test_an_unreadable_live_buyer_missing_from_the_file_is_tombstoned_even_when_pausing() -> None:
    changes = plan(BuyersConfig(buyers=[]), {"junk": b"not json"}, "pause")
    assert changes == [Change("junk", None, "delete")]


def test_published_values_are_the_buyers_json() -> None:
    acme = buyer("acme", price=42.5)
    [change] = plan(BuyersConfig(buyers=[acme]), {}, "tombstone")
    assert change.value is not None
    assert Buyer.model_validate_json(change.value) == acme


@pytest.mark.parametrize(
    "formatted", ["(212) 555-0123", "212-555-0123", "+1 212 555 0123", " 2125550123 "]
)
def test_formatted_phones_share_one_key(formatted: str) -> None:
    expected = hashlib.sha256(b"+12125550123").hexdigest()
    assert suppression_key("phone", formatted) == expected


@pytest.mark.parametrize(
    "written", ["Jane.Doe@Example.COM", " jane.doe@example.com", "JANE.DOE@example.com"]
)
def test_mixed_case_emails_share_one_key(written: str) -> None:
    assert suppression_key("email", written) == hashlib.sha256(b"jane.doe@example.com").hexdigest()


@pytest.mark.parametrize(
    ("kind", "value"), [("phone", "12"), ("phone", "call me"), ("email", "a@")]
)
def test_invalid_identities_are_refused(kind: str, value: str) -> None:
    with pytest.raises(ValueError):
        suppression_key(kind, value)  # type: ignore[arg-type]


def test_control_topics_are_compacted() -> None:
    specs = {spec.name: spec for spec in catalog.catalog("app") if spec.role == "control"}
    assert {BUYERS_CONFIG, SUPPRESSION} <= set(specs)
    assert all(spec.configs["cleanup.policy"] == "compact" for spec in specs.values())
