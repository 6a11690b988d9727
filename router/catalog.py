"""Every topic the router reads or writes, declared once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel

from router import buyers, contract, records
from router.contract import CHANNELS, Channel

INTAKE: dict[Channel, str] = {channel: f"intent.{channel}" for channel in CHANNELS}
SCREEN = "leads.screen"
OFFERS = "leads.offers"
DECISIONS = "leads.decisions"
REJECTED = "leads.rejected"
UNSOLD = "leads.unsold"
# The control plane: compacted, read whole by every worker.
BUYERS_CONFIG = "buyers.config"
SUPPRESSION = "consumers.suppression"
PUBLISHER_QUALITY = "publishers.quality"
# Keyed by buyer id, so they land on the partition that holds that buyer's caps.
FEEDBACK = "buyers.feedback"
FEEDBACK_RESULTS = "buyers.feedback.results"
CALL_EVENTS = "intent.call.events"
PUBLISHER_SIGNALS = "publishers.signals"

DEDUP_TABLE = "dedup"
CAPS_TABLE = "caps"
PUBLISHERS_TABLE = "publishers"

DAY_MS = 86_400_000
# A dead letter carries the original bytes in base64 (4/3 of their size) plus metadata, so it
# must be allowed to be larger than the largest intake record (Kafka's default is ~1 MB).
DEAD_LETTER_MAX_BYTES = 4 * 1024 * 1024


def buyer_topic(buyer_id: str) -> str:
    return f"buyer.{buyer_id}"


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's own naming for a table's changelog."""
    return f"{app_id}-{table}-changelog"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    role: str  # intake, internal, output, changelog
    key: str
    description: str
    value: type[BaseModel] | type[records.Record] | None = None
    configs: dict[str, str] = field(default_factory=dict)


def _intake_specs() -> list[TopicSpec]:
    return [
        TopicSpec(
            name=topic,
            role="intake",
            key="event_id (any key is accepted)",
            description=f"Capture events from the {channel} channel",
            value=contract.INTAKE_MODELS[channel],
            configs={"retention.ms": str(7 * DAY_MS)},
        )
        for channel, topic in INTAKE.items()
    ]


def catalog(app_id: str, buyer_ids: Iterable[str] = ()) -> tuple[TopicSpec, ...]:
    """All topics, with buyer topics for the given buyers."""
    fixed = [
        *_intake_specs(),
        TopicSpec(
            SCREEN,
            "internal",
            "consumer fingerprint",
            "Normalized leads repartitioned for dedup",
            records.NormalizedLead,
            {"retention.ms": str(DAY_MS)},
        ),
        TopicSpec(
            OFFERS,
            "internal",
            "buyer_id",
            "A lead offered to one buyer; the cap keeper's input",
            records.Offer,
            {"retention.ms": str(DAY_MS)},
        ),
        TopicSpec(
            DECISIONS,
            "output",
            "event_id",
            "Exactly one decision per intake event: the audit trail",
            records.Decision,
            {"retention.ms": str(30 * DAY_MS)},
        ),
        TopicSpec(
            REJECTED,
            "output",
            "event_id, or topic/partition/offset when unreadable",
            "Dead letters with original bytes and reason",
            records.DeadLetter,
            {"retention.ms": str(30 * DAY_MS), "max.message.bytes": str(DEAD_LETTER_MAX_BYTES)},
        ),
        TopicSpec(
            UNSOLD,
            "output",
            "lead_id",
            "Leads no buyer took, with each candidate's reason",
            records.UnsoldLead,
            {"retention.ms": str(7 * DAY_MS)},
        ),
        TopicSpec(
            BUYERS_CONFIG,
            "control",
            "buyer_id, or vertical:<name> for a vertical's policy",
            "Live buyer definitions and distribution policies (router buyers apply)",
            buyers.Buyer,
            {"cleanup.policy": "compact"},
        ),
        TopicSpec(
            SUPPRESSION,
            "control",
            "sha256 of the E.164 phone or the lower-cased email",
            "Opt-outs and do-not-contact entries (router suppress)",
            records.Suppression,
            {"cleanup.policy": "compact"},
        ),
        TopicSpec(
            FEEDBACK,
            "feedback",
            "buyer_id",
            "Buyers' contacted, converted and returned events",
            records.Feedback,
            {"retention.ms": str(30 * DAY_MS)},
        ),
        TopicSpec(
            FEEDBACK_RESULTS,
            "output",
            "lead_id",
            "What the router did with each feedback event (credited or refused, and why)",
            records.FeedbackResult,
            {"retention.ms": str(30 * DAY_MS)},
        ),
        TopicSpec(
            CALL_EVENTS,
            "feedback",
            "buyer_id",
            "call.ended events that free a buyer's live-call slot",
            records.CallEvent,
            {"retention.ms": str(7 * DAY_MS)},
        ),
        TopicSpec(
            PUBLISHER_SIGNALS,
            "internal",
            "publisher_id",
            "Sales, returns and conversions per publisher, for source quality: one record per"
            " publisher and buyer-desk batch",
            records.PublisherSignals,
            {"retention.ms": str(DAY_MS)},
        ),
        TopicSpec(
            PUBLISHER_QUALITY,
            "control",
            "publisher_id",
            "Each publisher's track record; every worker reads it for scoring",
            records.PublisherQuality,
            {"cleanup.policy": "compact"},
        ),
        TopicSpec(
            changelog_topic(app_id, PUBLISHERS_TABLE),
            "changelog",
            "publisher_id and signal ids",
            "Faust changelog of the publisher track-record table",
            None,
            {"cleanup.policy": "compact"},
        ),
        TopicSpec(
            changelog_topic(app_id, DEDUP_TABLE),
            "changelog",
            "consumer fingerprint",
            "Faust changelog of the dedup table",
            None,
            {"cleanup.policy": "compact"},
        ),
        TopicSpec(
            changelog_topic(app_id, CAPS_TABLE),
            "changelog",
            "buyer_id|window or buyer_id|lead|lead_id",
            "Faust changelog of the cap table",
            None,
            {"cleanup.policy": "compact"},
        ),
    ]
    per_buyer = [
        TopicSpec(
            buyer_topic(buyer_id),
            "output",
            "lead_id",
            f"Leads sold to buyer {buyer_id}",
            records.BuyerLead,
            {"retention.ms": str(7 * DAY_MS)},
        )
        for buyer_id in sorted(buyer_ids)
    ]
    return (*fixed, *per_buyer)
