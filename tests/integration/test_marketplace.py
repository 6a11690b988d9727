"""The pull-model marketplace on a real worker: live config, suppression, returns, shared and
exclusive selling, each read back from the topics the router writes."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner
from conftest import read, wait_for
from test_pipeline import assert_within_caps, decisions_by_key

from router import catalog, codec, quality
from router.cli import main
from router.config_file import load_config
from router.records import BuyerLead, Decision, FeedbackResult

pytestmark = pytest.mark.integration


def form_event(
    *,
    vertical: str = "solar",
    phone: str | None = None,
    state: str = "NY",
    postal_code: str = "10001",
    sellers: list[str] | None = None,
    contact_channels: list[str] | None = None,
    publisher: str = "pub-1",
) -> tuple[str, bytes]:
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": now.isoformat(),
        "vertical": vertical,
        "source": {"publisher_id": publisher},
        "contact": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "phone": phone or f"212555{random.randint(0, 9999):04d}",
            "postal_code": postal_code,
            "state": state,
        },
    }
    if sellers is not None:
        event["consent"] = {"captured_at": now.isoformat(), "sellers": sellers}
        if contact_channels is not None:
            event["consent"]["channels"] = contact_channels
    return event_id, orjson.dumps(event)


async def _send(bootstrap: str, records: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def send(broker, *records: tuple[str, bytes | None, bytes]) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(_send(broker.bootstrap_servers, list(records)))


def intake(broker, **fields: Any) -> str:  # type: ignore[no-untyped-def]
    event_id, payload = form_event(**fields)
    send(broker, (catalog.INTAKE["form"], event_id.encode(), payload))
    return event_id


def decision_of(broker, event_id: str, timeout: float = 60) -> Decision:  # type: ignore[no-untyped-def]
    def decided() -> tuple[bool, object]:
        found = decisions_by_key(broker).get(event_id.encode())
        return bool(found), found

    found = wait_for(decided, timeout=timeout, interval=0.3)
    assert isinstance(found, list)
    return found[-1]


def http_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.loads(response.read())


def market_shows(port: int, probe: Any, timeout: float = 60) -> None:
    """Poll the worker's /market/ view until `probe(view)` holds."""

    def seen() -> tuple[bool, object]:
        try:
            view = http_json(port, "/market/")
        except OSError as exc:
            return False, exc
        return bool(probe(view)), view

    wait_for(seen, timeout=timeout, interval=0.3)


def cli(broker, *args: str) -> str:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, [*args, "--bootstrap", broker.bootstrap_servers])
    assert result.exit_code == 0, result.output
    return result.output


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


TWO_SOLAR_BUYERS = """
buyers:
  - id: solar-a
    name: Solar A
    verticals: [solar, roofing]
    price: 30
    caps: {daily: 100}
  - id: solar-b
    name: Solar B
    verticals: [solar]
    price: 10
"""


def started(workers, buyers_file: Path):  # type: ignore[no-untyped-def]
    group = workers(buyers_file)
    group.start()
    port = group.web_ports[0]
    market_shows(port, lambda view: view["buyers"])
    return group, port


def test_a_config_change_takes_effect_for_the_next_lead_without_a_restart(
    workers, tmp_path: Path
) -> None:
    buyers_file = write(tmp_path / "buyers.yaml", TWO_SOLAR_BUYERS)
    group, port = started(workers, buyers_file)
    broker = group.broker
    worker = group.processes[0]

    first = decision_of(broker, intake(broker))
    assert first.buyers == ["solar-a"]

    assert "2 changed" in cli(broker, "buyers", "apply", str(buyers_file))
    assert cli(broker, "buyers", "pause", "solar-a").startswith("solar-a is paused")
    market_shows(port, lambda view: view["buyers"]["solar-a"]["status"] == "paused")

    paused_event = intake(broker)
    second = decision_of(broker, paused_event)
    assert second.buyers == ["solar-b"]
    assert {v.buyer_id: v.reason for v in second.considered}["solar-a"] == "paused"
    assert "is paused" in cli(broker, "explain", paused_event)

    cli(broker, "buyers", "resume", "solar-a")
    market_shows(port, lambda view: view["buyers"]["solar-a"]["status"] == "active")
    assert decision_of(broker, intake(broker)).buyers == ["solar-a"]

    # A price change and a removed buyer, from an edited file.
    edited = write(
        tmp_path / "edited.yaml",
        TWO_SOLAR_BUYERS.replace("price: 10", "price: 50").replace(
            "caps: {daily: 100}", "caps: {daily: 100}\n    status: paused"
        ),
    )
    cli(broker, "buyers", "apply", str(edited))
    market_shows(
        port,
        lambda view: (
            view["buyers"]["solar-a"]["status"] == "paused"
            and view["buyers"]["solar-b"]["price"] == 50
        ),
    )
    fourth = decision_of(broker, intake(broker))
    assert fourth.buyers == ["solar-b"] and fourth.price == 50

    status = json.loads(
        CliRunner()
        .invoke(main, ["buyers", "status", "--url", f"http://127.0.0.1:{port}", "--json"])
        .output
    )
    usage = {entry["id"]: entry for entry in status}
    assert usage["solar-a"]["status"] == "paused"
    assert usage["solar-a"]["usage"]["daily"]["used"] == 2
    assert usage["solar-a"]["usage"]["daily"]["limit"] == 100
    assert usage["solar-b"]["usage"]["daily_budget"]["used"] == 60.0  # 10 + 50
    assert worker.poll() is None, "the worker was never restarted"


