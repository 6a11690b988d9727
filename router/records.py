"""Records that flow between stages and onto output topics: frozen, typed, no behaviour.

Public ones (`BuyerLead`, `Decision`, `DeadLetter`, `UnsoldLead`, ...) are part of the contract
and have JSON Schemas in `topics/schemas/`; `Offer` is internal.

They are `msgspec.Struct`s, not pydantic models: a lead is decoded, built and encoded several
times on its way, and msgspec does that about three times faster (docs/performance.md, row
41). Constructors do not validate; decoding (`router/codec.py`) does, and mypy checks the
code that builds them. Upstream's intake events are still validated by pydantic
(`router/contract.py`), for its precise error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from router.contract import Channel, ContactChannel

Outcome = Literal["sold", "unsold", "rejected", "duplicate", "suppressed"]
OUTCOMES: tuple[Outcome, ...] = ("sold", "unsold", "rejected", "duplicate", "suppressed")
FeedbackType = Literal["contacted", "converted", "returned"]
FeedbackOutcome = Literal["credited", "refused", "recorded", "duplicate", "invalid"]
SignalType = Literal["sold", "returned", "converted"]
# msgspec writes no format for datetimes in JSON Schema; the contract should say it.
Instant = Annotated[datetime, Meta(extra_json_schema={"format": "date-time"})]


class Record(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Frozen; decoding refuses unknown fields. Subclasses repeat `frozen` (mypy reads it per
    class) and `kw_only` (msgspec does not inherit it; it lets required fields follow optional
    ones)."""


class IntakeRef(Record, frozen=True, kw_only=True):
    """Where an intake event was read: enough to find its original bytes again."""

    topic: str
    partition: int
    offset: int


class NormalizedContact(Record, frozen=True, kw_only=True):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: Annotated[str | None, Meta(description="E.164")] = None
    phone_line_type: Annotated[
        str | None, Meta(description="phonenumbers line type, e.g. mobile, fixed_line, voip")
    ] = None
    postal_code: str | None = None
    state: str | None = None
    city: str | None = None
    timezone: Annotated[str | None, Meta(description="IANA zone resolved from the ZIP")] = None
    address: str | None = None
    company: str | None = None


class LeadConsent(Record, frozen=True, kw_only=True):
    """The consent an intake event carried (`contract.Consent`), as validated there."""

    text: str | None = None
    captured_at: Instant | None = None
    certificate_id: str | None = None
    sellers: list[str] = msgspec.field(default_factory=list)
    channels: list[ContactChannel] = msgspec.field(default_factory=list)
    extra: Annotated[
        dict[str, Any], Meta(description="Consent fields the contract does not name, kept")
    ] = msgspec.field(default_factory=dict)


class NormalizedLead(Record, frozen=True, kw_only=True):
    lead_id: Annotated[str, Meta(description="Deterministic from event_id (UUIDv5)")]
    event_id: str
    channel: Channel
    vertical: str
    occurred_at: Instant
    received_at: Annotated[Instant, Meta(description="Broker timestamp of the intake record")]
    fingerprint: Annotated[
        str, Meta(description="sha256(phone or email + vertical); the dedup key")
    ]
    source: dict[str, Any]
    contact: NormalizedContact
    consent: LeadConsent | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    channel_details: Annotated[
        dict[str, Any], Meta(description="The channel's own block: call, click or trial")
    ] = msgspec.field(default_factory=dict)
    extra: Annotated[
        dict[str, Any], Meta(description="Top-level fields the contract does not name, kept")
    ] = msgspec.field(default_factory=dict)
    quality_flags: list[str] = msgspec.field(default_factory=list)
    intake: IntakeRef


class Verdict(Record, frozen=True, kw_only=True):
    """Why one buyer did or did not get a lead."""

    buyer_id: str
    reason: str


class Candidate(Record, frozen=True, kw_only=True):
    buyer_id: str
    price: Annotated[
        float, Meta(description="What this buyer pays for this lead, adjustments applied")
    ]
    priority: int
    exclusive_only: bool = False


class Sale(Record, frozen=True, kw_only=True):
    buyer_id: str
    price: float


class Offer(Record, frozen=True, kw_only=True):
    """A lead offered to `candidates[position]`; keyed by that buyer's id.

    It walks down the ranking until `slots_left` buyers bought it (the vertical's
    `max_buyers`) or the candidates run out; `sales` so far travel with it. The buyers left
    out travel grouped by reason: every hop decodes the offer, and one record per left-out
    buyer made that the costliest decode of the pipeline (docs/performance.md).
    """

    lead: NormalizedLead
    score: int
    score_reasons: list[str]
    candidates: list[Candidate]
    position: int = 0
    max_buyers: int = 1
    slots_left: int = 1
    sales: list[Sale] = msgspec.field(default_factory=list)
    left_out: Annotated[
        dict[str, list[str]],
        Meta(description="Buyer ids screening left out, by reason (`matching.left_out`)"),
    ] = msgspec.field(default_factory=dict)
    verdicts: Annotated[
        list[Verdict], Meta(description="The candidates' answers so far, in the order asked")
    ] = msgspec.field(default_factory=list)


