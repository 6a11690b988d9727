from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.serializers import codecs

from router.output import Output, changelog_key, changelog_value
from router.records import Emit, Verdict

pytestmark = pytest.mark.unit


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None


@dataclass
class FakeProducer:
    fail_topics: set[str] = field(default_factory=set)
    # Deliveries to these topics stay pending until the test acknowledges them.
    held_topics: set[str] = field(default_factory=set)
    sent: list[Sent] = field(default_factory=list)
    held: list[asyncio.Future[None]] = field(default_factory=list)
    flush_hooks: list[Any] = field(default_factory=list)

    def before_flush(self, wait: Any) -> None:
        self.flush_hooks.append(wait)

    def acknowledge(self) -> None:
        for delivery in self.held:
            delivery.set_result(None)
        self.held = []

    async def send_many(
        self,
        topic: str,
        records: list[tuple[bytes | None, bytes | None]],
        partition: int | None = None,
    ) -> list[tuple[asyncio.Future[None], int]]:
        """As the transport's: here every call is one batch."""
        self.sent.extend(Sent(topic, key, value, partition) for key, value in records)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if topic in self.fail_topics:
            delivery.set_exception(ConnectionError("broker gone"))
        elif topic in self.held_topics:
            self.held.append(delivery)
        else:
            delivery.set_result(None)
        return [(delivery, len(records))]


@dataclass
class FakeChangelog:
    name: str

    def get_topic_name(self) -> str:
        return self.name


@dataclass
class FakeTable:
    name: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def changelog_topic(self) -> FakeChangelog:
        return FakeChangelog(f"app-{self.name}-changelog")


@dataclass
class FakeApp:
    producer: FakeProducer = field(default_factory=FakeProducer)


def output(app: FakeApp, errors: list[tuple[str, BaseException]] | None = None) -> Output:
    failed = errors if errors is not None else []
    return Output(app, lambda topic, error, _lost: failed.append((topic, error)))  # type: ignore[arg-type]


async def test_records_go_to_their_topic_keyed_and_encoded() -> None:
    app = FakeApp()
    await output(app).send(
        [
            Emit("buyer.acme", "lead-1", Verdict(buyer_id="acme", reason="sold")),
            Emit("leads.decisions", None, Verdict(buyer_id="b", reason="capped:daily")),
        ]
    )
    assert app.producer.sent == [
        Sent("buyer.acme", b"lead-1", b'{"buyer_id":"acme","reason":"sold"}', None),
        Sent("leads.decisions", None, b'{"buyer_id":"b","reason":"capped:daily"}', None),
    ]


async def test_table_writes_reach_the_store_and_the_changelog_on_the_given_partition() -> None:
    app = FakeApp()
    table = FakeTable("caps", data={"gone": {"sold": 1}})
    writes = [("a|day|2026-11-23", {"sold": 2, "spend": 1.5}), ("gone", None), ("flag", True)]
    out = output(app)
    out.write(table, 3, writes)  # type: ignore[arg-type]
    assert table.data == {"a|day|2026-11-23": {"sold": 2, "spend": 1.5}, "flag": True}
    assert app.producer.sent == [], "the changelog goes with the next send"

    await out.send([])
    assert [(s.topic, s.partition) for s in app.producer.sent] == [("app-caps-changelog", 3)] * 3
    # Faust recovers tables with its own "json" codec: what it reads back is what we stored.
    recovered = {
        codecs.loads("json", s.key): None if s.value is None else codecs.loads("json", s.value)
        for s in app.producer.sent
    }
    assert recovered == {"a|day|2026-11-23": {"sold": 2, "spend": 1.5}, "gone": None, "flag": True}


def test_changelog_encoding_deletes_with_a_null_value() -> None:
    assert changelog_key("k") == b'"k"'
    assert changelog_value(None) is None
    assert changelog_value({"a": [1, None]}) == b'{"a":[1,null]}'


async def test_a_failed_delivery_is_reported_with_its_topic() -> None:
    app = FakeApp(FakeProducer(fail_topics={"buyer.acme"}))
    errors: list[tuple[str, BaseException]] = []
    await output(app, errors).send(
        [Emit("buyer.acme", "lead-1", Verdict(buyer_id="a", reason="x"))]
    )
    await asyncio.sleep(0)  # done-callbacks run on the next loop turn
    assert [(topic, type(error)) for topic, error in errors] == [("buyer.acme", ConnectionError)]


async def test_a_failed_batch_counts_every_record_it_held() -> None:
    app = FakeApp(FakeProducer(fail_topics={"buyer.acme"}))
    lost: list[tuple[str, int]] = []
    out = Output(app, lambda topic, _error, count: lost.append((topic, count)))  # type: ignore[arg-type]
    await out.send([SOLD, SOLD, DECIDED])
    await asyncio.sleep(0)  # done-callbacks run on the next loop turn
    assert lost == [("buyer.acme", 2)]


CAPS_CHANGELOG = "app-caps-changelog"
SOLD = Emit("buyer.acme", "lead-1", Verdict(buyer_id="acme", reason="sold"))
DECIDED = Emit("leads.decisions", "lead-1", Verdict(buyer_id="acme", reason="sold"))
NEXT_LEAD = Emit("leads.decisions", "lead-2", Verdict(buyer_id="b", reason="paused"))


