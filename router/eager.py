"""Run a coroutine up to its first suspension at once, without a task.

Faust's fetch loop hands every fetched record to the conductor by racing the callback against
the flow's suspension (`Service.wait_first`): four tasks, an `asyncio.wait` and three
cancellations per record, so that a rebalance can interrupt a callback blocked on a full
buffer. The callback almost never blocks, and then none of that is needed: running its first
step at once finishes it. Only a callback that does suspend needs the race, and it joins the
race where it stopped (`Started`), so the race sees the same coroutine, just further along.
(Python 3.12's eager task factory does the same for every task; this runs on 3.11.)
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Started(Generic[T]):
    """A coroutine already run to its first suspension; awaiting this runs the rest.

    It is an awaitable, not a coroutine: `asyncio.ensure_future` and `Service.wait_first`
    take it as they are.

    What the coroutine yielded (the future it waits on) is yielded on to whoever awaits this;
    what comes back (a result, an exception, a cancellation) is passed on to the coroutine.
    """

    def __init__(self, coro: Coroutine[Any, Any, T], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, T]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # CancelledError too: the coroutine must see it
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


@dataclass(frozen=True, slots=True)
class Finished(Generic[T]):
    """A coroutine that finished in its first step, and what it returned."""

    value: T


def run_first_step(coro: Coroutine[Any, Any, T]) -> Finished[T] | Started[T]:
    """Finished if the coroutine ended without suspending, else the rest to await.

    An exception the coroutine raises in its first step is raised here. Must be called from
    inside a running task, as the coroutine would have run in one.
    """
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return Finished(stop.value)
    return Started(coro, yielded)
