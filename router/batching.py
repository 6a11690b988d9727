"""An agent's events in batches, taken straight from the queue Faust's conductor fills.

Faust's own way, `Stream.take_events`, runs every event through its stream iteration first
(`Stream._c_aiter`: a task switch, sensors, the take buffer's processor, per-event acks), and
its buffer wakes every wait even on an idle stream: ~11 % of a busy worker's samples
(docs/performance.md, row 37). The agents use none of that. Fetching, decoding into events,
the queue's back-pressure on the fetcher and the flow control of a rebalance stay Faust's.

What Faust's stream does per event, and what this does instead:
- An event taken while the flow is stopped (a rebalance in progress) or fetched under an
  earlier consumer generation is left out: the partition's holder reads it again from the
  committed offset. Faust's stream acks such an event; this does not, so no commit can pass it.
- An event is tracked as unacked while its batch is processed (Faust's rebalance waits for
  unacked events), and acked when the agent asks for the next batch: after the batch's last
  event was processed, as `take_events` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableSet, Set
from dataclasses import dataclass
from typing import Any, Protocol

from faust.types import EventT, Message


class EventQueue(Protocol):
    """The part of Faust's channel queue (`mode.utils.queues.FlowControlQueue`) used here.
    Its `get` and `get_nowait` tell the fetcher when the queue has room again."""

    async def get(self) -> Any: ...

    def get_nowait(self) -> Any: ...

    def empty(self) -> bool: ...


@dataclass(frozen=True)
class Source:
    queue: EventQueue
    flow_active: Callable[[], bool]
    generation: Callable[[], int]
    acking_topics: Set[str]
    unacked: MutableSet[Message]


def source_of(app: Any, stream: Any) -> Source:
    """The agent stream's queue and the consumer state an event's ack depends on."""
    return Source(
        queue=stream.channel.queue,
        flow_active=app.flow_control.is_active,
        generation=lambda: int(app.consumer_generation_id),
        acking_topics=app.topics.acking_topics,
        unacked=app.consumer.unacked,
    )


def current_events(events: Iterable[EventT], generation_id: int) -> list[EventT]:
    """The events still owned by this worker's consumer generation.

    Records fetched before a rebalance completed can still be queued when it ends; whoever
    holds the partition now reads them again.
    """
    return [event for event in events if event.message.generation_id == generation_id]


def _drain(queue: EventQueue, events: list[Any], most: int) -> None:
    while len(events) < most and not queue.empty():
        events.append(queue.get_nowait())


async def batches(
    source: Source,
    most: int,
    within_s: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[list[EventT]]:
    """Batches of up to `most` events: the first event, then whatever arrives within
    `within_s` of it (none of the wait when the queue already holds `most`)."""
    queue = source.queue
    while True:
        try:
            events = [await queue.get()]
            _drain(queue, events, most)
            if len(events) < most:
                await sleep(within_s)
                _drain(queue, events, most)
        except StopAsyncIteration:
            # How Faust's actor ends its stream on stop (`Actor.cancel` throws it into the
            # queue), and where Faust's own stream ends. Raised on through a generator it
            # became a RuntimeError: every agent logged a crash on a graceful stop. Events
            # taken and not yielded are not acked, so they are read again.
            return
        if not source.flow_active():
            continue
        current = current_events(events, source.generation())
        if not current:
            continue
        for event in current:
            message = event.message
            if message.topic in source.acking_topics and not message.tracked:
                message.tracked = True
                source.unacked.add(message)
        yield current
        for event in current:
            event.ack()
