"""`router explain`: one decision told in plain words.

`render` is pure; `find_decision` reads `leads.decisions` for the latest record of an event.
"""

from __future__ import annotations

from typing import Any

import orjson

from router import codec
from router.catalog import DECISIONS
from router.records import Decision
from router.views import scan

_VERDICTS = {
    "closed": "was closed",
    "budget": "had spent its budget",
    "consent": "is not named in the consumer's consent",
    "outbid": "was ranked below the buyer that got it",
    "slots_full": "had no free call slot",
    "sold": "bought it",
    "paused": "is paused",
}

_OUTCOMES = {
    "unsold": "not sold",
    "rejected": "rejected",
    "duplicate": "a duplicate of an earlier lead, not offered again",
    "suppressed": "suppressed: the consumer asked not to be contacted",
}


def reason_text(reason: str) -> str:
    """A buyer's verdict code in words; a code it does not know, as it is."""
    if reason.startswith("filtered:"):
        return f"did not match its {reason.removeprefix('filtered:')} filter"
    if reason.startswith("consent:"):
        return f"may not contact the consumer by {reason.removeprefix('consent:')}"
    if reason.startswith("capped:"):
        return f"had reached its {reason.removeprefix('capped:')} cap"
    return _VERDICTS.get(reason, reason)


def _money(amount: float) -> str:
    return f"${amount:,.2f}"


def _listed(names: list[str]) -> str:
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def render(decision: Decision) -> str:
    """The decision's story: outcome, buyers, price, then one line per buyer considered."""
    # Decisions written before per-buyer prices existed carry no `sales`.
    prices = {sale.buyer_id: sale.price for sale in getattr(decision, "sales", None) or ()}
    subject = f"Event {decision.event_id}"
    if decision.lead_id:
        subject += f" (lead {decision.lead_id})"
    if decision.outcome == "sold":
        sold = _listed(decision.buyers) or "nobody"
        price = f" for {_money(decision.price)}" if decision.price is not None else ""
        if len(decision.buyers) > 1 and decision.price is not None:
            price += " in all"
        headline = f"{subject}: sold to {sold}{price}."
    else:
        headline = f"{subject}: {_OUTCOMES.get(decision.outcome, decision.outcome)}."
    lines = [headline]
    about = [f"Channel {decision.channel}"]
    if decision.vertical:
        about.append(f"vertical {decision.vertical}")
    if decision.score is not None:
        about.append(f"score {decision.score}")
    lines.append(", ".join(about) + ".")
    if decision.score_reasons:
        lines.append(f"Score from: {', '.join(decision.score_reasons)}.")
    if decision.reasons:
        lines.append(f"Why: {', '.join(decision.reasons)}.")
    if decision.considered:
        lines.append("Buyers considered:")
        for verdict in decision.considered:
            text = reason_text(verdict.reason)
            if verdict.reason == "sold" and verdict.buyer_id in prices:
                text += f" for {_money(prices[verdict.buyer_id])}"
            lines.append(f"  - {verdict.buyer_id} {text}.")
    elif decision.outcome in ("sold", "unsold"):
        lines.append("No buyer was considered.")
    return "\n".join(lines)


def parse_decision(raw: bytes) -> Decision:
    """A decision record, ignoring fields this version does not know (newer writers)."""
    data: Any = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("a decision record must be a JSON object")
    known = {key: value for key, value in data.items() if key in Decision.__struct_fields__}
    return codec.convert(Decision, known)


async def find_decision(
    bootstrap_servers: str,
    event_id: str,
    *,
    topic: str = DECISIONS,
    verify_end_offsets: bool = False,
    timeout_s: float = 120.0,
) -> Decision | None:
    """The latest decision recorded for `event_id`, or None.

    Decisions are keyed by event_id, so only the partition that key hashes to is read.
    Raises ValueError if the latest record for it is not a readable decision.
    """
    key = event_id.encode()
    latest: bytes | None = None
    async for records in scan(
        bootstrap_servers,
        topic,
        partition_for_key=key,
        verify_end_offsets=verify_end_offsets,
        timeout_s=timeout_s,
    ):
        for record in records:
            if record.key == key and record.value is not None:
                latest = record.value
    if latest is None:
        return None
    try:
        return parse_decision(latest)
    except (orjson.JSONDecodeError, codec.Unreadable) as exc:
        raise ValueError(f"the decision recorded for {event_id!r} is not readable: {exc}") from None
