"""Planning: everything decided for a request before its first upstream byte is sent.

A request becomes one `Plan` per candidate endpoint, in the order routing chose: the endpoint, the
sampling parameters with the model's defaults, the normalized wire parameters and the encoded payloads
(one per call when n > 1 is fanned out). Errors here are the client's (4xx) or routing's (503).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from service.adapters.params import Support, WireParams
from service.canonical import GenerationRequest, SamplingParams
from service.pipeline.capacity import Fleet
from service.pipeline.catalog import Endpoint, Model
from service.pipeline.routing import Candidate, build_candidate, candidates
from service.pipeline.tooling import PLAIN, Treatment
from service.transport.base import Payload


@dataclass(frozen=True, slots=True)
class Plan:
    """What one candidate endpoint would be sent."""

    endpoint: Endpoint
    params: SamplingParams
    wire: WireParams
    payloads: tuple[Payload, ...]
    prompt_text: str
    #: alternatives per token when the answer carries token log-probabilities (None: not asked for, or dropped)
    logprobs: int | None = None
    treatment: Treatment = PLAIN  # how the answer is read (tools, output formats)


def plan_request(model: Model, req: GenerationRequest, fleet: Fleet, rng: random.Random) -> list[Plan]:
    """Route and normalize. Raises the 4xx (or 503, all circuits open) errors before anything is sent."""
    params = req.params.with_defaults(model.defaults)
    return [plan_for(req, params, c, rng) for c in candidates(model, req, params, fleet, rng)]


def plan_on(model: Model, ep: Endpoint, req: GenerationRequest, rng: random.Random) -> Plan:
    """A plan for one given endpoint, outside routing (shadow traffic)."""
    params = req.params.with_defaults(model.defaults)
    return plan_for(req, params, build_candidate(model, ep, 1.0, req, params), rng)


def plan_for(req: GenerationRequest, params: SamplingParams, c: Candidate, rng: random.Random) -> Plan:
    ep = c.endpoint
    sent = c.sent
    if sent.stream and not ep.can_stream:  # invoked, and the answer relayed as a stream (serverless, text2text)
        sent = replace(sent, stream=False)
    payloads = tuple(ep.adapter.encode(sent, ep.spec, w) for w in _fan_out(ep, params, c.wire, rng))
    logprobs = req.top_logprobs if req.logprobs and "logprobs" not in c.wire.dropped else None
    return Plan(ep, params, c.wire, payloads, c.prompt_text, logprobs, c.treatment)


def _fan_out(ep: Endpoint, params: SamplingParams, wire: WireParams, rng: random.Random) -> list[WireParams]:
    """n > 1 on a schema without native n: n calls, with distinct seeds where the schema takes one."""
    if wire.fan_out <= 1:
        return [wire]
    rule = ep.adapter.rules["seed"]
    if rule.support is not Support.NATIVE or (params.greedy and rule.sampling_only):
        return [wire] * wire.fan_out
    base = params.seed if params.seed is not None else rng.randrange(2**31)
    key = rule.wire or "seed"
    return [replace(wire, values={**wire.values, key: base + i}) for i in range(wire.fan_out)]
