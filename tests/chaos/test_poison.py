"""10,000+ fuzzed poison payloads mixed into valid traffic, on all four intake topics.

Every poison payload must become a dead letter on `leads.rejected` carrying a reason and its
exact original bytes, and a `rejected` decision; valid leads must be unaffected; the workers
must neither die nor log a crash. The fuzzer is a seeded hand-rolled one: every payload is
poison by construction (broken bytes, broken JSON, or a contract violation), so nothing here
depends on the router's own opinion of what is valid.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import math
import random
import string
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from chaos_conftest import (
    PARTITIONS,
    WORKER_ENV,
    agent_failures,
    audit,
    log_text,
    seeded,
    wait_ready,
)

from router import catalog
from router.buyers import Buyer
from router.contract import Channel
from router.loadgen import producer
from router.synthetic import Mix, generate

pytestmark = pytest.mark.slow

POISON = 10_000
VALID = 3_000
MAX_PAYLOAD = 900_000  # below Kafka's default 1 MB message limit
HUGE = 40  # payloads between 5 kB and MAX_PAYLOAD

VALID_ONLY = Mix(valid=1.0, invalid=0.0, duplicate=0.0, malformed=0.0)
VALID_AND_DUPLICATES = Mix(valid=0.9, invalid=0.0, duplicate=0.1, malformed=0.0)

BAD_UTF8 = (
    b"\xff",
    b"\xfe\xff",
    b"\xc3\x28",
    b"\xa0\xa1",
    b"\xe2\x28\xa1",
    b"\xe2\x82",
    b"\xf0\x28\x8c\xbc",
    b"\xed\xa0\x80",  # an encoded UTF-16 surrogate
    b"\xc0\xaf",  # overlong "/"
    b"\xf8\x88\x80\x80\x80",
)

# (path, wrong-typed values) that every channel's contract refuses.
WRONG_TYPES: dict[str, tuple[Any, ...]] = {
    "event_id": (123, 1.5, True, None, [], {}, ["evt"], ""),
    "occurred_at": (True, None, [], {}, "yesterday", "", "2024-13-01T00:00:00Z", "12:00"),
    "vertical": (7, None, [], {}, "", "Auto Insurance", "9lives", "auto-insurance", "x" * 65),
    "source": ("pub-1", 1, [], None, True),
    "source.publisher_id": (1, None, [], {}, "", "p" * 513),
    "contact": ("jane", 1, ["a"], True, None),
    "contact.email": (1, [], {}, True),
    "contact.phone": (4155552671, [], {}, False),
    "contact.postal_code": (94107, [], {}),
    "consent": ("yes", 1, [], True),
    "consent.sellers": ("*", 1, {}, [1], [""]),
    "consent.channels": (["fax"], "call", [1]),
    "attributes": ("x", [], 1, True),
}
WRONG_TYPES_BY_CHANNEL: dict[Channel, dict[str, tuple[Any, ...]]] = {
    "form": {},
    "call": {
        "call": ("c", 1, None, []),
        "call.call_id": (1, None, ""),
        "call.caller_phone": (1, None, ""),
    },
    "click": {"click": ("c", 1, [], None)},
    "trial": {"trial": ("t", None, 1, []), "trial.product": (None, 1, "")},
}
REQUIRED: tuple[str, ...] = ("event_id", "occurred_at", "vertical", "source", "source.publisher_id")
REQUIRED_BY_CHANNEL: dict[Channel, tuple[tuple[str, ...], ...]] = {
    "form": (("contact.phone", "contact.email"), ("contact",)),
    "call": (("call",), ("call.call_id",), ("call.caller_phone",)),
    "click": (),
    "trial": (("trial",), ("trial.product",), ("contact.email",), ("contact",)),
}
BAD_VALUES: dict[str, tuple[Any, ...]] = {
    "occurred_at": ("1999-12-31T23:59:59Z", "0001-01-01T00:00:00+00:00", "2024-02-30T10:00:00Z"),
    "contact.phone": ("12", "555-0000", "+1 555 123", "(000) 123-4567", "phone"),
    "contact.email": ("bob@", "bob@@gmail.com", "bob smith@gmail.com", "@gmail.com"),
    "contact.postal_code": ("ABCDE", "1234", "123456", "9021O", "١٢٣٤٥"),
    "vertical": ("Auto", "a b", "_x", "mortgage!"),
}


@dataclass(frozen=True)
class Payload:
    topic: str
    key: bytes | None
    value: bytes
    family: str  # "valid" or the poison family


def _set(event: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = event
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def _delete(event: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    node: Any = event
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


class Fuzzer:
    """Seeded poison: every payload breaks the intake contract in at least one way."""

    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.bases: dict[Channel, list[dict[str, Any]]] = {
            "form": [],
            "call": [],
            "click": [],
            "trial": [],
        }
        for event in generate(400, seed + 1, base_time=now, mix=VALID_ONLY):
            self.bases[event.channel].append(orjson.loads(event.payload))
        self.families: list[tuple[str, float, Callable[[Channel], bytes]]] = [
            ("random_bytes", 0.10, self.random_bytes),
            ("truncated_json", 0.12, self.truncated_json),
            ("invalid_utf8", 0.10, self.invalid_utf8),
            ("wrong_type", 0.18, self.wrong_type),
            ("missing_field", 0.12, self.missing_field),
            ("extra_fields_and_defect", 0.10, self.extra_fields_and_defect),
            ("deep_nesting", 0.08, self.deep_nesting),
            ("bad_value", 0.12, self.bad_value),
            ("not_an_object", 0.05, self.not_an_object),
            ("future_event", 0.03, self.future_event),
        ]

    # -- helpers -----------------------------------------------------------------------------

    def event(self, channel: Channel) -> dict[str, Any]:
        """A valid event of the channel with a fresh id (the base itself is never sent)."""
        event = copy.deepcopy(self.rng.choice(self.bases[channel]))
        event["event_id"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return event

    def dumps(self, event: dict[str, Any]) -> bytes:
        return orjson.dumps(event)

    def junk_value(self, depth: int = 0) -> Any:
        rng = self.rng
        roll = rng.random()
        if depth > 4 or roll < 0.5:
            return rng.choice(
                (
                    None,
                    True,
                    rng.randint(-(2**63), 2**63 - 1),
                    rng.random() * 1e300,
                    "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 40))),
                    "\u0000\u200b\ufeff\U0001f4a9",
                )
            )
        if roll < 0.75:
            return [self.junk_value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {self.junk_key(): self.junk_value(depth + 1) for _ in range(rng.randint(0, 4))}

    def junk_key(self) -> str:
        alphabet = string.ascii_letters + string.digits + "_-. $\u00e9\u4e2d\U0001f600"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(1, 24)))

    # -- families ----------------------------------------------------------------------------

    def random_bytes(self, channel: Channel) -> bytes:
        size = self.rng.choice((0, 1, 2, 3, 8, 64, 512, self.rng.randint(0, 4096)))
        return self.rng.randbytes(size)

    def truncated_json(self, channel: Channel) -> bytes:
        raw = self.dumps(self.event(channel))
        return raw[: self.rng.randint(0, len(raw) - 1)]

    def invalid_utf8(self, channel: Channel) -> bytes:
        raw = self.dumps(self.event(channel))
        at = self.rng.randint(0, len(raw))
        return raw[:at] + self.rng.choice(BAD_UTF8) + raw[at:]

    def break_type(self, channel: Channel, event: dict[str, Any]) -> None:
        table = {**WRONG_TYPES, **WRONG_TYPES_BY_CHANNEL[channel]}
        path = self.rng.choice(sorted(table))
        _set(event, path, self.rng.choice(table[path]))

    def drop_required(self, channel: Channel, event: dict[str, Any]) -> None:
        options = [(p,) for p in REQUIRED] + list(REQUIRED_BY_CHANNEL[channel])
        for path in self.rng.choice(options):
            _delete(event, path)

    def wrong_type(self, channel: Channel) -> bytes:
        event = self.event(channel)
        self.break_type(channel, event)
        return self.dumps(event)

    def missing_field(self, channel: Channel) -> bytes:
        event = self.event(channel)
        self.drop_required(channel, event)
        return self.dumps(event)

    def extra_fields_and_defect(self, channel: Channel) -> bytes:
        event = self.event(channel)
        for _ in range(self.rng.randint(1, 20)):
            target = event
            if self.rng.random() < 0.3:
                target = event.setdefault("source", {})
                if not isinstance(target, dict):
                    target = event
            target[self.junk_key()] = self.junk_value()
        if self.rng.random() < 0.5:
            self.break_type(channel, event)
        else:
            self.drop_required(channel, event)
        return self.dumps(event)

    def deep_nesting(self, channel: Channel) -> bytes:
        rng = self.rng
        depth = rng.choice(
            (rng.randint(70, 300), rng.randint(300, 1100), rng.randint(1100, 20_000))
        )
        opener, closer = rng.choice(((b"[", b"]"), (b'{"a":', b"}")))
        nested = opener * depth + b"1" + closer * depth
        if rng.random() < 0.3:
            return nested  # not an object, or too deep for any JSON reader
        raw = self.dumps(self.event(channel))
        field = rng.choice((b"extra", b"attributes", b"source"))
        if field == b"attributes":
            nested = b'{"x":' + nested + b"}"
        elif field == b"source":
            nested = b'{"publisher_id":"p","x":' + nested + b"}"
        return raw[:-1] + b',"' + field + b'":' + nested + b"}"

    def bad_value(self, channel: Channel) -> bytes:
        event = self.event(channel)
        path = self.rng.choice(sorted(BAD_VALUES))
        _set(event, path, self.rng.choice(BAD_VALUES[path]))
        return self.dumps(event)

    def not_an_object(self, channel: Channel) -> bytes:
        return self.rng.choice(
            (
                b"null",
                b"true",
                b"42",
                b"-0.0",
                b"1e999",
                b'"just a string"',
                b"[]",
                b"[{}]",
                b" ",
                b"\n",
                self.dumps([self.event(channel)]),
                self.dumps(self.dumps(self.event(channel)).decode()),
            )
        )

    def future_event(self, channel: Channel) -> bytes:
        event = self.event(channel)
        ahead = timedelta(hours=self.rng.uniform(2, 24 * 365 * 50))
        event["occurred_at"] = (self.now + ahead).isoformat()
        return self.dumps(event)

    def huge(self, channel: Channel, size: int) -> tuple[str, bytes]:
        """A payload of about `size` bytes that is poison whatever its size."""
        rng = self.rng
        variant = rng.choice(("field", "field", "raw_text", "json_string", "event_id"))
        filler = rng.choice(("A", "\u00e9", "\u4e2d", "\U0001f600"))
        # Over every length limit of the contract (4,096 characters at most), whatever the
        # filler's width in bytes.
        count = max(5_000, size // len(filler.encode()))
        if variant == "raw_text":
            return "huge_raw_text", (filler * count).encode()
        if variant == "json_string":
            return "huge_json_string", orjson.dumps(filler * (count - 1))
        event = self.event(channel)
        if variant == "event_id":
            event["event_id"] = filler * count
            return "huge_event_id", self.dumps(event)
        path = rng.choice(("contact.first_name", "source.page_url", "source.publisher_id"))
        _set(event, path, filler * count)
        return "huge_bounded_field", self.dumps(event)

    def payloads(self, count: int, huge: int) -> list[Payload]:
        rng = self.rng
        channels: tuple[Channel, ...] = ("form", "call", "click", "trial")
        names = [name for name, _, _ in self.families]
        weights = [weight for _, weight, _ in self.families]
        makers = {name: maker for name, _, maker in self.families}
        out = []
        for i in range(count):
            channel = rng.choice(channels)
            if i < huge:
                # Log-uniform from 5 kB up to the limit, the last one right at it.
                size = (
                    MAX_PAYLOAD
                    if i == huge - 1
                    else int(math.exp(rng.uniform(math.log(5_000), math.log(MAX_PAYLOAD))))
                )
                family, value = self.huge(channel, size)
                value = value[:MAX_PAYLOAD]
            else:
                family = rng.choices(names, weights)[0]
                value = makers[family](channel)
            key_roll = rng.random()
            key = (
                None
                if key_roll < 0.4
                else rng.randbytes(rng.randint(0, 40))
                if key_roll < 0.7
                else str(i).encode()
            )
            out.append(Payload(catalog.INTAKE[channel], key, value, family))
        return out


async def _send(
    bootstrap_servers: str, payloads: list[Payload]
) -> dict[tuple[str, int, int], Payload]:
    """Produce in order; returns where each payload landed."""
    client = producer(bootstrap_servers)
    await client.start()
    try:
        pending = []
        for payload in payloads:
            future = await client.send(payload.topic, payload.value, key=payload.key)
            pending.append((payload, future))
        await client.flush()
        landed = {}
        for payload, future in pending:
            meta = await future
            landed[(meta.topic, meta.partition, meta.offset)] = payload
        return landed
    finally:
        await client.stop()


def test_poison(workers, buyers_file: tuple[Path, dict[str, Buyer]]) -> None:  # type: ignore[no-untyped-def]
    path, buyers = buyers_file
    group = workers(path, partitions=PARTITIONS)
    processes = [group.start(**WORKER_ENV), group.start(**WORKER_ENV)]
    for process in processes:
        wait_ready(group, process)

    now = datetime.now(UTC)
    rng = seeded("poison")
    fuzzer = Fuzzer(rng.randint(0, 2**31), now)
    poison = fuzzer.payloads(POISON, HUGE)
    valid = [
        Payload(e.topic, e.key, e.payload, "valid")
        for e in generate(VALID, rng.randint(0, 2**31), base_time=now, mix=VALID_AND_DUPLICATES)
    ]
    mixed = poison + valid
    rng.shuffle(mixed)
    assert len({p.value for p in poison}) > POISON * 0.8, "the fuzzer repeats itself"

    started = time.monotonic()
    landed = asyncio.run(_send(group.broker.bootstrap_servers, mixed))
    sent = time.monotonic()
    result = audit(group.broker, buyers, group.app_id, since=sent, log_dir=group.log_dir)

    problems: Counter[str] = Counter()
    examples: dict[str, str] = {}

    def problem(kind: str, detail: object) -> None:
        problems[kind] += 1
        examples.setdefault(kind, str(detail)[:300])

    reasons: Counter[str] = Counter()
    families: Counter[str] = Counter()
    for ref, payload in landed.items():
        keys = result.decision_key_of.get(ref, set())
        decisions = [d for key in keys for d in result.decisions[key]]
        if payload.family == "valid":
            if not decisions:
                problem("valid_without_decision", ref)
            elif any(d["outcome"] == "rejected" for d in decisions):
                problem("valid_rejected", (ref, decisions[0]["reasons"]))
            continue
        families[payload.family] += 1
        if not decisions or any(d["outcome"] != "rejected" for d in decisions):
            outcome = [d["outcome"] for d in decisions]
            problem(f"poison_not_rejected:{payload.family}", (ref, outcome, payload.value[:120]))
        elif not all(d["reasons"] for d in decisions):
            problem("rejected_decision_without_reason", ref)
        letters = result.dead_letters.get(ref, [])
        if not letters:
            problem(f"poison_without_dead_letter:{payload.family}", (ref, len(payload.value)))
            continue
        for letter in letters:
            if base64.b64decode(letter["original_b64"]) != payload.value:
                problem("dead_letter_bytes_differ", ref)
            if not letter["reason"]:
                problem("dead_letter_without_reason", ref)
            reasons[letter["reason"].split(":", 1)[0]] += 1

    # Crash lines are already violations of the audit (log_dir); tracebacks are not, but here
    # any is one: garbage in must never make the router print a stack.
    crashes = [
        line
        for p in processes
        for line in agent_failures(log_text(group, p))
        if "Crashed" not in line and "We experienced a crash" not in line
    ]
    alive = [p.poll() is None for p in processes]
    violations = [
        *result.violations,
        *(f"{kind} x{count}: {examples[kind]}" for kind, count in sorted(problems.items())),
        *(f"worker log: {line}" for line in crashes[:5]),
        *([] if all(alive) else [f"worker died: alive={alive}"]),
    ]
    result.violations = violations
    line = result.report(
        "poison",
        poison=sum(families.values()),
        valid=len(landed) - sum(families.values()),
        families=dict(sorted(families.items())),
        dead_letter_reasons=dict(reasons.most_common()),
        largest_payload=max(len(p.value) for p in poison),
        send_s=round(sent - started, 1),
    )
    assert len(landed) == len(mixed)
    assert sum(families.values()) >= 10_000
    assert line["violations"] == []
