"""The request pipeline: model → candidate endpoints → payload(s) → transport → answer.

`Gateway` sequences the steps; each step is a function of another module (routing, params, adapters,
transport.retry, stops, tokens). Resilience, per attempt on one candidate endpoint:
- a concurrency slot is held for every upstream call (bounded wait; a full endpoint is skipped for a
  free sibling first);
- retries on the same endpoint only while its retry budget allows; when other candidates remain, a
  retryable failure moves to the next one at once instead (fallback, `jumpgate_fallbacks_total`);
- each call's outcome feeds the endpoint's circuit breaker;
- every call's timeout is cut to the request's remaining deadline.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from service.adapters.params import Support, WireParams
from service.canonical import Choice, Decoded, FinishReason, Generation, GenerationRequest, SamplingParams
from service.config.resilience import ResilienceConfig, ShadowLogConfig
from service.errors import (
    RateLimited,
    UpstreamError,
    UpstreamModelError,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from service.pipeline.capacity import Fleet
from service.pipeline.catalog import Catalog, Endpoint
from service.pipeline.routing import Candidate, candidates
from service.pipeline.shadow import ShadowRunner
from service.pipeline.stops import cut_at_stop
from service.pipeline.streaming import GatewayStream, open_stream
from service.pipeline.tokens import TokenCounter, resolve_usage
from service.telemetry.metrics import Metrics
from service.telemetry.trace import Trace
from service.transport.base import Payload, RawResponse, Target, Transport
from service.transport.retry import RetryPolicy, call_with_retries

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything decided for one candidate before its first upstream byte is sent."""

    endpoint: Endpoint
    params: SamplingParams
    wire: WireParams
    payloads: tuple[Payload, ...]
    prompt_text: str


@dataclass(frozen=True, slots=True)
class CallResult:
    raw: RawResponse
    attempts: int
    seconds: float


