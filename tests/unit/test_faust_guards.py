"""Guards against known Faust pitfalls, checked on the real app and the real stage functions.

- concurrency > 1 lets Faust commit an offset past an event still in flight
  (faust-streaming #606): every agent must run with concurrency 1;
- a table is only consistent if it is co-partitioned with the stream that reads it: same
  partition count for the table and every topic its agent reads (Faust writes a table's
  changelog to the partition of the event being processed, and groups topics for assignment
  by partition count), and only ever accessed with a key derived from the stream's own key;
- a table value mutated in place is never written back to the changelog (Faust only sees
  assignments), so a stage must return a new object whenever the state changes.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from router import (
    accounting,
    admin,
    catalog,
    codec,
    dedup,
    feedback,
    intake,
    market,
    offering,
    quality,
    screening,
)
from router.app import create_app
from router.buyers import Buyer, Caps
from router.records import (
    CallEvent,
    Candidate,
    Feedback,
    IntakeRef,
    NormalizedContact,
    NormalizedLead,
    Offer,
    PublisherQuality,
    PublisherSignal,
)
from router.settings import Settings
from router.synthetic import generate
from router.topology import Topology

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
        caps=Caps(daily=2, weekly=4, daily_budget=100.0),
        timezone="America/Los_Angeles",
    ),
    Buyer(
        id="b2",
        name="B2",
        verticals=["solar"],
        price=30.0,
        caps=Caps(hourly=1, concurrent_calls=1),
        timezone="Asia/Kolkata",
    ),
    Buyer(id="b3", name="B3", verticals=["solar"], price=20.0, caps=Caps(hourly=0, daily=0)),
]
BY_ID = {b.id: b for b in BUYERS}
SETTINGS = Settings(bootstrap_servers="127.0.0.1:1", partitions=PARTITIONS)

# Each table, the agent that reads and writes it, and the topics that agent consumes.
TABLE_SOURCES = {
    catalog.DEDUP_TABLE: ("screen", {catalog.SCREEN}),
    catalog.CAPS_TABLE: ("buyer-desk", {catalog.OFFERS, catalog.FEEDBACK, catalog.CALL_EVENTS}),
    catalog.PUBLISHERS_TABLE: ("publishers", {catalog.PUBLISHER_SIGNALS}),
}


@pytest.fixture(scope="module")
def app_and_topology() -> tuple[faust.App, Topology]:
    # Construction does not connect: 127.0.0.1:1 is never dialled.
    return create_app(SETTINGS, BUYERS)


# -- (1) concurrency ---------------------------------------------------------------------------


def test_every_agent_runs_with_concurrency_one(
    app_and_topology: tuple[faust.App, Topology],
) -> None:
    app, _ = app_and_topology
    agents = dict(app.agents.items())
    assert set(agents) >= {"intake", "screen", "buyer-desk", "publishers"}, sorted(agents)
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
    app_and_topology: tuple[faust.App, Topology],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, topology = app_and_topology
    monkeypatch.setattr(admin, "AIOKafkaAdminClient", _FakeAdmin)
    specs = catalog.catalog(SETTINGS.app_id, BY_ID)
    await admin.ensure_topics("127.0.0.1:1", specs, SETTINGS.partitions, 1)
    created = {t.name: t.num_partitions for t in _FakeAdmin.created}
    assert set(created) == {s.name for s in specs}

    tables = dict(app.tables.items())
    agents = dict(app.agents.items())
    assert set(tables) == set(TABLE_SOURCES)
    for name, table in tables.items():
        agent_name, sources = TABLE_SOURCES[name]
        # The agent that owns the table reads exactly these topics, through one channel.
        assert set(agents[agent_name].channel.topics) == sources, agent_name
        assert table.partitions == SETTINGS.partitions, name
        changelog = catalog.changelog_topic(SETTINGS.app_id, name)
        assert table.changelog_topic.get_topic_name() == changelog
        assert created[changelog] == SETTINGS.partitions, changelog
        for source in sources:
            assert created[source] == SETTINGS.partitions, source
    # Topics Faust declares without a count fall back to the app default.
    assert app.conf.topic_partitions == SETTINGS.partitions
    for topic in (topology.screen, topology.buyer_desk, topology.publisher_signals):
        assert topic.partitions in (None, SETTINGS.partitions)
    assert topology.dedup is tables[catalog.DEDUP_TABLE]
    assert topology.caps is tables[catalog.CAPS_TABLE]
    assert topology.publishers is tables[catalog.PUBLISHERS_TABLE]


def test_every_topic_the_buyer_desk_reads_is_keyed_by_buyer_id() -> None:
    specs = {spec.name: spec for spec in catalog.catalog(SETTINGS.app_id)}
    _, sources = TABLE_SOURCES[catalog.CAPS_TABLE]
    for name in sources:
        assert specs[name].key == "buyer_id", name
    # Offers are keyed by their current candidate (checked below); the others by a field.
    for name in sources - {catalog.OFFERS}:
        value = specs[name].value
        assert value is not None and "buyer_id" in value.__struct_fields__, name
    assert specs[catalog.PUBLISHER_SIGNALS].key == "publisher_id"


def _cap_key_owner(key: str) -> str:
    """The buyer a cap table key belongs to: `buyer|hour|..`, `buyer|lead|..`, `buyer|calls`."""
    buyer_id, _, rest = key.partition("|")
    assert rest, key
    kind = rest.partition("|")[0]
    assert kind in (*accounting.KINDS, "lead", "calls"), key
    return buyer_id


def _assert_cap_keys_owned_by(keys: Iterable[str], buyer_id: str) -> None:
    for key in keys:
        assert key.startswith(f"{buyer_id}|"), (key, buyer_id)
        assert _cap_key_owner(key) == buyer_id, (key, buyer_id)


def _publisher_key_owner(key: str, publisher_id: str) -> bool:
    """`stats|<publisher>` or `seen|<publisher>|...`."""
    kind, _, rest = key.partition("|")
    if kind == "stats":
        return rest == publisher_id
    return kind == "seen" and rest.startswith(f"{publisher_id}|")


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


def _read(table: Mapping[str, Any], keys: accounting.AccountKeys) -> dict[str, Any]:
    """What the buyer-desk agent reads for an offer."""
    return {k: table.get(k) for k in (*keys.counts, keys.ledger, keys.slots)}


def _walk(
    table: dict[str, Any], offer: Offer | None, now: datetime = NOW
) -> list[offering.OfferResult]:
    """Walk one offer down its candidates as the buyer-desk agent would, checking each hop's
    table keys and emitted keys."""
    results: list[offering.OfferResult] = []
    while offer is not None:
        assert len(results) < len(BUYERS)
        key = offering.current_buyer_id(offer)  # the key of the offers record it arrived on
        buyer = BY_ID[key]
        keys = offering.state_keys(offer, buyer)
        state = _read(table, keys)
        _assert_cap_keys_owned_by(state, key)
        result = offering.decide(offer, buyer, state, now)
        written = [k for k, _ in result.writes]
        assert set(written) <= set(state), "decide wrote a key it was not given"
        _assert_cap_keys_owned_by(written, key)
        for k, v in result.writes:
            table[k] = v
        offer = None
        for emit in result.emits:
            if emit.topic == catalog.OFFERS:
                assert isinstance(emit.value, Offer)
                assert emit.key == offering.current_buyer_id(emit.value)
                offer = emit.value
            elif emit.topic == catalog.PUBLISHER_SIGNALS:
                assert isinstance(emit.value, PublisherSignal)
                assert emit.key == emit.value.publisher_id
        results.append(result)
    return results


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # lead
            st.integers(-36 * 60, 36 * 60),  # minutes from NOW
            st.permutations([b.id for b in BUYERS]),
            st.integers(1, len(BUYERS)),
            st.sampled_from(["form", "call"]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_offers_are_keyed_by_the_buyer_whose_caps_they_touch(
    steps: list[tuple[int, int, list[str], int, str]],
) -> None:
    table: dict[str, Any] = {}
    for n, minutes, order, size, channel in steps:
        _walk(table, make_offer(n, minutes, order[:size], channel=channel))
    for key in table:
        assert _cap_key_owner(key) in BY_ID


def test_walks_exercise_every_kind_of_cap_key() -> None:
    """The property above only means something if offers really write counts, ledger and
    call slots: check one deterministic walk does."""
    table: dict[str, Any] = {}
    for n in range(4):
        _walk(table, make_offer(n, 0, ["b2", "b10", "b1"], channel="call"))
    kinds = {key.split("|")[1] for key in table}
    assert kinds == {*accounting.KINDS, "lead", "calls"}


def test_pruning_only_touches_the_buyer_s_own_keys() -> None:
    """The buyer-desk agent deletes `expired_keys(table, buyer, now)` while handling that
    buyer's offer: none may belong to another buyer ("b1" is a prefix of "b10")."""
    table: dict[str, Any] = {}
    for n in range(6):
        _walk(table, make_offer(n, -60 * 24, ["b1", "b10"]))
    later = NOW + timedelta(days=60)
    for buyer in (BY_ID["b1"], BY_ID["b10"]):
        stale = accounting.expired_keys(table, buyer, later)
        assert stale, f"nothing of {buyer.id} expired: the check would be vacuous"
        _assert_cap_keys_owned_by(stale, buyer.id)


