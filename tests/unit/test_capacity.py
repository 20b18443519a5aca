"""Slots, circuit breaker and retry budget, with controlled clocks."""

from __future__ import annotations

import asyncio

import pytest

from service.config.resilience import BreakerConfig
from service.pipeline.capacity import Breaker, BreakerState, RetryBudget, Slots


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_slots_are_handed_over_in_arrival_order() -> None:
    slots = Slots(1, max_wait_s=5)
    assert slots.try_acquire() and not slots.try_acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        assert await slots.acquire()
        order.append(i)
        await asyncio.sleep(0)
        slots.release()

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert slots.waiting == 3 and not slots.free()
    slots.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2] and slots.in_use == 0 and slots.waiting == 0


async def test_slot_wait_is_bounded() -> None:
    slots = Slots(1, max_wait_s=0.05)
    assert slots.try_acquire()
    assert await slots.acquire() is False
    assert slots.waiting == 0 and slots.in_use == 1


async def test_a_cancelled_waiter_does_not_leak_a_slot() -> None:
    slots = Slots(1, max_wait_s=5)
    assert slots.try_acquire()
    task = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    slots.release()
    assert slots.in_use == 0 and slots.try_acquire()


def breaker(clock: Clock) -> Breaker:
    return Breaker(BreakerConfig(consecutive_failures=3, error_ratio=0.5, window=10, min_calls=6, open_s=5,
                                 half_open_probes=1), clock)


def test_breaker_opens_on_consecutive_failures_and_probes_after_open_s() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        assert b.allows()
        b.record(failed=True)
    assert b.state is BreakerState.OPEN and not b.allows() and not b.available()
    clock.now = 5.0
    assert b.available() and b.allows() and b.state is BreakerState.HALF_OPEN
    assert not b.allows()  # one probe at a time
    b.record(failed=False)
    assert b.state is BreakerState.CLOSED and b.allows()


def test_a_failed_probe_reopens() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record(failed=True)
    clock.now = 5.0
    assert b.allows()
    b.record(failed=True)
    assert b.state is BreakerState.OPEN and b.retry_after() == 5.0


def test_breaker_opens_on_error_ratio() -> None:
    b = breaker(Clock())
    for failed in (True, False, False, True, False):
        b.record(failed=failed)
    assert b.state is BreakerState.CLOSED  # 2 of 5: under the ratio, and under min_calls
    b.record(failed=True)
    assert b.state is BreakerState.OPEN  # 3 of 6 calls failed, never 3 in a row


def test_retry_budget_bounds_extra_load() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, min_per_s=0.0, clock=clock)
    budget.tokens = 0.0
    allowed = 0
    for _ in range(100):
        budget.on_request()
        allowed += budget.try_spend()
    assert allowed == 20  # 20% of 100 requests
    budget2 = RetryBudget(ratio=0.0, min_per_s=2.0, clock=clock)
    budget2.tokens = 0.0
    clock.now += 3.0
    assert [budget2.try_spend() for _ in range(7)].count(True) == 6
