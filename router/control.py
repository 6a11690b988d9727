"""The control plane's write side: publish buyers, policies and suppressions to their
compacted topics, which every worker reads whole (router/views.py).

`plan` is pure: it says which keys to publish so `buyers.config` matches a buyers file.
The rest does I/O with plain producers (acks=all, no idempotence: not every Kafka-protocol
broker supports it, and re-publishing a key's latest value is harmless on a compacted topic).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError

from router import catalog, codec, suppression
from router.buyers import Buyer, BuyersConfig
from router.catalog import BUYERS_CONFIG, SUPPRESSION, TopicSpec
from router.records import Suppression
from router.views import VERTICAL_PREFIX, policy_key, read_latest

Removal = Literal["tombstone", "pause"]
Action = Literal["create", "update", "pause", "delete"]
Status = Literal["active", "paused"]
Kind = Literal["phone", "email"]


class ControlError(Exception):
    """A refused control command; the message is meant for the operator."""


@dataclass(frozen=True)
class Change:
    """One record to publish: `value` None is a tombstone."""

    key: str
    value: bytes | None
    action: Action


def canonical(value: Any) -> bytes:
    """JSON with sorted keys: equal content, equal bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _recanonical(raw: bytes) -> bytes | None:
    try:
        return canonical(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return None


def desired_entries(config: BuyersConfig) -> dict[str, bytes]:
    """The `buyers.config` table that matches a buyers file, values in canonical JSON."""
    entries = {b.id: canonical(b.model_dump(mode="json")) for b in config.buyers}
    for name, policy in config.verticals.items():
        entries[policy_key(name)] = canonical(policy.model_dump(mode="json"))
    return entries


def _with_status(raw: bytes, status: Status) -> bytes | None:
    """The live buyer with `status` set, canonical; None if it is not a readable buyer."""
    try:
        buyer = Buyer.model_validate_json(raw)
    except ValidationError:
        return None
    return canonical({**buyer.model_dump(mode="json"), "status": status})


def plan(desired: BuyersConfig, live: Mapping[str, bytes | None], remove: Removal) -> list[Change]:
    """The records that make the live table equal to `desired`, in key order.

    Entries whose canonical JSON already matches are left alone. Buyers live but missing
    from `desired` are tombstoned, or with `remove="pause"` republished paused (a buyer
    that cannot be read is tombstoned either way); missing policies are tombstoned.
    """
    want = desired_entries(desired)
    have = {key: value for key, value in live.items() if value is not None}
    changes: list[Change] = []
    for key in sorted(want.keys() | have.keys()):
        current = have.get(key)
        if key in want:
            if current is None:
                changes.append(Change(key, want[key], "create"))
            elif _recanonical(current) != want[key]:
                changes.append(Change(key, want[key], "update"))
            continue
        assert current is not None
        paused = None
        if remove == "pause" and not key.startswith(VERTICAL_PREFIX):
            paused = _with_status(current, "paused")
        if paused is None:
            changes.append(Change(key, None, "delete"))
        elif paused != _recanonical(current):
            changes.append(Change(key, paused, "pause"))
    return changes


def applied(live: Mapping[str, bytes | None], changes: Sequence[Change]) -> dict[str, bytes]:
    """The table once `changes` are read after `live`."""
    table = {key: value for key, value in live.items() if value is not None}
    for change in changes:
        if change.value is None:
            table.pop(change.key, None)
        else:
            table[change.key] = change.value
    return table


async def read_live(
    bootstrap_servers: str,
    topic: str = BUYERS_CONFIG,
    *,
    verify_end_offsets: bool = False,
    timeout_s: float = 60.0,
) -> dict[str, bytes]:
    """The topic's current table (empty if the topic does not exist yet)."""
    return await read_latest(
        bootstrap_servers, topic, verify_end_offsets=verify_end_offsets, timeout_s=timeout_s
    )


async def publish(
    bootstrap_servers: str,
    topic: str,
    records: Sequence[tuple[str, bytes | None]],
    *,
    partitions: int = 1,
    replication: int = 1,
) -> None:
    """Create the topic if missing (compacted), then write and await every record."""
    from aiokafka import AIOKafkaProducer

    from router.admin import ensure_topics

    if not records:
        return
    specs = [spec for spec in catalog.catalog("-") if spec.name == topic]
    if not specs:  # an ad-hoc topic (tests): it is still a table, so compacted
        specs = [TopicSpec(topic, "control", "-", "-", None, {"cleanup.policy": "compact"})]
    await ensure_topics(bootstrap_servers, specs, partitions, replication)
    # acks=all and no idempotence (aiokafka's default): the embedded broker refuses
    # idempotent producers, and a resent key's value is harmless on a compacted topic.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", client_id="router-control"
    )
    await producer.start()
    try:
        sent = [await producer.send(topic, key=key.encode(), value=value) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def apply(
    bootstrap_servers: str,
    changes: Sequence[Change],
    *,
    topic: str = BUYERS_CONFIG,
    partitions: int = 1,
    replication: int = 1,
) -> None:
    """Publish a plan to `buyers.config`."""
    records = [(change.key, change.value) for change in changes]
    await publish(bootstrap_servers, topic, records, partitions=partitions, replication=replication)


async def set_status(
    bootstrap_servers: str,
    buyer_id: str,
    status: Status,
    *,
    topic: str = BUYERS_CONFIG,
    partitions: int = 1,
    replication: int = 1,
    verify_end_offsets: bool = False,
) -> Change | None:
    """Republish a live buyer with `status`. None if it already had it.

    Raises ControlError for a buyer that is not live or cannot be read.
    """
    live = await read_live(bootstrap_servers, topic, verify_end_offsets=verify_end_offsets)
    current = live.get(buyer_id) if not buyer_id.startswith(VERTICAL_PREFIX) else None
    if current is None:
        raise ControlError(f"unknown buyer {buyer_id!r}: it is not in {topic}")
    updated = _with_status(current, status)
    if updated is None:
        raise ControlError(f"buyer {buyer_id!r} in {topic} is not a valid buyer record")
    if updated == _recanonical(current):
        return None
    change = Change(buyer_id, updated, "update")
    await apply(
        bootstrap_servers, [change], topic=topic, partitions=partitions, replication=replication
    )
    return change


def normalize_phone(raw: str) -> str:
    """E.164, default region US, as leads' phones are normalized. ValueError if invalid."""
    try:
        number = phonenumbers.parse(raw.strip(), "US")
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {raw!r} ({exc})") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """Syntax-checked (no DNS) and lower-cased, as leads' emails are. ValueError if invalid."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {raw!r} ({exc})") from None
    return result.normalized.lower()


def suppression_key(kind: Kind, value: str) -> str:
    """The `consumers.suppression` key of a phone or email, normalized first."""
    if kind == "phone":
        return suppression.key(normalize_phone(value))
    if kind == "email":
        return suppression.key(normalize_email(value))
    raise ValueError(f"unknown kind {kind!r}: expected 'phone' or 'email'")


async def suppress(
    bootstrap_servers: str,
    phone: str | None = None,
    email: str | None = None,
    reason: str = "opt_out",
    *,
    topic: str = SUPPRESSION,
    partitions: int = 1,
    replication: int = 1,
    now: datetime | None = None,
) -> list[str]:
    """Suppress a phone and/or an email; returns the keys written.

    Raises ValueError if neither is given or one does not normalize.
    """
    identities: list[tuple[Kind, str]] = []
    if phone is not None:
        identities.append(("phone", phone))
    if email is not None:
        identities.append(("email", email))
    if not identities:
        raise ValueError("give a phone or an email to suppress")
    added_at = now or datetime.now(UTC)
    records: list[tuple[str, bytes | None]] = []
    for kind, value in identities:  # every one validated before anything is written
        key = suppression_key(kind, value)
        record = Suppression(kind=kind, reason=reason, added_at=added_at)
        records.append((key, canonical(codec.to_builtins(record))))
    await publish(bootstrap_servers, topic, records, partitions=partitions, replication=replication)
    return [key for key, _ in records]
