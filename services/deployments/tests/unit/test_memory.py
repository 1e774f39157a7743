"""The enrolment memory budget: reservations never exceed it, in arrival order, cancellation safe."""

import asyncio

import pytest

from lfr_deployments.memory import MemoryBudget


async def test_reservations_never_exceed_the_budget_and_are_granted_in_arrival_order():
    budget = MemoryBudget(100)
    order: list[str] = []
    release = {name: asyncio.Event() for name in "abc"}

    async def photo(name: str, amount: int):
        async with budget.reserve(amount):
            order.append(name)
            assert budget.total - budget.free <= budget.total
            await release[name].wait()

    a = asyncio.create_task(photo("a", 70))
    await asyncio.sleep(0)
    b = asyncio.create_task(photo("b", 60))  # does not fit beside a: waits
    c = asyncio.create_task(photo("c", 20))  # would fit, but b came first: waits behind it
    await asyncio.sleep(0)
    assert order == ["a"] and budget.free == 30
    release["a"].set()
    await a
    await asyncio.sleep(0)
    assert order == ["a", "b", "c"] and budget.free == 20
    release["b"].set(), release["c"].set()
    await asyncio.gather(b, c)
    assert budget.free == 100 and budget.most_reserved == 80


async def test_a_cancelled_waiter_gives_its_place_and_nothing_leaks():
    budget = MemoryBudget(100)
    held = asyncio.Event()

    async def hold():
        async with budget.reserve(90):
            await held.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(budget.reserve(50).__aenter__())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    async with budget.reserve(10):  # fits beside the holder now that nobody waits ahead
        assert budget.free == 0
    held.set()
    await holder
    assert budget.free == 100


async def test_more_than_the_whole_budget_is_refused_at_once():
    with pytest.raises(ValueError, match="over the whole budget"):
        async with MemoryBudget(100).reserve(101):
            pass
