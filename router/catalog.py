"""Every topic the router reads or writes, declared once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel

from router import contract, records
from router.contract import CHANNELS, Channel

INTAKE: dict[Channel, str] = {channel: f"intent.{channel}" for channel in CHANNELS}
SCREEN = "leads.screen"
OFFERS = "leads.offers"
DECISIONS = "leads.decisions"
REJECTED = "leads.rejected"
UNSOLD = "leads.unsold"

DEDUP_TABLE = "dedup"
CAPS_TABLE = "caps"

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
    value: type[BaseModel] | None = None
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
            "buyer_id|local day",
            "Faust changelog of the cap table",
            None,
            {"cleanup.policy": "compact"},
        ),
    ]
    buyers = [
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
    return (*fixed, *buyers)
