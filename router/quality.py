"""A publisher's track record (sales, returns, conversions) and what it does to a lead's score.

Buyers' feedback is the ground truth on lead quality: a publisher whose leads keep coming back
scores lower, one whose leads convert scores higher. Too few sales say nothing, so a
publisher needs `MIN_SOLD` sales before its record counts.
"""

from __future__ import annotations

from router.records import PublisherQuality, PublisherSignal

MIN_SOLD = 20
RETURN_PENALTY_MAX = 30  # points off at a 100 % return rate
CONVERSION_BONUS_MAX = 10  # points on at a 100 % conversion rate


def empty(publisher_id: str) -> PublisherQuality:
    return PublisherQuality(publisher_id=publisher_id, sold=0, returned=0, converted=0)


def record(stats: PublisherQuality, signal: PublisherSignal) -> PublisherQuality:
    """Count one signal. Replays are filtered by the caller (one signal per lead, buyer, type)."""
    field = {"sold": "sold", "returned": "returned", "converted": "converted"}[signal.type]
    return stats.model_copy(update={field: getattr(stats, field) + 1})


def signal_key(signal: PublisherSignal) -> str:
    """Identity of a signal: the same sale, return or conversion seen twice counts once."""
    return f"{signal.publisher_id}|{signal.type}|{signal.buyer_id}|{signal.lead_id}"


def adjustments(stats: PublisherQuality | None) -> list[tuple[str, int]]:
    """Score points from the publisher's record, as (reason code, points)."""
    if stats is None or stats.sold < MIN_SOLD:
        return []
    found = []
    returns = round(RETURN_PENALTY_MAX * min(1.0, stats.returned / stats.sold))
    if returns:
        found.append(("publisher:returns", -returns))
    conversions = round(CONVERSION_BONUS_MAX * min(1.0, stats.converted / stats.sold))
    if conversions:
        found.append(("publisher:conversions", conversions))
    return found


def stats_key(publisher_id: str) -> str:
    return f"stats|{publisher_id}"


def seen_key(signal: PublisherSignal) -> str:
    return f"seen|{signal_key(signal)}"


# Every worker reads `publishers.quality`; publishing each signal's count would cost one more
# message per sale. A record is republished when its score effect changes, and otherwise at
# most every PUBLISH_EVERY signals so the counts shown stay roughly current.
PUBLISH_EVERY = 50


def worth_publishing(before: PublisherQuality | None, after: PublisherQuality) -> bool:
    if before is None or adjustments(before) != adjustments(after):
        return True
    return (after.sold + after.returned + after.converted) % PUBLISH_EVERY == 0


def absorb(
    signal: PublisherSignal, stats: PublisherQuality | None, seen: bool
) -> tuple[list[tuple[str, object]], PublisherQuality | None]:
    """Table writes for one signal (the stats, then the seen mark) and the record to publish,
    if any; nothing for a signal already counted, so replays and duplicates count once."""
    if seen:
        return [], None
    updated = record(stats or empty(signal.publisher_id), signal)
    writes: list[tuple[str, object]] = [
        (stats_key(signal.publisher_id), updated.model_dump()),
        (seen_key(signal), True),
    ]
    return writes, updated if worth_publishing(stats, updated) else None
