"""Choose the endpoint for a request: a weighted choice among the model's targets that can take it.

An endpoint is left out when the estimated prompt plus max_new_tokens exceeds its `context_length`
(Inferentia2 endpoints compiled for a fixed n_positions cut an over-long prompt silently instead of
rejecting it, wire-formats.md 3.6). Capacity, circuit breakers and fallbacks come with the routing issue.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from service.catalog import Endpoint, Model
from service.errors import InvalidRequest


def choose(model: Model, prompt_tokens: Callable[[Endpoint], int], max_new_tokens: int,
           rng: random.Random) -> Endpoint:
    fitting = [(ep, w) for ep, w in model.targets if _fits(ep, prompt_tokens(ep), max_new_tokens)]
    if not fitting:
        raise _over_budget(model, prompt_tokens, max_new_tokens)
    if len(fitting) == 1:
        return fitting[0][0]
    endpoints, weights = zip(*fitting, strict=True)
    return rng.choices(endpoints, weights)[0]


def _fits(ep: Endpoint, prompt: int, max_new_tokens: int) -> bool:
    return ep.context_length is None or prompt + max_new_tokens <= ep.context_length


def _over_budget(model: Model, prompt_tokens: Callable[[Endpoint], int], max_new_tokens: int) -> InvalidRequest:
    ep = max((ep for ep, _ in model.targets), key=lambda e: e.context_length or 0)
    prompt = prompt_tokens(ep)
    return InvalidRequest(
        f"the prompt (about {prompt} tokens, estimated) plus max_tokens ({max_new_tokens}) is "
        f"{prompt + max_new_tokens} tokens, over the {ep.context_length}-token context budget of endpoint "
        f"'{ep.id}', the largest of model '{model.name}': shorten the prompt or lower max_tokens",
        param="max_tokens", code="context_length_exceeded")