def test_an_opt_out_takes_effect_for_the_next_lead(workers, tmp_path: Path) -> None:
    group, port = started(workers, write(tmp_path / "buyers.yaml", TWO_SOLAR_BUYERS))
    broker = group.broker
    phone = "2125550199"

    assert decision_of(broker, intake(broker, phone=phone)).outcome == "sold"
    cli(broker, "suppress", "--phone", "(212) 555-0199")
    market_shows(port, lambda view: view["versions"].get(catalog.SUPPRESSION, 0) >= 1)

    # Another vertical, so dedup (keyed by phone and vertical) does not answer first.
    suppressed = decision_of(broker, intake(broker, phone=phone, vertical="roofing"))
    assert suppressed.outcome == "suppressed"
    assert suppressed.buyers == []
    other = decision_of(broker, intake(broker, phone="2125550100", vertical="roofing"))
    assert other.outcome == "sold"
    sold_phones = {
        codec.decode(BuyerLead, r.value).contact.phone
        for buyer_id in ("solar-a", "solar-b")
        for r in read(broker, catalog.buyer_topic(buyer_id))
    }
    assert sold_phones == {"+12125550199", "+12125550100"}  # the opted-out one only before


RETURNS = """
buyers:
  - id: solar-a
    name: Solar A
    verticals: [solar]
    price: 30
    caps: {daily: 2}
    return_window_h: 72
"""


def results_for(broker, lead_id: str, count: int) -> list[FeedbackResult]:  # type: ignore[no-untyped-def]
    def arrived() -> tuple[bool, object]:
        found = [
            codec.decode(FeedbackResult, r.value)
            for r in read(broker, catalog.FEEDBACK_RESULTS)
            if r.key == lead_id.encode()
        ]
        return len(found) >= count, found

    found = wait_for(arrived, timeout=60, interval=0.3)
    assert isinstance(found, list)
    return found


def test_a_return_in_the_window_credits_the_cap_slot_back(workers, tmp_path: Path) -> None:
    group, _ = started(workers, write(tmp_path / "buyers.yaml", RETURNS))
    broker = group.broker

    sold = [decision_of(broker, intake(broker)) for _ in range(2)]
    assert all(d.outcome == "sold" for d in sold)
    capped = decision_of(broker, intake(broker))
    assert capped.outcome == "unsold"
    assert capped.considered[0].reason == "capped:daily"

    def feedback(lead_id: str, at: datetime) -> tuple[str, bytes, bytes]:
        body = {"lead_id": lead_id, "buyer_id": "solar-a", "type": "returned", "at": at.isoformat()}
        return (catalog.FEEDBACK, b"solar-a", orjson.dumps(body))

    now = datetime.now(UTC)
    returned = sold[0].lead_id
    assert returned is not None and sold[1].lead_id is not None
    send(broker, feedback(returned, now), feedback(returned, now))
    first, again = results_for(broker, returned, 2)
    assert (first.result, again.result) == ("credited", "duplicate")

    send(broker, feedback(sold[1].lead_id, now + timedelta(hours=73)))
    (late,) = results_for(broker, sold[1].lead_id, 1)
    assert (late.result, late.reason) == ("refused", "late")

    assert decision_of(broker, intake(broker)).outcome == "sold", "the credited slot is free"
    assert decision_of(broker, intake(broker)).outcome == "unsold", "and only that one"

    # The publisher's record counts each sale and the credited return once, the duplicate
    # return not at all: the signals travel as bundles through `publishers.signals`.
    changelog = catalog.changelog_topic(group.app_id, catalog.PUBLISHERS_TABLE)
    stats_key = orjson.dumps(quality.stats_key("pub-1"))

    def publisher_counted() -> tuple[bool, object]:
        values = [orjson.loads(r.value) for r in read(broker, changelog) if r.key == stats_key]
        last = values[-1] if values else None
        return last == {"publisher_id": "pub-1", "sold": 3, "returned": 1, "converted": 0}, last

    wait_for(publisher_counted, timeout=60, interval=0.3)

    send(broker, (catalog.FEEDBACK, b"solar-a", b"{not json"))

    def dead_lettered() -> tuple[bool, object]:
        letters = [orjson.loads(r.value) for r in read(broker, catalog.REJECTED)]
        return any(letter["topic"] == catalog.FEEDBACK for letter in letters), letters

    wait_for(dead_lettered, timeout=60, interval=0.3)


