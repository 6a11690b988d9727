from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from router.agents import current_events

pytestmark = pytest.mark.unit


def event(offset: int, generation_id: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(offset=offset, generation_id=generation_id))


def test_a_batch_keeps_only_the_events_of_the_current_consumer_generation() -> None:
    # Records buffered before a rebalance belong to whoever holds the partition now.
    batch = [event(1, 4), event(2, 5), event(3, 4), event(4, 5)]
    assert [e.message.offset for e in current_events(batch, 5)] == [2, 4]
    assert current_events(batch, 6) == []
