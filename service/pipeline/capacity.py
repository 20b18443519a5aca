"""Per-endpoint health and capacity: concurrency slots with a bounded wait, and a circuit breaker.

Routing reads them (an open circuit or a full endpoint is skipped when a sibling can serve); the
gateway holds a slot for every upstream call and reports each call's outcome to the breaker.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from service.config.resilience import BreakerConfig, ResilienceConfig


class Slots:
    """`limit` calls in flight at once; others wait in arrival order for at most `max_wait_s`.

    A released slot is handed straight to the oldest waiter, so a newcomer can never overtake the queue.
    """

    def __init__(self, limit: int, max_wait_s: float) -> None:
        self.limit = limit
        self.max_wait_s = max_wait_s
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def free(self) -> bool:
        return self.in_use < self.limit and not self._waiters

    def try_acquire(self) -> bool:
        if not self.free():
            return False
        self.in_use += 1
        return True

    async def acquire(self, timeout_s: float | None = None) -> bool:
        """Wait for a slot; False when none came within the wait limit (or `timeout_s`, if shorter)."""
        if self.try_acquire():
            return True
        wait = self.max_wait_s if timeout_s is None else min(self.max_wait_s, timeout_s)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(wait):
                await waiter
            return True
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot was handed over just as we gave up: pass it on
            if isinstance(exc, TimeoutError):
                return False
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to the waiter: in_use is unchanged
                return
        self.in_use -= 1


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    """Opens on `consecutive_failures` in a row or an error ratio over the last `window` calls; after
    `open_s` lets `half_open_probes` requests through; a probe's success closes it, a failure re-opens it."""

    def __init__(self, cfg: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive = 0
        self.recent: deque[bool] = deque(maxlen=cfg.window)  # True = failure
        self.opened_at = 0.0
        self.probes = 0

    def allows(self) -> bool:
        """Whether a request may be sent now (and, when half-open, take a probe)."""
        if self.state is BreakerState.OPEN and self.clock() - self.opened_at >= self.cfg.open_s:
            self.state, self.probes = BreakerState.HALF_OPEN, 0
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN and self.probes < self.cfg.half_open_probes:
            self.probes += 1
            return True
        return False

    def available(self) -> bool:
        """Like `allows` but takes nothing: for filtering candidates."""
        if self.state is BreakerState.OPEN:
            return self.clock() - self.opened_at >= self.cfg.open_s
        return self.state is BreakerState.CLOSED or self.probes < self.cfg.half_open_probes

    def record(self, failed: bool) -> None:
        self.recent.append(failed)
        self.consecutive = self.consecutive + 1 if failed else 0
        if self.state is BreakerState.HALF_OPEN:
            self._open() if failed else self._close()
        elif failed and self._tripped():
            self._open()

    def retry_after(self) -> float:
        return max(0.0, self.cfg.open_s - (self.clock() - self.opened_at))

    def _tripped(self) -> bool:
        if self.consecutive >= self.cfg.consecutive_failures:
            return True
        calls = len(self.recent)
        return calls >= self.cfg.min_calls and sum(self.recent) / calls >= self.cfg.error_ratio

    def _open(self) -> None:
        self.state, self.opened_at, self.probes = BreakerState.OPEN, self.clock(), 0

    def _close(self) -> None:
        self.state, self.consecutive = BreakerState.CLOSED, 0
        self.recent.clear()


class RetryBudget:
    """Retries earn no more than `ratio` of the requests an endpoint gets, plus `min_per_s` per second.

    A token bucket: each request deposits `ratio`, time deposits `min_per_s` per second (capped at 10
    seconds' worth plus a burst of 10), each retry withdraws 1. During an outage that fails everything,
    the load on the endpoint is therefore at most (1 + ratio) x the incoming requests + min_per_s per second,
    instead of max_attempts x.
    """

    def __init__(self, ratio: float, min_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ratio = ratio
        self.min_per_s = min_per_s
        self.clock = clock
        self.cap = 10.0 + 10.0 * min_per_s
        self.tokens = self.cap
        self.last = clock()

    def on_request(self) -> None:
        self._refill()
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        self._refill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.cap, self.tokens + (now - self.last) * self.min_per_s)
        self.last = now


class Throttling:
    """Recent throttling by the endpoint (ThrottlingException, ModelNotReady, 429): load, not ill health, so it
    never opens the circuit, but routing tries a throttling endpoint after its siblings while it cools down.

    Each throttle in a row doubles the cooldown (`base_s`, 2 x, 4 x ... up to `max_s`); when it has passed, the
    endpoint takes its normal place again, so the first request after it probes whether the throttling is over;
    a success ends the streak at once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, base_s: float = 1.0, max_s: float = 30.0) -> None:
        self.clock = clock
        self.base_s = base_s
        self.max_s = max_s
        self.streak = 0
        self.until = 0.0

    def record(self, *, throttled: bool) -> None:
        if not throttled:
            self.streak = 0
            return
        self.streak += 1
        self.until = self.clock() + min(self.max_s, self.base_s * 2.0 ** (self.streak - 1))

    def cooling(self) -> bool:
        return self.streak > 0 and self.clock() < self.until

    def remaining_s(self) -> float:
        return max(0.0, self.until - self.clock()) if self.streak else 0.0


class EndpointState:
    """The live state of one endpoint: kept across config reloads while the endpoint id stays."""

    def __init__(self, max_concurrency: int, max_wait_s: float, cfg: ResilienceConfig) -> None:
        self.slots = Slots(max_concurrency, max_wait_s)
        self.breaker = Breaker(cfg.breaker)
        self.budget = RetryBudget(cfg.retry_budget_ratio, cfg.retry_budget_min_per_s)
        self.throttling = Throttling()

    def status(self) -> dict[str, object]:
        return {"circuit": self.breaker.state.value, "in_flight": self.slots.in_use, "waiting": self.slots.waiting,
                "max_concurrency": self.slots.limit, "consecutive_failures": self.breaker.consecutive,
                "retry_budget": round(self.budget.tokens, 2), "throttle_streak": self.throttling.streak,
                "throttle_cooldown_s": round(self.throttling.remaining_s(), 3)}


class Fleet:
    def __init__(self, cfg: ResilienceConfig) -> None:
        self.cfg = cfg
        self.states: dict[str, EndpointState] = {}

    def sync(self, endpoints: dict[str, tuple[int, float]], cfg: ResilienceConfig) -> None:
        """Match the states to a (re)loaded config: new endpoints get fresh state, kept ones keep theirs
        (in-flight counts stay right across a reload), removed ones go once their last call is done."""
        self.cfg = cfg
        for eid, (limit, wait) in endpoints.items():
            state = self.states.get(eid)
            if state is None:
                self.states[eid] = EndpointState(limit, wait, cfg)
            else:
                state.slots.limit, state.slots.max_wait_s = limit, wait
                state.breaker.cfg = cfg.breaker
        for eid in set(self.states) - set(endpoints):
            del self.states[eid]  # calls in flight hold their own reference

    def __getitem__(self, endpoint_id: str) -> EndpointState:
        return self.states[endpoint_id]
