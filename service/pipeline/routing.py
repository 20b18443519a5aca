"""Which endpoints may serve a request, in which order.

An endpoint is dropped when it cannot serve the request: the estimated prompt plus max_new_tokens over
its `context_length` (Inferentia2 endpoints compiled for a fixed n_positions cut an over-long prompt
silently instead of rejecting it, wire-formats.md 3.6); a non-neutral parameter it does not support;
token log-probabilities it cannot return (`pipeline.logprobs`); an open circuit. The rest come in weighted
random order, endpoints cooling down from throttling last (see `capacity.Throttling`), endpoints with a free
slot first. When none is left: 503 with Retry-After if health removed some, otherwise the 400 that says why
(budget and count, or the unsupported parameter).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, TypeVar

from service.adapters.params import Subject, WireParams, normalize
from service.canonical import GenerationRequest, SamplingParams
from service.errors import GatewayError, InvalidRequest, NoEndpointAvailable, UnsupportedFeature
from service.pipeline import logprobs
from service.pipeline.capacity import Fleet
from service.pipeline.catalog import Endpoint, Model, Upstream
from service.pipeline.tooling import PLAIN, Path, Treatment, has_tool_history, treat
from service.pipeline.vision import IMAGE_PROMPT_TOKENS, check_images
from service.prompts.render import render_text
from service.prompts.tools import tools_text


@dataclass(frozen=True, slots=True)
class Candidate:
    endpoint: Endpoint
    weight: float
    wire: WireParams
    prompt_text: str
    sent: GenerationRequest  # the request as this endpoint is sent it (tools and formats rewritten)
    treatment: Treatment = PLAIN


def candidates(model: Model, req: GenerationRequest, params: SamplingParams, fleet: Fleet,
               rng: random.Random) -> list[Candidate]:
    fitting: list[Candidate] = []
    refusals: list[GatewayError] = []
    unhealthy: list[float] = []
    for ep, weight in model.targets:
        try:
            fitting.append(build_candidate(model, ep, weight, req, params))
        except InvalidRequest as err:
            refusals.append(err)
            continue
        breaker = fleet[ep.id].breaker
        if not breaker.available():
            fitting.pop()
            unhealthy.append(breaker.retry_after())
    if not fitting:
        raise none_left(model.name, refusals, unhealthy)
    return ordered(fitting, fleet, rng)


class Weighted(Protocol):
    @property
    def endpoint(self) -> Upstream: ...
    @property
    def weight(self) -> float: ...


W = TypeVar("W", bound=Weighted)


def ordered(fitting: list[W], fleet: Fleet, rng: random.Random) -> list[W]:
    """Weighted random order; then, stably, endpoints not cooling down from throttling first, then those with
    a free slot (shared by text generation and embeddings)."""
    shuffled = _weighted_order(fitting, rng)
    if len(shuffled) == 1:
        return shuffled
    return sorted(shuffled, key=lambda c: (fleet[c.endpoint.id].throttling.cooling(),
                                           not fleet[c.endpoint.id].slots.free()))


def build_candidate(model: Model, ep: Endpoint, weight: float, req: GenerationRequest,
               params: SamplingParams) -> Candidate:
    sent, treatment = req, PLAIN
    if req.tools or req.response_format is not None or has_tool_history(req.messages):
        sent, treatment = treat(req, ep, model.name)
    images = check_images(req, ep, model.name) if req.has_images else 0
    if req.messages is None and not ep.capabilities.raw_prompts:
        raise UnsupportedFeature(f"endpoint '{ep.id}' of model '{model.name}' takes chat messages only (its "
                                 "container reads no bare prompt): use /v1/chat/completions", param="prompt",
                                 code="prompt_not_supported")
    text = render_text(sent, ep.spec)
    if treatment.tools is Path.NATIVE:
        text += tools_text(sent.tools)  # the container renders them into the prompt: they cost prompt tokens
    max_new = params.max_new_tokens or 0
    prompt = ep.counter.count(text) + images * IMAGE_PROMPT_TOKENS
    if ep.context_length is not None and prompt + max_new > ep.context_length:
        raise InvalidRequest(
            f"the prompt ({prompt} tokens, {ep.counter.source.value}) plus max_tokens ({max_new}) is "
            f"{prompt + max_new} tokens, over the {ep.context_length}-token context budget of endpoint "
            f"'{ep.id}': shorten the prompt or lower max_tokens",
            param="max_tokens", code="context_length_exceeded")
    subject = Subject(ep.id, ep.schema, model.name)
    streamed = req.stream and ep.can_stream  # a serverless endpoint is invoked and its answer re-emitted
    wire = normalize(params, ep.adapter.rules, ep.adapter.sampling, subject, policy=model.policy, stream=streamed)
    wire = logprobs.check_endpoint(req, ep.token_data, subject, model.policy, wire, streamed=streamed)
    return Candidate(ep, weight, wire, text, sent, treatment)


def _weighted_order(items: list[W], rng: random.Random) -> list[W]:
    """A weighted shuffle: repeatedly draw by weight among the rest (Efraimidis-Spirakis keys)."""
    if len(items) == 1:
        return items
    return sorted(items, key=lambda c: rng.random() ** (1.0 / c.weight), reverse=True)


def none_left(model: str, refusals: list[GatewayError], unhealthy: list[float]) -> GatewayError:
    """The error when no endpoint of `model` is left: 503 when open circuits removed some, else the refusal."""
    if unhealthy:
        return NoEndpointAvailable(
            f"every endpoint of model '{model}' that could serve this request is failing and its circuit "
            "is open; retry later", retry_after=max(1.0, min(unhealthy)))
    if len(refusals) == 1 or (len({type(r) for r in refusals}) == 1 and len({r.param for r in refusals}) == 1):
        return refusals[0]
    reasons = "; ".join(r.message for r in refusals)
    return InvalidRequest(f"no endpoint of model '{model}' can serve this request: {reasons}",
                          param=refusals[0].param, code=refusals[0].code)
