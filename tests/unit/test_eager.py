"""A coroutine's first step run at once, and the rest awaited where it stopped."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import eager

pytestmark = pytest.mark.unit


async def _returns(value: int) -> int:
    return value


async def test_a_coroutine_that_never_suspends_finishes_in_its_first_step() -> None:
    coro = _returns(7)
    assert eager.run_first_step(coro) == eager.Finished(7)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_the_rest_of_a_suspended_coroutine_gets_what_it_waited_for() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def waits() -> str:
        seen.append("before")
        got = await gate
        seen.append(got)
        return got + "!"

    rest = eager.run_first_step(waits())
    assert isinstance(rest, eager.Started)
    assert seen == ["before"], "the first step ran at once, up to the wait"
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result("opened")
    assert await task == "opened!"
    assert seen == ["before", "opened"]


async def test_an_error_in_the_first_step_is_raised_at_once() -> None:
    async def fails() -> None:
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        eager.run_first_step(fails())


async def test_cancelling_the_rest_reaches_the_coroutine_where_it_waits() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise

    rest = eager.run_first_step(waits())
    assert isinstance(rest, eager.Started)
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cancelled"]


# A step: yield to the loop, wait on a future settled later (with a value or an error), or
# raise. Run eagerly or awaited plainly, a coroutine must end the same way.
step = st.one_of(
    st.just(("sleep", 0)),
    st.tuples(st.just("value"), st.integers()),
    st.tuples(st.just("error"), st.integers()),
    st.tuples(st.just("raise"), st.integers()),
)


async def _script(steps: list[tuple[str, int]], loop: asyncio.AbstractEventLoop) -> list[Any]:
    got: list[Any] = []
    for kind, n in steps:
        if kind == "sleep":
            await asyncio.sleep(0)
        elif kind == "raise":
            raise KeyError(n)
        else:
            future: asyncio.Future[int] = loop.create_future()
            if kind == "value":
                loop.call_soon(future.set_result, n)
            else:
                loop.call_soon(future.set_exception, LookupError(n))
            try:
                got.append(await future)
            except LookupError as error:
                got.append(("caught", error.args[0]))
    return got


async def _outcome(coro: Any) -> tuple[str, Any]:
    try:
        return ("returned", await coro)
    except KeyError as error:
        return ("raised", error.args[0])


async def _eagerly(steps: list[tuple[str, int]], loop: asyncio.AbstractEventLoop) -> Any:
    outcome = eager.run_first_step(_script(steps, loop))
    return outcome.value if isinstance(outcome, eager.Finished) else await outcome


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(step, max_size=8))
def test_run_eagerly_or_awaited_a_coroutine_ends_the_same(steps: list[tuple[str, int]]) -> None:
    async def both() -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        plain = await _outcome(_script(steps, loop))
        # The eager path must start inside a task, as Faust's fetch loop does.
        eagerly = await asyncio.ensure_future(_outcome(_eagerly(steps, loop)))
        return plain, eagerly

    plain, eagerly = asyncio.run(both())
    assert eagerly == plain
