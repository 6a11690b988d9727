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
    sent: list[Sent] = field(default_factory=list)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> asyncio.Future[None]:
        self.sent.append(Sent(topic, key, value, partition))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if topic in self.fail_topics:
            delivery.set_exception(ConnectionError("broker gone"))
        else:
            delivery.set_result(None)
        return delivery


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
    return Output(app, lambda topic, error: failed.append((topic, error)))  # type: ignore[arg-type]


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
    await output(app).write(table, 3, writes)  # type: ignore[arg-type]

    assert table.data == {"a|day|2026-11-23": {"sold": 2, "spend": 1.5}, "flag": True}
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