SHARED = """
verticals:
  solar: {max_buyers: 3, strategy: highest_bid, floor_price: 5}
  roofing: {max_buyers: 1, strategy: weighted_round_robin}
buyers:
  - id: s-big
    name: Shared, big
    verticals: [solar]
    price: 40
    caps: {hourly: 25, daily_budget: 900}
  - id: s-mid
    name: Shared, mid
    verticals: [solar]
    price: 30
    caps: {weekly: 30}
  - id: s-small
    name: Shared, small
    verticals: [solar]
    price: 20
    caps: {monthly: 35}
  - id: s-excl
    name: Exclusive only
    verticals: [solar]
    price: 90
    exclusive_only: true
    caps: {daily: 8}
  - id: s-consent
    name: Needs consent
    verticals: [solar, roofing]
    price: 60
    requires_consent: true
    contact_by: [call, sms]
    caps: {daily: 20}
  - id: r-one
    name: Roofing one
    verticals: [roofing]
    price: 25
    weight: 3
  - id: r-two
    name: Roofing two
    verticals: [roofing]
    price: 25
    weight: 1
"""


def test_mixed_shared_and_exclusive_run_respects_every_limit(workers, tmp_path: Path) -> None:
    buyers_file = write(tmp_path / "buyers.yaml", SHARED)
    config = load_config(buyers_file)
    buyers = {b.id: b for b in config.buyers}
    group, _ = started(workers, buyers_file)
    broker = group.broker

    rng = random.Random(7)
    records = []
    for index in range(160):
        vertical = rng.choice(["solar", "solar", "roofing"])
        sellers = rng.choice([None, ["s-consent"], ["*"], ["someone-else"]])
        ways = rng.choice([["call", "sms"], ["sms", "email", "call"], ["call"], ["email"]])
        event_id, payload = form_event(
            vertical=vertical, phone=f"212555{index:04d}", sellers=sellers, contact_channels=ways
        )
        records.append((catalog.INTAKE["form"], event_id.encode(), payload))
    send(broker, *records)

    def all_decided() -> tuple[bool, object]:
        grouped = decisions_by_key(broker)
        return len(grouped) >= len(records), len(grouped)

    wait_for(all_decided, timeout=120)
    sold: dict[str, list[BuyerLead]] = {
        buyer_id: [
            codec.decode(BuyerLead, r.value) for r in read(broker, catalog.buyer_topic(buyer_id))
        ]
        for buyer_id in buyers
    }
    owners: dict[str, set[str]] = defaultdict(set)
    for buyer_id, leads in sold.items():
        assert len({lead.lead_id for lead in leads}) == len(leads), "never twice to one buyer"
        for lead in leads:
            owners[lead.lead_id].add(buyer_id)
    assert_within_caps(sold, buyers)

    vertical_of = {lead.lead_id: lead.vertical for leads in sold.values() for lead in leads}
    for lead_id, who in owners.items():
        assert len(who) <= config.policy(vertical_of[lead_id]).max_buyers, (lead_id, who)
        if who & {"s-excl"} or vertical_of[lead_id] == "roofing":
            assert len(who) == 1, ("an exclusive lead was shared", lead_id, who)
    for lead in (lead for leads in sold.values() for lead in leads):
        if buyers[lead.buyer_id].requires_consent:
            sellers = lead.consent.sellers if lead.consent else []
            assert lead.buyer_id in sellers or "*" in sellers, "sold outside its consent scope"
        allowed = lead.consent.channels if lead.consent else []
        assert set(buyers[lead.buyer_id].contact_by) <= set(allowed), "contact not consented"
        assert lead.exclusive == (lead.buyer_id == "s-excl" or lead.vertical == "roofing")

    # The run exercised what it claims to: shared sales, exclusive sales, and caps reached.
    share_sizes = Counter(
        len(who) for lead_id, who in owners.items() if vertical_of[lead_id] == "solar"
    )
    assert share_sizes[3] > 0 and share_sizes[1] > 0, share_sizes
    reasons = Counter(
        v.reason for records in decisions_by_key(broker).values() for v in records[0].considered
    )
    assert reasons["capped:daily"] > 0 and reasons["consent"] > 0, reasons
    assert reasons["consent:call"] + reasons["consent:sms"] > 0, reasons
    assert sold["s-consent"], "nothing reached s-consent: the consent path went unexercised"
    sold_prices = [
        s.price for records in decisions_by_key(broker).values() for s in records[0].sales
    ]
    assert sold_prices and min(sold_prices) >= 5