class Gateway:
    def __init__(self, catalog: Catalog, transport: Transport, *, metrics: Metrics | None = None,
                 resilience: ResilienceConfig | None = None, shadow_log: ShadowLogConfig | None = None,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.transport = transport
        self.metrics = metrics or Metrics()
        self.rng = rng or random.Random()
        self.clock = clock
        self.fleet = Fleet(resilience or ResilienceConfig())
        self.catalog = catalog
        self.use(catalog, resilience or ResilienceConfig())
        self.shadow = ShadowRunner(self, shadow_log)

    def use(self, catalog: Catalog, resilience: ResilienceConfig) -> None:
        """Switch to a (re)loaded config. Requests in flight keep the endpoints they hold."""
        self.fleet.sync({eid: (ep.max_concurrency, ep.max_wait_s) for eid, ep in catalog.endpoints.items()},
                        resilience)
        self.resilience = resilience
        self.retry = RetryPolicy(max_attempts=resilience.max_attempts)
        self.catalog = catalog

    # --- planning -------------------------------------------------------------------------------------
    def candidates(self, req: GenerationRequest, trace: Trace | None = None) -> list[Plan]:
        """Route and normalize. Raises the 4xx (or 503, all circuits open) errors before anything is sent."""
        model = self.catalog.model(req.model)
        if trace is not None:
            trace.model = model.name
        params = req.params.with_defaults(model.defaults)
        return [self.plan_for(req, params, c) for c in candidates(model, req, params, self.fleet, self.rng)]

    def plan_for(self, req: GenerationRequest, params: SamplingParams, c: Candidate) -> Plan:
        ep = c.endpoint
        payloads = tuple(ep.adapter.encode(req, ep.spec, w) for w in self._fan_out(ep, params, c.wire))
        return Plan(ep, params, c.wire, payloads, c.prompt_text)

    def deadline(self, req: GenerationRequest) -> float:
        limit = self.resilience.request_timeout_s
        if req.timeout_s is not None:
            limit = min(limit, req.timeout_s)
        return self.clock() + limit

    # --- non-streaming --------------------------------------------------------------------------------
    async def generate(self, req: GenerationRequest, trace: Trace | None = None) -> Generation:
        started = self.clock()
        deadline = self.deadline(req)
        plans = self.candidates(req, trace)
        try:
            async with asyncio.timeout_at(_loop_time(deadline, self.clock)):
                plan, results = await self._first_success(plans, trace, deadline)
        except TimeoutError:
            raise UpstreamTimeout(f"the request did not finish within its deadline of "
                                  f"{deadline - started:.1f}s") from None
        decoded = [plan.endpoint.adapter.decode(r.raw) for r in results]
        gen = self.answer(plan, decoded, results, started)
        if trace is not None:
            trace.upstream_seconds, trace.usage, trace.cost_usd = gen.upstream_seconds, gen.usage, gen.cost_usd
        return gen

    async def _first_success(self, plans: list[Plan], trace: Trace | None,
                             deadline: float) -> tuple[Plan, list[CallResult]]:
        async def attempt(plan: Plan, last: bool) -> list[CallResult]:
            if len(plan.payloads) == 1:  # the usual case: no task per call
                return [await self.call(plan.endpoint, plan.payloads[0], last=last, deadline=deadline)]
            calls = (self.call(plan.endpoint, p, last=last, deadline=deadline) for p in plan.payloads)
            return list(await asyncio.gather(*calls))

        return await self.failover(plans, attempt, trace)

    async def failover(self, plans: list[Plan], attempt: Callable[[Plan, bool], Awaitable[T]],
                       trace: Trace | None) -> tuple[Plan, T]:
        """Try candidates in order; a retryable failure (or a full endpoint) moves on to the next one."""
        for i, plan in enumerate(plans):
            last = i == len(plans) - 1
            if trace is not None:
                ep = plan.endpoint
                trace.endpoint, trace.schema, trace.accelerator = ep.id, ep.schema, ep.accelerator
            try:
                return plan, await attempt(plan, last)
            except UpstreamError as err:
                if last or not err.retryable:
                    raise
                self.metrics.fallbacks.labels(trace.model if trace else "unknown", plan.endpoint.id,
                                              plans[i + 1].endpoint.id).inc()
        raise AssertionError("unreachable: the last candidate returns or raises")

    async def call(self, ep: Endpoint, payload: Payload, *, last: bool = True,
                   deadline: float | None = None) -> CallResult:
        """One upstream call: a slot, retries under policy and budget, breaker bookkeeping."""
        async with self.slot(ep, wait=last, deadline=deadline):
            started = self.clock()  # after the slot wait: cost is attributed for the time the endpoint was held
            target = self.target_for(ep, deadline)
            raw, attempts = await self.with_retries(ep, lambda: self.transport.invoke(target, payload), last=last)
        return CallResult(raw, attempts, self.clock() - started)

    # --- streaming ------------------------------------------------------------------------------------
    async def open_stream(self, req: GenerationRequest, trace: Trace | None = None) -> GatewayStream:
        """Open a streaming request; errors before the first upstream byte raise here (see streaming.py)."""
        return await open_stream(self, req, trace)

    # --- shared mechanics -----------------------------------------------------------------------------
    def slot(self, ep: Endpoint, *, wait: bool, deadline: float | None) -> _SlotHold:
        return _SlotHold(self, ep, wait, None if deadline is None else deadline - self.clock())

    def target_for(self, ep: Endpoint, deadline: float | None) -> Target:
        if deadline is None:
            return ep.target
        remaining = max(0.001, deadline - self.clock())
        return ep.target if remaining >= ep.target.timeout_s else replace(ep.target, timeout_s=remaining)

    async def with_retries(self, ep: Endpoint, attempt: Callable[[], Awaitable[T]], *,
                           last: bool = True) -> tuple[T, int]:
        """Retry `attempt` on one endpoint: only the last candidate retries (others fall back at once), and
        only within the endpoint's retry budget. Counts failed attempts and retries; feeds the breaker."""
        state = self.fleet[ep.id]
        state.budget.on_request()
        policy = self.retry if last else RetryPolicy(max_attempts=1)

        async def counted() -> T:
            try:
                result = await attempt()
            except UpstreamError as exc:
                self.metrics.upstream_errors.labels(ep.id, exc.kind).inc()
                if _breaker_failure(exc):
                    state.breaker.record(failed=True)
                raise
            state.breaker.record(failed=False)
            return result

        def retried(exc: UpstreamError, _: int) -> None:
            # Budget is spent only by a retry that happens. When it is empty the error ends the attempts on
            # this endpoint; it stays retryable, so the caller may still fall back to another endpoint.
            if not state.budget.try_spend():
                raise exc
            self.metrics.retries.labels(ep.id, exc.kind).inc()

        return await call_with_retries(counted, policy, on_retry=retried)

    def _fan_out(self, ep: Endpoint, params: SamplingParams, wire: WireParams) -> list[WireParams]:
        """n > 1 on a schema without native n: n calls, with distinct seeds where the schema takes one."""
        if wire.fan_out <= 1:
            return [wire]
        rule = ep.adapter.rules["seed"]
        if rule.support is not Support.NATIVE or (params.greedy and rule.sampling_only):
            return [wire] * wire.fan_out
        base = params.seed if params.seed is not None else self.rng.randrange(2**31)
        key = rule.wire or "seed"
        return [replace(wire, values={**wire.values, key: base + i}) for i in range(wire.fan_out)]

    def answer(self, plan: Plan, decoded: list[Decoded], results: list[CallResult], started: float) -> Generation:
        merged = _merge(decoded)
        counter = plan.endpoint.counter
        choices = tuple(_finish(c, i, plan.params, counter) for i, c in enumerate(merged.choices))
        usage = resolve_usage(merged, plan.prompt_text, [c.text for c in merged.choices], counter,
                              plan.params.max_new_tokens)
        upstream = sum(r.seconds for r in results)
        ep = plan.endpoint
        return Generation(
            choices=choices, usage=usage, endpoint=ep.id, attempts=max(r.attempts for r in results),
            dropped_params=plan.wire.dropped, upstream_seconds=upstream, cost_usd=attributed_cost(ep, upstream),
            timings={"total_s": self.clock() - started, "upstream_s": upstream},
        )


class _SlotHold:
    """`async with gateway.slot(ep, ...)`: holds one of the endpoint's concurrency slots (and the
    in-flight gauge) for the body; a full endpoint raises a retryable 429 so failover can move on."""

    def __init__(self, gateway: Gateway, ep: Endpoint, wait: bool, timeout_s: float | None) -> None:
        self.gateway, self.ep, self.wait, self.timeout_s = gateway, ep, wait, timeout_s
        self.state = gateway.fleet[ep.id]

    async def __aenter__(self) -> None:
        breaker = self.state.breaker
        if not breaker.allows():  # open, or half-open with its probes already out
            raise UpstreamUnavailable(f"endpoint '{self.ep.id}' is failing and its circuit is open",
                                      retry_after=max(1.0, breaker.retry_after()))
        slots = self.state.slots
        if not slots.try_acquire() and not (self.wait and await slots.acquire(self.timeout_s)):
            raise _at_capacity(self.ep, slots.max_wait_s if self.wait else 0.0)
        self.gateway.metrics.inflight.labels(self.ep.id).inc()

    async def __aexit__(self, *exc: object) -> None:
        self.state.slots.release()
        self.gateway.metrics.inflight.labels(self.ep.id).dec()


def _at_capacity(ep: Endpoint, waited: float) -> UpstreamThrottled:
    err = UpstreamThrottled(f"endpoint '{ep.id}' has all {ep.max_concurrency} concurrency slots busy"
                            + (f" after waiting {waited:g}s" if waited else ""), retry_after=1.0)
    err.kind = "capacity"
    err.code = RateLimited.code
    return err


def _breaker_failure(exc: UpstreamError) -> bool:
    """Failures that say the endpoint is unhealthy. Throttling is load, and a 4xx from the container is
    about the request: neither should open the circuit."""
    if isinstance(exc, UpstreamThrottled):
        return False
    if isinstance(exc, UpstreamModelError):
        return (exc.original_status or 500) >= 500
    return exc.kind in ("unavailable", "timeout", "stream_error")


def _loop_time(deadline: float, clock: Callable[[], float]) -> float:
    return asyncio.get_running_loop().time() + (deadline - clock())


def attributed_cost(ep: Endpoint, upstream_seconds: float) -> float:
    """Endpoint price per second x seconds the request held the endpoint / its concurrency slots."""
    return ep.endpoint_price_per_hour / 3600.0 * upstream_seconds / max(1, ep.max_concurrency)


def _merge(decoded: list[Decoded]) -> Decoded:
    if len(decoded) == 1:
        return decoded[0]
    choices = tuple(c for d in decoded for c in d.choices)
    completions = [d.completion_tokens for d in decoded]
    return Decoded(
        choices=choices,
        prompt_tokens=decoded[0].prompt_tokens,  # OpenAI usage counts the prompt once
        completion_tokens=None if None in completions else sum(c or 0 for c in completions),
    )


def _finish(choice: Choice, index: int, params: SamplingParams, counter: TokenCounter) -> Choice:
    text, stopped = cut_at_stop(choice.text, params.stop)
    if stopped:
        return Choice(text, FinishReason.STOP, index)
    reason = choice.finish_reason
    if reason is None:  # the container does not say: infer from the counted length
        full = counter.count(choice.text) >= (params.max_new_tokens or 0)
        reason = FinishReason.LENGTH if full else FinishReason.STOP
    return Choice(text, reason, index)
