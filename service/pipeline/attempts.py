"""The mechanics of trying one candidate endpoint, shared by every kind of request (non-streaming calls,
streams, shadow calls):

- a concurrency slot is held for every upstream call (a bounded wait; a full endpoint is skipped for a free
  sibling first), as an async context manager;
- retries on the same endpoint only while its retry budget allows; when other candidates remain, a retryable
  failure moves to the next one at once instead (fallback, `jumpgate_fallbacks_total`);
- each call's outcome feeds the endpoint's circuit breaker, as the error's class says (`opens_circuit`);
- every call's timeout is cut to the request's remaining deadline.

It knows endpoints, the transport and the fleet's live state; it never imports the gateway or streaming.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Protocol, TypeVar

from opentelemetry.trace import Span

from service.adapters.plain import PlainOut
from service.config.resilience import ResilienceConfig
from service.errors import (
    DeadlineExceeded,
    EndpointAtCapacity,
    ServerShuttingDown,
    UpstreamError,
    UpstreamNoCapacity,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from service.pipeline.capacity import Fleet
from service.pipeline.catalog import Upstream
from service.pipeline.results import CallResult
from service.telemetry.metrics import Metrics
from service.telemetry.trace import Trace
from service.telemetry.tracing import Tracing, end_attempt
from service.transport.base import Payload, Target, Transport
from service.transport.retry import RetryPolicy, call_with_retries

T = TypeVar("T")

#: pauses between asking an inference component scaled to zero again: 0.5 s, doubling up to 10 s
SCALE_WAIT_FIRST_S = 0.5
SCALE_WAIT_MAX_PAUSE_S = 10.0

#: how a client can allow a request more time, for deadline messages
TIMEOUT_HINT = "header x-jumpgate-timeout-s, up to resilience.request_timeout_s"


class Candidate(Protocol):
    """What failover needs of a plan."""

    @property
    def endpoint(self) -> Upstream: ...


P = TypeVar("P", bound=Candidate)


class Attempts:
    def __init__(self, transport: Transport, fleet: Fleet, metrics: Metrics, resilience: ResilienceConfig, *,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, tracing: Tracing | None = None) -> None:
        self.transport = transport
        self.tracing = tracing
        self.fleet = fleet
        self.metrics = metrics
        self.clock = clock
        self.sleep = sleep
        #: set at the drain deadline: streams still open end with it at their next upstream read
        self.cut: ServerShuttingDown | None = None
        #: the open streams' plain-token paths, which read no `cut`: the cut closes them
        self.lanes: weakref.WeakSet[PlainOut] = weakref.WeakSet()
        self.configure(resilience)

    def configure(self, resilience: ResilienceConfig) -> None:
        """Apply a (re)loaded resilience section; calls in flight keep the policy they started with."""
        self.request_timeout_s = resilience.request_timeout_s
        self.retry = RetryPolicy(max_attempts=resilience.max_attempts)
        self.drain_s = resilience.drain_s

    def cut_streams(self) -> None:
        """The drain deadline passed: every stream still relaying ends with a shutting-down error event."""
        self.cut = ServerShuttingDown("the server is shutting down and this stream was cut at its drain deadline; "
                                      "send the request again (another replica will answer)", retry_after=1.0)
        for lane in list(self.lanes):
            lane.live = False

    # --- deadlines ------------------------------------------------------------------------------------
    def deadline(self, client_timeout_s: float | None) -> float:
        """The request's deadline on `clock`: the configured timeout, shortened by the client's own."""
        limit = self.request_timeout_s
        if client_timeout_s is not None:
            limit = min(limit, client_timeout_s)
        return self.clock() + limit

    def loop_time(self, deadline: float) -> float:
        """`deadline` on the event loop's clock, for asyncio.timeout_at."""
        return asyncio.get_running_loop().time() + (deadline - self.clock())

    def target_for(self, ep: Upstream, deadline: float | None) -> Target:
        if deadline is None:
            return ep.target
        remaining = max(0.001, deadline - self.clock())
        return ep.target if remaining >= ep.target.timeout_s else replace(ep.target, timeout_s=remaining)

    # --- one endpoint ---------------------------------------------------------------------------------
    @asynccontextmanager
    async def slot(self, ep: Upstream, *, wait: bool, deadline: float | None) -> AsyncIterator[None]:
        """Hold one of the endpoint's concurrency slots (and the in-flight gauge) for the body. An open circuit
        raises a retryable 502/503-class error, a full endpoint a retryable 429, so failover can move on."""
        state = self.fleet[ep.id]
        breaker = state.breaker
        if not breaker.allows():  # open, or half-open with its probes already out
            raise UpstreamUnavailable(f"endpoint '{ep.id}' is failing and its circuit is open",
                                      retry_after=max(1.0, breaker.retry_after()))
        slots = state.slots
        timeout_s = None if deadline is None else deadline - self.clock()
        if not slots.try_acquire() and not (wait and await slots.acquire(timeout_s)):
            waited = slots.max_wait_s if wait else 0.0
            raise EndpointAtCapacity(f"endpoint '{ep.id}' has all {ep.max_concurrency} concurrency slots busy"
                                     + (f" after waiting {waited:g}s" if waited else ""), retry_after=1.0)
        gauge = self.metrics.inflight.labels(ep.id)
        gauge.inc()
        try:
            yield
        finally:
            slots.release()
            gauge.dec()

    async def retrying(self, ep: Upstream, attempt: Callable[[], Awaitable[T]], *, last: bool = True,
                       deadline_cut: bool = False, trace: Trace | None = None,
                       keep_span: list[Span] | None = None) -> tuple[T, int]:
        """Retry `attempt` on one endpoint: only the last candidate retries (others fall back at once), and only
        within the endpoint's retry budget. Counts failed attempts and retries; feeds the breaker and the
        throttling tracker. With `deadline_cut` (the call's timeout was shortened to the request's remaining
        deadline), a timeout is the request's deadline, not the endpoint's failure."""
        state = self.fleet[ep.id]
        state.budget.on_request()
        policy = self.retry if last else RetryPolicy(max_attempts=1)
        traced = self._traced(ep, trace, keep_span, attempt)

        async def counted() -> T:
            try:
                result = await traced()
            except UpstreamTimeout as exc:
                if not deadline_cut:
                    self._failed(ep, exc)
                    raise
                raise DeadlineExceeded(f"the request's deadline ran out while waiting for endpoint '{ep.id}'; "
                                       f"allow more time ({TIMEOUT_HINT})") from exc
            except UpstreamError as exc:
                self._failed(ep, exc)
                raise
            state.breaker.record(failed=False)
            if state.throttling.streak:
                state.throttling.record(throttled=False)
                self.metrics.throttle_streak.labels(ep.id).set(0)
            return result

        def retried(exc: UpstreamError, _: int) -> None:
            # Budget is spent only by a retry that happens. When it is empty the error ends the attempts on
            # this endpoint; it stays retryable, so the caller may still fall back to another endpoint.
            if not state.budget.try_spend():
                raise exc
            self.metrics.retries.labels(ep.id, exc.kind).inc()

        if not last or ep.scale_from_zero_wait_s <= 0:
            return await call_with_retries(counted, policy, on_retry=retried)
        return await self._awaiting_capacity(ep, lambda: call_with_retries(counted, policy, on_retry=retried))

    def _traced(self, ep: Upstream, trace: Trace | None, keep: list[Span] | None,
                attempt: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """`attempt` in a CLIENT span of its own when the request is traced (retries become sibling spans). With
        `keep`, a successful attempt's span stays open and is handed over (a stream ends it when it closes)."""
        tracing = self.tracing
        if tracing is None or trace is None or trace.span is None:
            return attempt
        count = [0]

        async def traced() -> T:
            count[0] += 1
            span = tracing.start_attempt(trace, ep, count[0])
            try:
                result = await attempt()
            except BaseException as exc:
                end_attempt(span, exc)
                raise
            if keep is not None and span is not None:
                keep.append(span)
            else:
                end_attempt(span)
            return result

        return traced

    async def _awaiting_capacity(self, ep: Upstream, run: Callable[[], Awaitable[T]]) -> T:
        """An inference component scaled to zero answers no-capacity until SageMaker has started a copy. The last
        candidate keeps asking, with growing pauses, for up to the endpoint's scale_from_zero_wait_s (the request
        deadline still bounds it), then gives up with a 503 and Retry-After."""
        until = self.clock() + ep.scale_from_zero_wait_s
        pause = SCALE_WAIT_FIRST_S
        while True:
            try:
                return await run()
            except UpstreamNoCapacity as exc:
                remaining = until - self.clock()
                if remaining <= 0:
                    raise UpstreamNoCapacity(f"endpoint '{ep.id}' still had no copy of its model after "
                                             f"{ep.scale_from_zero_wait_s:g}s (inference component scaled to zero); "
                                             "retry later", retry_after=SCALE_WAIT_MAX_PAUSE_S) from exc
                self.metrics.scale_waits.labels(ep.id).inc()
                await self.sleep(min(pause, remaining))
                pause = min(pause * 2, SCALE_WAIT_MAX_PAUSE_S)

    def _failed(self, ep: Upstream, exc: UpstreamError) -> None:
        state = self.fleet[ep.id]
        self.metrics.upstream_errors.labels(ep.id, exc.kind, ep.region).inc()
        if exc.opens_circuit:
            state.breaker.record(failed=True)
        if isinstance(exc, UpstreamThrottled):
            state.throttling.record(throttled=True)
            self.metrics.throttle_streak.labels(ep.id).set(state.throttling.streak)

    def stream_broke(self, ep: Upstream, exc: UpstreamError) -> None:
        """A stream that opened failed midway: the breaker hears of it (retries are over for a stream)."""
        if exc.opens_circuit:
            self.fleet[ep.id].breaker.record(failed=True)

    async def call(self, ep: Upstream, payload: Payload, *, last: bool = True, deadline: float | None = None,
                   trace: Trace | None = None) -> CallResult:
        """One upstream call: a slot, retries under policy and budget, breaker bookkeeping. The time the endpoint
        was held is added to the trace however the call ends, so a failed or abandoned request is charged too."""
        async with self.slot(ep, wait=last, deadline=deadline):
            started = self.clock()  # after the slot wait: cost is attributed for the time the endpoint was held
            target = self.target_for(ep, deadline)
            try:
                raw, attempts = await self.retrying(ep, lambda: self.transport.invoke(target, payload), last=last,
                                                    deadline_cut=target is not ep.target, trace=trace)
            finally:
                held = self.clock() - started
                if trace is not None:
                    trace.upstream_seconds += held
        return CallResult(raw, attempts, held, len(payload.body))

    async def calls(self, ep: Upstream, payloads: Sequence[Payload], *, last: bool, deadline: float | None,
                    trace: Trace | None = None) -> list[CallResult]:
        """The calls of one plan: usually one (no task then), several concurrently for fanned-out n."""
        if len(payloads) == 1:
            return [await self.call(ep, payloads[0], last=last, deadline=deadline, trace=trace)]
        return list(await asyncio.gather(*(self.call(ep, p, last=last, deadline=deadline, trace=trace)
                                           for p in payloads)))

    # --- across candidates ----------------------------------------------------------------------------
    async def failover(self, plans: Sequence[P], attempt: Callable[[P, bool], Awaitable[T]], trace: Trace,
                       ) -> tuple[P, T]:
        """Try candidates in order; a retryable failure (or a full endpoint) moves on to the next one."""
        for i, plan in enumerate(plans):
            last = i == len(plans) - 1
            ep = plan.endpoint
            trace.endpoint, trace.schema, trace.accelerator, trace.region = ep.id, ep.schema, ep.accelerator, ep.region
            try:
                return plan, await attempt(plan, last)
            except UpstreamError as err:
                if last or not err.retryable:
                    raise
                self.metrics.fallbacks.labels(trace.model, ep.id, plans[i + 1].endpoint.id).inc()
        raise AssertionError("unreachable: the last candidate returns or raises")
