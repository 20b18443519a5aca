"""Which endpoints may serve a request, in which order.

An endpoint is dropped when it cannot serve the request: the estimated prompt plus max_new_tokens over
its `context_length` (Inferentia2 endpoints compiled for a fixed n_positions cut an over-long prompt
silently instead of rejecting it, wire-formats.md 3.6); a non-neutral parameter it does not support;
an open circuit. The rest come in weighted random order, endpoints cooling down from throttling last (see
`capacity.Throttling`), endpoints with a free slot first. When none is
left: 503 with Retry-After if health removed some, otherwise the 400 that says why (budget and count,
or the unsupported parameter).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from service.adapters.params import Subject, WireParams, normalize
from service.canonical import GenerationRequest, SamplingParams
from service.errors import GatewayError, InvalidRequest, NoEndpointAvailable, UnsupportedFeature
from service.pipeline.capacity import Fleet
from service.pipeline.catalog import Endpoint, Model
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
        raise _none_left(model, refusals, unhealthy)
    ordered = _weighted_order(fitting, rng)
    if len(ordered) == 1:
        return ordered
    # stable: endpoints that are not cooling down from throttling first, then those with a free slot
    return sorted(ordered, key=lambda c: (fleet[c.endpoint.id].throttling.cooling(),
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
    wire = normalize(params, ep.adapter.rules, ep.adapter.sampling, Subject(ep.id, ep.schema, model.name),
                     policy=model.policy, stream=req.stream and ep.can_stream)
    return Candidate(ep, weight, wire, text, sent, treatment)


def _weighted_order(items: list[Candidate], rng: random.Random) -> list[Candidate]:
    """A weighted shuffle: repeatedly draw by weight among the rest (Efraimidis-Spirakis keys)."""
    if len(items) == 1:
        return items
    return sorted(items, key=lambda c: rng.random() ** (1.0 / c.weight), reverse=True)


def _none_left(model: Model, refusals: list[GatewayError], unhealthy: list[float]) -> GatewayError:
    if unhealthy:
        return NoEndpointAvailable(
            f"every endpoint of model '{model.name}' that could serve this request is failing and its circuit "
            "is open; retry later", retry_after=max(1.0, min(unhealthy)))
    if len(refusals) == 1 or (len({type(r) for r in refusals}) == 1 and len({r.param for r in refusals}) == 1):
        return refusals[0]
    reasons = "; ".join(r.message for r in refusals)
    return InvalidRequest(f"no endpoint of model '{model.name}' can serve this request: {reasons}",
                          param=refusals[0].param, code=refusals[0].code)
