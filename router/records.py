"""Records that flow between stages and onto output topics: frozen, typed, no behaviour.

Public ones (`BuyerLead`, `Decision`, `DeadLetter`, `UnsoldLead`) are part of the contract and
have JSON Schemas in `topics/schemas/`; `Offer` and `ScreenedLead` are internal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from router.contract import Channel, Consent

Outcome = Literal["sold", "unsold", "rejected", "duplicate", "suppressed"]
OUTCOMES: tuple[Outcome, ...] = ("sold", "unsold", "rejected", "duplicate", "suppressed")
FeedbackType = Literal["contacted", "converted", "returned"]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IntakeRef(Record):
    """Where an intake event was read: enough to find its original bytes again."""

    topic: str
    partition: int
    offset: int


class NormalizedContact(Record):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = Field(default=None, description="E.164")
    phone_line_type: str | None = Field(
        default=None, description="phonenumbers line type, e.g. mobile, fixed_line, voip"
    )
    postal_code: str | None = None
    state: str | None = None
    city: str | None = None
    timezone: str | None = Field(default=None, description="IANA zone resolved from the ZIP")
    address: str | None = None
    company: str | None = None


class NormalizedLead(Record):
    lead_id: str = Field(description="Deterministic from event_id (UUIDv5)")
    event_id: str
    channel: Channel
    vertical: str
    occurred_at: datetime
    received_at: datetime = Field(description="Broker timestamp of the intake record")
    fingerprint: str = Field(description="sha256(phone or email + vertical); the dedup key")
    source: dict[str, Any]
    contact: NormalizedContact
    consent: Consent | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    channel_details: dict[str, Any] = Field(
        default_factory=dict, description="The channel's own block: call, click or trial"
    )
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Top-level fields the contract does not name, kept"
    )
    quality_flags: list[str] = Field(default_factory=list)
    intake: IntakeRef


class Verdict(Record):
    """Why one buyer did or did not get a lead."""

    buyer_id: str
    reason: str


class Candidate(Record):
    buyer_id: str
    price: float = Field(description="What this buyer pays for this lead, adjustments applied")
    priority: int
    exclusive_only: bool = False


class Sale(Record):
    buyer_id: str
    price: float


class Offer(Record):
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
    sales: list[Sale] = Field(default_factory=list)
    left_out: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Buyer ids screening left out, by reason (`matching.left_out`)",
    )
    verdicts: list[Verdict] = Field(
        default_factory=list, description="The candidates' answers so far, in the order asked"
    )


class Timings(Record):
    occurred_at: datetime | None = None
    received_at: datetime | None = None
    decided_at: datetime
    pipeline_ms: float | None = Field(
        default=None, description="decided_at - received_at, in milliseconds"
    )


class Decision(Record):
    """Exactly one per intake event on `leads.decisions`: the audit trail."""

    event_id: str | None = Field(description="None only when the payload had no readable id")
    lead_id: str | None = None
    outcome: Outcome
    buyers: list[str] = Field(default_factory=list)
    price: float | None = Field(default=None, description="Total charged over all buyers")
    sales: list[Sale] = Field(default_factory=list, description="Each buyer and its price")
    reasons: list[str] = Field(default_factory=list)
    considered: list[Verdict] = Field(default_factory=list)
    score: int | None = None
    score_reasons: list[str] = Field(default_factory=list)
    channel: str
    vertical: str | None = None
    intake: IntakeRef
    timings: Timings


class BuyerLead(NormalizedLead):
    """The value written to `buyer.<buyer_id>`, keyed by lead_id."""

    buyer_id: str
    price: float
    score: int
    sold_at: datetime
    exclusive: bool = Field(description="True when no other buyer can get this lead")


class Feedback(Record):
    """A buyer's word on a lead it bought, on `buyers.feedback`, keyed by buyer_id."""

    lead_id: str
    buyer_id: str
    type: FeedbackType
    reason: str | None = None
    at: datetime


class FeedbackResult(Record):
    """What the router did with one feedback event, on `buyers.feedback.results`."""

    lead_id: str
    buyer_id: str
    type: FeedbackType
    result: Literal["credited", "refused", "recorded", "duplicate", "invalid"]
    reason: str | None = Field(
        default=None,
        description="Why: late, over_limit, unknown_lead, unknown_buyer, key_is_not_buyer_id",
    )
    decided_at: datetime


class CallEvent(Record):
    """A live call's end, on `intent.call.events`, keyed by buyer_id; frees its slot."""

    type: Literal["call.ended"]
    lead_id: str
    buyer_id: str
    at: datetime


class Suppression(Record):
    """An opt-out on `consumers.suppression`, keyed by the SHA-256 of the phone or email."""

    kind: Literal["phone", "email"]
    reason: str
    added_at: datetime


class PublisherSignal(Record):
    """One sale, return or conversion of a publisher's lead, keyed by publisher_id."""

    publisher_id: str
    lead_id: str
    buyer_id: str
    type: Literal["sold", "returned", "converted"]


class PublisherSignals(Record):
    """One publisher's signals from one batch of the buyer desk, on `publishers.signals`,
    keyed by publisher_id: one message per publisher and batch instead of one per signal."""

    publisher_id: str
    signals: list[PublisherSignal]


class PublisherQuality(Record):
    """A publisher's track record, on `publishers.quality` (compacted, keyed by publisher)."""

    publisher_id: str
    sold: int
    returned: int
    converted: int


class DeadLetter(Record):
    """A malformed intake event on `leads.rejected`, with its original bytes."""

    original_b64: str
    topic: str
    partition: int
    offset: int
    reason: str
    field: str | None = Field(description="Dotted path of the offending field, if one")
    event_id: str | None = None
    rejected_at: datetime


class UnsoldLead(Record):
    """A valid lead that found no buyer, on `leads.unsold`."""

    lead: NormalizedLead
    score: int
    verdicts: list[Verdict]
    decided_at: datetime


class Rejection(Record):
    """Why `normalize` refused an intake payload (internal; becomes a DeadLetter)."""

    reason: str = Field(description="Short code, e.g. invalid_json, missing_field, invalid_phone")
    field: str | None = Field(default=None, description="Dotted path, e.g. contact.phone")
    message: str = Field(description="Human-readable detail")
    event_id: str | None = None


class Score(Record):
    value: int = Field(ge=0, le=100)
    reasons: list[str] = Field(description="Reason codes with their points, e.g. channel:call+35")


@dataclass(frozen=True, slots=True)
class Emit:
    """One record a stage wants written; the agent only sends it."""

    topic: str
    key: str | None
    value: Record