def topics_sent(app: FakeApp) -> list[str]:
    return [s.topic for s in app.producer.sent]


async def let_the_loop_run() -> None:
    # Not a wait for time: each turn runs whatever is ready; nothing here depends on a clock.
    for _ in range(10):
        await asyncio.sleep(0)


async def test_records_wait_until_the_broker_has_the_changelog_records_before_them() -> None:
    app = FakeApp(FakeProducer(held_topics={CAPS_CHANGELOG}))
    out = output(app)
    out.write(FakeTable("caps"), 0, [("acme|lead|lead-1", {"reason": "sold"})])
    await out.send([SOLD, DECIDED])
    await let_the_loop_run()
    assert topics_sent(app) == [CAPS_CHANGELOG]

    app.producer.acknowledge()
    await asyncio.wait_for(out.released(), timeout=5)
    assert topics_sent(app) == [CAPS_CHANGELOG, "buyer.acme", "leads.decisions"]


async def test_later_records_keep_their_place_behind_waiting_ones() -> None:
    app = FakeApp(FakeProducer(held_topics={CAPS_CHANGELOG}))
    out = output(app)
    out.write(FakeTable("caps"), 0, [("acme|lead|lead-1", {"reason": "sold"})])
    await out.send([SOLD])
    await out.send([NEXT_LEAD])  # wrote nothing itself, but must not overtake lead-1's sale
    await let_the_loop_run()
    assert topics_sent(app) == [CAPS_CHANGELOG]

    app.producer.acknowledge()
    await asyncio.wait_for(out.released(), timeout=5)
    assert [s.key for s in app.producer.sent[1:]] == [b"lead-1", b"lead-2"]


async def test_records_with_nothing_to_wait_for_go_at_once() -> None:
    app = FakeApp()
    out = output(app)
    out.write(FakeTable("caps"), 0, [("k", 1)])  # acknowledged at once
    await out.send([SOLD])
    assert topics_sent(app) == [CAPS_CHANGELOG, "buyer.acme"]
    assert app.producer.flush_hooks == []


async def test_the_producer_flush_waits_for_waiting_records() -> None:
    app = FakeApp(FakeProducer(held_topics={CAPS_CHANGELOG}))
    out = output(app)
    out.write(FakeTable("caps"), 0, [("k", 1)])
    await out.send([SOLD])
    assert app.producer.flush_hooks == [out.released]

    flush_done = asyncio.ensure_future(app.producer.flush_hooks[0]())
    await let_the_loop_run()
    assert not flush_done.done()
    app.producer.acknowledge()
    await asyncio.wait_for(flush_done, timeout=5)
    assert topics_sent(app)[-1] == "buyer.acme"


async def test_an_agent_waits_once_too_many_records_wait() -> None:
    app = FakeApp(FakeProducer(held_topics={CAPS_CHANGELOG}))
    out = Output(app, lambda *_: None, max_waiting_records=1)  # type: ignore[arg-type]
    table = FakeTable("caps")
    out.write(table, 0, [("k", 1)])
    await out.send([SOLD])
    out.write(table, 0, [("k", 2)])
    second = asyncio.ensure_future(out.send([NEXT_LEAD]))
    await let_the_loop_run()
    assert not second.done()

    app.producer.acknowledge()
    await asyncio.wait_for(second, timeout=5)
    app.producer.acknowledge()
    await asyncio.wait_for(out.released(), timeout=5)
    assert topics_sent(app) == [CAPS_CHANGELOG, CAPS_CHANGELOG, "buyer.acme", "leads.decisions"]


async def test_a_failed_changelog_delivery_is_reported_and_its_records_still_go() -> None:
    app = FakeApp(FakeProducer(held_topics={CAPS_CHANGELOG}))
    errors: list[tuple[str, BaseException]] = []
    out = output(app, errors)
    out.write(FakeTable("caps"), 0, [("k", 1)])
    await out.send([SOLD])
    app.producer.held.pop().set_exception(ConnectionError("broker gone"))
    await asyncio.wait_for(out.released(), timeout=5)
    assert [topic for topic, _ in errors] == [CAPS_CHANGELOG]
    assert topics_sent(app)[-1] == "buyer.acme"


async def test_a_record_the_producer_refuses_fails_the_agent_s_next_send() -> None:
    app = FakeApp(FakeProducer(held_topics={CAPS_CHANGELOG}))
    out = output(app)

    async def refuse(*_: Any) -> list[tuple[asyncio.Future[None], int]]:
        raise ValueError("record too large")

    out.write(FakeTable("caps"), 0, [("k", 1)])
    await out.send([SOLD])
    app.producer.send_many = refuse  # type: ignore[method-assign]
    app.producer.acknowledge()
    with pytest.raises(ValueError, match="too large"):
        await asyncio.wait_for(out.released(), timeout=5)
    with pytest.raises(ValueError, match="too large"):
        await out.send([NEXT_LEAD])
