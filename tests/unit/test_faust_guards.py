"""Guards against known Faust pitfalls, checked on the real app and the real stage functions.

- concurrency > 1 lets Faust commit an offset past an event still in flight
  (faust-streaming #606): every agent must run with concurrency 1;
- a table is only consistent if it is co-partitioned with the stream that reads it: same
  partition count, and only ever accessed with a key derived from the stream's own key;
- a table value mutated in place is never written back to the changelog (Faust only sees
  assignments), so a stage must return a new object whenever the state changes.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router import admin, caps, catalog, dedup, intake, offering, screening
from router.app import create_app
from router.buyers import Buyer, Caps
from router.records import Candidate, IntakeRef, NormalizedContact, NormalizedLead, Offer
from router.settings import Settings
from router.synthetic import generate

pytestmark = pytest.mark.unit

PARTITIONS = 3
NOW = datetime(2026, 3, 8, 18, 0, tzinfo=UTC)  # a DST change in America/* zones
WINDOW = timedelta(hours=24)

BUYERS = [
    Buyer(id="b1", name="B1", verticals=["solar"], price=40.0, caps=Caps(hourly=2, daily=3)),
    Buyer(
        id="b10",  # "b1" is a prefix of "b10": cap keys must not confuse them
        name="B10",
        verticals=["solar"],
        price=40.0,
        priority=5,
        caps=Caps(daily=2),
        timezone="America/Los_Angeles",
    ),
    Buyer(
        id="b2",
        name="B2",
        verticals=["solar"],
        price=30.0,
        caps=Caps(hourly=1),
        timezone="Asia/Kolkata",
    ),
    Buyer(id="b3", name="B3", verticals=["solar"], price=20.0, caps=Caps(hourly=0, daily=0)),
]
BY_ID = {b.id: b for b in BUYERS}
SETTINGS = Settings(bootstrap_servers="127.0.0.1:1", partitions=PARTITIONS)


@pytest.fixture(scope="module")
def app_and_topology():  # type: ignore[no-untyped-def]
    # Construction does not connect: 127.0.0.1:1 is never dialled.
    return create_app(SETTINGS, BUYERS)


# -- (1) concurrency ---------------------------------------------------------------------------


def test_every_agent_runs_with_concurrency_one(app_and_topology) -> None:  # type: ignore[no-untyped-def]
    app, _ = app_and_topology
    agents = dict(app.agents.items())
    assert set(agents) >= {"intake", "screen", "offers"}, sorted(agents)
    for name, agent in agents.items():
        assert agent.concurrency == 1, f"agent {name!r} has concurrency {agent.concurrency}"


# -- (2) co-partitioning -----------------------------------------------------------------------


class _FakeAdmin:
    """Stands in for AIOKafkaAdminClient: records what would be created."""

    created: list[Any]

    def __init__(self, **_: Any) -> None:
        type(self).created = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return []

    async def create_topics(self, topics: list[Any]) -> Any:
        type(self).created.extend(topics)
        return types.SimpleNamespace(topic_errors=[(t.name, 0, None) for t in topics])


async def test_tables_and_their_source_topics_have_the_same_partition_count(
    app_and_topology,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, topology = app_and_topology
    monkeypatch.setattr(admin, "AIOKafkaAdminClient", _FakeAdmin)
    specs = catalog.catalog(SETTINGS.app_id, BY_ID)
    await admin.ensure_topics("127.0.0.1:1", specs, SETTINGS.partitions, 1)
    created = {t.name: t.num_partitions for t in _FakeAdmin.created}
    assert set(created) == {s.name for s in specs}

    sources = {catalog.DEDUP_TABLE: catalog.SCREEN, catalog.CAPS_TABLE: catalog.OFFERS}
    tables = dict(app.tables.items())
    assert set(tables) == set(sources)
    for name, table in tables.items():
        assert table.partitions == SETTINGS.partitions, name
        changelog = catalog.changelog_topic(SETTINGS.app_id, name)
        assert table.changelog_topic.get_topic_name() == changelog
        assert created[changelog] == SETTINGS.partitions, changelog
        assert created[sources[name]] == SETTINGS.partitions, sources[name]
    # Topics Faust declares without a count (screen, offers) fall back to the app default.
    assert app.conf.topic_partitions == SETTINGS.partitions
    for topic in (topology.screen, topology.offers):
        assert topic.partitions in (None, SETTINGS.partitions)
    assert topology.dedup is tables[catalog.DEDUP_TABLE]
    assert topology.caps is tables[catalog.CAPS_TABLE]


def _cap_key_owner(key: str) -> str:
    """The buyer a cap table key belongs to: `buyer|day` or `buyer|day|lead_id`."""
    buyer_id, _, rest = key.partition("|")
    assert rest, key
    return buyer_id


def test_screen_records_are_keyed_by_the_dedup_table_key() -> None:
    """Intake emits a screen record keyed by the fingerprint the screen stage reads."""
    received = datetime(2026, 3, 8, 12, tzinfo=UTC)
    keyed = 0
    for offset, event in enumerate(generate(300, seed=5, base_time=received)):
        ref = IntakeRef(topic=event.topic, partition=0, offset=offset)
        emits = intake.process(event.payload, event.channel, ref, received, received)
        for emit in emits:
            if emit.topic == catalog.SCREEN:
                assert isinstance(emit.value, NormalizedLead)
                assert emit.key == emit.value.fingerprint
                keyed += 1
    assert keyed > 100


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # lead
            st.integers(-36 * 60, 36 * 60),  # minutes from NOW
            st.permutations([b.id for b in BUYERS]),
            st.integers(1, len(BUYERS)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_offers_are_keyed_by_the_buyer_whose_caps_they_touch(
    steps: list[tuple[int, int, list[str], int]],
) -> None:
    table: dict[str, Any] = {}
    for n, minutes, order, size in steps:
        offer: Offer | None = make_offer(n, minutes, order[:size])
        hops = 0
        while offer is not None:
            hops += 1
            assert hops <= len(BUYERS)
            key = offering.current_buyer_id(offer)  # the offers Emit key it arrived with
            buyer = BY_ID[key]
            keys = offering.cap_keys(offer, buyer)
            for table_key in (keys.counts, keys.ledger):
                assert table_key.startswith(key) and _cap_key_owner(table_key) == key
            result = offering.decide(
                offer, buyer, table.get(keys.counts), table.get(keys.ledger), NOW
            )
            table[keys.counts], table[keys.ledger] = result.counts, result.entry
            offer = None
            for emit in result.emits:
                if emit.topic == catalog.OFFERS:
                    assert isinstance(emit.value, Offer)
                    assert emit.key == offering.current_buyer_id(emit.value)
                    offer = emit.value


def test_screening_sends_offers_keyed_by_the_first_candidate() -> None:
    lead = make_lead(1, 0)
    _, emits = screening.screen(lead, {}, BUYERS, WINDOW, NOW)
    offers = [e for e in emits if e.topic == catalog.OFFERS]
    assert len(offers) == 1
    offer = offers[0].value
    assert isinstance(offer, Offer)
    assert offers[0].key == offer.candidates[0].buyer_id == offering.current_buyer_id(offer)


# -- (3) no mutation in place ------------------------------------------------------------------


def freeze(value: Any) -> Any:
    """A read-only deep view: any in-place write raises TypeError/AttributeError."""
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def make_lead(n: int, minutes: int, fingerprint: str | None = None) -> NormalizedLead:
    occurred = NOW + timedelta(minutes=minutes)
    return NormalizedLead(
        lead_id=f"lead-{n}",
        event_id=f"evt-{n}",
        channel="form",
        vertical="solar",
        occurred_at=occurred,
        received_at=occurred + timedelta(seconds=1),
        fingerprint=fingerprint or f"fp-{n}",
        source={"publisher_id": "pub-1", "tags": ["a", "b"]},
        contact=NormalizedContact(first_name="Jane", phone="+14155552671", state="NY"),
        attributes={"nested": {"list": [1, 2, {"x": 1}]}},
        quality_flags=["flag"],
        intake=IntakeRef(topic="intent.form", partition=0, offset=n),
    )


def make_offer(n: int, minutes: int, buyer_ids: list[str], position: int = 0) -> Offer:
    return Offer(
        lead=make_lead(n, minutes),
        score=60,
        score_reasons=["channel:form+20"],
        candidates=[
            Candidate(buyer_id=b, price=BY_ID[b].price, priority=BY_ID[b].priority)
            for b in buyer_ids
        ],
        position=position,
    )


def test_freeze_really_refuses_writes() -> None:
    frozen = freeze({"accepted": {"l": {"hour": "h"}}, "declined": {}})
    with pytest.raises(TypeError):
        frozen["accepted"]["m"] = {}
    with pytest.raises(TypeError):
        frozen["accepted"]["l"]["hour"] = "x"


def _assert_unchanged_or_new(before: Any, state: Any, new_state: Any) -> None:
    """The input is untouched; a state whose content changed is a different object."""
    assert thaw(state) == before, "input state was mutated in place"
    if thaw(new_state) != before:
        assert new_state is not state, "changed state returned as the same object"


dedup_steps = st.lists(
    st.tuples(
        st.integers(0, 3),  # fingerprint
        st.integers(0, 25),  # event id (repeats are replays)
        st.integers(-72 * 60, 72 * 60),  # minutes from NOW
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(dedup_steps)
def test_dedup_check_never_mutates_its_state(steps: list[tuple[int, int, int]]) -> None:
    states: dict[int, dedup.DedupState] = {}
    for fp, n, minutes in steps:
        state = freeze(states.get(fp, {}))
        before = thaw(state)
        verdict, new_state = dedup.check(
            f"evt-{n}", NOW + timedelta(minutes=minutes), state, WINDOW
        )
        _assert_unchanged_or_new(before, state, new_state)
        if verdict.duplicate_of is not None:
            assert thaw(new_state) == before
        states[fp] = thaw(new_state)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dedup_steps)
def test_screen_never_mutates_its_inputs(steps: list[tuple[int, int, int]]) -> None:
    states: dict[str, dedup.DedupState] = {}
    buyers = tuple(BUYERS)
    buyers_before = [b.model_dump() for b in buyers]
    for fp, n, minutes in steps:
        lead = make_lead(n, minutes, fingerprint=f"fp-{fp}")
        lead_before = lead.model_dump()
        state = freeze(states.get(lead.fingerprint, {}))
        before = thaw(state)
        new_state, emits = screening.screen(lead, state, buyers, WINDOW, NOW)
        _assert_unchanged_or_new(before, state, new_state)
        assert lead.model_dump() == lead_before
        assert emits
        states[lead.fingerprint] = thaw(new_state)
    assert [b.model_dump() for b in buyers] == buyers_before


offer_steps = st.lists(
    st.tuples(
        st.integers(0, 30),  # lead (repeats are replays)
        st.integers(-30 * 60, 30 * 60),  # minutes from NOW
        st.permutations([b.id for b in BUYERS]),
        st.integers(1, len(BUYERS)),
        st.booleans(),  # the buyer left the config while the offer was in flight
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offer_steps)
def test_caps_check_never_mutates_its_state(
    steps: list[tuple[int, int, list[str], int, bool]],
) -> None:
    table: dict[str, Any] = {}
    for n, minutes, order, _, _ in steps:
        buyer = BY_ID[order[0]]
        occurred = NOW + timedelta(minutes=minutes)
        day, _ = caps.local_windows(buyer, occurred)
        counts_key = caps.counts_key(buyer.id, day)
        ledger_key = caps.ledger_key(buyer.id, day, f"lead-{n}")
        counts, entry = freeze(table.get(counts_key)), freeze(table.get(ledger_key))
        counts_before, entry_before = thaw(counts), thaw(entry)
        result = caps.check(buyer, f"lead-{n}", occurred, counts, entry, NOW)
        _assert_unchanged_or_new(counts_before, counts, result.counts)
        _assert_unchanged_or_new(entry_before, entry, result.entry)
        if result.replayed:
            assert thaw(result.counts) == counts_before
            assert thaw(result.entry) == entry_before
        table[counts_key], table[ledger_key] = thaw(result.counts), thaw(result.entry)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offer_steps)
def test_offering_decide_never_mutates_its_inputs(
    steps: list[tuple[int, int, list[str], int, bool]],
) -> None:
    table: dict[str, Any] = {}
    for n, minutes, order, size, gone in steps:
        offer: Offer | None = make_offer(n, minutes, order[:size])
        hops = 0
        while offer is not None and hops <= len(BUYERS):
            hops += 1
            buyer = None if gone and hops == 1 else BY_ID[offering.current_buyer_id(offer)]
            keys = offering.cap_keys(offer, buyer) if buyer else None
            counts = freeze(table.get(keys.counts) if keys else None)
            entry = freeze(table.get(keys.ledger) if keys else None)
            counts_before, entry_before = thaw(counts), thaw(entry)
            offer_before = copy.deepcopy(offer.model_dump())
            result = offering.decide(offer, buyer, counts, entry, NOW)
            _assert_unchanged_or_new(counts_before, counts, result.counts)
            _assert_unchanged_or_new(entry_before, entry, result.entry)
            assert offer.model_dump() == offer_before, "offer mutated in place"
            if keys:
                table[keys.counts], table[keys.ledger] = thaw(result.counts), thaw(result.entry)
            offer = next(
                (
                    e.value
                    for e in result.emits
                    if e.topic == catalog.OFFERS and isinstance(e.value, Offer)
                ),
                None,
            )
