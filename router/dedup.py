"""Duplicate detection per consumer fingerprint, by event time, replay-safe.

State per fingerprint is the set of event ids admitted (not duplicates) with their event
times. A replayed admitted event finds itself and is admitted again, so a crash between
the table write and the offset commit never turns an original into a duplicate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from router.records import Record

# Bounds the state of a fingerprint that keeps reappearing over a long time.
MAX_ADMITTED = 32

DedupState = dict[str, str]  # event_id -> occurred_at (ISO 8601)


class DedupVerdict(Record, frozen=True, kw_only=True):
    duplicate_of: str | None = None


def check(
    event_id: str, occurred_at: datetime, state: DedupState, window: timedelta
) -> tuple[DedupVerdict, DedupState]:
    """Return the verdict and the new state (a new dict: table values are never mutated)."""
    if event_id in state:
        return DedupVerdict(), state
    times = {eid: datetime.fromisoformat(at) for eid, at in state.items()}
    within = sorted((at, eid) for eid, at in times.items() if abs(occurred_at - at) < window)
    if within:
        return DedupVerdict(duplicate_of=within[0][1]), state
    times[event_id] = occurred_at
    # Bound by count, never by age relative to the newest event: an age cut-off forgets
    # events that a replay (after a crash) still needs to be judged the same way.
    # Admitted events are at least one window apart, so the bound spans MAX_ADMITTED windows.
    kept = sorted(((at, eid) for eid, at in times.items()), reverse=True)[:MAX_ADMITTED]
    return DedupVerdict(), {eid: at.isoformat() for at, eid in kept}
