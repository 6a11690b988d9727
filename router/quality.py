"""A publisher's track record (sales, returns, conversions) and what it does to a lead's score.

Buyers' feedback is the ground truth on lead quality: a publisher whose leads keep coming back
scores lower, one whose leads convert scores higher. Too few sales say nothing, so a
publisher needs `MIN_SOLD` sales before its record counts.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from datetime import datetime

import msgspec

from router import catalog, codec
from router.records import Emit, PublisherQuality, PublisherSignal, PublisherSignals

MIN_SOLD = 20
RETURN_PENALTY_MAX = 30  # points off at a 100 % return rate
CONVERSION_BONUS_MAX = 10  # points on at a 100 % conversion rate


def empty(publisher_id: str) -> PublisherQuality:
    return PublisherQuality(publisher_id=publisher_id, sold=0, returned=0, converted=0)


def record(stats: PublisherQuality, signal: PublisherSignal) -> PublisherQuality:
    """Count one signal. Replays are filtered by the caller (one signal per lead, buyer, type)."""
    field = {"sold": "sold", "returned": "returned", "converted": "converted"}[signal.type]
    return msgspec.structs.replace(stats, **{field: getattr(stats, field) + 1})


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


SEEN_PREFIX = "seen|"


def seen_key(signal: PublisherSignal) -> str:
    return SEEN_PREFIX + signal_key(signal)


def publisher_of(key: str) -> str:
    """The publisher a table key belongs to (its stats or one of its seen marks): the key
    of its signals' records, and so what places the key on a partition."""
    kind, _, rest = key.partition("|")
    if kind == "seen":
        # publisher|type|buyer|lead: only the publisher id may hold a "|".
        return rest.rsplit("|", 3)[0]
    return rest


def bundle(emits: Sequence[Emit]) -> list[Emit]:
    """A batch's records with its publisher signals grouped per publisher.

    The other records keep their order; each publisher's signals follow them as one
    `PublisherSignals`, in the order they were made, publishers in order of first signal.
    """
    records: list[Emit] = []
    by_publisher: dict[str, list[PublisherSignal]] = {}
    for emit in emits:
        if isinstance(emit.value, PublisherSignal):
            by_publisher.setdefault(emit.value.publisher_id, []).append(emit.value)
        else:
            records.append(emit)
    records.extend(
        Emit(
            catalog.PUBLISHER_SIGNALS,
            publisher,
            PublisherSignals(publisher_id=publisher, signals=signals),
        )
        for publisher, signals in by_publisher.items()
    )
    return records


def read_signals(raw: bytes) -> PublisherSignals:
    """A record of `publishers.signals`: a bundle, or one signal as versions before bundles
    wrote them (still on the topic right after an upgrade)."""
    try:
        return codec.decode(PublisherSignals, raw)
    except codec.Unreadable:
        single = codec.decode(PublisherSignal, raw)
        return PublisherSignals(publisher_id=single.publisher_id, signals=[single])


# Every worker reads `publishers.quality`; publishing each signal's count would cost one more
# message per sale. A record is republished when its score effect changes, and otherwise each
# time its count of signals passes a multiple of PUBLISH_EVERY, so the counts shown stay
# roughly current.
PUBLISH_EVERY = 50


def _signals_counted(stats: PublisherQuality) -> int:
    return stats.sold + stats.returned + stats.converted


def worth_publishing(before: PublisherQuality | None, after: PublisherQuality) -> bool:
    if before is None or adjustments(before) != adjustments(after):
        return True
    return _signals_counted(before) // PUBLISH_EVERY != _signals_counted(after) // PUBLISH_EVERY


def absorb(
    signals: Sequence[PublisherSignal],
    stats: PublisherQuality | None,
    seen: Set[str],
    now: datetime,
) -> tuple[list[tuple[str, object]], PublisherQuality | None]:
    """Table writes for one publisher's signals (its stats, then a seen mark per signal
    counted, holding when: `router/retention.py` forgets it later) and the record to
    publish, if any.

    `seen` holds the `seen_key`s of the signals already counted: replays, duplicates and
    repeats within `signals` count once, and a bundle with nothing new writes nothing.
    """
    counted: dict[str, None] = {}  # ordered, so the writes come out the same on a replay
    updated = stats
    for signal in signals:
        key = seen_key(signal)
        if key in seen or key in counted:
            continue
        counted[key] = None
        updated = record(updated or empty(signal.publisher_id), signal)
    if updated is None or not counted:
        return [], None
    writes: list[tuple[str, object]] = [
        (stats_key(updated.publisher_id), codec.to_builtins(updated))
    ]
    counted_at = now.isoformat()
    writes.extend((key, counted_at) for key in counted)
    return writes, updated if worth_publishing(stats, updated) else None
