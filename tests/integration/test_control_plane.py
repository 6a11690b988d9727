"""The control plane against the embedded broker: `router buyers apply|pause|resume`,
`router suppress`, `router explain`, and TopicView following the changes."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner, Result
from conftest import read

from router import codec, control
from router.admin import ensure_topics
from router.buyers import Buyer, BuyersConfig
from router.catalog import DECISIONS, TopicSpec
from router.cli import main
from router.embedded import EmbeddedBroker
from router.records import Decision, IntakeRef, Timings, Verdict
from router.views import MarketConfig, TopicView

pytestmark = pytest.mark.integration

BUYERS = """\
verticals:
  solar: {max_buyers: 2}
buyers:
  - id: acme
    name: Acme
    verticals: [solar]
    price: 10
  - id: beta
    name: Beta
    verticals: [solar]
    price: 12
"""


def router(broker: EmbeddedBroker, *args: str) -> Result:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "ROUTER_PARTITIONS": "2",
        # The embedded broker under-reports end offsets; readers must look past them.
        "ROUTER_VERIFY_END_OFFSETS": "true",
    }
    return CliRunner().invoke(main, list(args), env=env)


def buyers_file(tmp_path: Path, text: str = BUYERS) -> Path:
    path = tmp_path / "buyers.yaml"
    path.write_text(text)
    return path


def live(broker: EmbeddedBroker, topic: str = control.BUYERS_CONFIG) -> dict[str, bytes]:
    return asyncio.run(control.read_live(broker.bootstrap_servers, topic, verify_end_offsets=True))


def status_of(broker: EmbeddedBroker, buyer_id: str) -> str:
    return Buyer.model_validate_json(live(broker)[buyer_id]).status


def test_apply_publishes_only_what_changed(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = buyers_file(tmp_path)
    first = router(fresh_broker, "buyers", "apply", str(path))
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [
        "create acme",
        "create beta",
        "create vertical:solar",
        "3 changed, 0 unchanged",
    ]
    second = router(fresh_broker, "buyers", "apply", str(path))
    assert second.exit_code == 0, second.output
    assert second.output.splitlines() == ["0 changed, 3 unchanged"]
    assert len(read(fresh_broker, control.BUYERS_CONFIG)) == 3

    path.write_text(BUYERS.replace("price: 12", "price: 15"))
    dry = router(fresh_broker, "buyers", "apply", str(path), "--dry-run")
    assert dry.output.splitlines() == [
        "update beta",
        "1 changed, 2 unchanged (dry run: nothing published)",
    ]
    assert len(read(fresh_broker, control.BUYERS_CONFIG)) == 3
    third = router(fresh_broker, "buyers", "apply", str(path))
    assert third.output.splitlines() == ["update beta", "1 changed, 2 unchanged"]
    assert Buyer.model_validate_json(live(fresh_broker)["beta"]).price == 15


def test_removing_a_buyer_tombstones_or_pauses_it(
    fresh_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    path = buyers_file(tmp_path)
    assert router(fresh_broker, "buyers", "apply", str(path)).exit_code == 0
    without_beta = BUYERS[: BUYERS.index("  - id: beta")]

    path.write_text(without_beta)
    paused = router(fresh_broker, "buyers", "apply", str(path), "--remove", "pause")
    assert paused.output.splitlines() == ["pause  beta", "1 changed, 2 unchanged"]
    assert status_of(fresh_broker, "beta") == "paused"

    path.write_text(without_beta.replace("verticals:\n  solar: {max_buyers: 2}\n", ""))
    removed = router(fresh_broker, "buyers", "apply", str(path))
    assert removed.output.splitlines() == [
        "delete beta",
        "delete vertical:solar",
        "2 changed, 1 unchanged",
    ]
    tombstones = [r for r in read(fresh_broker, control.BUYERS_CONFIG) if r.value is None]
    assert sorted(r.key for r in tombstones) == [b"beta", b"vertical:solar"]
    assert set(live(fresh_broker)) == {"acme"}


def test_pause_and_resume_flip_the_status(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    assert router(fresh_broker, "buyers", "apply", str(buyers_file(tmp_path))).exit_code == 0

    paused = router(fresh_broker, "buyers", "pause", "acme")
    assert paused.exit_code == 0, paused.output
    assert status_of(fresh_broker, "acme") == "paused"
    again = router(fresh_broker, "buyers", "pause", "acme")
    assert "already" in again.output
    resumed = router(fresh_broker, "buyers", "resume", "acme")
    assert resumed.exit_code == 0, resumed.output
    assert status_of(fresh_broker, "acme") == "active"
    assert status_of(fresh_broker, "beta") == "active"

    unknown = router(fresh_broker, "buyers", "pause", "nobody")
    assert unknown.exit_code == 1
    assert "unknown buyer 'nobody'" in unknown.output


def test_suppress_writes_the_hashed_identity(fresh_broker: EmbeddedBroker) -> None:
    by_phone = router(fresh_broker, "suppress", "--phone", "(212) 555-0123")
    assert by_phone.exit_code == 0, by_phone.output
    by_email = router(
        fresh_broker, "suppress", "--email", "Jane.Doe@Example.com", "--reason", "complaint"
    )
    assert by_email.exit_code == 0, by_email.output

    table = live(fresh_broker, control.SUPPRESSION)
    phone_key = hashlib.sha256(b"+12125550123").hexdigest()
    email_key = hashlib.sha256(b"jane.doe@example.com").hexdigest()
    assert set(table) == {phone_key, email_key}
    phone = codec.decode(control.Suppression, table[phone_key])
    assert (phone.kind, phone.reason) == ("phone", "opt_out")
    email = codec.decode(control.Suppression, table[email_key])
    assert (email.kind, email.reason) == ("email", "complaint")

    invalid = router(fresh_broker, "suppress", "--phone", "12")
    assert invalid.exit_code == 2
    assert "not a valid phone number" in invalid.output


async def eventually(probe: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def test_a_topic_view_sees_every_change(fresh_broker: EmbeddedBroker) -> None:
    bootstrap = fresh_broker.bootstrap_servers
    changes: list[str] = []
    view = TopicView(
        bootstrap,
        control.BUYERS_CONFIG,
        on_change=lambda key, _: changes.append(key),
        verify_end_offsets=True,
        retry_s=0.2,
    )
    await view.start()  # before the topic exists: the view waits for it
    try:
        market = MarketConfig(view)
        acme = Buyer(id="acme", name="Acme", verticals=["solar"], price=10.0)
        desired = BuyersConfig(buyers=[acme])
        await control.apply(bootstrap, control.plan(desired, {}, "tombstone"), partitions=3)
        assert await view.wait_caught_up(15)
        await eventually(lambda: view.get("acme") is not None, "acme published")
        assert market.config.buyers == [acme]

        await control.set_status(bootstrap, "acme", "paused", verify_end_offsets=True)
        await eventually(
            lambda: market.config.buyers[0].status == "paused", "acme paused", timeout=15
        )
        await control.apply(bootstrap, [control.Change("bogus", b"not json", "create")])
        await eventually(lambda: "bogus" in view, "a bad record kept raw")
        assert market.skipped == 1

        await control.apply(
            bootstrap, control.plan(BuyersConfig(buyers=[]), view.snapshot(), "tombstone")
        )
        await eventually(lambda: len(view) == 0, "everything tombstoned")
        assert market.config.buyers == []
        # In order per key; keys on different partitions interleave freely.
        assert [k for k in changes if k == "acme"] == ["acme"] * 3
        assert [k for k in changes if k == "bogus"] == ["bogus"] * 2
    finally:
        await view.stop()


async def test_a_late_view_catches_up_on_what_is_there(fresh_broker: EmbeddedBroker) -> None:
    bootstrap = fresh_broker.bootstrap_servers
    entries = [(f"key-{i}", f"value-{i}".encode()) for i in range(50)]
    await control.publish(bootstrap, "view.late", entries, partitions=3)
    view = TopicView(bootstrap, "view.late", verify_end_offsets=True)
    await view.start()
    try:
        assert await view.wait_caught_up(15)
        assert dict(view.items()) == dict(entries)
    finally:
        await view.stop()


async def write_decisions(bootstrap: str, decisions: list[Decision]) -> None:
    await ensure_topics(bootstrap, [TopicSpec(DECISIONS, "output", "event_id", "-")], 3, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for one in decisions:
            key = one.event_id.encode() if one.event_id else None
            await producer.send_and_wait(DECISIONS, codec.encode(one), key)
    finally:
        await producer.stop()


def a_decision(event_id: str, **fields: object) -> Decision:
    defaults: dict[str, Any] = {
        "event_id": event_id,
        "lead_id": f"lead-{event_id}",
        "outcome": "unsold",
        "channel": "form",
        "vertical": "solar",
        "intake": IntakeRef(topic="intent.form", partition=0, offset=0),
        "timings": Timings(decided_at=datetime(2024, 5, 1, tzinfo=UTC)),
    }
    return Decision(**{**defaults, **fields})


def test_explain_tells_the_latest_decision(fresh_broker: EmbeddedBroker) -> None:
    sold = a_decision(
        "evt-7",
        outcome="sold",
        buyers=["acme"],
        price=10.0,
        considered=[
            Verdict(buyer_id="acme", reason="sold"),
            Verdict(buyer_id="beta", reason="filtered:state"),
        ],
    )
    # evt-7 is among the others too: the sale, written after, is the one to tell.
    others = [a_decision(f"evt-{i}") for i in range(20)]
    asyncio.run(write_decisions(fresh_broker.bootstrap_servers, [*others, sold]))

    result = router(fresh_broker, "explain", "evt-7")
    assert result.exit_code == 0, result.output
    assert (
        result.output.splitlines()[0] == "Event evt-7 (lead lead-evt-7): sold to acme for $10.00."
    )
    assert "  - beta did not match its state filter." in result.output

    missing = router(fresh_broker, "explain", "evt-unknown")
    assert missing.exit_code == 1
    assert "no decision recorded for event 'evt-unknown'" in missing.output
