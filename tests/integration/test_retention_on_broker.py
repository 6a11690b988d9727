"""The retention sweep on a real worker: expired dedup state is deleted from the table and
tombstoned in its changelog; state still in use is kept."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from conftest import read, wait_for
from test_marketplace import TWO_SOLAR_BUYERS, decision_of, send, write

from router import catalog

pytestmark = pytest.mark.integration


def form_lead(phone: str, occurred_at: datetime) -> tuple[str, bytes]:
    event_id = str(uuid.uuid4())
    event = {
        "event_id": event_id,
        "occurred_at": occurred_at.isoformat(),
        "vertical": "solar",
        "source": {"publisher_id": "pub-1"},
        "contact": {"phone": phone, "postal_code": "10001", "state": "NY"},
    }
    return event_id, orjson.dumps(event)


def test_dedup_state_past_its_retention_is_deleted_and_state_in_use_kept(
    workers, tmp_path: Path
) -> None:
    group = workers(write(tmp_path / "buyers.yaml", TWO_SOLAR_BUYERS))
    # A one-hour dedup window kept a minute longer, swept every second.
    group.start(
        ROUTER_DEDUP_WINDOW_S="3600", ROUTER_STATE_RETENTION_S="60", ROUTER_SWEEP_INTERVAL_S="1"
    )
    broker = group.broker
    now = datetime.now(UTC)
    old_id, old = form_lead("2125550101", now - timedelta(days=3))
    new_id, new = form_lead("2125550102", now)
    send(broker, (catalog.INTAKE["form"], old_id.encode(), old))
    send(broker, (catalog.INTAKE["form"], new_id.encode(), new))
    for event_id in (old_id, new_id):
        assert decision_of(broker, event_id).outcome != "duplicate"

    changelog = f"{group.app_id}-{catalog.DEDUP_TABLE}-changelog"

    def old_state_tombstoned() -> tuple[bool, object]:
        records = read(broker, changelog)
        written = {r.key: (r.partition, orjson.loads(r.value)) for r in records if r.value}
        deleted = {r.key: r.partition for r in records if r.value is None}
        owner = {event: key for key, (_, state) in written.items() for event in state}
        return owner.get(old_id) in deleted, (written, deleted, owner)

    found = wait_for(old_state_tombstoned, timeout=60, interval=0.5)
    written, deleted, owner = found  # type: ignore[misc]
    assert owner[new_id] not in deleted, "state within the window and its retention is kept"
    assert list(deleted) == [owner[old_id]]
    assert deleted[owner[old_id]] == written[owner[old_id]][0], "tombstoned where it was written"

    # The consumer whose state was kept is still deduplicated. The forgotten one is gone from
    # the table too: a lead dated inside its old window is no longer its duplicate.
    again_id, again = form_lead("2125550102", now + timedelta(minutes=1))
    late_id, late = form_lead("2125550101", now - timedelta(days=3) + timedelta(minutes=1))
    send(broker, (catalog.INTAKE["form"], again_id.encode(), again))
    send(broker, (catalog.INTAKE["form"], late_id.encode(), late))
    assert decision_of(broker, again_id).outcome == "duplicate"
    assert decision_of(broker, late_id).outcome != "duplicate"
