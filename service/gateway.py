"""The request pipeline: model → endpoint → normalized parameters → payload(s) → transport → answer.

`Gateway.generate` is the only place that sequences the steps; each step is a function of another
module (routing, params, adapters, transport.retry, stops, tokens), so this module stays orchestration.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from service.canonical import Choice, Decoded, FinishReason, Generation, GenerationRequest, SamplingParams
from service.catalog import Catalog, Endpoint
from service.errors import UpstreamError
from service.metrics import Metrics
from service.params import Subject, Support, WireParams, normalize
from service.prompting import render_text
from service.routing import choose
from service.stops import cut_at_stop
from service.streaming import GatewayStream, open_stream
from service.tokens import TokenCounter, resolve_usage
from service.trace import Trace
from service.transport.base import Payload, RawResponse, Transport
from service.transport.retry import RetryPolicy, call_with_retries

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything decided before the first upstream byte is sent."""

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
                 retry: RetryPolicy | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.catalog = catalog
        self.transport = transport
        self.metrics = metrics or Metrics()
        self.retry = retry or RetryPolicy()
        self.rng = rng or random.Random()
        self.clock = clock

    def plan(self, req: GenerationRequest, trace: Trace | None = None) -> Plan:
        """Route, normalize and encode. Raises the 4xx errors before anything is sent."""
        model = self.catalog.model(req.model)
        if trace is not None:
            trace.model = model.name
        params = req.params.with_defaults(model.defaults)
        max_new = params.max_new_tokens or 0
        texts: dict[str, str] = {}

        def prompt_text(ep: Endpoint) -> str:
            if ep.id not in texts:
                texts[ep.id] = render_text(req, ep.spec)
            return texts[ep.id]

        ep = choose(model, lambda e: e.counter.count(prompt_text(e)), max_new, self.rng)
        adapter = ep.adapter
        wire = normalize(params, adapter.rules, adapter.sampling, Subject(ep.id, ep.schema, model.name),
                         policy=model.policy, stream=req.stream)
        if trace is not None:
            trace.endpoint, trace.schema, trace.accelerator = ep.id, ep.schema, ep.accelerator
        payloads = tuple(adapter.encode(req, ep.spec, w) for w in self._fan_out(ep, params, wire))
        return Plan(ep, params, wire, payloads, prompt_text(ep))

    async def generate(self, req: GenerationRequest, trace: Trace | None = None) -> Generation:
        started = self.clock()
        plan = self.plan(req, trace)
        results = await asyncio.gather(*(self.call(plan.endpoint, p) for p in plan.payloads))
        decoded = [plan.endpoint.adapter.decode(r.raw) for r in results]
        gen = self._answer(plan, decoded, results, started)
        if trace is not None:
            trace.upstream_seconds, trace.usage, trace.cost_usd = gen.upstream_seconds, gen.usage, gen.cost_usd
        return gen

    async def open_stream(self, req: GenerationRequest, trace: Trace | None = None) -> GatewayStream:
        """Open a streaming request; errors before the first upstream byte raise here (see streaming.py)."""
        return await open_stream(self, req, trace)

    async def call(self, ep: Endpoint, payload: Payload) -> CallResult:
        """One upstream call with retries (each attempt signed anew by the transport)."""
        started = self.clock()
        inflight = self.metrics.inflight.labels(ep.id)
        inflight.inc()
        try:
            raw, attempts = await self.with_retries(ep, lambda: self.transport.invoke(ep.target, payload))
        finally:
            inflight.dec()
        return CallResult(raw, attempts, self.clock() - started)

    async def with_retries(self, ep: Endpoint, attempt: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        """Retry `attempt` under the policy, counting failed attempts and retries per endpoint."""
        async def counted() -> T:
            try:
                return await attempt()
            except UpstreamError as exc:
                self.metrics.upstream_errors.labels(ep.id, exc.kind).inc()
                raise

        def retried(exc: UpstreamError, _: int) -> None:
            self.metrics.retries.labels(ep.id, exc.kind).inc()

        return await call_with_retries(counted, self.retry, on_retry=retried)

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

    def _answer(self, plan: Plan, decoded: list[Decoded], results: list[CallResult], started: float) -> Generation:
        merged = _merge(decoded)
        choices = tuple(_finish(c, i, plan.params, plan.endpoint.counter) for i, c in enumerate(merged.choices))
        usage = resolve_usage(merged, plan.prompt_text, [c.text for c in merged.choices], plan.endpoint.counter)
        upstream = sum(r.seconds for r in results)
        ep = plan.endpoint
        return Generation(
            choices=choices,
            usage=usage,
            endpoint=ep.id,
            attempts=max(r.attempts for r in results),
            dropped_params=plan.wire.dropped,
            upstream_seconds=upstream,
            cost_usd=attributed_cost(ep, upstream),
            timings={"total_s": self.clock() - started, "upstream_s": upstream},
        )


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
    if reason is None:  # the container does not say: infer from the estimated length
        full = counter.count(choice.text) >= (params.max_new_tokens or 0)
        reason = FinishReason.LENGTH if full else FinishReason.STOP
    return Choice(text, reason, index)
