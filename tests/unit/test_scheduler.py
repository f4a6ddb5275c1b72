"""The one due-time queue behind every re-check."""

import asyncio

import pytest

from modelreg.services.scheduler import DueQueue


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


async def take_now(queue):
    return await asyncio.wait_for(queue.take(), 0.5)


async def test_keys_come_due_in_order_and_once():
    clock = Clock()
    queue = DueQueue(clock)
    queue.schedule("b", 5)
    queue.schedule("a", 1)
    queue.schedule("a", 3)  # later than it already is: no change
    assert queue.depth() == 0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.take(), 0.05)
    clock.now += 6
    assert queue.depth() == 2 and queue.lag() == 5
    assert [await take_now(queue), await take_now(queue)] == ["a", "b"]
    assert queue.depth() == 0


async def test_sooner_wins_and_discard_forgets():
    clock = Clock()
    queue = DueQueue(clock)
    queue.schedule("a", 600)
    queue.schedule("a", 0)  # a watch event: now
    assert await take_now(queue) == "a"
    queue.done("a", 600)
    queue.discard("a")
    clock.now += 601
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.take(), 0.05)


async def test_a_key_being_worked_on_is_not_handed_out_twice():
    clock = Clock()
    queue = DueQueue(clock)
    queue.schedule("a")
    assert await take_now(queue) == "a"
    queue.schedule("a")  # an event arrives meanwhile
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.take(), 0.05)
    queue.done("a", 600)  # the event's "now" beats the 600 s re-check
    assert await take_now(queue) == "a"
    queue.done("a", 600)
    assert queue.depth() == 0
    clock.now += 600
    assert await take_now(queue) == "a"


async def test_a_waiting_taker_wakes_for_a_new_key():
    queue = DueQueue()
    taker = asyncio.create_task(queue.take())
    await asyncio.sleep(0.01)
    queue.schedule("new")
    assert await asyncio.wait_for(taker, 0.5) == "new"