def test_feedback_and_call_events_touch_only_their_buyer_s_keys() -> None:
    table: dict[str, Any] = {}
    for n in range(4):
        _walk(table, make_offer(n, 0, ["b10", "b1"]))
        _walk(table, make_offer(100 + n, 0, ["b2"], channel="call"))
    credited = 0
    for buyer_id in ("b1", "b10", "b2"):
        buyer = BY_ID[buyer_id]
        for n in (*range(4), *range(100, 104)):
            said = make_feedback(buyer_id, n, "returned")
            # What the agent reads for a feedback event, all from the record's buyer id.
            ledger_key = feedback.ledger_key(said.buyer_id, said.lead_id)
            entry = table.get(ledger_key)
            state = {
                ledger_key: entry,
                **{k: table.get(k) for k in feedback.counts_keys(buyer, entry)},
            }
            _assert_cap_keys_owned_by(state, buyer_id)
            handled = feedback.handle(
                said, buyer, state, NOW + timedelta(hours=1), said.buyer_id.encode()
            )
            _assert_cap_keys_owned_by((k for k, _ in handled.writes), buyer_id)
            assert {k for k, _ in handled.writes} <= set(state)
            for k, v in handled.writes:
                table[k] = v
            credited += bool(handled.writes)
            for emit in handled.emits:
                if emit.topic == catalog.PUBLISHER_SIGNALS:
                    assert isinstance(emit.value, PublisherSignal)
                    assert emit.key == emit.value.publisher_id
        _assert_cap_keys_owned_by([accounting.slots_key(buyer_id)], buyer_id)
    assert credited >= 3