class Timings(Record, frozen=True, kw_only=True):
    occurred_at: Instant | None = None
    received_at: Instant | None = None
    decided_at: Instant
    pipeline_ms: Annotated[
        float | None, Meta(description="decided_at - received_at, in milliseconds")
    ] = None


class Decision(Record, frozen=True, kw_only=True):
    """Exactly one per intake event on `leads.decisions`: the audit trail."""

    event_id: Annotated[
        str | None, Meta(description="None only when the payload had no readable id")
    ]
    lead_id: str | None = None
    outcome: Outcome
    buyers: list[str] = msgspec.field(default_factory=list)
    price: Annotated[float | None, Meta(description="Total charged over all buyers")] = None
    sales: Annotated[list[Sale], Meta(description="Each buyer and its price")] = msgspec.field(
        default_factory=list
    )
    reasons: list[str] = msgspec.field(default_factory=list)
    considered: list[Verdict] = msgspec.field(default_factory=list)
    score: int | None = None
    score_reasons: list[str] = msgspec.field(default_factory=list)
    channel: str
    vertical: str | None = None
    intake: IntakeRef
    timings: Timings


class BuyerLead(NormalizedLead, frozen=True, kw_only=True):
    """The value written to `buyer.<buyer_id>`, keyed by lead_id."""

    buyer_id: str
    price: float
    score: int
    sold_at: Instant
    exclusive: Annotated[bool, Meta(description="True when no other buyer can get this lead")]


class Feedback(Record, frozen=True, kw_only=True):
    """A buyer's word on a lead it bought, on `buyers.feedback`, keyed by buyer_id."""

    lead_id: str
    buyer_id: str
    type: FeedbackType
    reason: str | None = None
    at: Instant


class FeedbackResult(Record, frozen=True, kw_only=True):
    """What the router did with one feedback event, on `buyers.feedback.results`."""

    lead_id: str
    buyer_id: str
    type: FeedbackType
    result: FeedbackOutcome
    reason: Annotated[
        str | None,
        Meta(description="Why: late, over_limit, unknown_lead, unknown_buyer, key_is_not_buyer_id"),
    ] = None
    decided_at: Instant


class CallEvent(Record, frozen=True, kw_only=True):
    """A live call's end, on `intent.call.events`, keyed by buyer_id; frees its slot."""

    type: Literal["call.ended"]
    lead_id: str
    buyer_id: str
    at: Instant


class Suppression(Record, frozen=True, kw_only=True):
    """An opt-out on `consumers.suppression`, keyed by the SHA-256 of the phone or email."""

    kind: Literal["phone", "email"]
    reason: str
    added_at: Instant


class PublisherSignal(Record, frozen=True, kw_only=True):
    """One sale, return or conversion of a publisher's lead, keyed by publisher_id."""

    publisher_id: str
    lead_id: str
    buyer_id: str
    type: SignalType


class PublisherSignals(Record, frozen=True, kw_only=True):
    """One publisher's signals from one batch of the buyer desk, on `publishers.signals`,
    keyed by publisher_id: one message per publisher and batch instead of one per signal."""

    publisher_id: str
    signals: list[PublisherSignal]


class PublisherQuality(Record, frozen=True, kw_only=True):
    """A publisher's track record, on `publishers.quality` (compacted, keyed by publisher)."""

    publisher_id: str
    sold: int
    returned: int
    converted: int


class DeadLetter(Record, frozen=True, kw_only=True):
    """A malformed intake event on `leads.rejected`, with its original bytes."""

    original_b64: str
    topic: str
    partition: int
    offset: int
    reason: str
    field: Annotated[str | None, Meta(description="Dotted path of the offending field, if one")]
    event_id: str | None = None
    rejected_at: Instant


class UnsoldLead(Record, frozen=True, kw_only=True):
    """A valid lead that found no buyer, on `leads.unsold`."""

    lead: NormalizedLead
    score: int
    verdicts: list[Verdict]
    decided_at: Instant


class Rejection(Record, frozen=True, kw_only=True):
    """Why `normalize` refused an intake payload (internal; becomes a DeadLetter)."""

    reason: Annotated[
        str, Meta(description="Short code, e.g. invalid_json, missing_field, invalid_phone")
    ]
    field: Annotated[str | None, Meta(description="Dotted path, e.g. contact.phone")] = None
    message: Annotated[str, Meta(description="Human-readable detail")]
    event_id: str | None = None


class Score(Record, frozen=True, kw_only=True):
    value: Annotated[int, Meta(ge=0, le=100)]
    reasons: Annotated[
        list[str], Meta(description="Reason codes with their points, e.g. channel:call+35")
    ]


@dataclass(frozen=True, slots=True)
class Emit:
    """One record a stage wants written; the agent only sends it."""

    topic: str
    key: str | None
    value: Record
