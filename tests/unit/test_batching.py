from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from router.batching import Source, batches, current_events

pytestmark = pytest.mark.unit


@dataclass(eq=False)
class FakeMessage:
    offset: int
    generation_id: int = 1
    topic: str = "intent.form"
    tracked: bool = False


@dataclass(eq=False)
class FakeEvent:
    message: FakeMessage
    acks: list[int] = field(default_factory=list)

    def ack(self) -> bool:
        self.acks.append(self.message.offset)
        return True


def event(offset: int, generation_id: int = 1) -> Any:
    return FakeEvent(FakeMessage(offset, generation_id))


@dataclass
class World:
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    active: bool = True
    generation_id: int = 1
    unacked: set[Any] = field(default_factory=set)

    def source(self) -> Source:
        return Source(
            queue=self.queue,
            flow_active=lambda: self.active,
            generation=lambda: self.generation_id,
            acking_topics=frozenset({"intent.form"}),
            unacked=self.unacked,
        )


async def no_wait(_seconds: float) -> None:
    return None


async def let_run(turns: int = 10) -> None:
    """Give the batches generator's task a few turns of the loop (the fakes never block)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def take(world: World, most: int = 3, sleep: Callable[..., Any] = no_wait) -> list[Any]:
    it = batches(world.source(), most, 0.01, sleep)
    return await asyncio.wait_for(it.__anext__(), 5)


def test_a_batch_keeps_only_the_events_of_the_current_consumer_generation() -> None:
    # Records buffered before a rebalance belong to whoever holds the partition now.
    batch = [event(1, 4), event(2, 5), event(3, 4), event(4, 5)]
    assert [e.message.offset for e in current_events(batch, 5)] == [2, 4]
    assert current_events(batch, 6) == []


async def test_a_batch_holds_at_most_the_limit_and_the_rest_wait_for_the_next() -> None:
    world = World()
    for offset in range(5):
        world.queue.put_nowait(event(offset))
    it = batches(world.source(), 3, 0.01, no_wait)
    first = await asyncio.wait_for(it.__anext__(), 5)
    second = await asyncio.wait_for(it.__anext__(), 5)
    assert [e.message.offset for e in first] == [0, 1, 2]
    assert [e.message.offset for e in second] == [3, 4]


async def test_a_batch_that_is_not_full_takes_what_arrives_within_the_wait() -> None:
    world = World()
    world.queue.put_nowait(event(0))
    waits: list[float] = []

    async def arrivals_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        world.queue.put_nowait(event(1))

    batch = await take(world, most=3, sleep=arrivals_meanwhile)
    assert [e.message.offset for e in batch] == [0, 1]
    assert waits == [0.01]


async def test_a_full_batch_does_not_wait() -> None:
    world = World()
    for offset in range(3):
        world.queue.put_nowait(event(offset))

    async def must_not_wait(_seconds: float) -> None:
        raise AssertionError("a full batch waited")

    assert len(await take(world, most=3, sleep=must_not_wait)) == 3


async def test_an_idle_stream_waits_for_its_first_event_without_waking() -> None:
    world = World()
    waits: list[float] = []

    async def counted(seconds: float) -> None:
        waits.append(seconds)

    it = batches(world.source(), 3, 0.01, counted)
    pending = asyncio.ensure_future(it.__anext__())
    await let_run()
    assert not pending.done() and waits == []
    world.queue.put_nowait(event(7))
    assert [e.message.offset for e in await asyncio.wait_for(pending, 5)] == [7]


async def test_events_are_tracked_while_processed_and_acked_when_the_next_batch_is_asked_for() -> (
    None
):
    world = World()
    for offset in range(2):
        world.queue.put_nowait(event(offset))
    it = batches(world.source(), 2, 0.01, no_wait)
    batch = await asyncio.wait_for(it.__anext__(), 5)
    assert {e.message for e in batch} == world.unacked
    assert all(e.message.tracked for e in batch)
    assert all(e.acks == [] for e in batch)  # still being processed
    world.queue.put_nowait(event(2))
    await asyncio.wait_for(it.__anext__(), 5)
    assert [e.acks for e in batch] == [[0], [1]]


async def test_events_of_an_earlier_generation_are_left_out_and_never_acked() -> None:
    world = World(generation_id=2)
    stale, fresh = event(0, generation_id=1), event(1, generation_id=2)
    world.queue.put_nowait(stale)
    world.queue.put_nowait(fresh)
    assert await take(world) == [fresh]
    assert stale.acks == [] and not stale.message.tracked


async def test_events_taken_while_the_flow_is_stopped_are_left_out_and_never_acked() -> None:
    world = World(active=False)
    held = event(0)
    world.queue.put_nowait(held)
    it = batches(world.source(), 1, 0.01, no_wait)
    pending = asyncio.ensure_future(it.__anext__())
    await let_run()  # it takes the held event, and leaves it out
    assert world.queue.empty() and not pending.done()
    world.active = True  # the rebalance is over
    world.queue.put_nowait(event(1))
    batch = await asyncio.wait_for(pending, 5)
    assert [e.message.offset for e in batch] == [1]
    assert held.acks == [] and not held.message.tracked


def stream_queue() -> ThrowableQueue[Any]:
    """The kind of queue Faust gives an agent's stream."""
    return ThrowableQueue(flow_control=FlowControlEvent(initially_suspended=False))


async def test_the_batches_end_when_faust_stops_the_stream_while_they_wait() -> None:
    # Faust's actor stops a stream by throwing StopAsyncIteration into its queue.
    world = World(queue=stream_queue())
    pending = asyncio.ensure_future(batches(world.source(), 3, 0.01, no_wait).__anext__())
    await let_run()
    world.queue._throw(StopAsyncIteration())
    with pytest.raises(StopAsyncIteration):  # the iteration ends; no RuntimeError
        await asyncio.wait_for(pending, 5)


async def test_the_batches_end_when_faust_stops_the_stream_between_events() -> None:
    world = World(queue=stream_queue())
    taken = event(0)
    world.queue.put_nowait(taken)
    world.queue._throw(StopAsyncIteration())  # no waiter yet: queued behind the event
    assert [batch async for batch in batches(world.source(), 3, 0.01, no_wait)] == []
    assert taken.acks == [] and not taken.message.tracked