def test_screening_sends_offers_keyed_by_the_first_candidate() -> None:
    lead = make_lead(1, 0)
    _, emits = screening.screen(lead, {}, market.of(BUYERS), WINDOW, NOW)
    offers = [e for e in emits if e.topic == catalog.OFFERS]
    assert len(offers) == 1
    offer = offers[0].value
    assert isinstance(offer, Offer)
    assert offers[0].key == offer.candidates[0].buyer_id == offering.current_buyer_id(offer)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pub-1", "pub-10", "pub|1"]),  # a prefix, and a separator inside
            st.integers(0, 5),  # lead (repeats are replays)
            st.sampled_from(["b1", "b2"]),
            st.sampled_from(["sold", "returned", "converted"]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_publisher_signals_touch_only_their_publisher_s_keys(
    steps: list[tuple[str, int, str, str]],
) -> None:
    table: dict[str, Any] = {}
    for publisher_id, n, buyer_id, kind in steps:
        signal = PublisherSignal(
            publisher_id=publisher_id,
            lead_id=f"lead-{n}",
            buyer_id=buyer_id,
            type=kind,
        )
        # What the publishers agent reads for a signal keyed by its publisher.
        read = [quality.stats_key(publisher_id), quality.seen_key(signal)]
        assert all(_publisher_key_owner(k, publisher_id) for k in read), read
        stored = table.get(read[0])
        stats = codec.convert(PublisherQuality, stored) if stored else None
        seen = {read[1]} if table.get(read[1]) else set()
        writes, _ = quality.absorb([signal], stats, seen, NOW)
        assert {k for k, _ in writes} <= set(read)
        for k, v in writes:
            table[k] = v
    for key in table:
        assert sum(_publisher_key_owner(key, p) for p in ("pub-1", "pub-10", "pub|1")) == 1, key


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


def make_lead(
    n: int, minutes: int, fingerprint: str | None = None, channel: str = "form"
) -> NormalizedLead:
    occurred = NOW + timedelta(minutes=minutes)
    return NormalizedLead(
        lead_id=f"lead-{n}",
        event_id=f"evt-{n}",
        channel=channel,
        vertical="solar",
        occurred_at=occurred,
        received_at=occurred + timedelta(seconds=1),
        fingerprint=fingerprint or f"fp-{n}",
        source={"publisher_id": "pub-1", "tags": ["a", "b"]},
        contact=NormalizedContact(first_name="Jane", phone="+14155552671", state="NY"),
        attributes={"nested": {"list": [1, 2, {"x": 1}]}},
        quality_flags=["flag"],
        intake=IntakeRef(topic=f"intent.{channel}", partition=0, offset=n),
    )


def make_offer(
    n: int, minutes: int, buyer_ids: list[str], position: int = 0, channel: str = "form"
) -> Offer:
    return Offer(
        lead=make_lead(n, minutes, channel=channel),
        score=60,
        score_reasons=["channel:form+20"],
        candidates=[
            Candidate(buyer_id=b, price=BY_ID[b].price, priority=BY_ID[b].priority)
            for b in buyer_ids
        ],
        position=position,
        max_buyers=2,
        slots_left=2,
    )


def make_feedback(buyer_id: str, n: int, kind: str, minutes: int = 30) -> Feedback:
    return Feedback(
        lead_id=f"lead-{n}",
        buyer_id=buyer_id,
        type=kind,
        at=NOW + timedelta(minutes=minutes),
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


def _assert_writes_are_new(
    state: Mapping[str, Any], before: Mapping[str, Any], writes: list[tuple[str, Any]]
) -> None:
    """Inputs untouched, and every written value a new object whose content changed."""
    assert thaw(state) == before, "input state was mutated in place"
    for key, value in writes:
        assert value is not state.get(key), f"{key}: the input object written back"
        assert thaw(value) != before.get(key), f"{key}: written without a change"


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
    the_market = market.of(tuple(BUYERS))
    config_before = the_market.config.model_dump()
    for fp, n, minutes in steps:
        lead = make_lead(n, minutes, fingerprint=f"fp-{fp}")
        lead_before = codec.to_builtins(lead)
        state = freeze(states.get(lead.fingerprint, {}))
        before = thaw(state)
        new_state, emits = screening.screen(lead, state, the_market, WINDOW, NOW)
        _assert_unchanged_or_new(before, state, new_state)
        assert codec.to_builtins(lead) == lead_before
        assert emits
        states[lead.fingerprint] = thaw(new_state)
    assert the_market.config.model_dump() == config_before


offer_steps = st.lists(
    st.tuples(
        st.integers(0, 30),  # lead (repeats are replays)
        st.integers(-30 * 60, 30 * 60),  # minutes from NOW
        st.permutations([b.id for b in BUYERS]),
        st.integers(1, len(BUYERS)),
        st.booleans(),  # the buyer left the config while the offer was in flight
        st.sampled_from(["form", "call"]),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offer_steps)
def test_offering_decide_never_mutates_its_inputs(
    steps: list[tuple[int, int, list[str], int, bool, str]],
) -> None:
    table: dict[str, Any] = {}
    for n, minutes, order, size, gone, channel in steps:
        offer: Offer | None = make_offer(n, minutes, order[:size], channel=channel)
        hops = 0
        while offer is not None and hops <= len(BUYERS):
            hops += 1
            buyer = None if gone and hops == 1 else BY_ID[offering.current_buyer_id(offer)]
            ledger = offering.ledger_key(offer)
            raw = _read(table, offering.state_keys(offer, buyer)) if buyer else {}
            state = freeze({ledger: table.get(ledger), **raw})
            before = thaw(state)
            offer_before = codec.to_builtins(offer)
            result = offering.decide(offer, buyer, state, NOW)
            _assert_writes_are_new(state, before, result.writes)
            assert codec.to_builtins(offer) == offer_before, "offer mutated in place"
            if buyer is None:
                # Only the candidate's own ledger entry: the answer a replay must repeat.
                assert [k for k, _ in result.writes] in ([], [ledger])
            for k, v in result.writes:
                table[k] = thaw(v)
            offer = next(
                (
                    e.value
                    for e in result.emits
                    if e.topic == catalog.OFFERS and isinstance(e.value, Offer)
                ),
                None,
            )


def test_feedback_handle_never_mutates_its_inputs() -> None:
    table: dict[str, Any] = {}
    for n in range(6):
        _walk(table, make_offer(n, 0, ["b10", "b1"]))
    results: set[str] = set()
    kinds = ("converted", "returned", "contacted", "returned")
    for buyer_id in ("b1", "b10", "gone"):
        buyer = BY_ID.get(buyer_id)
        for n in range(7):  # lead-6 was never offered
            for kind in kinds:
                said = make_feedback(buyer_id, n, kind)
                ledger_key = feedback.ledger_key(buyer_id, said.lead_id)
                entry = table.get(ledger_key)
                needed = feedback.counts_keys(buyer, entry) if buyer else ()
                state = freeze({ledger_key: entry, **{k: table.get(k) for k in needed}})
                before = thaw(state)
                handled = feedback.handle(
                    said, buyer, state, NOW + timedelta(hours=1), said.buyer_id.encode()
                )
                _assert_writes_are_new(state, before, handled.writes)
                for k, v in handled.writes:
                    table[k] = thaw(v)
                results.update(getattr(e.value, "result", "") for e in handled.emits)
    # Every path was taken: otherwise the checks above prove little.
    assert {"credited", "duplicate", "recorded", "refused"} <= results


def test_a_call_ending_frees_its_slot_in_a_new_object() -> None:
    slots = freeze({"lead-1": (NOW + timedelta(hours=1)).isoformat(), "lead-2": "x"})
    before = thaw(slots)
    ended = CallEvent(type="call.ended", lead_id="lead-1", buyer_id="b2", at=NOW)
    freed = feedback.call_ended(ended, slots)
    assert thaw(slots) == before
    assert freed is not slots and thaw(freed) == {"lead-2": "x"}
    other = replace(ended, lead_id="lead-9")
    assert feedback.call_ended(other, slots) is slots  # nothing freed: nothing to write


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from(["sold", "returned", "converted"]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_quality_absorb_never_mutates_its_inputs(steps: list[tuple[int, str]]) -> None:
    table: dict[str, Any] = {}
    for n, kind in steps:
        signal = PublisherSignal(
            publisher_id="pub-1",
            lead_id=f"lead-{n}",
            buyer_id="b1",
            type=kind,
        )
        keys = (quality.stats_key(signal.publisher_id), quality.seen_key(signal))
        state = freeze({k: table.get(k) for k in keys})
        before = thaw(state)
        stored = state[keys[0]]
        stats = codec.convert(PublisherQuality, thaw(stored)) if stored else None
        stats_before = codec.to_builtins(stats) if stats else None
        writes, _ = quality.absorb([signal], stats, {keys[1]} if state[keys[1]] else set(), NOW)
        _assert_writes_are_new(state, before, writes)
        assert (codec.to_builtins(stats) if stats else None) == stats_before
        for k, v in writes:
            table[k] = thaw(v)
