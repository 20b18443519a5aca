"""The request pipeline's entry: model → plans (routing, parameters, payloads) → attempts → answer.

`Gateway` sequences the steps; each step is another module's: `plan` (routing, normalization, encoding),
`attempts` (slots, retries, breaker, failover, deadlines), `results` (finish reasons, usage, cost), `streaming`
(relaying a stream), `shadow` (sampled copies to a shadow endpoint). Its public surface is what the api needs:
`generate`, `open_stream`, `embed`, `reload`, and the current `catalog`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import replace

from service.canonical import Generation, GenerationRequest, Message, StreamFinal, Usage
from service.config.resilience import ResilienceConfig
from service.embedding import EmbeddingRequest, Embeddings
from service.errors import DeadlineExceeded, InvalidParam
from service.pipeline.attempts import TIMEOUT_HINT, Attempts
from service.pipeline.catalog import Catalog, Endpoint, Model
from service.pipeline.embedding import embed
from service.pipeline.outputs import Again, checked
from service.pipeline.plan import Plan, plan_on, plan_request
from service.pipeline.results import CallResult, answer, attributed_cost, unfinished_usage
from service.pipeline.shadow import ShadowRunner, ShadowSample
from service.pipeline.streaming import AnswerStream, OnFinal, WholeAnswer, open_stream
from service.telemetry.trace import Trace


class Gateway:
    def __init__(self, catalog: Catalog, attempts: Attempts, *, rng: random.Random | None = None,
                 shadow: ShadowRunner | None = None) -> None:
        self.attempts = attempts
        self.rng = rng or random.Random()
        self.shadow = shadow
        self._catalog = catalog

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def reload(self, catalog: Catalog, resilience: ResilienceConfig) -> None:
        """Switch to a (re)loaded config. Requests in flight keep the endpoints and plans they hold."""
        self.attempts.fleet.sync(catalog.upstreams(), resilience)
        self.attempts.configure(resilience)
        self._catalog = catalog

    async def generate(self, req: GenerationRequest, trace: Trace) -> Generation:
        started = self.attempts.clock()
        model, plans = self._plans(req, trace)
        return await self._generate(req, trace, model, plans, started)

    async def _generate(self, req: GenerationRequest, trace: Trace, model: Model, plans: list[Plan],
                        started: float) -> Generation:
        clock = self.attempts.clock
        deadline = self.attempts.deadline(req.timeout_s)
        try:
            async with asyncio.timeout_at(self.attempts.loop_time(deadline)):
                plan, results = await self.attempts.failover(
                    plans, lambda p, last: self.attempts.calls(p.endpoint, p.payloads, last=last, deadline=deadline,
                                                               trace=trace),
                    trace)
                gen = _answer(plan, results, clock() - started)
                if plan.treatment.active:
                    gen = await checked(plan.treatment, gen, self._again(req, model, plan, deadline, trace),
                                        model.invalid_output_retries)
        except TimeoutError:
            _charge_unanswered(plans, trace)
            raise DeadlineExceeded(f"the request did not finish within its deadline of {deadline - started:.1f}s; "
                                   f"allow more time ({TIMEOUT_HINT})") from None
        except BaseException:
            _charge_unanswered(plans, trace)
            raise
        trace.upstream_seconds, trace.usage, trace.cost_usd = gen.upstream_seconds, gen.usage, gen.cost_usd
        trace.upstream_bytes = sum(r.bytes_in + len(r.raw.body) for r in results)
        trace.finish_reasons = tuple(str(c.finish_reason) for c in gen.choices)
        self._offer_shadow(req, model, gen.endpoint, tuple(c.text for c in gen.choices), clock() - started, gen.usage)
        return gen

    def _again(self, req: GenerationRequest, model: Model, plan: Plan, deadline: float, trace: Trace) -> Again:
        """Ask the endpoint that answered once more, the conversation extended by the rejected answer and why."""
        async def again(extra: tuple[Message, ...]) -> Generation:
            retry = replace(req, messages=(*(req.messages or ()), *extra))
            redo = plan_on(model, plan.endpoint, retry, self.rng)
            started = self.attempts.clock()
            results = await self.attempts.calls(redo.endpoint, redo.payloads, last=True, deadline=deadline,
                                                trace=trace)
            return _answer(redo, results, self.attempts.clock() - started)

        return again

    async def open_stream(self, req: GenerationRequest, trace: Trace) -> AnswerStream:
        """Open a streaming request; errors before the first upstream byte raise here (see streaming.py). An
        answer that must be checked whole first (emulated required calls, JSON output) is generated, checked and
        then relayed as a stream."""
        started = self.attempts.clock()
        model, plans = self._plans(req, trace)
        if any(p.treatment.whole for p in plans):
            if plans[0].params.n > 1:
                raise InvalidParam("n > 1 cannot be streamed yet: send stream false, or n 1", param="n")
            whole = replace(req, stream=False)  # invoked, checked (and retried) whole, then relayed
            model, plans = self._plans(whole, trace)
            gen = await self._generate(whole, trace, model, plans, started)
            return WholeAnswer(next(p for p in plans if p.endpoint.id == gen.endpoint), gen)
        deadline = self.attempts.deadline(req.timeout_s)
        return await open_stream(self.attempts, req, plans, deadline, trace,
                                 on_final=self._stream_shadow(req, model, started))

    async def embed(self, req: EmbeddingRequest, trace: Trace) -> Embeddings:
        """Vectors for an embedding request (service/pipeline/embedding.py)."""
        return await embed(self.attempts, self._catalog, req, trace, self.rng)

    def _plans(self, req: GenerationRequest, trace: Trace) -> tuple[Model, list[Plan]]:
        model = self._catalog.model(req.model)
        trace.model = model.name
        return model, plan_request(model, req, self.attempts.fleet, self.rng)

    def _stream_shadow(self, req: GenerationRequest, model: Model, started: float) -> OnFinal | None:
        if self.shadow is None or model.shadow is None:
            return None

        def on_final(primary: Endpoint, text: str, final: StreamFinal) -> None:
            self._offer_shadow(req, model, primary.id, (text,), self.attempts.clock() - started, final.usage)

        return on_final

    def _offer_shadow(self, req: GenerationRequest, model: Model, primary: str, texts: tuple[str, ...],
                      latency_s: float, usage: Usage) -> None:
        if self.shadow is None or model.shadow is None:
            return
        shadow_ep = self._catalog.endpoints.get(model.shadow.endpoint)
        if shadow_ep is not None:
            self.shadow.offer(ShadowSample(req, model, shadow_ep, primary, texts, latency_s, usage))


def _charge_unanswered(plans: Sequence[Plan], trace: Trace) -> None:
    """A request that held an endpoint and got no answer (failure, deadline, cancellation) still consumed the
    prompt and the endpoint's time: both are charged (usage source: the endpoint's counter)."""
    if trace.upstream_seconds <= 0:
        return
    plan = next((p for p in plans if p.endpoint.id == trace.endpoint), None)
    if plan is not None:
        trace.usage, trace.cost_usd = unfinished_usage(plan, ""), attributed_cost(plan.endpoint, trace.upstream_seconds)


def _answer(plan: Plan, results: Sequence[CallResult], total_s: float) -> Generation:
    ep = plan.endpoint
    decode = ep.adapter.decode if plan.logprobs is None else ep.adapter.decode_logprobs
    decoded = [decode(r.raw) for r in results]
    return answer(ep, plan.params, plan.prompt_text, decoded, results, dropped=plan.wire.dropped, total_s=total_s,
                  top_logprobs=plan.logprobs)
